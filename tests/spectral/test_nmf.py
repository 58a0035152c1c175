"""matchar.spectral.NMF: agreement with scikit-learn, accuracy on known phases, inputs."""

from __future__ import annotations

import threading
import time
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.decomposition import NMF as SkNMF
from sklearn.decomposition._nmf import _beta_divergence, _initialize_nmf
from spectral_reference import phase_cube, spectral_angles

import matchar as mc


def small_cube(seed=0, N=300, C=90, K=4, counts=200.0):
    rng = np.random.default_rng(seed)
    S = rng.random((K, C)) ** 3
    S /= S.sum(1, keepdims=True)
    A = rng.dirichlet(np.full(K, 0.3), size=N)
    return rng.poisson(counts * A @ S), rng


def sklearn_fit(X, W0, H0, loss, max_iter):
    kw = dict(solver="mu", beta_loss="kullback-leibler") if loss == "kl" else dict(solver="cd")
    est = SkNMF(W0.shape[1], init="custom", max_iter=max_iter, tol=0, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning
        W = est.fit_transform(X, W=W0.copy(), H=H0.copy())
    return W, est.components_


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_kl_matches_sklearn_mu_from_same_init(dtype):
    X, rng = small_cube()
    X = X.astype(dtype)
    W0 = (rng.random((X.shape[0], 4)) + 0.1).astype(dtype)
    H0 = (rng.random((4, X.shape[1])) + 0.1).astype(dtype)
    W, H = sklearn_fit(X, W0, H0, "kl", 60)
    sk_loss = _beta_divergence(X, W, H, 1)
    nmf = mc.spectral.NMF(4, max_iter=60, tol=0, init=(W0, H0))
    maps = nmf.fit_transform(X)
    assert nmf.n_iter_ == 60
    assert maps.dtype == dtype and nmf.components_.dtype == dtype
    assert abs(nmf.loss_history_[-1] - sk_loss) <= 0.01 * sk_loss
    if dtype == np.float64:  # the same arithmetic: agreement far beyond 1%
        np.testing.assert_allclose(nmf.components_, H, rtol=1e-8, atol=1e-12)
        np.testing.assert_allclose(maps, W, rtol=1e-8, atol=1e-12)
    assert nmf.reconstruction_err_ == pytest.approx(np.sqrt(2 * sk_loss), rel=0.01)
    np.testing.assert_allclose(nmf.loss_history_[-1], 0.5 * nmf.residual_map_.sum(), rtol=1e-10)


def test_frobenius_matches_sklearn_cd_from_same_init():
    X, rng = small_cube(1)
    W0 = rng.random((X.shape[0], 4)) + 0.1
    H0 = rng.random((4, X.shape[1])) + 0.1
    W, H = sklearn_fit(X.astype(float), W0, H0, "frobenius", 40)
    nmf = mc.spectral.NMF(4, loss="frobenius", max_iter=40, tol=0, init=(W0, H0))
    nmf.fit(X.astype(float))
    sk_err = np.linalg.norm(X - W @ H)
    assert nmf.reconstruction_err_ == pytest.approx(sk_err, rel=1e-6)
    np.testing.assert_allclose(nmf.components_, H, rtol=1e-6, atol=1e-9)


def test_loss_history_and_tol():
    X, _ = small_cube(2)
    nmf = mc.spectral.NMF(4, max_iter=35, tol=0, random_state=0, eval_every=10).fit(X)
    assert nmf.n_iter_ == 35
    np.testing.assert_array_equal(nmf.loss_iterations_, [0, 10, 20, 30, 35])
    assert np.all(np.diff(nmf.loss_history_) <= 0)  # multiplicative updates never increase it
    early = mc.spectral.NMF(4, max_iter=2000, tol=1e-2, random_state=0).fit(X)
    assert early.n_iter_ < 2000
    assert early.n_iter_ % 10 == 1  # stops right after the check that found the plateau


def test_random_init_is_sklearns():
    X, _ = small_cube(3)
    X = X.astype(np.float64)
    W0, H0 = _initialize_nmf(X, 4, init="random", random_state=7)
    nmf = mc.spectral.NMF(4, init="random", random_state=7, max_iter=5, tol=0).fit(X)
    ref = mc.spectral.NMF(4, init=(W0, H0), max_iter=5, tol=0).fit(X)
    np.testing.assert_array_equal(nmf.components_, ref.components_)


def test_nndsvda_fit_as_good_as_sklearn():
    cube, _, _ = phase_cube(side=24, n_channels=128)
    X = cube.reshape(-1, 128).astype(np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sk = SkNMF(
            4,
            solver="mu",
            beta_loss="kullback-leibler",
            init="nndsvda",
            max_iter=100,
            tol=0,
            random_state=0,
        )
        W = sk.fit_transform(X)
    sk_loss = _beta_divergence(X, W, sk.components_, 1)
    nmf = mc.spectral.NMF(4, max_iter=100, tol=0, random_state=0).fit(X)
    assert nmf.loss_history_[-1] <= 1.01 * sk_loss


def test_spectral_angles_on_known_phases(phases):
    cube, S, A = phases
    nmf = mc.spectral.NMF(4, max_iter=250, tol=0, random_state=0)
    maps = nmf.fit_transform(cube)
    assert maps.shape == (*cube.shape[:2], 4)
    angles, match = spectral_angles(nmf.components_, S)
    assert angles.max() <= 3.0, angles
    # Abundances (normalised to fractions of counts) follow the truth.
    frac = maps * nmf.components_.sum(1)
    frac /= frac.sum(-1, keepdims=True)
    assert np.abs(frac[..., match] - A).mean() < 0.03
    assert nmf.residual_map_.shape == cube.shape[:2]


def test_deterministic_with_seed():
    X, _ = small_cube(4)
    a = mc.spectral.NMF(4, max_iter=20, random_state=3).fit(X.astype(np.uint16))
    b = mc.spectral.NMF(4, max_iter=20, random_state=3).fit(X.astype(np.uint16))
    np.testing.assert_array_equal(a.components_, b.components_)
    np.testing.assert_array_equal(a.loss_history_, b.loss_history_)


@pytest.mark.parametrize("loss", ["kl", "frobenius"])
def test_sparse_and_dense_agree(loss):
    X, rng = small_cube(5, counts=20.0)
    W0 = rng.random((X.shape[0], 4)) + 0.1
    H0 = rng.random((4, X.shape[1])) + 0.1
    dense = mc.spectral.NMF(4, loss=loss, max_iter=15, tol=0, init=(W0, H0)).fit(X.astype(float))
    for fmt in (sp.csr_matrix, sp.csc_matrix, sp.coo_matrix):
        Xs = fmt(X)
        before = Xs.copy()
        est = mc.spectral.NMF(4, loss=loss, max_iter=15, tol=0, init=(W0, H0)).fit(Xs)
        np.testing.assert_allclose(est.components_, dense.components_, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(est.residual_map_, dense.residual_map_, rtol=1e-9)
        assert (Xs != before).nnz == 0


def test_memmap_and_integer_inputs_read_in_place(tmp_path):
    X, _ = small_cube(6)
    mm = np.memmap(tmp_path / "cube.u16", dtype=np.uint16, mode="w+", shape=X.shape)
    mm[:] = X
    mm.flush()
    ro = np.memmap(tmp_path / "cube.u16", dtype=np.uint16, mode="r", shape=X.shape)
    a = mc.spectral.NMF(4, max_iter=10, random_state=0, dtype=np.float64).fit(ro)
    b = mc.spectral.NMF(4, max_iter=10, random_state=0, dtype=np.float64).fit(X.astype(float))
    np.testing.assert_allclose(a.components_, b.components_, rtol=1e-8)
    c = mc.spectral.NMF(4, max_iter=10, random_state=0, dtype=np.float64).fit(X)  # int64
    np.testing.assert_allclose(c.components_, b.components_, rtol=1e-8)
    assert a.components_.dtype == np.float64
    assert mc.spectral.NMF(2, max_iter=2).fit(ro).components_.dtype == np.float32


def test_masked_entries_do_not_influence_the_fit():
    X, rng = small_cube(7)
    W0 = rng.random((X.shape[0], 4)) + 0.1
    H0 = rng.random((4, X.shape[1])) + 0.1
    hot = np.zeros(X.shape[0], bool)
    hot[[3, 50, 120]] = True
    X2 = X.copy()
    X2[hot] = 60000  # hot pixels: whatever they hold must not change the components
    a = mc.spectral.NMF(4, max_iter=20, tol=0, init=(W0, H0)).fit(X, pixel_mask=hot)
    b = mc.spectral.NMF(4, max_iter=20, tol=0, init=(W0, H0)).fit(X2, pixel_mask=hot)
    np.testing.assert_allclose(a.components_, b.components_, rtol=1e-12)
    assert a.loss_history_[-1] == pytest.approx(b.loss_history_[-1], rel=1e-12)
    bad = np.zeros(X.shape[1], bool)
    bad[[0, 17]] = True
    X3 = X.copy()
    X3[:, bad] = 999
    ma = mc.spectral.NMF(4, max_iter=20, tol=0, init=(W0, H0)).fit_transform(X, channel_mask=bad)
    mb = mc.spectral.NMF(4, max_iter=20, tol=0, init=(W0, H0)).fit_transform(X3, channel_mask=bad)
    np.testing.assert_allclose(ma, mb, rtol=1e-12)
    # (H, W) pixel masks for cubes.
    cube = X[:300].reshape(15, 20, -1)
    est = mc.spectral.NMF(4, max_iter=5).fit(cube, pixel_mask=hot[:300].reshape(15, 20))
    assert est.residual_map_.shape == (15, 20)


def test_residual_map_shows_a_localised_signal(phases):
    cube, _, _ = phases
    cube = cube.copy()
    rng = np.random.default_rng(1)
    spot = (slice(10, 13), slice(30, 33))
    extra = np.zeros(cube.shape[-1])
    extra[200] = 40.0  # a line that no phase has, in 9 pixels
    cube[spot] += rng.poisson(extra, size=(3, 3, cube.shape[-1])).astype(np.uint16)
    nmf = mc.spectral.NMF(4, max_iter=100, random_state=0).fit(cube)
    top = np.argsort(nmf.residual_map_.ravel())[-9:]
    rows, cols = np.unravel_index(top, cube.shape[:2])
    assert set(zip(rows, cols)) == {(r, c) for r in range(10, 13) for c in range(30, 33)}


def test_transform_and_inverse_transform():
    X, _ = small_cube(8)
    nmf = mc.spectral.NMF(4, max_iter=200, tol=0, random_state=0)
    maps = nmf.fit_transform(X)
    again = nmf.transform(X)
    assert np.median(np.abs(again - maps)) < 0.05 * np.median(maps)
    rec = nmf.inverse_transform(maps)
    np.testing.assert_allclose(rec, maps @ nmf.components_)
    cube_maps = nmf.transform(X[:200].reshape(10, 20, -1))
    assert cube_maps.shape == (10, 20, 4)
    assert nmf.inverse_transform(cube_maps).shape == (10, 20, X.shape[1])


def test_inputs_are_not_modified():
    X, rng = small_cube(9)
    X = X.astype(np.float32)
    W0 = rng.random((X.shape[0], 4)).astype(np.float32)
    H0 = rng.random((4, X.shape[1])).astype(np.float32)
    copies = [a.copy() for a in (X, W0, H0)]
    mc.spectral.NMF(4, max_iter=5, init=(W0, H0)).fit(X)
    for a, b in zip((X, W0, H0), copies):
        np.testing.assert_array_equal(a, b)


def test_all_zero_pixels_give_zero_maps_not_nan():
    X, _ = small_cube(10)
    X[[0, 7]] = 0
    X[:, 3] = 0
    for loss in ("kl", "frobenius"):
        nmf = mc.spectral.NMF(4, loss=loss, max_iter=30, random_state=0)
        maps = nmf.fit_transform(X)
        assert np.isfinite(maps).all() and np.isfinite(nmf.components_).all()
        np.testing.assert_array_equal(maps[[0, 7]], 0)
        assert np.isfinite(nmf.residual_map_).all()
    zero = mc.spectral.NMF(2, max_iter=5).fit(np.zeros((10, 6)))
    assert np.isfinite(zero.components_).all() and zero.reconstruction_err_ == 0.0


def test_ctrl_c_stops_within_an_iteration_and_keeps_a_consistent_state():
    import _thread

    rng = np.random.default_rng(11)
    X = rng.poisson(5.0, (20000, 256)).astype(np.uint16)
    nmf = mc.spectral.NMF(3, max_iter=100000, tol=0, random_state=0, init="random")
    timer = threading.Timer(2.0, _thread.interrupt_main)
    timer.start()
    t0 = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        nmf.fit(X)
    assert time.perf_counter() - t0 < 15
    timer.cancel()
    assert 0 < nmf.n_iter_ < 100000
    assert nmf.components_.shape == (3, 256) and np.isfinite(nmf.components_).all()
    assert len(nmf.loss_history_) >= 1


def test_progress_bar(capsys):
    X, _ = small_cube(12)
    mc.spectral.NMF(2, max_iter=3, tol=0, progress=True).fit(X)
    assert "NMF (kl)" in capsys.readouterr().err


def test_mostly_zero_dense_cube_takes_the_sparse_path(monkeypatch):
    from matchar.spectral import _nmf

    rng = np.random.default_rng(13)
    X = rng.poisson(0.02, (400, 300)).astype(np.uint8)  # ~2 % non-zero, like EDX maps
    W0 = rng.random((400, 3)) + 0.1
    H0 = rng.random((3, 300)) + 0.1
    fit = lambda data: mc.spectral.NMF(3, max_iter=10, tol=0, init=(W0, H0)).fit(data)  # noqa: E731
    auto = fit(X)
    np.testing.assert_array_equal(auto.components_, fit(sp.csr_matrix(X)).components_)
    monkeypatch.setattr(_nmf, "AUTO_SPARSE_DENSITY", 0.0)  # force the dense kernels
    dense = fit(X)
    np.testing.assert_allclose(auto.components_, dense.components_, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(auto.residual_map_, dense.residual_map_, rtol=1e-5)
