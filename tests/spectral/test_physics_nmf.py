"""PhysicsNMF: the C++ surrogate pass against NumPy, the whole iteration against a dense
NumPy implementation, monotone objective, composition targets, pins, EELS, bad input."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.sparse as sp
from physics_reference import physics_nmf_iterations, physics_pass

import matchar as mc
from matchar import _core

ELEMENTS = ["Fe", "Cr", "Ni", "Si", "Ti", "O"]
# Steel matrix, SiO2 and TiO2 particles (atomic fractions).
COMP = np.array(
    [[0.70, 0.20, 0.10, 0, 0, 0], [0, 0, 0, 1 / 3, 0, 2 / 3], [0, 0, 0, 0, 1 / 3, 2 / 3]]
)


@pytest.fixture(scope="module")
def edx_model():
    return mc.spectral.EDXModel(ELEMENTS, (0.0, 0.02, 1000))


def three_phase_cube(model, counts, shape=(32, 32), seed=0):
    """Matrix + two round particles (soft 1-pixel edges), Poisson counts per pixel ~ counts."""
    K, E = 3, model.G.shape[1]
    W = np.zeros((E, K))
    W[: len(ELEMENTS)] = COMP.T
    W[len(ELEMENTS) :] = [[0.3, 0.2, 0.25], [0.1, 0.15, 0.1]]
    h, w = shape
    yy, xx = np.mgrid[:h, :w]

    def disc(cx, cy, r):
        return 1 / (1 + np.exp((np.hypot(xx - cx * w, yy - cy * h) - r * w) / 1.0))

    p1, p2 = disc(0.3, 0.35, 0.2), disc(0.72, 0.65, 0.2)
    maps = np.stack([1 - p1 - p2, p1, p2], -1).clip(0)
    maps /= maps.sum(-1, keepdims=True)
    spec = (model.G @ W).T
    spec /= spec.sum(1, keepdims=True)
    rng = np.random.default_rng(seed)
    X = rng.poisson(counts * maps.reshape(-1, K) @ spec).reshape(h, w, -1).astype(np.uint16)
    return X, maps


def composition_error(found, true):
    """Largest absolute error (atomic fraction) over the best matching of the phases."""
    K = true.shape[0]
    return min(np.abs(found[list(p)] - true).max() for p in itertools.permutations(range(K)))


# -- the C++ kernel ----------------------------------------------------------------------
def _random_problem(rng, N=37, C=53, K=3, dtype=np.float64):
    A = (rng.random((N, K)) + 0.05).astype(dtype)
    H = (rng.random((K, C)) ** 2 + 0.01).astype(dtype)
    X = rng.poisson(A @ H * 3).astype(np.float64)
    X[rng.random(X.shape) < 0.3] = 0
    beta = np.tile(H.astype(float).sum(1), (N, 1))
    beta += 0.3 / (A + 1.0)  # a sparsity tangent
    nb = rng.random((N, K))
    beta -= 0.05 * nb  # a Laplacian neighbour term (may leave beta negative with q > 0)
    return X, A, H, np.ascontiguousarray(beta)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("simplex", [False, True])
@pytest.mark.parametrize("q", [0.0, 0.4])
def test_surrogate_pass_matches_numpy(dtype, simplex, q):
    rng = np.random.default_rng(1)
    X, A, H, beta = _random_problem(rng, dtype=dtype)
    if q == 0.0:
        beta = np.abs(beta) + 0.5  # the q = 0 surrogate needs beta + nu > 0
    ref = physics_pass(X, A, H, beta, q, simplex)
    tol = dict(rtol=1e-9, atol=1e-12) if dtype == np.float64 else dict(rtol=2e-4, atol=1e-6)
    for Xin in (X.astype(np.uint16), X.astype(np.float32)[:, ::1], np.asfortranarray(X)):
        loss, A_new, num, colsum = _core.spectral.physics_kl_pass(Xin, A, H, beta, q, simplex)
        assert A_new.dtype == dtype
        np.testing.assert_allclose(A_new, ref[1], **tol)
        np.testing.assert_allclose(num, ref[2], **tol)
        np.testing.assert_allclose(colsum, ref[3], **tol)
        assert loss == pytest.approx(ref[0], rel=1e-6 if dtype == np.float32 else 1e-10)
        if simplex:
            np.testing.assert_allclose(
                A_new.sum(1), 1.0, rtol=1e-5 if dtype == np.float32 else 1e-12
            )
    # CSR input gives the same
    csr = sp.csr_matrix(X)
    out = _core.spectral.physics_kl_pass_csr(
        csr.data, csr.indices, csr.indptr, X.shape[1], A, H, beta, q, simplex
    )
    np.testing.assert_allclose(out[1], ref[1], **tol)
    np.testing.assert_allclose(out[2], ref[2], **tol)


def test_surrogate_pass_masks_and_strided_input():
    rng = np.random.default_rng(2)
    X, A, H, beta = _random_problem(rng, N=41, C=70)
    big = np.zeros((41, 140))
    big[:, ::2] = X
    strided = big[:, ::2]  # non-contiguous view
    pm = (rng.random(41) > 0.2).astype(np.uint8)
    cm = (rng.random(70) > 0.3).astype(np.uint8)
    ref = physics_pass(X, A, H, beta, 0.3, True, pm.astype(bool), cm.astype(bool))
    A_f, H_f = np.asfortranarray(A), np.asfortranarray(H)  # factors with any strides
    out = _core.spectral.physics_kl_pass(strided, A_f, H_f, beta, 0.3, True, pm, cm)
    for got, want in zip(out[1:], ref[1:]):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    assert out[0] == pytest.approx(ref[0], rel=1e-10)
    Xc = X.copy()
    _core.spectral.physics_kl_pass(Xc, A, H, beta, 0.3, True)
    np.testing.assert_array_equal(Xc, X)  # inputs untouched


def test_surrogate_pass_bad_input():
    rng = np.random.default_rng(3)
    X, A, H, beta = _random_problem(rng)
    with pytest.raises(ValueError, match="beta must have shape"):
        _core.spectral.physics_kl_pass(X, A, H, beta[:, :2], 0.0, False)
    with pytest.raises(ValueError, match="q must be"):
        _core.spectral.physics_kl_pass(X, A, H, beta, -1.0, False)
    bad = beta.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="beta contains NaN"):
        _core.spectral.physics_kl_pass(X, A, H, bad, 0.0, False)
    with pytest.raises(ValueError, match="shapes do not match"):
        _core.spectral.physics_kl_pass(X, A, H[:, :-1], beta, 0.0, False)


# -- the whole iteration ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "smoothness,sparsity,simplex",
    [(0.0, 0.0, "W"), (0.0, 0.0, None), (2.0, 0.5, "H"), (0.5, 0.0, "W"), (0.0, 1.0, None)],
)
def test_iterations_match_dense_numpy(smoothness, sparsity, simplex):
    rng = np.random.default_rng(4)
    refs = rng.random((60, 3)) ** 3
    model = mc.spectral.ReferenceModel(refs, (10.0, 1.0, 60), exponents=(2.0, 3.0))
    G, E, K = model.G, model.G.shape[1], 2
    A0 = rng.random((5, 7, K)) + 0.2
    if simplex == "H":
        A0 /= A0.sum(-1, keepdims=True)
    W0 = rng.random((E, K)) + 0.1
    if simplex == "W":
        W0[:3] /= W0[:3].sum(0)
    X = rng.poisson(30 * A0.reshape(-1, K) @ (G @ W0).T).reshape(5, 7, 60).astype(np.float64)
    A_ref, W_ref, objs = physics_nmf_iterations(
        X.reshape(-1, 60),
        A0.reshape(-1, K),
        W0,
        G,
        (5, 7),
        15,
        smoothness,
        sparsity,
        1.0,
        simplex,
        3,
    )
    est = mc.spectral.PhysicsNMF(
        model,
        K,
        smoothness=smoothness,
        sparsity=sparsity,
        simplex=simplex,
        max_iter=15,
        tol=0,
        init=(A0, W0),
        eval_every=1,
    )
    maps = est.fit_transform(X)
    np.testing.assert_allclose(maps.reshape(-1, K), A_ref, rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(est.W_, W_ref, rtol=1e-7, atol=1e-10)
    # the objective F the estimator reports is the dense reference's, and never increases
    np.testing.assert_allclose(est.loss_history_, objs + est.loss_history_[0] - objs[0], rtol=1e-9)
    assert np.all(np.diff(objs) <= 1e-9 * abs(objs[0]))


def test_objective_decreases_on_edx_data(edx_model):
    X, _ = three_phase_cube(edx_model, 50, shape=(16, 16))
    est = mc.spectral.PhysicsNMF(
        edx_model,
        3,
        smoothness=5.0,
        sparsity=1.0,
        simplex="H",
        max_iter=40,
        tol=0,
        eval_every=1,
        random_state=0,
    ).fit(X)
    assert est.n_iter_ == 40
    h = est.loss_history_
    assert np.all(np.diff(h) <= 1e-7 * abs(h[0]))
    assert h[-1] < h[0]


# -- accuracy targets -----------------------------------------------------------------------
@pytest.mark.parametrize("counts,limit", [(200, 0.02), (20, 0.05)])
def test_composition_targets(edx_model, counts, limit):
    X, _ = three_phase_cube(edx_model, counts)
    est = mc.spectral.PhysicsNMF(edx_model, 3, max_iter=200, tol=0, random_state=0)
    maps = est.fit_transform(X)
    assert maps.shape == (32, 32, 3)
    assert est.composition_.shape == (3, len(ELEMENTS))
    np.testing.assert_allclose(est.composition_.sum(1), 1.0, rtol=1e-12)
    assert composition_error(est.composition_, COMP) < limit
    assert est.element_maps_.shape == (32, 32, len(ELEMENTS))


def test_simplex_h_maps_are_fractions(edx_model):
    X, true_maps = three_phase_cube(edx_model, 200, shape=(24, 24))
    est = mc.spectral.PhysicsNMF(edx_model, 3, simplex="H", max_iter=150, tol=0, random_state=0)
    maps = est.fit_transform(X)
    np.testing.assert_allclose(maps.sum(-1), 1.0, rtol=1e-5)
    errs = [np.abs(maps[..., list(p)] - true_maps).mean() for p in itertools.permutations(range(3))]
    assert min(errs) < 0.05


def test_pins(edx_model):
    X, _ = three_phase_cube(edx_model, 100, shape=(20, 20))
    E = edx_model.G.shape[1]
    col = np.zeros(E)
    col[:6] = COMP[1]
    col[6:] = [0.2, 0.15]
    spectrum = (edx_model.G @ col) * 2.0
    est = mc.spectral.PhysicsNMF(edx_model, 3, fixed={0: col}, max_iter=30, random_state=0).fit(X)
    np.testing.assert_allclose(est.W_[:, 0], col / col[:6].sum())
    np.testing.assert_allclose(est.composition_[0], COMP[1], atol=1e-12)
    est2 = mc.spectral.PhysicsNMF(edx_model, 3, fixed={2: spectrum}, max_iter=30, random_state=0)
    est2.fit(X)
    np.testing.assert_allclose(est2.components_[2], spectrum, rtol=1e-6)
    assert np.isnan(est2.composition_[2]).all() and np.isfinite(est2.composition_[:2]).all()


def test_quantification_table(edx_model):
    X, _ = three_phase_cube(edx_model, 100, shape=(16, 16))
    est = mc.spectral.PhysicsNMF(edx_model, 3, max_iter=50, random_state=0).fit(X)
    rows = est.quantification()
    assert len(rows) == 3 * len(ELEMENTS)
    assert set(rows[0]) == {"component", "element", "atomic_fraction", "weight_fraction"}
    for k in range(3):
        wf = [r["weight_fraction"] for r in rows if r["component"] == k]
        af = [r["atomic_fraction"] for r in rows if r["component"] == k]
        assert sum(wf) == pytest.approx(1.0) and sum(af) == pytest.approx(1.0)
    import xraylib

    k = 0
    af = est.composition_[k]
    mass = af * np.array([xraylib.AtomicWeight(z) for z in edx_model.atomic_numbers])
    got = [r["weight_fraction"] for r in rows if r["component"] == k]
    np.testing.assert_allclose(got, mass / mass.sum(), rtol=1e-12)


def test_sparse_and_float_inputs_agree(edx_model):
    X, _ = three_phase_cube(edx_model, 20, shape=(12, 12))
    X2 = X.reshape(-1, X.shape[-1])  # (N, C): chain neighbours for both
    kw = dict(max_iter=20, tol=0, random_state=0, smoothness=1.0, dtype="float64")
    a = mc.spectral.PhysicsNMF(edx_model, 3, **kw).fit_transform(X2)
    b = mc.spectral.PhysicsNMF(edx_model, 3, **kw).fit_transform(sp.csr_matrix(X2.astype(float)))
    c = mc.spectral.PhysicsNMF(edx_model, 3, **kw).fit_transform(X2.astype(np.float32))
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(a, c, rtol=1e-6, atol=1e-9)


# -- EELS reference dictionary ------------------------------------------------------------------
def _edges(E, onsets):
    """Edges: a white line at the onset plus a slowly decaying continuum (E/e0)^-1."""
    out = []
    for e0 in onsets:
        s = np.where(E >= e0, (E / e0) ** -1.0, 0.0) + 2.0 * np.exp(-0.5 * ((E - e0 - 3) / 2) ** 2)
        out.append(np.convolve(s, np.ones(5) / 5, mode="same"))
    return np.stack(out, 1)


def test_reference_model_eels_decomposition():
    E = 250.0 + 2.0 * np.arange(200)
    refs = _edges(E, [284.0, 399.0, 532.0])  # C K, N K, O K
    model = mc.spectral.ReferenceModel(refs, E, names=["C", "N", "O"], exponents=(2.5, 3.5))
    assert model.G.shape == (200, 5)
    comp = np.array([[0.6, 0.4, 0.0], [0.0, 0.3, 0.7]])
    W = np.zeros((5, 2))
    W[:3] = comp.T
    W[3:] = [[3.0, 2.0], [1.0, 2.0]]
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:24, :24]
    inside = 1 / (1 + np.exp((np.hypot(xx - 12, yy - 12) - 7) / 1.0))  # a round particle
    maps = np.stack([1 - inside, inside], -1) * 500
    X = rng.poisson(maps @ (model.G @ W).T)
    # 80 % of the counts are background; the edges overlap. The vertex init lands near the
    # answer, MU then converges slowly along the phase-mixing direction (8.4 % at 300
    # iterations, 3.9 % at 1500: docs/spectral_physics.md).
    est = mc.spectral.PhysicsNMF(model, 2, max_iter=300, tol=0, init="vertex", random_state=0)
    est.fit(X)
    assert composition_error(est.composition_, comp) < 0.10
    assert est.loss_history_[-1] < est.loss_history_[0]


def test_reference_model_bad_input():
    E = np.linspace(100, 500, 200)
    with pytest.raises(ValueError, match="channels but energy_axis has"):
        mc.spectral.ReferenceModel(np.ones((150, 2)), E)
    with pytest.raises(ValueError, match="non-negative"):
        mc.spectral.ReferenceModel(-np.ones((200, 2)), E)
    with pytest.raises(ValueError, match="all zero"):
        mc.spectral.ReferenceModel(np.zeros((200, 2)), E)
    with pytest.raises(ValueError, match="> 0"):
        mc.spectral.ReferenceModel(np.ones((200, 1)), (-5.0, 1.0, 200))
    model = mc.spectral.ReferenceModel(np.ones((200, 1)), E)
    with pytest.raises(ValueError, match="channels but the model"):
        mc.spectral.PhysicsNMF(model, 1).fit(np.ones((10, 199)))


# -- bad input ------------------------------------------------------------------------------------
def test_bad_input(edx_model):
    X, _ = three_phase_cube(edx_model, 20, shape=(8, 8))
    with pytest.raises(ValueError, match="channels but the model"):
        mc.spectral.PhysicsNMF(edx_model, 2).fit(X[..., :-1])
    with pytest.raises(ValueError, match="negative"):
        mc.spectral.PhysicsNMF(edx_model, 2).fit(X.astype(float) - 1)
    bad = X.astype(float)
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        mc.spectral.PhysicsNMF(edx_model, 2).fit(bad)
    with pytest.raises(ValueError, match="simplex"):
        mc.spectral.PhysicsNMF(edx_model, 2, simplex="Q").fit(X)
    with pytest.raises(ValueError, match="smoothness"):
        mc.spectral.PhysicsNMF(edx_model, 2, smoothness=-1).fit(X)
    with pytest.raises(ValueError, match="n_components"):
        mc.spectral.PhysicsNMF(edx_model, 0).fit(X)
    with pytest.raises(ValueError, match="fixed"):
        mc.spectral.PhysicsNMF(edx_model, 2, fixed={5: np.ones(8)}).fit(X)
    with pytest.raises(ValueError, match="fixed"):
        mc.spectral.PhysicsNMF(edx_model, 2, fixed={0: np.ones(7)}).fit(X)
    with pytest.raises(ValueError, match="model must be"):
        mc.spectral.PhysicsNMF(object(), 2).fit(X)
    with pytest.raises(ValueError, match="2-D"):
        mc.spectral.PhysicsNMF(edx_model, 2).fit(X[0, 0])
    Xc = X.copy()
    mc.spectral.PhysicsNMF(edx_model, 2, max_iter=5).fit(Xc)
    np.testing.assert_array_equal(Xc, X)


# -- HyperSpy -------------------------------------------------------------------------------------
def test_duck_typed_signal_reads_metadata(edx_model):
    X, _ = three_phase_cube(edx_model, 50, shape=(10, 12))
    axis = SimpleNamespace(offset=0.0, scale=20.0, size=1000, units="eV")
    md = SimpleNamespace(
        Acquisition_instrument=SimpleNamespace(TEM=SimpleNamespace(beam_energy=200.0)),
        Sample=SimpleNamespace(elements=ELEMENTS),
    )
    sig = SimpleNamespace(
        data=X, axes_manager=SimpleNamespace(signal_axes=[axis], navigation_axes=[]), metadata=md
    )
    model = mc.spectral.EDXModel(None, data=sig)
    assert model.elements == ELEMENTS
    np.testing.assert_allclose(model.G, edx_model.G)
    maps = mc.spectral.PhysicsNMF(model, 3, max_iter=10).fit_transform(sig)
    assert maps.shape == (10, 12, 3)


def test_hyperspy_signals(edx_model):
    hs = pytest.importorskip("hyperspy.api")
    X, _ = three_phase_cube(edx_model, 50, shape=(10, 12))
    s = hs.signals.Signal1D(X)
    ax = s.axes_manager.signal_axes[0]
    ax.offset, ax.scale, ax.units = 0.0, 0.02, "keV"
    s.metadata.set_item("Acquisition_instrument.TEM.beam_energy", 200.0)
    s.metadata.set_item("Sample.elements", ELEMENTS)
    model = mc.spectral.EDXModel(None, data=s)
    est = mc.spectral.PhysicsNMF(model, 3, max_iter=10)
    est.fit(s)
    maps, spectra = est.to_signals()
    assert maps.data.shape == (3, 10, 12)
    assert spectra.data.shape == (3, 1000)


def test_ctrl_c_keeps_last_state(edx_model):
    import _thread
    import threading
    import time

    rng = np.random.default_rng(5)
    X = rng.poisson(edx_model.G @ [5, 3, 2, 4, 1, 6, 30, 10] / 4, (60, 60, 1000)).astype(np.uint16)
    est = mc.spectral.PhysicsNMF(
        edx_model, 2, smoothness=1.0, max_iter=100000, tol=0, random_state=0
    )
    # 5 s: past the initialisation (about 0.5 s here, several seconds in a sanitizer build
    # on a loaded machine, where 2 s interrupted it before the first iteration)
    timer = threading.Timer(5.0, _thread.interrupt_main)
    timer.start()
    t0 = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        est.fit(X)
    timer.cancel()
    assert time.perf_counter() - t0 < 20
    assert 0 < est.n_iter_ < 100000
    assert np.isfinite(est.components_).all() and np.isfinite(est.composition_).all()


def test_sklearn_estimator_conventions():
    from sklearn.base import clone

    model = mc.spectral.EDXModel(["Fe", "Ni", "O"], (0.2, 0.02, 300))
    est = mc.spectral.PhysicsNMF(model, 2, smoothness=0.5, max_iter=15, random_state=0)
    params = est.get_params()
    assert params["n_components"] == 2 and params["smoothness"] == 0.5
    assert params["model"] is model and params["init"] == "auto" and params["refine"] == "auto"
    assert set(params) == {
        "model", "n_components", "smoothness", "sparsity", "simplex", "fixed", "max_iter",
        "tol", "random_state", "init", "init_iter", "refine", "epsilon_sparse", "eval_every",
        "dtype",
    }  # fmt: skip
    assert est.set_params(sparsity=0.1, simplex="H") is est
    assert est.sparsity == 0.1 and est.simplex == "H"
    with pytest.raises(ValueError):
        est.set_params(not_a_parameter=1)
    W = np.array([[0.7, 0.0], [0.3, 0.4], [0.0, 0.6], [1.0, 1.0], [0.5, 0.5]])
    maps = np.random.default_rng(0).dirichlet([1, 1], (8, 8)) * 200
    X = np.random.default_rng(1).poisson(maps @ (model.G @ W).T)
    twin = clone(est)
    same = {k: v for k, v in est.get_params().items() if k != "model"}
    assert twin is not est and {k: twin.get_params()[k] for k in same} == same
    np.testing.assert_array_equal(twin.model.G, model.G)  # clone deep-copies the model
    assert not hasattr(twin, "components_")
    assert est.fit(X) is est
    a = twin.fit_transform(X)
    assert a.shape == (8, 8, 2)
    np.testing.assert_allclose(twin.components_, est.components_)
    # bad parameters are reported at fit time, naming the parameter
    with pytest.raises(ValueError, match="simplex"):
        clone(est).set_params(simplex="Q").fit(X)
