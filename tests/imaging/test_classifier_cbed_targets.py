"""The issue's targets for the shipped CBED classifier, on small fresh simulated test sets
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
    reason="about 84% on 12 classes (95% with the HAADF look-alike groups merged, 93% "
    "on the 6 classes outside them): ~2.1M pattern passes on 2 CPU cores, still rising",
)
def test_class_accuracy_97(held_out):
    assert held_out["class_accuracy"] >= 0.97


def test_far_better_than_chance(held_out):
    # a regression guard for the shipped model: chance is 1/12; measured ~84%
    assert held_out["class_accuracy"] >= 0.70


def test_lattice_constant_mae_2_percent(held_out):
    # measured 1.64% on 1,200 held-out patterns, 1.6-1.8% on sets of 240
    # (correctly classified patterns; the calibrated disk spacing)
    assert held_out["lattice_mae_percent_correct"] <= 2.0


@pytest.mark.xfail(strict=True, reason="about 2.8° on correctly classified patterns")
def test_rotation_mae_2_degrees(held_out):
    assert held_out["rotation_mae_deg_correct"] <= 2.0


@pytest.fixture(scope="module")
def low_dose(ev, clf):
    return ev.evaluate_patterns(clf, ev.CbedGenerator(5353), 120, dose=200.0)


@pytest.mark.xfail(strict=True, reason="about 75% at 200 e/pixel")
def test_low_dose_accuracy_90(low_dose):
    assert low_dose["class_accuracy"] >= 0.90


def test_accuracy_with_the_lattice_constant_known(held_out, low_dose):
    # The same patterns with the true lattice constant passed as lattice_constant (5%
    # tolerance): the look-alike classes separate. Measured on the documented sets of
    # 1,200 / 600: 96.9% held-out (the 97% target still just missed), 90.2% at low dose.
    assert held_out["lattice_known"]["class_accuracy"] >= 0.93
    assert low_dose["lattice_known"]["class_accuracy"] >= 0.85
    assert held_out["lattice_known"]["class_accuracy"] > held_out["class_accuracy"] + 0.08
