"""refine_detector: the detector of an EDXModel refined on the summed spectrum.

The synthetic spectra are built here from EDXModel's line list (energies and intensities)
with Gaussians written out in the test, on a channel axis with a known offset and gain,
a known width and a known factor on one family's lines; the refinement starts from the
nominal model and must find them back.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("xraylib")

from scipy.special import erf

import matchar as mc
from matchar.spectral._detector import (
    FANO_BOUNDS,
    NOISE_BOUNDS_EV,
    RefinedEDXModel,
    refine_detector,
)

ELEMENTS = ["Fe", "Cu", "O", "Si"]
AXIS = (0.1, 0.01, 1200)  # nominal: 0.1 to 12.09 keV
MN_KA_EV = 5898.7


def spectrum(
    offset_shift: float,
    gain: float,
    resolution_eV: float,
    cu_l_factor: float,
    amplitudes: dict[str, float],
    background: float,
    collection: float = 0.0,
) -> np.ndarray:
    """Expected counts on the data's channels: the nominal model's lines (energy, weight
    incl. detector efficiency) as Gaussians of FWHM^2 = R^2 + 2.5 eV (E - E_MnKa) +
    q^2 (E^2 - E_MnKa^2) (q = ``collection``, 0: EDXModel's width) on the channels
    ``offset + shift + gain * scale * i``, Cu L lines times ``cu_l_factor``, plus the
    nominal bremsstrahlung."""
    nominal = mc.spectral.EDXModel(ELEMENTS, AXIS, 200.0)
    off, sc, n = AXIS
    centres = off + offset_shift + gain * sc * np.arange(n)
    edges = np.concatenate([centres - 0.5 * gain * sc, [centres[-1] + 0.5 * gain * sc]])
    per_el = {el: np.zeros(n) for el in ELEMENTS}
    for ln in nominal.lines:
        E = ln["energy_keV"]
        e_ev = E * 1000
        fwhm2 = resolution_eV**2 + 2.5 * (e_ev - MN_KA_EV) + collection**2 * (e_ev**2 - MN_KA_EV**2)
        fwhm = math.sqrt(fwhm2) / 1000
        s = fwhm / (2 * math.sqrt(2 * math.log(2)))
        w = ln["weight"] * (cu_l_factor if (ln["element"], ln["family"]) == ("Cu", "L") else 1)
        per_el[ln["element"]] += w * 0.5 * np.diff(erf((edges - E) / (s * math.sqrt(2))))
    x = sum(a * per_el[el] / per_el[el].sum() for el, a in amplitudes.items())
    bg = nominal.bremsstrahlung()[:, 0]
    x = x + background * bg
    x[~nominal.fit_channels] = 0.0
    return x


AMPS = {"Fe": 4e5, "Cu": 4e5, "O": 2e5, "Si": 2e5}


@pytest.fixture(scope="module")
def recovered():
    truth = dict(offset_shift=0.012, gain=1.004, resolution_eV=145.0, cu_l_factor=1.5)
    lam = spectrum(**truth, amplitudes=AMPS, background=2e6)
    x = np.random.default_rng(3).poisson(lam)
    model = mc.spectral.EDXModel(ELEMENTS, AXIS, 200.0)
    refined, rep = refine_detector(model, x[None, :])
    return truth, refined, rep


def test_calibration_and_width_recovered(recovered):
    truth, refined, rep = recovered
    # ~1.2e6 line counts: the peak centroids are known to well under 1 eV, so a few eV
    # (offset) and 5e-4 (gain, 6 eV at 12 keV) are several standard errors
    assert abs(rep["offset_keV"] - truth["offset_shift"]) < 0.003
    assert abs(rep["gain"] - truth["gain"]) < 5e-4
    # the width at Mn K-alpha (between the Fe K and Cu K peaks) within 3 eV
    assert abs(rep["resolution_mnka_eV"] - truth["resolution_eV"]) < 3.0
    # the refined axis is the data's
    assert refined.offset == pytest.approx(AXIS[0] + rep["offset_keV"])
    assert refined.scale == pytest.approx(AXIS[1] * rep["gain"])
    # and the reported standard errors are consistent with the errors
    for k in ("offset_keV", "gain"):
        assert 0 < rep["stderr"][k] < np.inf
    assert abs(rep["offset_keV"] - truth["offset_shift"]) < 6 * rep["stderr"]["offset_keV"] + 5e-4


def test_family_ratio_recovered(recovered):
    truth, _, rep = recovered
    cu = rep["line_scale"]["Cu"]
    ratio = cu["L"] / cu["K"]
    assert ratio == pytest.approx(truth["cu_l_factor"], rel=0.1)
    # elements with one family on the axis get no factor
    assert "O" not in rep["line_scale"]
    # Fe's K/L balance was not perturbed
    fe = rep["line_scale"]["Fe"]
    assert fe["L"] / fe["K"] == pytest.approx(1.0, rel=0.15)


def test_refinement_lowers_deviance_and_helps_fit(recovered):
    _, refined, rep = recovered
    assert rep["deviance_after"] < 0.5 * rep["deviance_before"]
    # about one unit of deviance per channel when the model is right
    assert rep["deviance_after"] < 1.5 * rep["n_channels_fitted"]
    assert isinstance(refined, RefinedEDXModel)
    assert refined.detector is rep


def test_refined_model_with_nominal_detector_is_edxmodel():
    """RefinedEDXModel with EDXModel's own width (slope 2.5 eV) and no factors gives
    EDXModel's G."""
    R = 140.0
    fano = 2.5 / (8 * math.log(2) * 3.64)
    noise = math.sqrt(R**2 - 2.5 * MN_KA_EV)
    a = mc.spectral.EDXModel(ELEMENTS, AXIS, 200.0, resolution_eV=R)
    b = RefinedEDXModel(ELEMENTS, AXIS, 200.0, noise_eV=noise, fano=fano)
    assert b.resolution_mnka_eV == pytest.approx(R)
    np.testing.assert_allclose(b.G, a.G, rtol=1e-9, atol=1e-15)
    c = RefinedEDXModel(
        ELEMENTS, AXIS, 200.0, noise_eV=noise, fano=fano, line_scale={"Cu": {"L": 2}}
    )
    cu = ELEMENTS.index("Cu")
    low = a.energy < 1.2  # Cu L at 0.93 keV
    # only Cu's L part doubles; G is divided by max(yields): compare unscaled columns
    ok = a.G[low, cu] > 1e-6 * a.G[:, cu].max()
    ua = a.G[:, cu] * a.yields.max()
    uc = c.G[:, cu] * c.yields.max()
    np.testing.assert_allclose(uc[low][ok], 2 * ua[low][ok], rtol=1e-6)
    high = a.energy > 7.5
    np.testing.assert_allclose(uc[high], ua[high], rtol=1e-9, atol=1e-12)


def test_bounds_respected_and_reported():
    # width far beyond the bounds (500 eV at Mn K-alpha) and Cu L five times too bright
    lam = spectrum(0.0, 1.0, 500.0, 5.0, AMPS, 2e6)
    x = np.random.default_rng(1).poisson(lam)
    model = mc.spectral.EDXModel(ELEMENTS, AXIS, 200.0)
    _, rep = refine_detector(model, x, n_rounds=2)
    assert NOISE_BOUNDS_EV[0] <= rep["noise_eV"] <= NOISE_BOUNDS_EV[1]
    assert FANO_BOUNDS[0] <= rep["fano"] <= FANO_BOUNDS[1]
    assert "noise_eV" in rep["at_bounds"]
    for fams in rep["line_scale"].values():
        for v in fams.values():
            assert 0.5 <= v <= 2.0
    cu = rep["line_scale"]["Cu"]
    # the brightest family is the reference (1), the other is clipped: L/K = 2, not 5
    assert sorted(cu.values()) in ([0.5, 1.0], [1.0, 2.0])
    assert cu["L"] / cu["K"] == pytest.approx(2.0)
    # tighter user bounds are honoured
    _, rep2 = refine_detector(model, x, n_rounds=1, ratio_bounds=(0.8, 1.25))
    for fams in rep2["line_scale"].values():
        for v in fams.values():
            assert 0.8 <= v <= 1.25


def test_bad_input():
    model = mc.spectral.EDXModel(ELEMENTS, AXIS, 200.0)
    x = np.ones(AXIS[2])
    with pytest.raises(ValueError, match="channels"):
        refine_detector(model, np.ones(AXIS[2] + 1))
    with pytest.raises(ValueError, match="non-negative"):
        refine_detector(model, -x)
    with pytest.raises(ValueError, match="non-negative"):
        refine_detector(model, np.full(AXIS[2], np.nan))
    with pytest.raises(ValueError, match="EDXModel"):
        refine_detector(object(), x)
    with pytest.raises(ValueError, match="ratio_bounds"):
        refine_detector(model, x, ratio_bounds=(1.5, 2.0))
    with pytest.raises(ValueError, match="ratios"):
        refine_detector(model, x, ratios="line")
    with pytest.raises(ValueError, match="noise_eV"):
        RefinedEDXModel(ELEMENTS, AXIS, 200.0, noise_eV=-1.0, fano=0.1)
    with pytest.raises(ValueError, match="line_scale"):
        RefinedEDXModel(ELEMENTS, AXIS, 200.0, noise_eV=50.0, fano=0.1, line_scale={"Fe": {"X": 1}})


def test_all_zero_data_raises():
    model = mc.spectral.EDXModel(ELEMENTS, AXIS, 200.0)
    with pytest.raises(ValueError, match="no counts"):
        refine_detector(model, np.zeros((4, 4, AXIS[2]), dtype=np.uint16))


def test_charge_collection_term_recovered():
    """A detector whose width grows faster than the Fano term (incomplete charge
    collection, q = 0.015: +150 eV in quadrature at 10 keV) is found back: the collection
    term and the widths at low and high energy; an ideal detector's data give a small q."""
    q = 0.015
    lam = spectrum(0.0, 1.0, 150.0, 1.0, AMPS, 2e6, collection=q)
    x = np.random.default_rng(5).poisson(lam)
    model = mc.spectral.EDXModel(ELEMENTS, AXIS, 200.0)
    refined, rep = refine_detector(model, x)
    assert rep["collection"] == pytest.approx(q, abs=0.003)
    for e_kev in (1.0, 6.4, 8.0):  # Fe/Cu L, Fe K-alpha, Cu K-alpha
        e_ev = e_kev * 1000
        truth = math.sqrt(150.0**2 + 2.5 * (e_ev - MN_KA_EV) + q**2 * (e_ev**2 - MN_KA_EV**2))
        assert float(refined.fwhm_keV(e_kev)) * 1000 == pytest.approx(truth, abs=4.0)
    assert rep["deviance_after"] < 1.5 * rep["n_channels_fitted"]
    assert refined.collection == rep["collection"]
    # EDXModel's own width (no collection term): q stays small
    lam0 = spectrum(0.0, 1.0, 150.0, 1.0, AMPS, 2e6)
    _, rep0 = refine_detector(model, np.random.default_rng(6).poisson(lam0))
    assert rep0["collection"] < 0.005
