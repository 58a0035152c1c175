"""HyperSpy integration: signals as input, and matchar estimators inside s.decomposition()."""

from __future__ import annotations

import numpy as np
import pytest

import matchar as mc

hs = pytest.importorskip("hyperspy.api")


def cube(dtype=np.uint16):
    rng = np.random.default_rng(0)
    maps = rng.random((12 * 10, 2))
    spectra = rng.random((2, 48))
    return rng.poisson(50 * maps @ spectra).reshape(12, 10, 48).astype(dtype)


def test_signal_as_input_gives_maps_in_navigation_shape():
    X = cube()
    s = hs.signals.Signal1D(X)
    nmf = mc.spectral.NMF(2, random_state=0, max_iter=40, tol=0)
    maps = nmf.fit_transform(s)
    assert maps.shape == (12, 10, 2)
    ref = mc.spectral.NMF(2, random_state=0, max_iter=40, tol=0)
    np.testing.assert_array_equal(maps, ref.fit_transform(X))
    np.testing.assert_array_equal(nmf.components_, ref.components_)
    assert s.data.dtype == np.uint16 and np.array_equal(s.data, X)  # untouched
    scores = mc.spectral.PCA(2, random_state=0).fit_transform(s)
    assert scores.shape == (12, 10, 2)


@pytest.mark.parametrize("poisson", [False, True])
def test_decomposition_algorithm_is_matchar_nmf(poisson):
    """s.decomposition(algorithm=NMF) stores matchar's factors and loadings (HyperSpy
    itself asks for float data; with normalize_poissonian_noise it rescales around us)."""
    X = cube(np.float32)
    s = hs.signals.Signal1D(X.copy())
    est = mc.spectral.NMF(2, random_state=0, max_iter=40, tol=0)
    s.decomposition(normalize_poissonian_noise=poisson, algorithm=est, output_dimension=2)
    factors = s.learning_results.factors  # (C, K)
    loadings = s.learning_results.loadings  # (N, K)
    assert factors.shape == (48, 2) and loadings.shape == (120, 2)
    assert (factors >= 0).all() and (loadings >= 0).all()
    model = s.get_decomposition_model(2)
    rel = np.linalg.norm(model.data - X) / np.linalg.norm(X)
    assert rel < 0.3  # two Poisson phases at ~50 counts: the model explains the cube
    if not poisson:
        ref = mc.spectral.NMF(2, random_state=0, max_iter=40, tol=0)
        np.testing.assert_allclose(loadings, ref.fit_transform(X.reshape(-1, 48)), rtol=1e-6)
        np.testing.assert_allclose(factors.T, ref.components_, rtol=1e-6)
