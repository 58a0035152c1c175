"""Streaming update of one scan line (1,000 spectra x 2,048 channels, uint16 counts).

matchar's StreamingPCA / OnlineNMF against scikit-learn's IncrementalPCA / MiniBatchNMF
``partial_fit`` on the same lines, after the same warm-up lines.

Run: OMP_NUM_THREADS=2 python -m pytest benchmarks/test_bench_streaming.py --benchmark-only \
        --benchmark-group-by=group --benchmark-columns=min,median,max
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import matchar as mc

sys.path.insert(0, str(Path(__file__).parent))
from spectral_cube import poisson_cube

WIDTH, C, K, WARM = 1000, 2048, 4, 4


@pytest.fixture(scope="module")
def lines():
    X = poisson_cube(WIDTH * (WARM + 8), C, K, counts=500.0)
    return [X[i : i + WIDTH] for i in range(0, X.shape[0], WIDTH)]


def feed(est, lines, dtype=None):
    """Warm-up lines, then a generator of the next lines (one per benchmark round)."""
    for line in lines[:WARM]:
        est.partial_fit(line if dtype is None else line.astype(dtype))
    rest = iter(lines[WARM:])
    return lambda: est.partial_fit(next(rest) if dtype is None else next(rest).astype(dtype))


@pytest.mark.parametrize("impl", ["sklearn IncrementalPCA", "matchar StreamingPCA (poisson)"])
def test_pca_line_update(benchmark, lines, impl):
    benchmark.group = f"PCA partial_fit, one line {WIDTH}x{C} uint16, K={K}"
    if impl.startswith("sklearn"):
        from sklearn.decomposition import IncrementalPCA

        step = feed(IncrementalPCA(K), lines, np.float32)
    else:
        step = feed(mc.spectral.PCA(K, random_state=0), lines)
    benchmark.pedantic(step, rounds=3, iterations=1, warmup_rounds=1)


@pytest.mark.parametrize("impl", ["sklearn MiniBatchNMF (KL, mu)", "matchar OnlineNMF (KL)"])
def test_nmf_line_update(benchmark, lines, impl):
    benchmark.group = f"NMF partial_fit, one line {WIDTH}x{C} uint16, K={K}, 20 map updates"
    if impl.startswith("sklearn"):
        from sklearn.decomposition import MiniBatchNMF

        est = MiniBatchNMF(
            K,
            beta_loss="kullback-leibler",
            init="random",
            random_state=0,
            transform_max_iter=20,
            fresh_restarts=False,
        )
        warnings.simplefilter("ignore")
        step = feed(est, lines, np.float32)
    else:
        step = feed(mc.spectral.NMF(K, random_state=0, max_iter=50, batch_iter=20), lines)
    benchmark.pedantic(step, rounds=3, iterations=1, warmup_rounds=1)
