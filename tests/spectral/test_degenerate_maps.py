"""Nearly empty and all-zero maps: PhysicsNMF and NMF never hand back NaN silently (zero
composition with a warning, finite results, or a ValueError that says why)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import matchar as mc
from matchar.spectral._physics_nmf import w_step


def _fields(est):
    return ("W_", "maps_", "element_maps_", "composition_", "components_")


@pytest.mark.parametrize("channel", [20, 100, 300])
def test_one_count_maps_stay_finite_without_warnings(channel):
    # one count at 0.2, 1.0 or 3.0 keV (the 1.0 keV one, on Fe L / the O tail, made the
    # simplex bisection of the W step divide 0 by 0: NaN maps, W_ and composition_)
    model = mc.spectral.EDXModel(["Fe", "O"], (0.0, 0.01, 512))
    X = np.zeros((8, 8, 512), np.uint16)
    X[0, 0, channel] = 1
    for init in ("kmeans", "random"):
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            est = mc.spectral.PhysicsNMF(model, 2, max_iter=30, init=init, random_state=0)
            est.fit(X)
        for name in _fields(est):
            assert np.isfinite(getattr(est, name)).all(), (channel, init, name)
        comp = est.composition_
        # each phase's composition is a fraction vector or zero, never NaN
        np.testing.assert_allclose(comp.sum(axis=1)[comp.sum(axis=1) > 0], 1.0)


def test_w_step_with_vanishing_denominators_is_finite():
    # statistics of a map with a few counts: d = G^T 1 colsum^T down to 1e-290
    rng = np.random.default_rng(0)
    G = rng.random((50, 4))
    W = np.full((4, 2), 0.5)
    numerator = np.zeros((2, 50))
    numerator[0, 10] = 1.0
    for colsum in (np.array([1e-290, 1e-300]), np.array([1e-200, 0.0]), np.zeros(2)):
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            new = w_step(W, G, numerator, colsum, n_elements=2, simplex=True)
        assert np.isfinite(new).all()
        el = new[:2].sum(axis=0)
        assert np.all((np.abs(el - 1.0) < 1e-9) | (el == 0.0)), el


def test_all_zero_map_gives_zero_composition_with_a_warning():
    model = mc.spectral.EDXModel(["Cu", "Zn"], (0.2, 0.02, 500))
    for X in (np.zeros((6, 6, 500), np.uint8), np.zeros((36, 500))):
        with pytest.warns(UserWarning, match="no counts in the fitted channels"):
            est = mc.spectral.PhysicsNMF(model, 2, max_iter=10, random_state=0).fit(X)
        for name in _fields(est):
            assert np.isfinite(getattr(est, name)).all(), name
        np.testing.assert_array_equal(est.composition_, 0.0)


def test_counts_only_below_the_low_cut_warn():
    model = mc.spectral.EDXModel(["Fe"], (0.0, 0.01, 512))  # low_cut_keV 0.15
    X = np.zeros((6, 6, 512), np.uint16)
    X[..., 5] = 40  # the zero (noise) peak only
    with pytest.warns(UserWarning, match="low_cut_keV"):
        est = mc.spectral.PhysicsNMF(model, 1, max_iter=10, init="random").fit(X)
    np.testing.assert_array_equal(est.composition_, 0.0)


def test_nmf_overflow_is_a_value_error_not_nan():
    X = np.full((8, 8, 64), 1e300)
    with pytest.raises(ValueError, match="non-finite"):
        mc.spectral.NMF(3, loss="frobenius", init="random", max_iter=30, random_state=0).fit(X)


def test_nearly_empty_real_map(shared_data):
    # sem-edx-ebsd.bcf: 87 x 100 pixels, counts in 19 of them (36,864 in all)
    pytest.importorskip("rsciio")
    path = shared_data / "sem-edx-ebsd.bcf"
    if not path.exists():
        pytest.skip(f"{path} not found")
    cube, _, meta = mc.io.load_spectrum_image(path)
    assert int((cube.sum(axis=-1) > 0).sum()) < 100
    model = mc.spectral.EDXModel(["Fe", "O", "Si", "C"], metadata=meta)
    for init in ("kmeans", "random"):
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            est = mc.spectral.PhysicsNMF(model, 3, max_iter=30, init=init, random_state=0)
            est.fit(cube)
        for name in _fields(est):
            assert np.isfinite(getattr(est, name)).all(), (init, name)
        np.testing.assert_allclose(est.composition_.sum(axis=1), 1.0)
    corner = np.ascontiguousarray(cube[:6, :6])  # no counts at all
    assert corner.sum() == 0
    with pytest.warns(UserWarning, match="no counts in the fitted channels"):
        est = mc.spectral.PhysicsNMF(model, 2, max_iter=10, random_state=0).fit(corner)
    np.testing.assert_array_equal(est.composition_, 0.0)
