"""The accuracy targets for the shipped CBED classifier, on small fresh simulated test sets
(a few hundred patterns; the full evaluation is scripts/evaluate_cbed_classifier.py,
numbers in docs/imaging_cnn.md). Unmet targets are strict xfails."""

from __future__ import annotations

import pytest

import matchar as mc


@pytest.fixture(scope="module")
def ev(repo_script):
    return repo_script("evaluate_cbed_classifier")


@pytest.fixture(scope="module")
def clf():
    return mc.imaging.CrystalClassifier.default("cbed")


@pytest.fixture(scope="module")
def held_out(ev, clf):
    return ev.evaluate_patterns(clf, ev.CbedGenerator(5252), 240, dose=5000.0)


@pytest.mark.xfail(
    strict=True,
    reason="about 88% on 12 classes from the pattern alone: fcc/bcc/diamond [100], fcc/bcc "
    "[111] and fcc [211]/hcp [10-10] give the same disk lattices up to scale, and their "
    "lattice-constant ranges overlap: from the disk geometry no classifier can exceed "
    "88.1% on them, and the disk intensities add little "
    "(test_classifier_targets.py::test_image_alone_limit; 99.6% with those groups merged, "
    "99.4% on the 6 classes outside them; 99.8% with the lattice constant known, below)",
)
def test_class_accuracy_97(held_out):
    assert held_out["class_accuracy"] >= 0.97


def test_near_the_image_alone_limit(ev, held_out):
    # measured 88.8% on 1,200 patterns against a limit of 88.1%
    limit = ev.image_alone_limit(ev.A_RANGE)["all_classes"]
    assert held_out["class_accuracy"] >= limit - 0.06


def test_far_better_than_chance(held_out):
    # a regression guard for the shipped model: chance is 1/12; measured ~88%
    assert held_out["class_accuracy"] >= 0.80
    assert held_out["pattern_accuracy"] >= 0.95


def test_lattice_constant_mae_2_percent(held_out):
    # measured 0.97% on 1,200 held-out patterns (correctly classified; the calibrated
    # disk spacing)
    assert held_out["lattice_mae_percent_correct"] <= 2.0


def test_rotation_mae_2_degrees(held_out):
    # measured 0.93 deg (modulo the zone axis's symmetry) on 1,200 held-out patterns
    assert held_out["rotation_mae_deg_correct"] <= 2.0


@pytest.fixture(scope="module")
def low_dose(ev, clf):
    return ev.evaluate_patterns(clf, ev.CbedGenerator(5353), 120, dose=200.0)


@pytest.mark.xfail(
    strict=True,
    reason="about 82% at 200 e/pixel from the pattern alone (the image-alone limit: 88.1%)",
)
def test_low_dose_accuracy_90(low_dose):
    assert low_dose["class_accuracy"] >= 0.90


def test_targets_with_the_lattice_constant_known(held_out, low_dose):
    # The same patterns with the true lattice constant passed as lattice_constant (5%
    # tolerance): the look-alike classes separate. Measured on the documented sets of
    # 1,200 / 600: 99.8% held-out, 96.2% at low dose.
    assert held_out["lattice_known"]["class_accuracy"] >= 0.97
    assert low_dose["lattice_known"]["class_accuracy"] >= 0.90
    assert held_out["lattice_known"]["class_accuracy"] > held_out["class_accuracy"] + 0.08
