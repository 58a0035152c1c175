"""partial_fit / warm_start: StreamingPCA and OnlineNMF (C++) against NumPy references."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from spectral_reference import (
    EPS,
    phase_cube,
    reference_hals_step,
    reference_kl_step,
    spectral_angles,
)

import matchar as mc


def reference_weighted_pca(X, k, poisson=True, center=True):
    """Batch Keenan-Kotula PCA in float64 NumPy: (components, explained variance, ratio,
    mean, column weights)."""
    X = np.asarray(X, dtype=np.float64)
    N = X.shape[0]
    if poisson:
        g, h = X.sum(1), X.sum(0) / X.sum()
        r = np.divide(1.0, np.sqrt(g), out=np.zeros_like(g), where=g > 0)
        c = np.divide(1.0, np.sqrt(h), out=np.zeros_like(h), where=h > 0)
    else:
        r, c = np.ones(N), np.ones(X.shape[1])
    Xw = X * r[:, None] * c[None, :]
    mean = Xw.mean(0) if center else np.zeros(X.shape[1])
    A = Xw - mean
    _, S, Vt = np.linalg.svd(A, full_matrices=False)
    ev = S**2 / (N - 1)
    total = (A**2).sum() / (N - 1)
    return Vt[:k], ev[:k], ev[:k] / total, mean, c


def principal_angles_deg(A, B):
    """Largest principal angle (degrees) between the row spaces of A and B."""
    qa, qb = np.linalg.qr(A.T)[0], np.linalg.qr(B.T)[0]
    s = np.linalg.svd(qa.T @ qb, compute_uv=False)
    return float(np.degrees(np.arccos(np.clip(s.min(), -1, 1))))


def low_rank_counts(seed=0, n=600, C=150, k=3, scale=40.0):
    rng = np.random.default_rng(seed)
    maps = rng.random((n, k)) ** 2
    spectra = rng.random((k, C)) * scale
    return rng.poisson(maps @ spectra).astype(np.uint16)


# -- StreamingPCA -----------------------------------------------------------------------
@pytest.mark.parametrize("poisson", [True, False])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_partial_fit_pca_exact_when_sketch_spans_channels(poisson, dtype):
    # C <= n_components + n_oversamples: the merged subspace is all of R^C -> batch PCA.
    X = low_rank_counts(1, n=301, C=12).astype(dtype)
    pca = mc.spectral.PCA(3, poisson=poisson, random_state=0)
    for i0 in range(0, 301, 37):  # odd block sizes
        pca.partial_fit(X[i0 : i0 + 37])
    V, ev, ratio, mean, c = reference_weighted_pca(X, 3, poisson)
    tol = 1e-8 if dtype == np.float64 else 2e-4
    assert pca.n_samples_seen_ == 301
    np.testing.assert_allclose(np.abs(pca.components_ @ V.T), np.eye(3), atol=tol * 10)
    np.testing.assert_allclose(pca.explained_variance_, ev, rtol=tol * 10)
    np.testing.assert_allclose(pca.explained_variance_ratio_, ratio, rtol=tol * 10)
    np.testing.assert_allclose(pca.mean_, mean, rtol=tol, atol=tol)
    np.testing.assert_allclose(pca.spectrum_weights_, c, rtol=tol)


def test_partial_fit_pca_low_rank_matches_batch_subspace():
    X = low_rank_counts(2, n=900, C=150, k=3)
    pca = mc.spectral.PCA(3, random_state=0)
    for i0 in range(0, 900, 100):
        pca.partial_fit(X[i0 : i0 + 100])
    V, ev, ratio, _, _ = reference_weighted_pca(X, 3)
    assert principal_angles_deg(pca.components_, V) < 1.0
    np.testing.assert_allclose(pca.explained_variance_, ev, rtol=0.02)
    np.testing.assert_allclose(pca.explained_variance_ratio_, ratio, rtol=0.02)


def test_partial_fit_pca_noncontiguous_and_cube_input():
    X = low_rank_counts(3, n=200, C=40).astype(np.float32)
    Xf = np.asfortranarray(X)
    wide = np.zeros((200, 80), np.float32)
    wide[:, ::2] = X
    a = mc.spectral.PCA(2, random_state=0, n_oversamples=2)
    b = mc.spectral.PCA(2, random_state=0, n_oversamples=2)
    c = mc.spectral.PCA(2, random_state=0, n_oversamples=2)
    for i0 in range(0, 200, 50):
        a.partial_fit(X[i0 : i0 + 50])
        b.partial_fit(Xf[i0 : i0 + 50])
        c.partial_fit(wide[i0 : i0 + 50, ::2].reshape(5, 10, 40))
    np.testing.assert_allclose(a.components_, b.components_, atol=1e-6)
    np.testing.assert_allclose(a.components_, c.components_, atol=1e-6)


def test_streaming_results_do_not_depend_on_the_thread_count():
    # StreamingPCA splits a block into fixed pieces summed in piece order (any team);
    # 300 x 2048 blocks: 2 pieces of 2^18+ values, so 2 and 3 threads do run in parallel.
    X = low_rank_counts(3, n=900, C=2048)
    fitted = []
    for n in (1, 2, 3):
        pca = mc.spectral.PCA(3, random_state=0)
        nmf = mc.spectral.NMF(3, random_state=0, max_iter=20, batch_iter=5)
        with mc.threads(n):
            for i0 in range(0, 900, 300):
                pca.partial_fit(X[i0 : i0 + 300])
                nmf.partial_fit(X[i0 : i0 + 300])
        fitted.append((pca.components_, pca.explained_variance_, nmf.components_))
    for other in fitted[1:]:
        np.testing.assert_array_equal(fitted[0][0], other[0])  # PCA: bitwise
        np.testing.assert_array_equal(fitted[0][1], other[1])
        # NMF: the component statistics are per-thread sums (the order may differ)
        np.testing.assert_allclose(fitted[0][2], other[2], rtol=1e-10)


def test_partial_fit_pca_matches_sklearn_incremental_pca():
    from sklearn.decomposition import IncrementalPCA

    X = low_rank_counts(4, n=800, C=100, k=4).astype(np.float64)
    ours = mc.spectral.PCA(4, poisson=False, random_state=0)
    peer = IncrementalPCA(4)
    for i0 in range(0, 800, 100):
        ours.partial_fit(X[i0 : i0 + 100])
        peer.partial_fit(X[i0 : i0 + 100])
    assert principal_angles_deg(ours.components_, peer.components_) < 0.5
    np.testing.assert_allclose(ours.explained_variance_, peer.explained_variance_, rtol=1e-3)
    np.testing.assert_allclose(ours.mean_, peer.mean_, rtol=1e-10)
    scores = ours.transform(X[:5])
    ref = (X[:5] - peer.mean_) @ ours.components_.T
    np.testing.assert_allclose(scores, ref, rtol=1e-8, atol=1e-8)


def test_partial_fit_pca_bad_input_leaves_state():
    X = low_rank_counts(5, n=100, C=30)
    pca = mc.spectral.PCA(2, random_state=0).partial_fit(X[:50])
    before = pca.components_.copy()
    with pytest.raises(ValueError, match="29 features, but PCA is expecting 30"):
        pca.partial_fit(X[50:, :29])
    bad = X[50:].astype(np.float64)
    bad[3, 4] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        pca.partial_fit(bad)
    bad[3, 4] = -1
    with pytest.raises(ValueError, match="negative"):
        pca.partial_fit(bad)
    assert pca.n_samples_seen_ == 50
    np.testing.assert_array_equal(pca.components_, before)
    with pytest.raises(ValueError, match="n_components"):
        mc.spectral.PCA(31).partial_fit(X)


def test_partial_fit_pca_pickle_drops_stream_with_clear_error():
    X = low_rank_counts(6, n=60, C=20)
    pca = mc.spectral.PCA(2, random_state=0).partial_fit(X)
    clone = pickle.loads(pickle.dumps(pca))
    np.testing.assert_array_equal(clone.components_, pca.components_)
    assert clone.transform(X[:3]).shape == (3, 2)
    with pytest.raises(ValueError, match="not serialised"):
        clone.partial_fit(X)
    clone.fit(X)  # fit starts over
    clone.partial_fit(X)


def test_streaming_pca_cpp_channel_change_is_value_error():
    s = mc._core.spectral.StreamingPCA(20, 2)
    s.partial_fit(np.ones((4, 20)))
    with pytest.raises(ValueError, match="channel count cannot change"):
        s.partial_fit(np.ones((4, 21)))
    with pytest.raises(ValueError, match="n_components"):
        mc._core.spectral.StreamingPCA(20, 21)


# -- OnlineNMF ----------------------------------------------------------------------------
def reference_online_kl(blocks, H0, max_iter, inner, rho=1.0):
    """NumPy online KL NMF (Lefevre et al. 2011) with the schedule of OnlineNMF."""
    H = np.asarray(H0, np.float64)
    K = H.shape[0]
    A = np.zeros_like(H)
    B = np.zeros(K)
    for b, X in enumerate(blocks):
        X = np.asarray(X, np.float64)
        W = np.full((X.shape[0], K), np.sqrt(max(X.mean(), EPS) / K))
        if b == 0:
            for _ in range(max_iter):
                _, W, H = reference_kl_step(X, W, H)
        for _ in range(1 if b == 0 else inner):
            _, W, _ = reference_kl_step(X, W, H, update_H=False)
        _, W, Hn = reference_kl_step(X, W, H)
        wsum = W.sum(0)
        A = rho * A + Hn * wsum[:, None]
        B = rho * B + wsum
        H = np.where(B[:, None] > 0, A / np.where(B > 0, B, 1)[:, None], H)
        H[H < np.finfo(np.float64).eps] = 0
    return H


def reference_online_frobenius(blocks, H0, max_iter, inner, rho=1.0):
    """NumPy online Frobenius NMF (Mairal et al. 2010) with the schedule of OnlineNMF."""
    H = np.array(H0, np.float64)
    K = H.shape[0]
    A = np.zeros((K, K))
    B = np.zeros_like(H)
    for b, X in enumerate(blocks):
        X = np.asarray(X, np.float64)
        W = np.full((X.shape[0], K), np.sqrt(max(X.mean(), EPS) / K))
        if b == 0:
            for _ in range(max_iter):
                _, W, H = reference_hals_step(X, W, H)
        for _ in range(1 if b == 0 else inner):
            HHt, XHt = H @ H.T, X @ H.T
            for k in range(K):
                if HHt[k, k] != 0:
                    W[:, k] = np.maximum(W[:, k] - (W @ HHt[:, k] - XHt[:, k]) / HHt[k, k], 0)
        A = rho * A + W.T @ W
        B = rho * B + W.T @ X
        for _ in range(inner):
            for k in range(K):
                if A[k, k] > 0:
                    H[k] = np.maximum(H[k] - (A[k] @ H - B[k]) / A[k, k], 0)
    return H


@pytest.mark.parametrize("rho", [1.0, 0.7])
def test_partial_fit_frobenius_matches_numpy_reference(rho):
    cube, _, _ = phase_cube(seed=4, side=10, n_channels=48)
    X = cube.reshape(-1, 48)[:, ::-1]  # negative strides
    blocks = [X[i : i + 23] for i in range(0, X.shape[0], 23)]
    H0 = np.random.default_rng(1).random((3, 48)) + 0.1
    nmf = mc.spectral.NMF(
        3,
        loss="frobenius",
        init=(np.ones((23, 3)), H0),
        max_iter=10,
        batch_iter=4,
        forget_factor=rho,
        dtype=np.float64,
    )
    for blk in blocks:
        nmf.partial_fit(blk)
    ref = reference_online_frobenius(blocks, H0, 10, 4, rho)
    np.testing.assert_allclose(nmf.components_, ref, rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize("rho", [1.0, 0.7])
def test_partial_fit_nmf_matches_numpy_reference(rho):
    cube, _, _ = phase_cube(seed=3, side=12, n_channels=64)
    X = cube.reshape(-1, 64).astype(np.float64)
    blocks = [X[i : i + 29] for i in range(0, X.shape[0], 29)]
    rng = np.random.default_rng(0)
    H0 = rng.random((4, 64)) + 0.1
    W0 = np.ones((29, 4))
    nmf = mc.spectral.NMF(4, init=(W0, H0), max_iter=15, batch_iter=5, forget_factor=rho)
    for blk in blocks:
        nmf.partial_fit(blk)
    ref = reference_online_kl(blocks, H0, 15, 5, rho)
    np.testing.assert_allclose(nmf.components_, ref, rtol=1e-7, atol=1e-12)
    assert nmf.n_iter_ == len(blocks) and nmf.n_samples_seen_ == X.shape[0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_partial_fit_nmf_strided_uint16_blocks_match_numpy_reference(dtype):
    # The fused map pass (kl_update_maps) reads uint16 through any strides; odd sizes.
    cube, _, _ = phase_cube(seed=6, side=11, n_channels=53)
    X = cube.reshape(-1, 53)
    Xs = np.asfortranarray(X)[:, ::-1]  # Fortran order, reversed channels
    blocks = [Xs[i : i + 31] for i in range(0, X.shape[0], 31)]
    H0 = np.random.default_rng(2).random((3, 53)) + 0.1
    nmf = mc.spectral.NMF(3, init=(np.ones((31, 3)), H0), max_iter=6, batch_iter=7, dtype=dtype)
    for blk in blocks:
        nmf.partial_fit(blk)
    assert nmf.components_.dtype == dtype
    ref = reference_online_kl([b.astype(np.float64) for b in blocks], H0, 6, 7)
    tol = 1e-7 if dtype == np.float64 else 2e-3
    np.testing.assert_allclose(nmf.components_, ref, rtol=tol, atol=tol * 1e-3)


def test_partial_fit_nmf_approaches_batch_on_planted_phases():
    # A stationary stream (pixels in random order, 40 per block, 3 passes). Spatially
    # ordered scans where phases first appear late are harder; see docs/scale.md.
    cube, S, _ = phase_cube(seed=0, side=40, n_channels=128)
    X = cube.reshape(-1, 128)
    Xd = X.astype(np.float64)
    nz = Xd > 0
    order = np.random.default_rng(0).permutation(X.shape[0])
    nmf = mc.spectral.NMF(4, random_state=0, max_iter=100, batch_iter=20)
    losses = []
    for _epoch in range(3):
        for i in range(0, X.shape[0], 40):
            nmf.partial_fit(X[order[i : i + 40]])
        WH = nmf.transform(X) @ nmf.components_
        losses.append(
            np.sum(Xd[nz] * np.log(Xd[nz] / np.maximum(WH[nz], EPS))) - Xd.sum() + WH.sum()
        )
    batch = mc.spectral.NMF(4, random_state=0, max_iter=200, tol=0).fit(X)
    angles_online, _ = spectral_angles(nmf.components_, S)
    angles_batch, _ = spectral_angles(batch.components_, S)
    assert losses[1] < losses[0] and losses[2] < losses[1]
    assert angles_online.max() < 5.0 and angles_batch.max() < 3.0
    assert losses[-1] < 1.06 * batch.loss_history_[-1]


def test_partial_fit_nmf_float32_and_bad_input():
    cube, _, _ = phase_cube(seed=1, side=10, n_channels=32)
    nmf = mc.spectral.NMF(2, random_state=0, max_iter=20)
    nmf.partial_fit(cube[0])
    assert nmf.components_.dtype == np.float32
    with pytest.raises(ValueError, match="31 features, but NMF is expecting 32"):
        nmf.partial_fit(cube[1][:, :31])
    bad = cube[1].astype(np.float32)
    bad[0, 0] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        nmf.partial_fit(bad)
    assert nmf.n_samples_seen_ == 10
    with pytest.raises(ValueError, match="forget_factor"):
        mc.spectral.NMF(2, forget_factor=0.0).partial_fit(cube[0])
    with pytest.raises(ValueError, match="batch_iter"):
        mc.spectral.NMF(2, batch_iter=0).partial_fit(cube[0])
    s = mc._core.spectral.OnlineNMF(32, 2)
    with pytest.raises(ValueError, match="channel count cannot change"):
        s.partial_fit(np.ones((3, 31)))


def test_warm_start_continues_the_fit():
    cube, _, _ = phase_cube(seed=2, side=16, n_channels=64)
    X = cube.reshape(-1, 64).astype(np.float64)
    full = mc.spectral.NMF(3, random_state=0, max_iter=60, tol=0).fit(X)
    warm = mc.spectral.NMF(3, random_state=0, max_iter=30, tol=0, warm_start=True).fit(X)
    first = warm.components_.copy()
    warm.fit(X)
    np.testing.assert_allclose(warm.components_, full.components_, rtol=1e-10, atol=1e-14)
    assert not np.allclose(first, warm.components_)
    # Without warm_start the second fit starts over.
    cold = mc.spectral.NMF(3, random_state=0, max_iter=30, tol=0).fit(X)
    np.testing.assert_array_equal(cold.fit(X).components_, first)
