"""The approximate assignment marginalisations, measured against the exact answer.

The exact reference here is method="quadrature", itself checked against enumeration and
against brute force (itertools x scipy quad) in test_posterior.py.
"""

from __future__ import annotations

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


@pytest.mark.xfail(
    strict=True,
    reason="issue 10 target not met: the approximations reach 0.18 (Bethe) and 0.033 "
    "(sampling, 2000 samples) on 8-10-site problems, not 0.02",
)
def test_approximation_within_002_of_exact(problems):
    errs_b, _ = _errors(problems, method="bethe", exact_group_size=2)
    errs_s, _ = _errors(problems, method="sampling")
    assert min(errs_b.max(), errs_s.max()) <= 0.02


def test_auto_is_exact_for_small_groups(problems):
    pred, std, y, sig, exact = problems[1]
    auto = sp(pred, std, y, sigma_exp=sig, **KW)
    assert auto.nuclei["shifts"].method == "quadrature"
    np.testing.assert_array_equal(auto.log_evidence, exact.log_evidence)


def test_large_problem_runs_and_is_finite():
    # 24 sites in one group: beyond exact permanents, auto falls back to Bethe.
    rng = np.random.default_rng(7)
    pred, std, y, sig = random_problem(rng, 3, 24)
    res = sp(pred, std, y, sigma_exp=sig, **KW)
    assert res.nuclei["shifts"].method == "bethe"
    assert np.all(np.isfinite(res.log_evidence))
    assert res.probabilities.sum() == pytest.approx(1.0)
