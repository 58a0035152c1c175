"""PhysicsNMF's defaults: init="auto" (the candidate initialisations, the lowest objective
after init_iter iterations wins) and refine="auto" (the detector refined on the data
first, for a plain EDXModel with enough counts)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

pytest.importorskip("xraylib")

import matchar as mc
from matchar.spectral._detector import RefinedEDXModel
from matchar.spectral._physics_nmf import REFINE_MIN_COUNTS
from matchar.spectral._physics_nmf_solver import AUTO_INITS

ELEMENTS = ["Fe", "Cr", "Si", "O"]
COMP = np.array([[0.75, 0.25, 0, 0], [0, 0, 1 / 3, 2 / 3], [0.4, 0, 0, 0.6]])


@pytest.fixture(scope="module")
def model():
    return mc.spectral.EDXModel(ELEMENTS, (0.2, 0.02, 500), 200.0)


def cube(model, counts, shape=(16, 16), seed=0):
    """Three phases mixed smoothly (Dirichlet per pixel), Poisson counts ~ counts/pixel."""
    K, E = 3, model.G.shape[1]
    W = np.zeros((E, K))
    W[: len(ELEMENTS)] = COMP.T
    W[len(ELEMENTS) :] = 0.2
    rng = np.random.default_rng(seed)
    maps = rng.dirichlet([0.5] * K, shape)
    spec = (model.G @ W).T
    spec /= spec.sum(1, keepdims=True)
    return rng.poisson(counts * maps.reshape(-1, K) @ spec).reshape(*shape, -1).astype(np.uint16)


@pytest.mark.parametrize("smoothness", [0.0, 2.0])
def test_auto_init_keeps_the_lowest_objective(model, smoothness):
    X = cube(model, 400)
    kw = dict(smoothness=smoothness, tol=0, random_state=0, refine=False, init_iter=10)
    auto = mc.spectral.PhysicsNMF(model, 3, max_iter=40, **kw).fit(X)
    assert set(auto.init_losses_) == set(AUTO_INITS)
    by_hand = {}
    for name in AUTO_INITS:
        est = mc.spectral.PhysicsNMF(model, 3, max_iter=10, init=name, **kw).fit(X)
        by_hand[name] = est.loss_history_[-1]
        np.testing.assert_allclose(auto.init_losses_[name], by_hand[name], rtol=1e-6)
    assert auto.init_used_ == min(by_hand, key=by_hand.get)
    # the winner's fit continues: the result is that of the explicit init
    ref = mc.spectral.PhysicsNMF(model, 3, max_iter=40, init=auto.init_used_, **kw).fit(X)
    assert auto.n_iter_ == ref.n_iter_ == 40
    np.testing.assert_array_equal(auto.loss_iterations_, ref.loss_iterations_)
    np.testing.assert_allclose(auto.loss_history_, ref.loss_history_, rtol=1e-6)
    np.testing.assert_allclose(auto.components_, ref.components_, rtol=1e-4, atol=1e-9)
    assert np.isfinite(auto.maps_).all()


def test_auto_init_is_the_default_and_explicit_inits_still_work(model):
    X = cube(model, 100)
    est = mc.spectral.PhysicsNMF(model, 3, max_iter=5, random_state=0)
    assert est.get_params()["init"] == "auto" and est.get_params()["refine"] == "auto"
    est.fit(X)
    assert est.init_used_ in AUTO_INITS and est.n_iter_ == 5  # max_iter < init_iter
    old = mc.spectral.PhysicsNMF(model, 3, max_iter=5, random_state=0, init="kmeans").fit(X)
    assert old.init_used_ == "kmeans" and old.init_losses_ is None
    with pytest.raises(ValueError, match="init must be 'auto'"):
        mc.spectral.PhysicsNMF(model, 3, init="best").fit(X)


def test_refine_auto_refines_a_plain_edx_model_with_enough_counts(model):
    X = cube(model, 2000)
    assert X[..., model.fit_channels].sum() >= REFINE_MIN_COUNTS
    est = mc.spectral.PhysicsNMF(model, 3, max_iter=20, random_state=0).fit(X)
    assert est.model is model  # the parameter is never replaced
    assert isinstance(est.model_, RefinedEDXModel) and not isinstance(model, RefinedEDXModel)
    assert isinstance(est.detector_, dict) and "resolution_mnka_eV" in est.detector_
    np.testing.assert_allclose(est.components_, (est.model_.G @ est.W_).T, rtol=1e-5)
    assert [r["element"] for r in est.quantification()[:4]] == ELEMENTS
    assert np.isfinite(est.maps_).all() and np.isfinite(est.composition_).all()
    # what the fit used: the same as refining by hand and passing the refined model
    refined, _ = mc.spectral.refine_detector(model, X, ratios="shell")
    by_hand = mc.spectral.PhysicsNMF(refined, 3, max_iter=20, random_state=0).fit(X)
    assert by_hand.model_ is refined and by_hand.detector_ is None  # refined: kept as is
    np.testing.assert_allclose(est.components_, by_hand.components_, rtol=1e-4, atol=1e-9)


def test_refine_auto_leaves_too_few_counts_and_other_models_alone(model):
    X = cube(model, 20)
    assert X[..., model.fit_channels].sum() < REFINE_MIN_COUNTS
    est = mc.spectral.PhysicsNMF(model, 3, max_iter=10, random_state=0).fit(X)
    assert est.model_ is model and est.detector_ is None
    X = cube(model, 2000)
    off = mc.spectral.PhysicsNMF(model, 3, max_iter=10, random_state=0, refine=False).fit(X)
    assert off.model_ is model and off.detector_ is None
    refs = np.abs(np.random.default_rng(0).normal(size=(3, 60))) + 0.1
    ref_model = mc.spectral.ReferenceModel(refs.T, (10.0, 1.0, 60))
    Y = np.random.default_rng(1).poisson(1e4 * np.ones((50, 1)) * refs.mean(0))
    est = mc.spectral.PhysicsNMF(ref_model, 2, max_iter=10, random_state=0).fit(Y)
    assert est.model_ is ref_model and est.detector_ is None
    with pytest.raises(ValueError, match="needs a plain EDXModel"):
        mc.spectral.PhysicsNMF(ref_model, 2, max_iter=10, refine=True).fit(Y)
    with pytest.raises(ValueError, match="refine must be"):
        mc.spectral.PhysicsNMF(model, 3, refine="yes").fit(X)


def test_defaults_on_an_all_but_empty_cube(model):
    X = np.zeros((8, 8, 500), dtype=np.uint16)
    X[3, 4, 200] = 2
    X[6, 1, 250] = 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to warn about: counts, just few
        est = mc.spectral.PhysicsNMF(model, 2, max_iter=30, random_state=0).fit(X)
    assert est.model_ is model and est.detector_ is None
    assert est.init_used_ in AUTO_INITS
    for a in (est.maps_, est.components_, est.composition_, est.loss_history_):
        assert np.isfinite(a).all()


def test_explicit_refine_on_degenerate_data_warns_and_falls_back(model):
    X = np.zeros((8, 8, 500), dtype=np.uint16)
    est = mc.spectral.PhysicsNMF(model, 2, max_iter=10, random_state=0, refine=True)
    with (
        pytest.warns(UserWarning, match="detector refinement failed"),
        pytest.warns(UserWarning, match="no counts in the fitted channels"),
    ):
        est.fit(X)
    assert est.model_ is model and est.detector_ is None
    assert np.isfinite(est.maps_).all() and np.isfinite(est.components_).all()


def test_dask_auto_is_nmf_and_refines_as_in_memory(model):
    da = pytest.importorskip("dask.array")
    X = cube(model, 2000)
    est = mc.spectral.PhysicsNMF(model, 3, max_iter=10, random_state=0)
    est.fit(da.from_array(X, chunks=(8, 16, -1)))
    assert est.init_used_ == "nmf" and est.init_losses_ is None
    assert isinstance(est.model_, RefinedEDXModel) and est.model is model
    mem = mc.spectral.PhysicsNMF(model, 3, max_iter=10, random_state=0, init="nmf").fit(X)
    for key in ("offset_keV", "gain", "noise_eV"):
        np.testing.assert_allclose(est.detector_[key], mem.detector_[key], rtol=1e-6, atol=1e-9)
    assert np.isfinite(np.asarray(est.maps_)).all()
    few = mc.spectral.PhysicsNMF(model, 3, max_iter=5, random_state=0)
    few.fit(da.from_array(cube(model, 20), chunks=(8, 16, -1)))
    assert few.model_ is model and few.detector_ is None


def test_auto_init_stops_on_tol_as_the_explicit_init(model):
    X = cube(model, 400)
    kw = dict(tol=1e-2, random_state=0, refine=False, eval_every=2, max_iter=100)
    auto = mc.spectral.PhysicsNMF(model, 3, **kw).fit(X)
    ref = mc.spectral.PhysicsNMF(model, 3, init=auto.init_used_, **kw).fit(X)
    assert auto.n_iter_ == ref.n_iter_ < 100
    np.testing.assert_allclose(auto.loss_history_, ref.loss_history_, rtol=1e-6)
    np.testing.assert_allclose(auto.components_, ref.components_, rtol=1e-4, atol=1e-9)
