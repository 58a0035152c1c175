"""The accuracy targets for the shipped crystal classifier, on small fresh
simulated test sets (a few hundred windows each; the full evaluation with more windows is
scripts/evaluate_crystal_classifier.py, numbers in docs/imaging_cnn.md). Targets the
shipped model does not reach are strict xfails: they start failing when it improves."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import matchar as mc


@pytest.fixture(scope="module")
def ev(repo_script):
    return repo_script("evaluate_crystal_classifier")


@pytest.fixture(scope="module")
def clf():
    return mc.imaging.CrystalClassifier.default()


@pytest.fixture(scope="module")
def held_out(ev, clf):
    gen = ev.WindowGenerator(4242)
    return ev.evaluate_windows(clf, gen, 360, dose=1000.0, distortion=0.0)


@pytest.mark.xfail(
    strict=True,
    reason="12-class accuracy is about 88%: fcc/bcc/diamond [100], "
    "fcc/bcc [111] and fcc[211]/hcp[10-10] project to the same column pattern up "
    "to scale, and their lattice-constant ranges overlap, so no classifier can exceed "
    "88.1% from the image alone (test_image_alone_limit; 99.8% with the lattice constant "
    "known, test_targets_with_the_lattice_constant_known)",
)
def test_class_accuracy_97(held_out):
    assert held_out["class_accuracy"] >= 0.97


def test_distinguishable_pattern_accuracy(held_out):
    # with the scale-degenerate classes merged, the network is right most of the time
    assert held_out["pattern_accuracy"] >= 0.93


def test_lattice_constant_and_rotation(held_out):
    # on correctly classified windows (a wrong degenerate class gives a sqrt(2) or 2
    # error); measured 1.34% and 0.94 deg (modulo the symmetry) on 2,400 held-out windows
    assert held_out["lattice_mae_percent_correct"] <= 2.0
    assert held_out["rotation_mae_deg_correct"] <= 2.0


@pytest.fixture(scope="module")
def low_dose(ev, clf):
    # 720 windows: on 240 the sampling error (+-2%) reaches from the measured ~87% to 90%
    return ev.evaluate_windows(clf, ev.WindowGenerator(4343), 720, dose=20.0, distortion=0.0)


@pytest.fixture(scope="module")
def distorted(ev, clf):
    return ev.evaluate_windows(clf, ev.WindowGenerator(4444), 720, dose=1000.0, distortion=0.05)


@pytest.mark.xfail(
    strict=True, reason="about 87% at 20 e/pixel, against an image-alone limit of 88.1%"
)
def test_low_dose_accuracy_90(low_dose):
    assert low_dose["class_accuracy"] >= 0.90


@pytest.mark.xfail(
    strict=True,
    reason="about 84% with 5% scan distortion (96% with the degenerate groups merged; the "
    "image-alone limit is 88.1%)",
)
def test_distortion_accuracy_90(distorted):
    assert distorted["class_accuracy"] >= 0.90


def test_targets_with_the_lattice_constant_known(held_out, low_dose, distorted):
    # The same windows with the true lattice constant passed as lattice_constant (5%
    # tolerance): the look-alike classes separate, and the accuracy targets hold.
    # Measured on the documented sets of 2,400 / 1,200 / 1,200: 99.8%, 99.4%, 98.0%.
    assert held_out["lattice_known"]["class_accuracy"] >= 0.97
    assert low_dose["lattice_known"]["class_accuracy"] >= 0.90
    assert distorted["lattice_known"]["class_accuracy"] >= 0.90


@pytest.mark.xfail(
    strict=True,
    reason="3.7x on the documented 12 pairs but 2.8x on these (seed 99): half of the "
    "shipped heads learned windows holding two crystals and name them by the dominant "
    "one, so the ensemble disagrees less at a boundary (docs/imaging_cnn.md, Training)",
)
def test_bicrystal_uncertainty_ratio_3(ev, clf):
    # 12 random pairs of grains (a seed the documented evaluation does not use)
    r = ev.evaluate_bicrystals(clf, 12, 99)
    assert r["ratio"] >= 3.0


def test_bicrystal_uncertainty_rises_at_the_boundary(ev, clf):
    # what the ensemble must keep: clearly more disagreement within 1 nm of a boundary
    # than inside the grains (the same 12 pairs)
    r = ev.evaluate_bicrystals(clf, 12, 99)
    assert r["ratio"] >= 2.0


def test_look_alike_spacings(ev):
    # nearest column distances (units of a) of the look-alike groups, by hand: square
    # lattices a/2, a/sqrt(2), a/(2 sqrt(2)); triangular a/sqrt(6), a sqrt(2/3)
    expect = {
        ("fcc", (1, 0, 0)): 0.5,
        ("bcc", (1, 0, 0)): 2**-0.5,
        ("diamond", (1, 0, 0)): 2**-1.5,
        ("fcc", (1, 1, 1)): 6**-0.5,
        ("bcc", (1, 1, 1)): (2 / 3) ** 0.5,
    }
    for (proto, zone), d in expect.items():
        assert ev.column_spacing(proto, zone) == pytest.approx(d, rel=1e-9), (proto, zone)
    # fcc [211] and hcp [10-10]: the same rectangle (sides 1 : sqrt(8/3)) at a/(2 sqrt(2))
    # and a/2
    k = ev.column_spacing("fcc", (2, 1, 1)) / ev.column_spacing("hcp", (1, 0, -1, 0))
    assert k == pytest.approx(2**-0.5, rel=1e-9)


def test_image_alone_limit(ev):
    """The Bayes limit of classifying look-alikes by their spacing alone."""
    lo, hi = 2.5, 5.4
    lim = ev.image_alone_limit((lo, hi))
    # fcc [111] (d = a/sqrt 6) against bcc [111] (d = 2a/sqrt 6): fcc's denser range wins
    # the overlap, bcc keeps d in (hi, 2 hi]/sqrt 6, a fraction hi / (2 (hi - lo))
    assert lim["fcc[1, 1, 1] / bcc[1, 1, 1]"] == pytest.approx((1 + hi / (2 * (hi - lo))) / 2)
    # ranges too narrow to overlap: every class separable
    assert ev.image_alone_limit((3.0, 3.1))["all_classes"] == pytest.approx(1.0)
    # the 97% target is out of reach from the image alone on the training range
    assert lim["all_classes"] < 0.9


def test_near_the_image_alone_limit(ev, held_out):
    # the network separates what can be separated: measured 88.1% (2,400 windows) against
    # a limit of 88.1%
    limit = ev.image_alone_limit(ev.A_RANGE)["all_classes"]
    assert held_out["class_accuracy"] >= limit - 0.05


def test_real_high_entropy_alloy_reads_fcc110(ev, clf, shared_data, repo_script):
    """The real HEA image (fcc, a ~ 3.6 Å, along <110>, Σ3 twins): most windows fcc [110]
    from the image alone, at the pixel size measured from its own {111} and {200} fringes
    (the full map, windows every 4 Å, is scripts/evaluate_crystal_multislice.py --real)."""
    path = shared_data / "high_entropy_alloy.npy"
    if not path.exists():
        pytest.skip(f"{path} not found")
    ms = repo_script("evaluate_crystal_multislice")
    image = np.load(path).astype(np.float32)
    ps = ms.measure_pixel_size(image)["pixel_size"]
    assert ps == pytest.approx(0.396, abs=0.005)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        m = clf.classify_map(image, ps, stride=round(8.0 / ps))  # 2,500 windows
    fcc110 = ev.ZONE_AXES.index(("fcc", (1, 1, 0)))
    counts = np.bincount(m.class_index.ravel(), minlength=len(ev.ZONE_AXES))
    # measured 59.8% (the 4 Å grid: 59.5%); the next most frequent class, bcc [110], 10.8%
    assert counts[fcc110] > 0.5 * m.class_index.size
    assert counts[fcc110] > 2 * np.delete(counts, fcc110).max()
