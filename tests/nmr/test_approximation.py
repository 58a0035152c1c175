"""The approximate assignment marginalisations, measured against the exact answer.

The exact reference here is method="quadrature", itself checked against enumeration and
against brute force (itertools x scipy quad) in test_posterior.py.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from nmr_reference import random_problem

import matchar as mc

sp = mc.nmr.structure_posterior
KW = dict(assignment="marginalize", return_details=True)


@pytest.fixture(scope="module")
def problems():
    """Random 8-10-site problems, 5 candidates each, with the exact posteriors."""
    rng = np.random.default_rng(100)
    out = []
    for t in range(12):
        pred, std, y, sig = random_problem(rng, 5, 8 + t % 3)
        exact = sp(pred, std, y, sigma_exp=sig, method="quadrature", **KW)
        out.append((pred, std, y, sig, exact))
    return out


def _errors(problems, **kw):
    errs, dlogz = [], []
    for pred, std, y, sig, exact in problems:
        approx = sp(pred, std, y, sigma_exp=sig, **kw, **KW)
        errs.append(np.abs(approx.probabilities - exact.probabilities).max())
        dlogz.append(approx.log_evidence - exact.log_evidence)
    return np.array(errs), np.array(dlogz)


def test_bethe_is_a_lower_bound_with_measured_error(problems):
    errs, dlogz = _errors(problems, method="bethe", exact_group_size=2)
    # Gurvits: perm >= perm_Bethe; the quadrature over b preserves the inequality
    # (up to the coarse grid's ~1e-4 relative error).
    assert np.all(dlogz < 1e-3)
    # ... and perm <= 2^(k/2) perm_Bethe.
    assert np.all(dlogz > -10 * np.log(2) / 2 - 1e-3)
    # Measured (docs/nmr.md): max posterior error 0.18 on these problems.
    assert errs.max() < 0.25
    assert np.median(errs) < 0.1


def test_sampling_error_and_convergence(problems):
    errs, _ = _errors(problems, method="sampling")
    errs_many, _ = _errors(problems[2:4], method="sampling", n_samples=20000)
    # Measured (docs/nmr.md): median 0.009, max 0.033 at 2000 samples; on the two hardest
    # problems 0.033 and 0.028 fall to 0.021 and 0.016 at 20000 samples.
    assert np.median(errs) < 0.02
    assert errs.max() < 0.06
    assert errs_many.max() < 0.03
    assert np.mean(errs_many) < np.mean(errs[2:4])
    # reproducible for a seed, different for another
    pred, std, y, sig, _ = problems[0]
    a = sp(pred, std, y, sigma_exp=sig, method="sampling", seed=3, **KW).log_evidence
    b = sp(pred, std, y, sigma_exp=sig, method="sampling", seed=3, **KW).log_evidence
    c = sp(pred, std, y, sigma_exp=sig, method="sampling", seed=4, **KW).log_evidence
    np.testing.assert_array_equal(a, b)
    assert np.any(a != c)


@pytest.mark.parametrize("band", [3, 4, None])
def test_banded_within_002_of_exact(problems, band):
    """The issue target: within 0.02 of the exact posterior on random 8-10-site problems.

    band=3 sums only the permutations that move no peak more than 3 ranks from its sorted
    position (2,069 of the 8! = 40,320 permutations of 8 sites, 19,708 of 10! = 3.6e6 for
    10 sites), a genuine approximation; band=None grows the band until the log-permanent
    changes by < 0.01.
    """
    errs, dlogz = _errors(problems, method="banded", band=band)
    # Measured (docs/nmr.md) on these 12 problems: max 0.0064 (band 3), 0.00063 (band 4),
    # 7e-5 (adaptive); over 200 problems (benchmarks/nmr_band_accuracy.py): 0.022 (band 3,
    # just over the target), 0.0068 (band 4), 0.0007 (adaptive, the default).
    assert errs.max() <= 0.02
    # A sum over a subset of the permutations: a lower bound of the evidence (up to the
    # coarser offset grid's ~2e-4 relative error).
    assert np.all(dlogz < 1e-3)
    for pred, std, y, sig, _ in problems:
        res = sp(pred, std, y, sigma_exp=sig, method="banded", band=band, **KW)
        used = res.nuclei["shifts"].band
        n = pred.shape[1]
        assert used.shape == (5, 1) and np.all(used >= 1) and np.all(used < n - 1)


def test_banded_with_full_band_is_exact(problems):
    pred, std, y, sig, exact = problems[0]
    n = pred.shape[1]
    res = sp(pred, std, y, sigma_exp=sig, method="banded", band=n - 1, **KW)
    np.testing.assert_allclose(res.log_evidence, exact.log_evidence, rtol=0, atol=1e-3)
    np.testing.assert_allclose(res.probabilities, exact.probabilities, atol=1e-4)


def test_banded_float32_and_groups():
    rng = np.random.default_rng(31)
    pred, std, y, sig = random_problem(rng, 4, 11)
    labels = np.array([0, 1, 0, 1, 0, 1, 0, 1, 0, 2, 1])  # groups of 5, 5 and 1
    kw = dict(assignment_groups=labels, **KW)
    exact = sp(pred, std, y, sigma_exp=sig, method="quadrature", **kw)
    b64 = sp(pred, std, y, sigma_exp=sig, method="banded", band=2, **kw)
    b32 = sp(
        pred.astype(np.float32),
        std.astype(np.float32),
        y,
        sigma_exp=sig,
        method="banded",
        band=2,
        **kw,
    )
    assert np.abs(b64.probabilities - exact.probabilities).max() < 0.02
    np.testing.assert_allclose(b32.log_evidence, b64.log_evidence, rtol=1e-5)
    assert b64.nuclei["shifts"].band.shape == (4, 3)


def test_forty_sites_hundred_candidates():
    """40 sites x 100 candidates (timed in benchmarks/test_bench_nmr.py): the default picks
    the banded permanent; it finds the true candidate, and widening the band converges."""
    rng = np.random.default_rng(41)
    pred, std, y, sig = random_problem(rng, 100, 40, spread=20.0)
    truth = -(y - 30.0)  # candidate 0: the experiment's own shieldings, within its noise
    pred[0] = truth + rng.normal(0.0, 0.1, 40)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = sp(pred, std, y, sigma_exp=sig, **KW)
    t = res.nuclei["shifts"]
    assert t.method == "banded" and np.all(t.band <= 5)
    # the band stopped at the cap without converging for some candidate <=> a warning
    unconverged = np.any(t.band_change >= mc.nmr._posterior.BAND_TOLERANCE)
    assert unconverged == any("adaptive band" in str(w.message) for w in caught)
    assert np.all(np.isfinite(res.log_evidence))
    assert res.probabilities.sum() == pytest.approx(1.0)
    assert np.argmax(res.probabilities) == 0
    few = slice(0, 6)
    z = [
        sp(pred[few], std[few], y, sigma_exp=sig, method="banded", band=w, **KW).log_evidence
        for w in (3, 4, 5)
    ]
    assert np.all(z[1] >= z[0] - 1e-3) and np.all(z[2] >= z[1] - 1e-3)
    assert np.abs(z[2] - z[1]).max() < np.abs(z[1] - z[0]).max()


def test_auto_is_exact_for_small_groups(problems):
    pred, std, y, sig, exact = problems[1]
    auto = sp(pred, std, y, sigma_exp=sig, **KW)
    assert auto.nuclei["shifts"].method == "quadrature"
    np.testing.assert_array_equal(auto.log_evidence, exact.log_evidence)


@pytest.mark.filterwarnings("ignore:shifts. the adaptive band stopped")  # 24 sites in 8 ppm
def test_large_problem_runs_and_is_finite():
    # 24 sites in one group: beyond exact permanents, auto uses the banded permanent.
    rng = np.random.default_rng(7)
    pred, std, y, sig = random_problem(rng, 3, 24)
    res = sp(pred, std, y, sigma_exp=sig, **KW)
    assert res.nuclei["shifts"].method == "banded"
    assert np.all(np.isfinite(res.log_evidence))
    assert res.probabilities.sum() == pytest.approx(1.0)


def test_unconverged_adaptive_band_warns():
    # 14 sites within 1.5 ppm: far-from-sorted assignments matter, the band hits its cap
    rng = np.random.default_rng(2)
    pred, std, y, sig = random_problem(rng, 2, 14, spread=1.5)
    with pytest.warns(RuntimeWarning, match="adaptive band stopped at its cap"):
        res = sp(pred, std, y, sigma_exp=sig, method="banded", **KW)
    t = res.nuclei["shifts"]
    assert np.all(t.band == 5) and np.any(t.band_change >= 1e-2)
    # a fixed band does not measure convergence
    fixed = sp(pred, std, y, sigma_exp=sig, method="banded", band=2, **KW).nuclei["shifts"]
    assert np.all(np.isnan(fixed.band_change))
