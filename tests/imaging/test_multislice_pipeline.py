"""The multislice validation pipeline (scripts/simulate_multislice.py and
scripts/evaluate_crystal_multislice.py): the oriented supercells handed to abTEM, a tiny
abTEM simulation, and the evaluation's geometry, image-alone rule and calibration."""

from __future__ import annotations

import math

import numpy as np
import pytest

from matchar.imaging._simulate import ZONE_AXES, projected_cell


@pytest.fixture(scope="module")
def sim(repo_script):
    return repo_script("simulate_multislice")


@pytest.fixture(scope="module")
def ev(repo_script):
    return repo_script("evaluate_crystal_multislice")


def _periodic_min_distance(a: np.ndarray, b: np.ndarray, box: np.ndarray) -> float:
    d = a[:, None, :] - b[None, :, :]
    d = (d + box / 2) % box - box / 2
    return float(np.sqrt((d**2).sum(-1)).min(axis=1).max())


@pytest.mark.parametrize("label", ZONE_AXES, ids=[f"{p}{list(z)}" for p, z in ZONE_AXES])
def test_supercell_projects_onto_the_classifier_columns(sim, label):
    """Every atom of the abTEM supercell projects onto a column of the classifier's
    projected cell at rotation 0 (a1 along +x) and every column is occupied, with the
    column's number of atoms per period."""
    prototype, zone = label
    a = 3.3
    pos, box = sim.oriented_supercell(prototype, zone, a, math.sqrt(8 / 3), 9.0)
    assert np.all(box[:2] >= 9.0) and box[2] > 0
    cell = projected_cell(prototype, zone)
    cols = (
        np.array(
            [
                ((i + fx) * cell.a1 + (j + fy) * cell.a2) * a
                for i in range(-15, 16)
                for j in range(-15, 16)
                for fx, fy, _ in cell.columns
            ]
        )
        % box[:2]
    )
    xy = pos[:, :2] % box[:2]
    assert _periodic_min_distance(xy, cols, box[:2]) < 1e-6
    assert _periodic_min_distance(cols, xy, box[:2]) < 1e-6
    # atoms per column per period: cell.columns holds atoms per unit length (per a)
    key = np.round(xy, 4)
    _, counts = np.unique(key, axis=0, return_counts=True)
    expected = cell.columns[:, 2].mean() * box[2] / a
    assert np.allclose(counts, expected, rtol=1e-6)


def test_supercell_real_c_over_a_keeps_basal_columns(sim):
    """hcp with a real c/a (Ti, 1.588): the [0001] projection is unchanged and the
    [10-10] one is stretched along y (c) only."""
    ideal = sim.oriented_supercell("hcp", (0, 0, 0, 1), 2.95, math.sqrt(8 / 3), 9.0)
    real = sim.oriented_supercell("hcp", (0, 0, 0, 1), 2.95, 1.588, 9.0)
    assert np.allclose(ideal[1][:2], real[1][:2])
    assert real[1][2] == pytest.approx(2.95 * 1.588)
    _, box = sim.oriented_supercell("hcp", (1, 0, -1, 0), 2.95, 1.588, 9.0)
    # x: whole multiples of a1 = a / 2; y: whole multiples of c
    for length, period in ((box[0], 2.95 / 2), (box[1], 2.95 * 1.588)):
        assert length / period == pytest.approx(round(length / period), abs=1e-9)


def test_tiny_abtem_simulation_has_columns_where_the_classifier_puts_them(sim):
    """A tiny frozen-phonon PRISM run (Cu [100], one period thick): the HAADF maxima sit
    on the projected columns (a/2 square lattice from the origin)."""
    pytest.importorskip("abtem")
    cfg = sim.Config(
        cls=ZONE_AXES.index(("fcc", (1, 0, 0))), element="Cu", a=3.615, c_over_a=1.0,
        thickness=7.23, energy_kv=200.0, semiangle_mrad=25.0, defocus=0.0, cs_um=0.0,
        astigmatism=0.0, astigmatism_angle=0.0, phonon_sigma=0.08, phonon_configs=1,
        sampling=0.08, scan_sampling=0.37, min_extent=3.6, seed=1,
    )  # fmt: skip
    img, (sy, sx) = sim.simulate(cfg, threads=1)
    assert img.shape == (10, 10)
    assert sy == pytest.approx(0.3615) and sx == pytest.approx(0.3615)
    assert np.all(np.isfinite(img)) and img.min() >= 0 and img.max() < 1
    # columns at multiples of a/2 = 5 scan steps; off-column pixels are darker
    on = img[::5, ::5].mean()
    off = img[2::5, 2::5].mean()
    assert on > 3 * off


def test_tilted_crystal_shears_the_columns(sim):
    """A tilt of t mrad towards azimuth phi moves an atom at height z by z tan(t) along
    (cos phi, sin phi), wrapped into the lateral box; untilted configurations keep the
    cache keys they had before tilt existed, and a tilted draw changes nothing else."""
    ase = pytest.importorskip("ase")
    pos, box = sim.oriented_supercell("fcc", (1, 1, 0), 3.615, 1.0, 9.0)
    atoms = ase.Atoms("Cu" * len(pos), positions=pos, cell=np.diag(box), pbc=True) * (1, 1, 40)
    t, phi = 8.0, 2.0
    out = sim.tilted(atoms, t, phi)
    z = atoms.positions[:, 2]
    shift = np.array([[np.cos(phi), np.sin(phi)]]) * (z * math.tan(t * 1e-3))[:, None]
    expect = np.mod(atoms.positions[:, :2] + shift, box[:2])
    diff = (out.positions[:, :2] - expect + box[:2] / 2) % box[:2] - box[:2] / 2
    assert np.abs(diff).max() < 1e-9
    np.testing.assert_allclose(out.positions[:, 2], z, rtol=0, atol=1e-9)
    assert np.ptp(np.hypot(*shift.T)) > 0.8  # the top of a 10 nm crystal moves 0.8 Å
    np.testing.assert_array_equal(atoms.positions[:, 2], z)  # input untouched
    plain = sim.draw_configs(2, 0, 120.0, 9.0)
    tilt = sim.draw_configs(2, 0, 120.0, 9.0, max_tilt=10.0)
    assert all(c.tilt_mrad == 0 for c in plain)
    assert all(0 <= c.tilt_mrad <= 10 for c in tilt) and len({c.tilt_mrad for c in tilt}) > 1
    for a, b in zip(plain, tilt):
        assert sim.replace(b, tilt_mrad=0.0, tilt_azimuth=0.0) == a
        assert a.key() != b.key()
    import hashlib
    import json
    from dataclasses import asdict

    d = asdict(plain[0])
    del d["tilt_mrad"], d["tilt_azimuth"]
    old_key = hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]
    assert plain[0].key() == old_key
    thick = sim.draw_configs(1, 0, 400.0, 9.0, min_thickness=150.0, classes={1, 5})
    assert [c.cls for c in thick] == [1, 5]
    assert all(150 <= c.thickness <= 400 for c in thick)


def test_test_image_rotation_convention(ev):
    """A stripe pattern with wave vector along the crystal's +x, turned by 30°: the
    power-spectrum peak of the test image lies at 30° from +x towards +y (rows)."""
    n, s = 64, 0.1
    x = np.arange(n) * s
    periodic = (1.5 + np.cos(2 * np.pi * x / (n * s / 8)))[None, :].repeat(n, axis=0)
    rng = np.random.default_rng(0)
    img = ev.test_image(periodic, (s, s), 30.0, 0.1, 24.0, 0.0, 1e9, rng)
    f = np.abs(np.fft.fft2(img - img.mean()))
    f[0, 0] = 0
    ky, kx = np.unravel_index(np.argmax(f), f.shape)
    ky = ky - f.shape[0] if ky > f.shape[0] // 2 else ky
    kx = kx - f.shape[1] if kx > f.shape[1] // 2 else kx
    ang = math.degrees(math.atan2(ky, kx)) % 180
    assert ang == pytest.approx(30.0, abs=3.0)


def test_bayes_rule_class(ev):
    """Hand-worked cases of the image-alone rule (training prior a ~ U(2.5, 5.4) Å)."""
    fcc100, bcc100, dia100 = (ZONE_AXES.index((p, (1, 0, 0))) for p in ("fcc", "bcc", "diamond"))
    # Cu [100]: spacing a/2 = 1.81 Å lies in diamond's range [0.88, 1.91] (densest)
    assert ev.bayes_rule_class(fcc100, 3.615) == dia100
    # fcc [100], a = 5.0: spacing 2.5 Å; diamond's range ends at 1.91 -> fcc (k 0.5 < 0.71)
    assert ev.bayes_rule_class(fcc100, 5.0) == fcc100
    # bcc [100], a = 5.2: spacing 3.68 Å, only bcc's range [1.77, 3.82] holds it
    assert ev.bayes_rule_class(bcc100, 5.2) == bcc100
    hcp0001 = ZONE_AXES.index(("hcp", (0, 0, 0, 1)))
    assert ev.bayes_rule_class(hcp0001, 3.0) == hcp0001  # no look-alike


def test_calibration_helpers(ev):
    """ECE against a hand count, and the fitted temperature recovers the one that made
    over-confident probabilities from calibrated ones."""
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.6, 0.4]])
    labels = np.array([0, 1, 0, 0])
    # bins: 0.9 -> accuracy 0.5 (|0.5 - 0.9| = 0.4), 0.6 -> accuracy 1 (0.4): ECE 0.4
    assert ev.expected_calibration_error(probs, labels) == pytest.approx(0.4)
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 1.5, (4000, 5))
    p_true = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    labels = np.array([rng.choice(5, p=p) for p in p_true])
    sharp = np.exp(3 * logits) / np.exp(3 * logits).sum(1, keepdims=True)  # T = 1/3
    t = ev.fit_temperature(sharp[:, None, :], labels)
    assert t == pytest.approx(3.0, rel=0.15)
    assert ev.expected_calibration_error(ev.tempered(sharp[:, None, :], t), labels) < 0.03


def test_prior_posterior_is_the_training_prior_odds(ev):
    """Cu [100] (a = 3.615 Å): the column spacing a/2 = 1.8075 Å is also bcc [100] at
    a = d √2 and diamond [100] at a = 2√2 d, all inside 2.5-5.4 Å; each class's density
    of spacings is 1 / (2.9 k) with k = 1/2, 1/√2, 1/(2√2), so the odds are
    2 : √2 : 2√2. Si [100] (5.431 Å) puts diamond outside the range: fcc and bcc only.
    Outside the look-alike groups the class itself."""
    fcc, bcc, dia = (ZONE_AXES.index((p, (1, 0, 0))) for p in ("fcc", "bcc", "diamond"))
    p = ev.prior_posterior(fcc, 3.615)
    odds = np.array([2.0, math.sqrt(2), 2 * math.sqrt(2)])
    np.testing.assert_allclose(p[[fcc, bcc, dia]], odds / odds.sum(), rtol=1e-12)
    assert p.sum() == pytest.approx(1.0) and int(np.argmax(p)) == ev.bayes_rule_class(fcc, 3.615)
    p = ev.prior_posterior(dia, 5.431)
    assert p[dia] == 0 and p[fcc] / p[bcc] == pytest.approx(math.sqrt(2))
    other = ZONE_AXES.index(("fcc", (1, 1, 0)))
    np.testing.assert_array_equal(ev.prior_posterior(other, 3.6), np.eye(len(ZONE_AXES))[other])
