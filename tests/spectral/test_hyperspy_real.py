"""matchar inside HyperSpy on real EDX maps, checked against HyperSpy's own results:
``s.decomposition(algorithm=NMF)`` with the settings docs/spectral.md gives, PCA factors in
HyperSpy's convention against its exact SVD, and ``to_signals``."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.linalg import subspace_angles

import matchar as mc

hs = pytest.importorskip("hyperspy.api")
pytest.importorskip("exspy")

TEM = "bruker-test_TEM.bcf"  # exspy EDSTEMSpectrum: its decomposition defaults treat the data
SEM = "sem-edx-P45.bcf"  # EDSSEMSpectrum
# 0.005-5.1 keV (channels 48-559) of both maps, the SEM map's first 40 rows: keeps
# HyperSpy's exact SVDs to a few seconds
CROP = {TEM: (slice(None), slice(None)), SEM: (slice(None), slice(0, 40))}
CHANNELS = slice(48, 560)


@pytest.fixture(scope="module")
def eds(shared_data):
    def load(name):
        path = shared_data / name
        if not path.is_file():
            pytest.skip(f"{path} not found")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            s = hs.load(path, select_type="spectrum_image")
        return s.inav[CROP[name]].isig[CHANNELS]

    return {name: load(name) for name in (TEM, SEM)}


def as_float(s, dtype="float32"):
    t = s.deepcopy()
    t.change_dtype(dtype)  # HyperSpy's decomposition refuses integer data
    return t


def user_warnings(record):
    return [str(w.message) for w in record if issubclass(w.category, UserWarning)]


def test_nmf_in_decomposition_with_the_documented_settings_is_the_direct_fit(eds):
    s = eds[TEM]
    direct = mc.spectral.NMF(4, random_state=0)
    maps = direct.fit_transform(s.data)
    t = as_float(s)
    est = mc.spectral.NMF(4, random_state=0)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        t.decomposition(
            algorithm=est,
            output_dimension=4,
            normalize_poissonian_noise=False,
            navigation_mask=None,
            print_info=False,
        )
    assert not [m for m in user_warnings(rec) if "NMF" in m]
    assert est.n_iter_ == direct.n_iter_
    np.testing.assert_allclose(est.loss_history_, direct.loss_history_, rtol=1e-5)
    # what HyperSpy stored is matchar's fit of the counts
    lr = t.learning_results
    np.testing.assert_allclose(lr.factors.T, direct.components_, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(lr.loadings, maps.reshape(-1, 4), rtol=1e-4, atol=1e-6)
    # the estimator kept the axes of the signal HyperSpy was decomposing
    loadings, factors = est.to_signals(lr.loadings)
    assert loadings.data.shape == (4, 64, 64)
    e_in, e_out = t.axes_manager.signal_axes[0], factors.axes_manager.signal_axes[0]
    assert (e_out.offset, e_out.scale, e_out.units) == (e_in.offset, e_in.scale, e_in.units)
    x_in, x_out = t.axes_manager.navigation_axes[0], loadings.axes_manager.signal_axes[0]
    assert (x_out.scale, x_out.units) == (x_in.scale, x_in.units)


def test_exspy_defaults_feed_nmf_treated_data_and_it_says_so(eds):
    t = as_float(eds[TEM])
    est = mc.spectral.NMF(4, random_state=0)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        t.decomposition(algorithm=est, output_dimension=4, print_info=False)
    msgs = user_warnings(rec)
    assert any("normalize_poissonian_noise=True" in m for m in msgs), msgs
    assert any("navigation_mask" in m for m in msgs), msgs
    direct = mc.spectral.NMF(4, random_state=0).fit(eds[TEM].data)
    # HyperSpy's treated data are not the counts: a different fit (the 51 vs 181)
    assert est.n_iter_ != direct.n_iter_
    assert est.loss_history_[-1] < 0.01 * direct.loss_history_[-1]


def hyperspy_svd(s, poisson=True):
    t = as_float(s, "float64")
    t.decomposition(
        algorithm="SVD",
        normalize_poissonian_noise=poisson,
        navigation_mask=None,
        svd_solver="full",
        print_info=False,
    )
    lr = t.learning_results
    return lr.factors, np.sqrt(lr.explained_variance)


def tolerance_deg(sv, K, n_iter, n_over=10):
    """Randomized subspace iteration: the angle to the exact K-subspace decays as
    (s[K + p] / s[K - 1]) ** (2 q + 1) (Halko et al. 2011; measured within 6x on these
    files), read from HyperSpy's own singular values; 0.01 deg is the float32 floor."""
    gap = sv[K + n_over] / sv[K - 1]
    return 0.01 + 20 * np.degrees(gap ** (2 * n_iter + 1))


# K where s[K-1] stands out of the flat noise spectrum (the SEM map's s[1:] are within
# 10 % of each other beyond K = 2; on the uncropped TEM map s[0] = s[1] = s[2]: isolated
# single counts)
CASES = [(TEM, 1), (TEM, 2), (TEM, 3), (TEM, 4), (TEM, 5), (SEM, 1), (SEM, 2)]


@pytest.fixture(scope="module")
def svd_results(eds):
    return {name: hyperspy_svd(eds[name]) for name in (TEM, SEM)}


@pytest.mark.parametrize("name, K", CASES)
def test_pca_hyperspy_convention_spans_hyperspy_svd_factors(eds, svd_results, name, K):
    F, sv = svd_results[name]
    pca = mc.spectral.PCA(K, poisson=True, center=False, random_state=0, n_iter=30)
    loadings, factors = pca.hyperspy_factors(pca.fit_transform(eds[name]))
    angle = np.degrees(subspace_angles(F[:, :K], factors.T)).max()
    assert angle < tolerance_deg(sv, K, 30), (angle, tolerance_deg(sv, K, 30))
    assert loadings.shape == (*eds[name].data.shape[:2], K)


def test_pca_default_is_not_hyperspy_convention(eds, svd_results):
    """The default (centred, weighted-space components) is not HyperSpy's: the reason
    for center=False and hyperspy_factors."""
    F, _ = svd_results[TEM]
    pca = mc.spectral.PCA(3, random_state=0, n_iter=30).fit(eds[TEM])
    assert np.degrees(subspace_angles(F[:, :3], pca.components_.T)).max() > 10


def test_pca_inside_decomposition_with_the_documented_settings(eds, svd_results):
    F, sv = svd_results[TEM]
    t = as_float(eds[TEM], "float64")
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        t.decomposition(
            algorithm=mc.spectral.PCA(3, poisson=False, center=False, n_iter=30, random_state=0),
            output_dimension=3,
            normalize_poissonian_noise=True,
            navigation_mask=None,
            print_info=False,
        )
    assert not [m for m in user_warnings(rec) if "PCA" in m]
    angle = np.degrees(subspace_angles(F[:, :3], t.learning_results.factors)).max()
    assert angle < tolerance_deg(sv, 3, 30)
    t2 = as_float(eds[TEM], "float64")
    with pytest.warns(UserWarning, match="poisson=True"):
        t2.decomposition(
            algorithm=mc.spectral.PCA(3, n_iter=2, random_state=0),
            output_dimension=3,
            print_info=False,
        )


def test_to_signals_carry_the_file_axes(eds):
    s = eds[TEM]
    nmf = mc.spectral.NMF(3, random_state=0, max_iter=30)
    maps = nmf.fit_transform(s)
    loadings, factors = nmf.to_signals(maps)
    assert isinstance(loadings, hs.signals.Signal2D) and loadings.data.shape == (3, 64, 64)
    assert isinstance(factors, hs.signals.Signal1D) and factors.data.shape == (3, 512)
    e_in = s.axes_manager.signal_axes[0]
    e_out = factors.axes_manager.signal_axes[0]
    assert (e_out.offset, e_out.scale, e_out.units) == (e_in.offset, e_in.scale, e_in.units)
    for a_out, a_in in zip(loadings.axes_manager.signal_axes, s.axes_manager.navigation_axes):
        assert (a_out.scale, a_out.units, a_out.name) == (a_in.scale, a_in.units, a_in.name)
    np.testing.assert_array_equal(factors.data, nmf.components_)
    np.testing.assert_array_equal(np.moveaxis(loadings.data, 0, -1), maps)

    pca = mc.spectral.PCA(2, center=False, random_state=0)
    scores = pca.fit_transform(s.data)  # plain array: axes from the reference
    lo, fa = pca.to_signals(scores, reference=s, convention="hyperspy")
    ref_l, ref_f = pca.hyperspy_factors(scores)
    np.testing.assert_array_equal(fa.data, ref_f)
    np.testing.assert_array_equal(np.moveaxis(lo.data, 0, -1), ref_l)
    assert fa.axes_manager.signal_axes[0].scale == e_in.scale
    _, w_f = pca.to_signals(scores)
    np.testing.assert_array_equal(w_f.data, pca.components_)
    assert w_f.axes_manager.signal_axes[0].units != e_in.units  # nothing to copy from
    with pytest.raises(ValueError, match="match the reference"):
        pca.to_signals(scores[:10], reference=s)
    with pytest.raises(ValueError, match="convention"):
        pca.to_signals(scores, convention="sklearn")
    with pytest.raises(ValueError, match="center=False"):
        mc.spectral.PCA(2, random_state=0).fit(s.data[:8, :8]).hyperspy_factors(scores[:8, :8])


def test_to_signals_of_flat_input_and_energy():
    X = np.random.default_rng(0).poisson(5.0, (40, 30))
    nmf = mc.spectral.NMF(2, random_state=0, max_iter=10)
    maps = nmf.fit_transform(X)
    lo, fa = nmf.to_signals(maps, energy=(0.1, 0.02))
    assert lo.axes_manager.navigation_shape == (2,) and lo.data.shape == (2, 40)
    ax = fa.axes_manager.signal_axes[0]
    assert (ax.offset, ax.scale, ax.units) == (0.1, 0.02, "keV")
    lo, fa = nmf.to_signals(maps, energy=(100.0, 0.5, "eV"))
    assert fa.axes_manager.signal_axes[0].units == "eV"
    with pytest.raises(ValueError, match="energy"):
        nmf.to_signals(maps, energy=np.arange(5.0))
    with pytest.raises(ValueError, match="do not match"):
        nmf.to_signals(maps[:, :1])
