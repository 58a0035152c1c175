"""structure_posterior with marginalised assignments: the C++ enumeration against a NumPy /
itertools enumeration of the same sum, and the approximations at 40 sites x 100 candidates.

Run: OMP_NUM_THREADS=2 python -m pytest benchmarks/test_bench_nmr.py --benchmark-only \
        --benchmark-group-by=group --benchmark-columns=min,median,max
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy.special import logsumexp

import matchar as mc


def numpy_enumeration(pred, std, y, sigma_exp, slope=-1.0):
    """log-evidence per candidate: every permutation, flat-prior offset integrated per
    permutation in closed form (docs/nmr.md eq. 4), vectorised over permutations."""
    n = y.size
    perms = np.array(list(itertools.permutations(range(n))))
    rows = np.arange(n)
    out = []
    for c in range(pred.shape[0]):
        v = slope**2 * std[c][None, :] ** 2 + sigma_exp**2 + 0.0 * y[:, None]  # (peak, site)
        r = y[:, None] - slope * pred[c][None, :]
        w = 1.0 / v
        W = w[rows, perms]
        R = r[rows, perms]
        s0 = W.sum(1)
        s1 = (W * R).sum(1)
        s2 = (W * R * R).sum(1)
        ll = -0.5 * np.log(2 * np.pi * v)[rows, perms].sum(1)
        leaf = ll - 0.5 * (s2 - s1 * s1 / s0) + 0.5 * np.log(2 * np.pi) - 0.5 * np.log(s0)
        out.append(logsumexp(leaf) - math.lgamma(n + 1))
    return np.array(out)


def problem(n_cand, n_sites, seed=0):
    rng = np.random.default_rng(seed)
    truth = rng.uniform(0.0, 8.0, n_sites)
    pred = 30.0 - truth[None, :] + rng.normal(0.0, 0.4, (n_cand, n_sites))
    std = rng.uniform(0.1, 0.4, (n_cand, n_sites))
    y = truth + rng.normal(0.0, 0.3, n_sites)
    return pred, std, y, 0.3


@pytest.mark.parametrize("impl", ["numpy-itertools", "matchar-exact", "matchar-quadrature"])
def test_exact_enumeration_9_sites_10_candidates(benchmark, impl):
    pred, std, y, sig = problem(10, 9)
    benchmark.group = "exact marginalisation, 9 sites x 10 candidates (9! assignments each)"
    if impl == "numpy-itertools":
        fn = lambda: numpy_enumeration(pred, std, y, sig)  # noqa: E731
    else:
        method = impl.split("-")[1]
        fn = lambda: (  # noqa: E731
            mc.nmr.structure_posterior(
                pred,
                std,
                y,
                sigma_exp=sig,
                assignment="marginalize",
                method=method,
                return_details=True,
            ).log_evidence
        )
    logz = benchmark.pedantic(fn, rounds=3, iterations=1, warmup_rounds=0)
    np.testing.assert_allclose(logz, numpy_enumeration(pred, std, y, sig), atol=1e-8)


@pytest.mark.parametrize(
    "method, details",
    [("bethe", False), ("sampling", False), ("banded", False), ("banded", True)],
)
def test_approximation_40_sites_100_candidates(benchmark, method, details):
    """The 40 x 100 target problem (5 sites per ppm: a crowded spectrum); "banded" with
    the adaptive band (the default method here), with details also the marginals."""
    pred, std, y, sig = problem(100, 40)
    benchmark.group = "approximate marginalisation, 40 sites x 100 candidates"
    res = benchmark.pedantic(
        mc.nmr.structure_posterior,
        args=(pred, std, y),
        kwargs=dict(sigma_exp=sig, assignment="marginalize", method=method, return_details=details),
        rounds=3,
        iterations=1,
        warmup_rounds=0,
    )
    p = res.probabilities if details else res
    assert np.isfinite(p).all() and abs(p.sum() - 1) < 1e-12
    if details:
        print("\nbands used:", np.bincount(res.nuclei["shifts"].band.ravel()).tolist())


@pytest.mark.parametrize("method", ["quadrature", "bethe", "sampling", "banded"])
def test_accuracy_16_sites(benchmark, method):
    """Posterior error of the approximations at 16 sites, where the exact quadrature still
    runs (docs/nmr.md); printed with -s, timed for all three."""
    import sys

    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parents[1] / "tests" / "nmr"))
    from nmr_reference import random_problem

    rng = np.random.default_rng(200)
    cases = [random_problem(rng, 5, 16, spread=12.0) for _ in range(6)]
    kw = dict(assignment="marginalize", exact_group_size=2)
    benchmark.group = "accuracy at 16 sites x 5 candidates, 6 problems"

    def run(m):
        return [
            mc.nmr.structure_posterior(p, s, y, sigma_exp=g, method=m, **kw) for p, s, y, g in cases
        ]

    got = benchmark.pedantic(run, args=(method,), rounds=1, iterations=1, warmup_rounds=0)
    exact = run("quadrature")
    errs = [float(np.abs(a - b).max()) for a, b in zip(got, exact)]
    print(f"\n{method}: max posterior error per problem {np.round(errs, 3).tolist()}")
    assert max(errs) < 0.2
