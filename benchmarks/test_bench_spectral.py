"""Spectral decomposition: matchar against scikit-learn on the same cube, init and iterations.

Run: OMP_NUM_THREADS=2 python -m pytest benchmarks/test_bench_spectral.py --benchmark-only \
        --benchmark-group-by=group --benchmark-columns=min,median,max
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.decomposition import NMF as SkNMF
from sklearn.decomposition import PCA as SkPCA
from sklearn.decomposition._nmf import _beta_divergence

import matchar as mc

sys.path.insert(0, str(Path(__file__).parent))
from spectral_cube import poisson_cube, weighted

N, C, K, ITER = 16384, 1024, 4, 50


@pytest.fixture(scope="module")
def cube():
    X = poisson_cube(N, C, K)
    rng = np.random.default_rng(1)
    avg = np.sqrt(X.mean() / K)
    W0 = (avg * rng.random((N, K)) + 1e-3).astype(np.float32)
    H0 = (avg * rng.random((K, C)) + 1e-3).astype(np.float32)
    return X, W0, H0


def sklearn_nmf(X, W0, H0, **kw):
    est = SkNMF(K, init="custom", max_iter=ITER, tol=0, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        W = est.fit_transform(X, W=W0.copy(), H=H0.copy())
    return W, est.components_


@pytest.mark.parametrize("impl", ["sklearn-mu float32", "matchar float32", "matchar uint16"])
def test_nmf_kl(benchmark, cube, impl):
    X16, W0, H0 = cube
    X = X16 if impl == "matchar uint16" else X16.astype(np.float32)
    benchmark.group = f"NMF KL {N}x{C} K={K} {ITER} it"
    if impl.startswith("sklearn"):
        W, H = benchmark.pedantic(
            sklearn_nmf,
            args=(X, W0, H0),
            kwargs=dict(solver="mu", beta_loss="kullback-leibler"),
            rounds=3,
            iterations=1,
        )
    else:
        est = mc.spectral.NMF(K, max_iter=ITER, tol=0, init=(W0, H0), compute_residual_map=False)
        W = benchmark.pedantic(est.fit_transform, args=(X,), rounds=3, iterations=1)
        H = est.components_
    kl = _beta_divergence(X16.astype(np.float64), W.astype(np.float64), H.astype(np.float64), 1)
    benchmark.extra_info["kl_divergence"] = float(kl)


@pytest.mark.parametrize("impl", ["sklearn-cd float32", "matchar float32", "matchar uint16"])
def test_nmf_frobenius(benchmark, cube, impl):
    X16, W0, H0 = cube
    X = X16 if impl == "matchar uint16" else X16.astype(np.float32)
    benchmark.group = f"NMF Frobenius {N}x{C} K={K} {ITER} it"
    if impl.startswith("sklearn"):
        W, H = benchmark.pedantic(
            sklearn_nmf, args=(X, W0, H0), kwargs=dict(solver="cd"), rounds=3, iterations=1
        )
    else:
        est = mc.spectral.NMF(
            K, loss="frobenius", max_iter=ITER, tol=0, init=(W0, H0), compute_residual_map=False
        )
        W = benchmark.pedantic(est.fit_transform, args=(X,), rounds=3, iterations=1)
        H = est.components_
    err = np.linalg.norm(X16.astype(np.float64) - W.astype(np.float64) @ H.astype(np.float64))
    benchmark.extra_info["frobenius_error"] = float(err)


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
