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
    reason="about 64% on 12 classes: the CBED network is under-trained (two stages, "
    "~246k pattern passes, mostly on 2 shared cores); degeneracy is not what limits it "
    "(66% on the 6 classes without HAADF look-alikes)",
)
def test_class_accuracy_97(held_out):
    assert held_out["class_accuracy"] >= 0.97


def test_far_better_than_chance(held_out):
    # a regression guard for the shipped model: chance is 1/12; measured ~64%
    assert held_out["class_accuracy"] >= 0.40


@pytest.mark.xfail(strict=True, reason="about 3.1% on correctly classified patterns")
def test_lattice_constant_mae_2_percent(held_out):
    assert held_out["lattice_mae_percent_correct"] <= 2.0


def test_lattice_constant_within_5_percent(held_out):
    # measured ~3.1% on correctly classified patterns (the calibrated disk spacing)
    assert held_out["lattice_mae_percent_correct"] <= 5.0


@pytest.mark.xfail(strict=True, reason="about 4.2° on correctly classified patterns")
def test_rotation_mae_2_degrees(held_out):
    assert held_out["rotation_mae_deg_correct"] <= 2.0


@pytest.mark.xfail(strict=True, reason="about 56% at 200 e/pixel")
def test_low_dose_accuracy_90(ev, clf):
    r = ev.evaluate_patterns(clf, ev.CbedGenerator(5353), 120, dose=200.0)
    assert r["class_accuracy"] >= 0.90
