"""Bad input to the spectral estimators and models: a clear error naming the argument (or a
documented, finite result), never NaN, a crash, a hang or a pybind11 signature dump."""

from __future__ import annotations

import time
import warnings

import numpy as np
import pytest
import scipy.sparse as sp

import matchar as mc

COUNTS = np.random.default_rng(0).poisson(5, (40, 30))
AXIS = (0.0, 0.01, 1024)


# -- EDXModel / ReferenceModel -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(crystal_um=-1), r"crystal_um must be a finite number > 0"),
        (dict(crystal_um=0), r"crystal_um must be"),
        (dict(dead_layer_um=np.nan), r"dead_layer_um must be a finite number >= 0"),
        (dict(dead_layer_um=-0.1), r"dead_layer_um must be"),
        (dict(window=[("Si3N4", 3.44, -0.1)]), r"window\[0\] thickness \(um\) must be"),
        (dict(window=[("Si3N4", 0.0, 0.1)]), r"window\[0\] density \(g/cm\^3\) must be"),
        (dict(window=[("Si3N4", np.inf, 0.1)]), r"window\[0\] density"),
        (dict(window=[("Si3N4", 3.44)]), r"window\[0\] must be a \(formula, density"),
        (dict(window=[("Xx9", 3.44, 0.1)]), r"'Xx9' is not a chemical formula"),
        (dict(window=5), r"window must be a sequence"),
        (dict(n_background=400), r"n_background must be an integer in \[0, 10\]"),
        (dict(n_background=-1), r"n_background must be"),
        (dict(n_background=2.5), r"n_background must be"),
        (dict(resolution_eV=np.nan), r"resolution_eV .* must be a finite number in \[121"),
        (dict(resolution_eV=1e200), r"resolution_eV"),
        (dict(resolution_eV=100.0), r"resolution_eV"),
        (dict(beam_energy_keV=np.inf), r"beam_energy_keV must be a finite number > 0"),
        (dict(thickness_nm=-1.0), r"thickness_nm must be a finite number >= 0"),
        (dict(thickness_nm=np.nan), r"thickness_nm must be"),
        (dict(thickness_nm=10.0, density_g_cm3=0.0), r"density_g_cm3 must be .* > 0"),
        (dict(thickness_nm=10.0, density_g_cm3=-2.0), r"density_g_cm3 must be"),
        (dict(thickness_nm=10.0), r"density_g_cm3 is required"),
        (dict(takeoff_deg=100.0), r"takeoff_deg must be a finite number in \(0.0, 90.0\]"),
        (dict(takeoff_deg=0.0), r"takeoff_deg must be"),
        (dict(low_cut_keV=np.nan), r"low_cut_keV must be a finite number"),
        (dict(sample_composition={"Fe": np.nan}), r"sample_composition\['Fe'\]"),
        (dict(energy_axis=(0.0, 0.01, 2**40)), r"channel count must be an integer in \[2, "),
        (dict(energy_axis=(0.0, 0.01, 2.5)), r"channel count must be an integer"),
        (dict(energy_axis=(0.0, 0.0, 1024)), r"scale \(keV per channel\) must be"),
        (dict(energy_axis=(np.nan, 0.01, 1024)), r"offset \(keV\) must be a finite number"),
        (dict(energy_axis=(1.0, 1e-300, 1024)), r"do not give distinct finite channel energies"),
    ],
)
def test_edx_model_refuses_unphysical_parameters(kwargs, match):
    kwargs = dict(kwargs)
    axis = kwargs.pop("energy_axis", AXIS)
    with pytest.raises(ValueError, match=match):
        mc.spectral.EDXModel(["Fe"], axis, **kwargs)


def test_edx_model_says_when_the_detector_absorbs_every_line():
    with pytest.raises(ValueError, match=r"absorb all of them"):
        mc.spectral.EDXModel(["Fe"], AXIS, dead_layer_um=1e300)


def test_edx_background_columns_are_finite_at_every_allowed_power():
    model = mc.spectral.EDXModel(["Fe"], AXIS, n_background=10, beam_energy_keV=1e40)
    bg = model.G[:, model.n_elements :]
    assert bg.shape == (1024, 10)
    assert np.isfinite(model.G).all()
    np.testing.assert_allclose(bg.sum(axis=0), 1.0)


def test_edx_detector_efficiency_is_a_fraction_or_an_error():
    from matchar.spectral._edx import detector_efficiency, fwhm_keV

    with pytest.raises(ValueError, match=r"window\[0\] thickness"):
        detector_efficiency([1.0], window=[("Si3N4", 3.44, -0.1)])
    with pytest.raises(ValueError, match=r"resolution_eV"):
        fwhm_keV(1.0, np.nan)
    eff = detector_efficiency(np.linspace(0.2, 30, 50))
    assert ((eff >= 0) & (eff <= 1)).all()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(min_significance=np.nan), r"min_significance must be"),
        (dict(max_elements=2.5), r"max_elements must be an integer"),
        (dict(max_elements=10**12), r"max_elements must be an integer in \[0, 200\]"),
        (dict(knot_keV=1e-300), r"knot_keV must be a number >= 0.01"),
        (dict(knot_keV=np.nan), r"knot_keV must be"),
        (dict(model_error=-1.0), r"model_error must be"),
    ],
)
def test_propose_elements_parameters(kwargs, match):
    model = mc.spectral.EDXModel(["Fe"], AXIS)
    with pytest.raises(ValueError, match=match):
        model.propose_elements(np.ones(1024), **kwargs)


def test_reference_model_refuses_complex_and_overflowing_references():
    refs = np.abs(np.random.default_rng(0).normal(size=(300, 2))) + 0.1
    axis = (100.0, 1.0, 300)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an error, not a ComplexWarning then NaN
        with pytest.raises(ValueError, match=r"references must hold real numbers"):
            mc.spectral.ReferenceModel(refs + 1j, axis)
        with pytest.raises(ValueError, match=r"references are too large"):
            mc.spectral.ReferenceModel(refs * 1e307, axis)
        with pytest.raises(ValueError, match=r"exponents must be a finite number"):
            mc.spectral.ReferenceModel(refs, axis, exponents=(2.0, np.nan))
        model = mc.spectral.ReferenceModel(refs, axis, exponents=(2.0, 500.0, -500.0))
    assert np.isfinite(model.G).all()
    np.testing.assert_allclose(model.G[:, 2:].sum(axis=0), 1.0)


# -- PCA ---------------------------------------------------------------------------------------
def test_pca_partial_fit_refuses_values_that_overflow_its_sums():
    for pca, X in (
        (mc.spectral.PCA(2), COUNTS * 1e300),
        (mc.spectral.PCA(2, poisson=False), COUNTS * 1e80),
        (mc.spectral.PCA(2, poisson=False), (COUNTS * 1e15).astype(np.float32)),
    ):
        with pytest.raises(ValueError, match=r"X is too large for a streaming PCA"):
            pca.partial_fit(X)
        assert not hasattr(pca, "components_")
    pca = mc.spectral.PCA(2, random_state=0).partial_fit(COUNTS * 1e40)
    assert np.isfinite(pca.components_).all()


def test_pca_fit_says_when_the_products_overflow():
    with pytest.raises(ValueError, match=r"X is too large"):
        mc.spectral.PCA(2, poisson=False, random_state=0).fit(COUNTS * 1e200)
    with pytest.raises(ValueError, match=r"X is too large"):
        mc.spectral.PCA(2, poisson=False, random_state=0).fit((COUNTS * 1e19).astype(np.float32))
    pca = mc.spectral.PCA(2, random_state=0).fit(COUNTS * 1e300)  # Poisson weights: fine
    assert np.isfinite(pca.components_).all()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(n_oversamples=2.5), r"n_oversamples must be an integer"),
        (dict(n_oversamples=-1), r"n_oversamples must be an integer"),
        (dict(n_oversamples=2**63), r"n_oversamples must be an integer"),
        (dict(n_iter=10**9), r"n_iter must be 'auto' or an integer in \[0, 100\]"),
        (dict(n_iter=2.5), r"n_iter must be 'auto' or an integer"),
        (dict(n_iter="fast"), r"n_iter must be 'auto' or an integer"),
        (dict(n_components=2**40), r"n_components must be an integer in \[1, "),
        (dict(n_components=np.nan), r"n_components must be an integer"),
    ],
)
def test_pca_parameters(kwargs, match):
    params = dict(n_components=2)
    params.update(kwargs)
    t0 = time.monotonic()
    with pytest.raises(ValueError, match=match):
        mc.spectral.PCA(**params).fit(COUNTS)
    assert time.monotonic() - t0 < 5.0
    if "n_iter" not in kwargs:
        with pytest.raises(ValueError, match=match):
            mc.spectral.PCA(**params).partial_fit(COUNTS)


def test_pca_integral_float_parameters_are_accepted():
    pca = mc.spectral.PCA(2.0, n_iter=4.0, n_oversamples=5.0, random_state=0).fit(COUNTS)
    assert pca.components_.shape == (2, 30)


# -- NMF ---------------------------------------------------------------------------------------
def _bad_csr(what: str):
    A = sp.csr_matrix(COUNTS.astype(np.float64))
    if what == "indices":
        A.indices = A.indices.copy()
        A.indices[3] = 999
    elif what == "negative":
        A.indices = A.indices.copy()
        A.indices[-1] = -1
    elif what == "indptr":
        A.indptr = A.indptr.copy()
        A.indptr[-1] = A.indptr[-1] + 10**6
    elif what == "decreasing":
        A.indptr = A.indptr.copy()
        A.indptr[5] = A.indptr[7] + 1
    return A


@pytest.mark.parametrize(
    ("what", "match"),
    [
        ("indices", r"malformed CSR matrix: indices must lie in \[0, 30\), got .*999"),
        ("negative", r"malformed CSR matrix: indices must lie in \[0, 30\)"),
        ("indptr", r"malformed CSR matrix: indptr must start at 0"),
        ("decreasing", r"malformed CSR matrix: indptr must start at 0, never decrease"),
    ],
)
def test_malformed_csr_is_refused_before_any_kernel(what, match):
    A = _bad_csr(what)
    before = (A.indices.copy(), A.indptr.copy())
    with pytest.raises(ValueError, match=match):
        mc.spectral.NMF(1).fit_transform(A)
    with pytest.raises(ValueError, match=match):
        mc.spectral.NMF(1).partial_fit(A)
    model = mc.spectral.EDXModel(["Fe"], (0.0, 0.5, 30))
    with pytest.raises(ValueError, match=match):
        mc.spectral.PhysicsNMF(model, 1).fit(A)
    np.testing.assert_array_equal(A.indices, before[0])  # the input is not modified
    np.testing.assert_array_equal(A.indptr, before[1])


def test_malformed_csc_and_coo_are_refused():
    csc = sp.csc_matrix(COUNTS.astype(np.float64))
    csc.indices = csc.indices.copy()
    csc.indices[0] = 40
    with pytest.raises(ValueError, match=r"malformed CSC matrix: indices must lie in \[0, 40\)"):
        mc.spectral.NMF(1).fit_transform(csc)
    coo = sp.coo_matrix(COUNTS.astype(np.float64))
    coo.row = coo.row.copy()
    coo.row[0] = -5
    with pytest.raises(ValueError, match=r"malformed COO matrix: row indices"):
        mc.spectral.NMF(1).fit_transform(coo)
    ok = mc.spectral.NMF(1, max_iter=5).fit_transform(sp.csr_matrix(COUNTS.astype(float)))
    assert ok.shape == (40, 1)


def test_nmf_refuses_maps_that_cannot_fit_before_any_pass():
    X = np.broadcast_to(np.arange(1.0, 9.0), (10**11, 8))  # 8e11 values, no memory
    t0 = time.monotonic()
    with pytest.raises(MemoryError, match=r"NMF: the maps"):
        mc.spectral.NMF(2).fit_transform(X)
    model = mc.spectral.EDXModel(["Fe"], (0.0, 1.0, 8))
    with pytest.raises(MemoryError, match=r"PhysicsNMF: the maps"):
        mc.spectral.PhysicsNMF(model, 2).fit_transform(X)
    assert time.monotonic() - t0 < 5.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(batch_iter=10**12), r"batch_iter must be an integer in \[1, 2147483647\]"),
        (dict(inner_sweeps=2**40), r"inner_sweeps must be an integer in \[1, "),
        (dict(max_iter=2**63), r"max_iter must be an integer"),
        (dict(eval_every=2.5), r"eval_every must be an integer"),
        (dict(n_components=2**40), r"n_components must be an integer in \[1, 2147483647\]"),
        (dict(forget_factor=np.nan), r"forget_factor must be a finite number in \(0.0, 1.0\]"),
        (dict(forget_factor=1.5), r"forget_factor must be"),
        (dict(tol=np.inf), r"tol must be a finite number >= 0"),
    ],
)
def test_nmf_integer_and_float_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        mc.spectral.NMF(**{"n_components": 2, **kwargs}).partial_fit(COUNTS)


def test_nmf_integral_floats_reach_the_kernels_as_ints():
    nmf = mc.spectral.NMF(2, loss="frobenius", max_iter=4.0, inner_sweeps=2.0, eval_every=2.0)
    assert nmf.fit(COUNTS).n_iter_ == 4
    assert nmf.transform(COUNTS).shape == (40, 2)


# -- PhysicsNMF --------------------------------------------------------------------------------
def test_physics_nmf_on_a_nearly_empty_map_gives_zero_composition_not_nan():
    model = mc.spectral.EDXModel(["Cu", "Zn"], (0.2, 0.02, 500))
    X = np.zeros((8, 8, 500))
    X[0, 0, 100] = 1  # one count, on the bremsstrahlung
    for init in ("kmeans", "nmf", "random"):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            est = mc.spectral.PhysicsNMF(model, 2, max_iter=20, init=init, random_state=0).fit(X)
        for name in ("W_", "maps_", "element_maps_", "composition_", "components_"):
            assert np.isfinite(getattr(est, name)).all(), (init, name)
        np.testing.assert_array_equal(est.composition_, 0.0)
        # and so are the weight fractions of the quantification table (they were NaN)
        assert [row["weight_fraction"] for row in est.quantification()] == [0.0] * 4


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(smoothness=1e300), r"smoothness must be a finite number in \[0.0, 1e\+100\]"),
        (dict(sparsity=np.nan), r"sparsity must be"),
        (dict(epsilon_sparse=0.0), r"epsilon_sparse must be"),
        (dict(max_iter=2**40), r"max_iter must be an integer in \[1, 2147483647\]"),
        (dict(init_iter=2.5), r"init_iter must be an integer"),
        (dict(tol=-1.0), r"tol must be"),
        (dict(n_components=2.5), r"n_components must be an integer in \[1, n_pixels=64\]"),
    ],
)
def test_physics_nmf_parameters(kwargs, match):
    model = mc.spectral.EDXModel(["Cu", "Zn"], (0.2, 0.02, 500))
    X = np.random.default_rng(0).poisson(model.G @ [50, 50, 20, 20] + 1.0, (8, 8, 500))
    with pytest.raises(ValueError, match=match):
        mc.spectral.PhysicsNMF(model, **{"n_components": 2, **kwargs}).fit(X)


def test_not_fitted_is_one_error_everywhere():
    model = mc.spectral.EDXModel(["Cu"], (0.2, 0.02, 500))
    calls = [
        lambda: mc.spectral.NMF(2).transform(COUNTS),
        lambda: mc.spectral.NMF(2).inverse_transform(np.ones((3, 2))),
        lambda: mc.spectral.PCA(2).transform(COUNTS),
        lambda: mc.spectral.PCA(2).inverse_transform(np.ones((3, 2))),
        lambda: mc.spectral.PhysicsNMF(model, 1).quantification(),
        lambda: mc.spectral.PhysicsNMF(model, 1).plot(),
        lambda: mc.spectral.PhysicsNMF(model, 1).to_signals(),
    ]
    for call in calls:
        with pytest.raises(mc.NotFittedError, match=r"is not fitted yet"):
            call()
