"""EDXModel: G against xraylib's atomic data computed independently, widths, detector
efficiency, bremsstrahlung, element proposal (synthetic and the real .bcf), bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import xraylib as xl

import matchar as mc
from matchar.spectral._edx import detector_efficiency, fwhm_keV


def test_shapes_and_columns():
    m = mc.spectral.EDXModel(["Fe", "O", "Si"], (0.0, 0.01, 2048), n_background=3)
    assert m.G.shape == (2048, 6) and m.n_elements == 3 and m.n_background == 3
    assert (m.G >= 0).all() and np.isfinite(m.G).all()
    assert m.G[:, :3].sum(0).max() == pytest.approx(1.0)  # one common constant
    np.testing.assert_allclose(m.G[:, 3:].sum(0), 1.0)
    # the strongest K channel of each element is at its K-alpha line
    for col in range(3):
        Z = m.atomic_numbers[col]
        e_ka = xl.LineEnergy(Z, xl.KL3_LINE)
        sel = m.energy > 0.8 * e_ka
        peak = m.energy[sel][np.argmax(m.G[sel, col])]
        assert abs(peak - e_ka) < 0.02
    # Fe L (L3M5 at 0.705 keV) is there too
    fe_l = xl.LineEnergy(26, xl.L3M5_LINE)
    assert m.G[np.searchsorted(m.energy, fe_l), 0] > 0.1 * m.G[:, 0].max()


def test_line_ratios_follow_xraylib():
    """Fe K-beta / K-alpha counts = radiative rates x detector efficiency (same shell)."""
    m = mc.spectral.EDXModel(["Fe"], (0.0, 0.005, 4096), resolution_eV=125.0)
    col = m.G[:, 0]
    E = m.energy

    def counts(lo, hi):
        return col[(E >= lo) & (E < hi)].sum()

    ka = [xl.KL2_LINE, xl.KL3_LINE]
    kb = [xl.KM2_LINE, xl.KM3_LINE]
    r_a = sum(xl.RadRate(26, ln) for ln in ka)
    r_b = sum(xl.RadRate(26, ln) for ln in kb)
    eff = detector_efficiency([6.40, 7.06])
    want = (r_b * eff[1]) / (r_a * eff[0])
    got = counts(6.85, 7.3) / counts(6.1, 6.7)
    assert got == pytest.approx(want, rel=0.03)


def test_cross_elements_follow_bethe_and_yields():
    """Cu / Ni K-alpha intensity per atom: Q(E0) omega_K R_Ka eff, computed here directly."""
    m = mc.spectral.EDXModel(["Ni", "Cu"], (0.0, 0.01, 2048))
    E = m.energy

    def ka_counts(col, e):
        return m.G[(E > e - 0.25) & (E < e + 0.2), col].sum()

    def expected(Z):
        Ec = xl.EdgeEnergy(Z, xl.K_SHELL)
        U = 200.0 / Ec
        Q = 2 * math.log(U) / (U * Ec**2)
        e = xl.LineEnergy(Z, xl.KL3_LINE)
        rate = xl.RadRate(Z, xl.KL3_LINE) + xl.RadRate(Z, xl.KL2_LINE)
        return Q * xl.FluorYield(Z, xl.K_SHELL) * rate * detector_efficiency([e])[0]

    got = ka_counts(1, 8.04) / ka_counts(0, 7.47)
    assert got == pytest.approx(expected(29) / expected(28), rel=0.03)


def test_peak_width_matches_resolution():
    m = mc.spectral.EDXModel(["Mn"], (4.0, 0.002, 2000), resolution_eV=130.0)
    col = m.G[:, 0]
    sel = (m.energy > 5.5) & (m.energy < 6.3)  # Mn K-alpha1+2 (2.5 eV apart ~ one peak)
    e, w = m.energy[sel], col[sel]
    mean = (e * w).sum() / w.sum()
    sd = math.sqrt(((e - mean) ** 2 * w).sum() / w.sum())
    assert sd * 2.3548 * 1000 == pytest.approx(130.0, rel=0.03)
    assert float(fwhm_keV(0.525, 130.0)) * 1000 == pytest.approx(
        math.sqrt(130.0**2 + 2.5 * (525 - 5898.7)), rel=1e-9
    )


def test_detector_efficiency_formula():
    E = np.array([0.525, 1.5, 6.4, 20.0])
    eff = detector_efficiency(E, window=(("Si3N4", 3.44, 0.1),), dead_layer_um=0.05, crystal_um=300)
    for e, got in zip(E, eff):
        mu_w = xl.CS_Total_CP("Si3N4", e) * 3.44 * 0.1e-4
        mu_si = xl.CS_Total(14, e) * 2.33
        want = math.exp(-mu_w) * math.exp(-mu_si * 0.05e-4) * (1 - math.exp(-mu_si * 300e-4))
        assert got == pytest.approx(want, rel=1e-12)
    assert detector_efficiency([0.05])[0] == 0.0


def test_bremsstrahlung_shape():
    m = mc.spectral.EDXModel(["Si"], (-0.2, 0.01, 2048), n_background=2)
    b = m.bremsstrahlung()
    assert (b[m.energy < m.low_cut_keV] == 0).all()
    i, j = np.searchsorted(m.energy, [5.0, 15.0])
    eff = m.efficiency(m.energy[[i, j]])
    for col, power in ((0, 1), (1, 2)):
        ratio = b[j, col] / b[i, col]
        e = m.energy[[i, j]]
        want = ((200 - e[1]) ** power / e[1] * eff[1]) / ((200 - e[0]) ** power / e[0] * eff[0])
        assert ratio == pytest.approx(want, rel=1e-12)


def test_energy_axis_forms_agree():
    a = mc.spectral.EDXModel(["Cu"], (0.1, 0.01, 500))
    b = mc.spectral.EDXModel(["Cu"], 0.1 + 0.01 * np.arange(500))
    np.testing.assert_allclose(a.G, b.G)


def test_bad_input():
    with pytest.raises(ValueError, match="unknown element 'Xx'"):
        mc.spectral.EDXModel(["Fe", "Xx"], (0.0, 0.01, 1024))
    with pytest.raises(ValueError, match="duplicates"):
        mc.spectral.EDXModel(["Fe", "Fe"], (0.0, 0.01, 1024))
    with pytest.raises(ValueError, match="covers no X-ray line of O"):
        mc.spectral.EDXModel(["O"], (15.0, 0.01, 100))
    with pytest.raises(ValueError, match="below every edge of Fe"):
        mc.spectral.EDXModel(["Fe"], (0.0, 0.01, 1024), beam_energy_keV=0.5)
    with pytest.raises(ValueError, match="resolution_eV"):
        mc.spectral.EDXModel(["Fe"], (0.0, 0.01, 1024), resolution_eV=100.0)
    with pytest.raises(ValueError, match="energy_axis"):
        mc.spectral.EDXModel(["Fe"], (0.0, -0.01, 1024))
    with pytest.raises(ValueError, match="uniformly spaced"):
        mc.spectral.EDXModel(["Fe"], np.array([0.0, 0.1, 0.3]))
    with pytest.raises(ValueError, match="beam_energy_keV"):
        mc.spectral.EDXModel(["Fe"], (0.0, 0.01, 1024), beam_energy_keV=float("nan"))
    with pytest.raises(ValueError, match="needs data"):
        mc.spectral.EDXModel(None, (0.0, 0.01, 1024))
    with pytest.raises(ValueError, match="at least one"):
        mc.spectral.EDXModel([], (0.0, 0.01, 1024))


def test_propose_elements_synthetic():
    truth = ["Fe", "Cr", "Ni", "O", "Si", "Cu"]
    m = mc.spectral.EDXModel(truth, (0.0, 0.01, 2048))
    rng = np.random.default_rng(0)
    cube = rng.poisson(np.full((16, 16, 1), 1.0) * (m.G @ [40, 10, 8, 30, 12, 5, 60, 20]) / 16)
    model = mc.spectral.EDXModel(None, (0.0, 0.01, 2048), data=cube)
    assert set(model.elements) == set(truth)
    with pytest.raises(ValueError, match="channels"):
        m.propose_elements(cube[..., :100])


def test_bcf_proposed_elements(shared_data):
    path = shared_data / "bruker-test_TEM.bcf"
    if not path.exists():
        pytest.skip("bruker-test_TEM.bcf not in the shared data")
    pytest.importorskip("rsciio")
    cube, energy, meta = mc.io.load_spectrum_image(path)
    md = meta["metadata"]
    beam = md["Acquisition_instrument"]["TEM"]["beam_energy"]
    listed = set(md["Sample"]["elements"])  # Cu, O, Pd, Ti
    model = mc.spectral.EDXModel(None, energy, beam_energy_keV=beam, data=cube)
    proposed = set(model.elements)
    # From the peaks alone: Si, Ti and O. Pd's L-alpha (2.84 keV, ~30 counts above
    # background) lies on the Si escape peak of Ti K-alpha (4.51 - 1.74 keV), which the
    # proposal models: its peak is no longer above 6 sd. The background steps at the
    # window's edges (C, N, O K), and no N is proposed on the step at 0.41 keV. Cd,
    # whose L lines overlap Pd's, and Kr on the Si peak's low-energy tail are not
    # proposed.
    assert {"Si", "Ti", "O"} <= proposed
    assert not proposed & {"Cd", "Kr", "Rh", "Ag"}
    assert len(proposed) <= 6
    # With the metadata's elements as known ones (what EDXModel does for a signal), the
    # proposal includes all of them and reports each one's own deviance drop.
    found = model.propose_elements(cube, known=sorted(listed))
    names = [p["element"] for p in found]
    assert listed <= set(names) and len(names) == len(set(names))
    known = {p["element"]: p for p in found if p["source"] == "known"}
    assert set(known) == listed
    assert known["Ti"]["deviance_gain"] > 1000 and known["Pd"]["deviance_gain"] > 36
    # Si is not in the metadata: found in the peaks and labelled a detector line
    assert {"Si"} <= {p["element"] for p in found if p["source"] == "detector/holder"}
    # the listed elements also build a model that decomposes the map
    listed_model = mc.spectral.EDXModel(sorted(listed | proposed), energy, beam_energy_keV=beam)
    est = mc.spectral.PhysicsNMF(listed_model, 2, max_iter=30, random_state=0)
    maps = est.fit_transform(cube)
    assert maps.shape == (*cube.shape[:2], 2) and np.isfinite(est.composition_).all()


def _film_factor(E, comp, rho, t_nm, takeoff_deg):
    """(1 - exp(-chi)) / chi from xraylib directly (reference for sample_absorption)."""
    import xraylib as xl

    zs = [xl.SymbolToAtomicNumber(el) for el in comp]
    w = np.array([comp[el] * xl.AtomicWeight(z) for el, z in zip(comp, zs)])
    w = w / w.sum()
    mu = np.array([sum(wi * xl.CS_Total(z, float(e)) for wi, z in zip(w, zs)) for e in E])
    chi = mu * rho * t_nm * 1e-7 / np.sin(np.radians(takeoff_deg))
    return (1 - np.exp(-chi)) / chi


def test_sample_absorption_against_xraylib():
    axis = (0.0, 0.01, 1200)
    thin = mc.spectral.EDXModel(["Ti", "O"], axis)
    comp = {"Ti": 1.0, "O": 2.0}
    thick = mc.spectral.EDXModel(
        ["Ti", "O"], axis, thickness_nm=150.0, density_g_cm3=4.2, sample_composition=comp,
        takeoff_deg=25.0,
    )  # fmt: skip
    w_thin = np.array([ln["weight"] for ln in thin.lines])
    w_thick = np.array([ln["weight"] for ln in thick.lines])
    E = np.array([ln["energy_keV"] for ln in thin.lines])
    ref = _film_factor(E, comp, 4.2, 150.0, 25.0)
    np.testing.assert_allclose(w_thick / w_thin, ref, rtol=1e-10)
    o_ka = np.argmin(abs(E - 0.525))
    assert ref[o_ka] < 0.9 and ref[np.argmin(abs(E - 4.51))] > 0.99  # O K absorbed, Ti K not
    # bremsstrahlung: the same factor channel by channel, up to each column's normalisation
    ok = thin.bremsstrahlung()[:, 0] > 0
    ratio = thick.bremsstrahlung()[ok, 0] / thin.bremsstrahlung()[ok, 0]
    f = _film_factor(thin.energy[ok], comp, 4.2, 150.0, 25.0)
    np.testing.assert_allclose(ratio / ratio[-1], f / f[-1], rtol=1e-9)
    # default composition: equal atomic fractions of the elements; thickness 0 = thin film
    eq = mc.spectral.EDXModel(["Ti", "O"], axis, thickness_nm=150.0, density_g_cm3=4.2)
    w_eq = np.array([ln["weight"] for ln in eq.lines])
    np.testing.assert_allclose(w_eq / w_thin, _film_factor(E, {"Ti": 1, "O": 1}, 4.2, 150, 20))
    zero = mc.spectral.EDXModel(["Ti", "O"], axis, thickness_nm=0.0, density_g_cm3=4.2)
    np.testing.assert_array_equal(zero.G, thin.G)


def test_sample_absorption_bad_input():
    axis = (0.0, 0.01, 600)
    with pytest.raises(ValueError, match="density_g_cm3"):
        mc.spectral.EDXModel(["Ti"], axis, thickness_nm=50.0)
    with pytest.raises(ValueError, match="thickness_nm"):
        mc.spectral.EDXModel(["Ti"], axis, thickness_nm=-1.0, density_g_cm3=4.0)
    with pytest.raises(ValueError, match="takeoff_deg"):
        mc.spectral.EDXModel(["Ti"], axis, thickness_nm=50.0, density_g_cm3=4.0, takeoff_deg=0)
    with pytest.raises(ValueError, match="unknown element"):
        mc.spectral.EDXModel(
            ["Ti"], axis, thickness_nm=50.0, density_g_cm3=4.0, sample_composition={"Xx": 1}
        )
    with pytest.raises(ValueError, match="density_g_cm3"):
        mc.spectral.EDXModel(["Ti"], axis, thickness_nm=50.0, density_g_cm3=-2.0)


def test_signal_metadata_elements_kept_and_completed():
    from types import SimpleNamespace as NS

    truth = mc.spectral.EDXModel(["Fe", "Ni", "O"], (0.0, 0.01, 1500))
    rng = np.random.default_rng(3)
    cube = rng.poisson(np.ones((12, 12, 1)) * (truth.G @ [40, 20, 30, 60, 20]) / 4)
    axis = NS(offset=0.0, scale=10.0, units="eV", size=1500)  # eV converted to keV
    md = NS(
        Acquisition_instrument=NS(TEM=NS(beam_energy=200.0)),
        Sample=NS(elements=["Fe", "Ni", "Cu"]),  # Cu listed but absent, O present but unlisted
    )
    signal = NS(data=cube, axes_manager=NS(signal_axes=[axis]), metadata=md)
    model = mc.spectral.EDXModel(None, data=signal)
    assert model.elements[:3] == ["Fe", "Ni", "Cu"] and "O" in model.elements
    assert model.beam_energy_keV == 200.0 and np.isclose(model.scale, 0.01)
    found = {p["element"]: p for p in model.propose_elements(cube, known=["Fe", "Ni", "Cu"])}
    assert found["Cu"]["source"] == "known" and found["Cu"]["deviance_gain"] < 36
    assert found["O"]["source"] == "peaks" and found["Fe"]["deviance_gain"] > 36
