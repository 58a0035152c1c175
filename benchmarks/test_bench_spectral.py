"""Spectral decomposition: matchar against scikit-learn on the same cube, init and iterations.

Run: OMP_NUM_THREADS=2 python -m pytest benchmarks/test_bench_spectral.py --benchmark-only \
        --benchmark-group-by=group --benchmark-columns=min,median,max

The cube size and iteration counts come from the environment (defaults in brackets):
MATCHAR_BENCH_NMF_PIXELS [16384] pixels x 1024 channels, MATCHAR_BENCH_NMF_ITER [50]
iterations for matchar, MATCHAR_BENCH_NMF_SKLEARN_ITER [= MATCHAR_BENCH_NMF_ITER] iterations
for scikit-learn and MATCHAR_BENCH_NMF_SKLEARN_ROUNDS [3]. When scikit-learn runs fewer
iterations than matchar (the target's 65,536 x 1024 / 200-iteration cube takes scikit-learn
minutes per fit), compare the per-iteration times in extra_info["seconds_per_iteration"];
extra_info also holds matchar's loss after scikit-learn's iteration count, for the
equal-iteration quality comparison. MATCHAR_BENCH_NMF_COUNTS [1000] sets the counts per
pixel. The "matchar float32 @LEVEL" rows force the NMF kernels' instruction-set level
(every level this CPU runs, see matchar._core.build_info()["cpu_levels_supported"]).
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.decomposition import NMF as SkNMF
from sklearn.decomposition import PCA as SkPCA
from sklearn.decomposition._nmf import _beta_divergence

import matchar as mc
from matchar import _core

sys.path.insert(0, str(Path(__file__).parent))
from spectral_cube import poisson_cube, weighted

N = int(os.environ.get("MATCHAR_BENCH_NMF_PIXELS", 16384))
ITER = int(os.environ.get("MATCHAR_BENCH_NMF_ITER", 50))
SK_ITER = int(os.environ.get("MATCHAR_BENCH_NMF_SKLEARN_ITER", ITER))
SK_ROUNDS = int(os.environ.get("MATCHAR_BENCH_NMF_SKLEARN_ROUNDS", 3))
SWEEPS = int(os.environ.get("MATCHAR_BENCH_NMF_SWEEPS", 2))
COUNTS = float(os.environ.get("MATCHAR_BENCH_NMF_COUNTS", 1000))
LEVELS = [f"matchar float32 @{lv}" for lv in _core.build_info()["cpu_levels_supported"]]


def run_at_level(impl, f):
    """f() at the level an "@LEVEL" impl names (else the default level)."""
    _core._set_cpu_level(impl.partition("@")[2])
    try:
        return f()
    finally:
        _core._set_cpu_level("")


C, K = 1024, 4


@pytest.fixture(scope="module")
def cube():
    X = poisson_cube(N, C, K, counts=COUNTS)
    rng = np.random.default_rng(1)
    avg = np.sqrt(X.mean() / K)
    W0 = (avg * rng.random((N, K)) + 1e-3).astype(np.float32)
    H0 = (avg * rng.random((K, C)) + 1e-3).astype(np.float32)
    return X, W0, H0


def sklearn_nmf(X, W0, H0, **kw):
    est = SkNMF(K, init="custom", max_iter=SK_ITER, tol=0, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        W = est.fit_transform(X, W=W0.copy(), H=H0.copy())
    return W, est.components_


def kl_divergence(X16, W, H):
    return float(
        _beta_divergence(X16.astype(np.float64), W.astype(np.float64), H.astype(np.float64), 1)
    )


def frobenius_error(X16, W, H):
    return float(
        np.linalg.norm(X16.astype(np.float64) - W.astype(np.float64) @ H.astype(np.float64))
    )


def record(benchmark, iterations, quality, X16, W, H, X, W0, H0, loss):
    """Per-iteration time and the final quality (W, H from the timed fit); for matchar
    also the quality after scikit-learn's iteration count when that differs."""
    benchmark.extra_info["iterations"] = iterations
    benchmark.extra_info["seconds_per_iteration"] = benchmark.stats.stats.min / iterations
    benchmark.extra_info["load_average"] = os.getloadavg()[0]
    benchmark.extra_info[quality.__name__] = quality(X16, W, H)
    if loss is not None and iterations != SK_ITER:
        benchmark.extra_info[f"{quality.__name__}_after_{SK_ITER}_iterations"] = quality(
            X16, *fit_matchar(X, W0, H0, loss, SK_ITER)
        )


def fit_matchar(X, W0, H0, loss, iterations):
    est = mc.spectral.NMF(
        K, loss=loss, max_iter=iterations, tol=0, init=(W0, H0), compute_residual_map=False
    )
    W = est.fit_transform(X)
    return W, est.components_


@pytest.mark.parametrize(
    "impl", ["sklearn-mu float32", "matchar float32", "matchar uint16", *LEVELS]
)
def test_nmf_kl(benchmark, cube, impl):
    X16, W0, H0 = cube
    X = X16 if impl == "matchar uint16" else X16.astype(np.float32)
    benchmark.group = f"NMF KL {N}x{C} K={K} {ITER} it"
    if impl.startswith("sklearn"):
        W, H = benchmark.pedantic(
            sklearn_nmf,
            args=(X, W0, H0),
            kwargs=dict(solver="mu", beta_loss="kullback-leibler"),
            rounds=SK_ROUNDS,
            iterations=1,
        )
        record(benchmark, SK_ITER, kl_divergence, X16, W, H, X, W0, H0, None)
    else:
        est = mc.spectral.NMF(K, max_iter=ITER, tol=0, init=(W0, H0), compute_residual_map=False)
        W = run_at_level(
            impl, lambda: benchmark.pedantic(est.fit_transform, args=(X,), rounds=3, iterations=1)
        )
        record(benchmark, ITER, kl_divergence, X16, W, est.components_, X, W0, H0, "kl")


@pytest.mark.parametrize(
    "impl", ["sklearn-cd float32", "matchar float32", "matchar uint16", *LEVELS]
)
def test_nmf_frobenius(benchmark, cube, impl):
    X16, W0, H0 = cube
    X = X16 if impl == "matchar uint16" else X16.astype(np.float32)
    benchmark.group = f"NMF Frobenius {N}x{C} K={K} {ITER} it"
    if impl.startswith("sklearn"):
        W, H = benchmark.pedantic(
            sklearn_nmf, args=(X, W0, H0), kwargs=dict(solver="cd"), rounds=SK_ROUNDS, iterations=1
        )
        record(benchmark, SK_ITER, frobenius_error, X16, W, H, X, W0, H0, None)
    else:
        est = mc.spectral.NMF(
            K, loss="frobenius", max_iter=ITER, tol=0, init=(W0, H0), compute_residual_map=False
        )
        W = run_at_level(
            impl, lambda: benchmark.pedantic(est.fit_transform, args=(X,), rounds=3, iterations=1)
        )
        record(benchmark, ITER, frobenius_error, X16, W, est.components_, X, W0, H0, "frobenius")


@pytest.fixture(scope="module")
def frobenius_target(cube):
    """The loss of scikit-learn's 'cd' trajectory after ITER iterations: matchar with one
    sweep per iteration is the same algorithm (its loss equals scikit-learn's to 1e-9 at
    equal iterations, see test_nmf_frobenius), so its final loss is the target."""
    X16, W0, H0 = cube
    est = mc.spectral.NMF(
        K, loss="frobenius", max_iter=ITER, tol=0, init=(W0, H0), compute_residual_map=False
    )
    est.fit(X16)
    return float(est.loss_history_[-1])


@pytest.fixture(scope="module")
def iterations_to_target(cube, frobenius_target):
    """(iterations, reached): the first iteration at which matchar with SWEEPS sweeps per
    pass reaches frobenius_target (ITER and False if it never does)."""
    X16, W0, H0 = cube
    probe = mc.spectral.NMF(
        K, loss="frobenius", tol=0, init=(W0, H0), compute_residual_map=False,
        max_iter=ITER, eval_every=1, inner_sweeps=SWEEPS,
    )  # fmt: skip
    probe.fit(X16)
    reached = probe.loss_iterations_[probe.loss_history_ <= frobenius_target]
    return (int(reached[0]), True) if reached.size else (ITER, False)


@pytest.mark.parametrize("impl", ["matchar float32", "matchar uint16", *LEVELS])
def test_nmf_frobenius_equal_loss(benchmark, cube, frobenius_target, iterations_to_target, impl):
    """Time to reach the loss of ITER scikit-learn 'cd' iterations with SWEEPS
    coordinate-descent sweeps per pass over X (inner_sweeps); compare with the
    scikit-learn row of the "NMF Frobenius" group (its time for ITER iterations)."""
    X16, W0, H0 = cube
    X = X16 if impl == "matchar uint16" else X16.astype(np.float32)
    benchmark.group = f"NMF Frobenius {N}x{C} K={K} equal loss ({ITER} sklearn it)"
    kw = dict(loss="frobenius", tol=0, init=(W0, H0), compute_residual_map=False)
    n, reached = iterations_to_target
    est = mc.spectral.NMF(K, max_iter=n, inner_sweeps=SWEEPS, **kw)
    W = run_at_level(
        impl, lambda: benchmark.pedantic(est.fit_transform, args=(X,), rounds=3, iterations=1)
    )
    benchmark.extra_info["inner_sweeps"] = SWEEPS
    benchmark.extra_info["iterations_to_target"] = n
    benchmark.extra_info["target_reached"] = reached
    benchmark.extra_info["target_loss"] = frobenius_target
    benchmark.extra_info["final_loss"] = float(est.loss_history_[-1])
    benchmark.extra_info["frobenius_error"] = frobenius_error(X16, W, est.components_)
    benchmark.extra_info["load_average"] = os.getloadavg()[0]


@pytest.mark.parametrize("impl", ["sklearn randomized (weighted float64)", "matchar uint16"])
def test_poisson_pca(benchmark, cube, impl):
    X16 = cube[0]
    benchmark.group = f"Poisson PCA {N}x{C} 8 components"
    if impl.startswith("sklearn"):
        Xw = weighted(X16)  # formed outside the timing: only the SVD is timed for the peer
        est = SkPCA(8, svd_solver="randomized", random_state=0)
        benchmark.pedantic(est.fit, args=(Xw,), rounds=3, iterations=1)
    else:
        est = mc.spectral.PCA(8, random_state=0)
        benchmark.pedantic(est.fit, args=(X16,), rounds=3, iterations=1)
    benchmark.extra_info["explained_variance_ratio_top4"] = [
        float(v) for v in est.explained_variance_ratio_[:4]
    ]
