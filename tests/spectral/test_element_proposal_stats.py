"""EDXModel.propose_elements: line-family consistency, escape and pile-up peaks,
detector/holder labels and Benjamini-Hochberg control (synthetic spectra with Poisson
noise; the real files of ../shared/data with element metadata)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import xraylib as xl
from scipy.special import erf

import matchar as mc

AXIS = (0.0, 0.01, 1500)  # 0-15 keV


def _peak(energy, e0, fwhm):
    """Unit-area Gaussian at e0 (keV) integrated over channels centred on ``energy``."""
    s = fwhm / 2.3548200450309493
    half = 0.5 * (energy[1] - energy[0])
    edges = np.append(energy - half, energy[-1] + half)
    return 0.5 * np.diff(erf((edges - e0) / (s * math.sqrt(2.0))))


def _fwhm(e_kev, res_ev=130.0):
    return math.sqrt(res_ev**2 + 2.5 * (e_kev * 1e3 - 5898.7)) * 1e-3


def _names(found):
    return {p["element"] for p in found}


def test_known_set_recovered_with_significance():
    truth = ["Fe", "Ni", "O"]
    m = mc.spectral.EDXModel(truth, AXIS)
    counts = np.random.default_rng(1).poisson(m.G @ [4e4, 2e4, 3e4, 8e4, 2e4])
    found = m.propose_elements(counts, knot_keV=np.inf)
    assert _names(found) == set(truth)
    for p in found:
        assert p["source"] == "peaks"
        assert 0 <= p["q_value"] <= 0.01 and p["p_value"] <= p["q_value"]
        assert p["z"] > 6


def test_escape_and_sum_peaks_are_not_elements():
    """Fe alone with an Si escape peak (1 % at 6.40 - 1.74 keV) and a pile-up peak
    (0.3 % at 2 x 6.40 keV), drawn here with their own Gaussians."""
    m = mc.spectral.EDXModel(["Fe"], AXIS)
    E = m.energy
    ka = xl.LineEnergy(26, xl.KL3_LINE)
    fe = 2e6 * m.G[:, 0] / m.G[:, 0].sum()
    n_ka = fe[(E > ka - 0.2) & (E < ka + 0.2)].sum()
    art = 0.01 * n_ka * _peak(E, ka - 1.74, _fwhm(ka - 1.74))
    art += 0.003 * n_ka * _peak(E, 2 * ka, _fwhm(2 * ka))
    lam = fe + art + 2e5 * m.G[:, 1]
    counts = np.random.default_rng(2).poisson(lam)
    found = m.propose_elements(counts, knot_keV=np.inf)
    assert _names(found) == {"Fe"}, found
    # the artefact columns alone (no family test) keep them from being elements ...
    alone = m.propose_elements(counts, knot_keV=np.inf, family_check=False)
    assert _names(alone) == {"Fe"}, alone
    # ... which they are without either
    neither = m.propose_elements(counts, knot_keV=np.inf, family_check=False, artefacts=False)
    assert _names(neither) - {"Fe"}, "the artefacts should make elements when not modelled"


def test_single_peak_without_its_family_is_rejected():
    """A lone Gaussian at Pd L-alpha (2.838 keV) without Pd L-beta (2.990 keV)."""
    m = mc.spectral.EDXModel(["Fe"], AXIS)
    E = m.energy
    pd_la = xl.LineEnergy(46, xl.L3M5_LINE)
    lam = 1e5 * m.G[:, 1] + 2e4 * _peak(E, pd_la, _fwhm(pd_la))
    counts = np.random.default_rng(3).poisson(lam)
    assert "Pd" not in _names(m.propose_elements(counts, knot_keV=np.inf))
    # the same peak with Pd's own lines (its model column) is Pd
    pd = mc.spectral.EDXModel(["Pd"], AXIS).G[:, 0]
    real = np.random.default_rng(3).poisson(1e5 * m.G[:, 1] + 3e4 * pd / pd.sum())
    assert "Pd" in _names(m.propose_elements(real, knot_keV=np.inf))
    # without the family test the lone peak is taken for an element
    loose = m.propose_elements(counts, knot_keV=np.inf, family_check=False)
    assert _names(loose), "a lone peak should be an element without the family test"


def test_benjamini_hochberg_limits_false_elements_on_noise():
    """Bremsstrahlung only, 20 seeds, a loose peak threshold (2 sd): at fdr=0.01 at most
    one false element in all, far fewer than without the correction (fdr=1)."""
    m = mc.spectral.EDXModel(["Fe"], (0.0, 0.02, 600))
    lam = 2e4 * m.G[:, 1]
    false_bh, false_raw = 0, 0
    for seed in range(20):
        counts = np.random.default_rng(100 + seed).poisson(lam)
        kw = dict(knot_keV=np.inf, min_significance=2.0, max_elements=5)
        false_bh += len(m.propose_elements(counts, fdr=0.01, **kw))
        false_raw += len(m.propose_elements(counts, fdr=1.0, **kw))
    assert false_bh <= 1, false_bh
    assert false_raw >= false_bh + 10, (false_raw, false_bh)


def test_window_edge_step_is_not_an_element():
    """Bremsstrahlung through a window with an N K edge (Si3N4: the transmission drops by
    60 % above 0.410 keV, drawn here) and no element at all, fitted with the plain
    bremsstrahlung (``knot_keV=inf``): the edge steps, no N nor anything else."""
    m = mc.spectral.EDXModel(["Fe"], (0.0, 0.005, 1200))
    E = m.energy
    step = 1.0 - 0.6 * 0.5 * (1.0 + erf((E - 0.410) / (0.025 * math.sqrt(2.0))))
    counts = np.random.default_rng(5).poisson(3e6 * m.G[:, 1] * step)
    assert _names(m.propose_elements(counts, knot_keV=np.inf)) == set()


def test_detector_lines_are_labelled_when_metadata_list_elements():
    m = mc.spectral.EDXModel(["Ti", "Cu"], AXIS)
    counts = np.random.default_rng(4).poisson(m.G @ [5e4, 2e4, 1e5, 2e4])
    found = {p["element"]: p for p in m.propose_elements(counts, known=["Ti"], knot_keV=np.inf)}
    assert found["Ti"]["source"] == "known" and found["Ti"]["q_value"] is None
    assert found["Cu"]["source"] == "detector/holder" and found["Cu"]["detector_line"]
    # without metadata elements there is nothing to contradict: Cu is from the peaks
    plain = {p["element"]: p for p in m.propose_elements(counts, knot_keV=np.inf)}
    assert plain["Cu"]["source"] == "peaks" and plain["Cu"]["detector_line"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(fdr=0.0), "fdr"),
        (dict(fdr=2.0), "fdr"),
        (dict(family_tolerance=1.5), "family_tolerance"),
        (dict(family_z=-1.0), "family_z"),
        (dict(detector_elements=["Xx"]), "unknown element"),
    ],
)
def test_bad_parameters(kwargs, match):
    m = mc.spectral.EDXModel(["Fe"], AXIS)
    with pytest.raises(ValueError, match=match):
        m.propose_elements(np.ones(1500), **kwargs)


def _outside(found, listed):
    return {p["element"] for p in found if p["element"] not in listed} - {
        p["element"] for p in found if p["source"] == "detector/holder"
    }


def test_velox_no_element_outside_metadata(velox):
    cube, _, meta = mc.io.load_spectrum_image(velox)
    listed = set(meta["metadata"]["Sample"]["elements"])
    model = mc.spectral.EDXModel(sorted(listed), metadata=meta)
    found = model.propose_elements(cube, known=sorted(listed))
    assert {p["element"] for p in found if p["source"] == "known"} == listed
    assert not _outside(found, listed), found


def test_bruker_tem_no_element_outside_metadata(shared_data):
    path = shared_data / "bruker-test_TEM.bcf"
    if not path.exists():
        pytest.skip("bruker-test_TEM.bcf not in the shared data")
    pytest.importorskip("rsciio")
    cube, _, meta = mc.io.load_spectrum_image(path)
    listed = set(meta["metadata"]["Sample"]["elements"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = mc.spectral.EDXModel(sorted(listed), metadata=meta)
    found = model.propose_elements(cube, known=sorted(listed))
    labelled = {p["element"] for p in found if p["source"] == "detector/holder"}
    assert "Si" in labelled
    assert not _outside(found, listed), found


def test_geological_map_gets_its_rock_forming_elements_only(shared_data):
    """sem-edx-P45.bcf (no element metadata): the peaks visible in its summed spectrum
    are O, Na, Mg, Al, Si, K, Ca, Ti and Fe Kα; no rare earth, Sn or Se from the M/L
    lines that fall on them (proposed before the family test and the artefacts)."""
    path = shared_data / "sem-edx-P45.bcf"
    if not path.exists():
        pytest.skip("sem-edx-P45.bcf not in the shared data")
    pytest.importorskip("rsciio")
    cube, _, meta = mc.io.load_spectrum_image(path)
    model = mc.spectral.EDXModel(["Si"], metadata=meta)
    found = _names(model.propose_elements(cube))
    assert {"O", "Na", "Al", "Si", "K", "Ca", "Fe"} <= found, found
    assert found <= {"C", "O", "Na", "Mg", "Al", "Si", "K", "Ca", "Ti", "Mn", "Fe"}, found
