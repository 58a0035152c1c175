"""NMF (KL, Frobenius) and Poisson PCA of a cube that fits in memory: in memory vs on a
2-worker dask LocalCluster.

Same cube, init ("random", same seed), dtype and iteration count. The cluster has 2
worker processes x 1 thread (OMP_NUM_THREADS=1 each: 2 cores in all); the in-memory fit
uses 2 OpenMP threads. The cube is persisted on the workers before timing (data loaded
on the cluster), so each iteration ships only the K x C components and the statistics.
Chunks: one 64 MB chunk per worker (2 tasks per iteration), and, for comparison, 8
chunks of 16 MB. Each timing is 5 rounds after one warm-up fit (on a new cluster the first
fit also pays the workers' import of matchar, ~0.8 s).

Run: OMP_NUM_THREADS=2 python -m pytest benchmarks/test_bench_dask.py --benchmark-only \
        --benchmark-group-by=group --benchmark-columns=min,median,max
(MATCHAR_BENCH_DASK_ACTORS=0: the task path.)
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

import matchar as mc

sys.path.insert(0, str(Path(__file__).parent))
from spectral_cube import poisson_cube

distributed = pytest.importorskip("distributed")
da = pytest.importorskip("dask.array")

# MATCHAR_BENCH_DASK_PIXELS: cube rows (default 65,536; the per-iteration scheduling cost
# is fixed, so larger cubes, where dask is meant to be used, come closer to in memory).
N = int(os.environ.get("MATCHAR_BENCH_DASK_PIXELS", 65536))
C, K, ITER = 1024, 4, 20
CHUNK = N // 2  # one 64 MB chunk per worker: 2 tasks per iteration, balanced
# MATCHAR_BENCH_DASK_ACTORS=0: the task path (what chunks read from files take) instead of
# the actors that hold the persisted chunks.
ACTORS = os.environ.get("MATCHAR_BENCH_DASK_ACTORS", "1") != "0"


@pytest.fixture(scope="module", autouse=True)
def _path():
    from matchar.spectral import _dask

    before = _dask._ACTORS
    _dask._ACTORS = ACTORS
    yield
    _dask._ACTORS = before


SMALL_CHUNK = N // 8  # 8 chunks of 16 MB: the per-task overhead, for comparison


@pytest.fixture(scope="module")
def cube():
    return poisson_cube(N, C, K)


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        env={"OMP_NUM_THREADS": "1"},
    )
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


def nmf(loss="kl"):
    return mc.spectral.NMF(
        K,
        loss=loss,
        init="random",
        random_state=0,
        max_iter=ITER,
        tol=0,
        compute_residual_map=False,
    )


def on_cluster(client, cube, chunk):
    X = client.persist(da.from_array(cube, chunks=(chunk, C)))
    distributed.wait(X)
    return X


IMPLS = ["in-memory (2 OpenMP threads)", "dask LocalCluster 2x1", "dask LocalCluster 2x1, 8 chunks"]


@pytest.mark.parametrize("impl", IMPLS)
def test_nmf_kl_dask_vs_memory(benchmark, cube, client, impl):
    benchmark.group = f"NMF KL {N}x{C} uint16 K={K} {ITER} it"
    if impl.startswith("in-memory"):
        est = benchmark.pedantic(lambda: nmf().fit(cube), rounds=5, iterations=1, warmup_rounds=1)
    else:
        X = on_cluster(client, cube, SMALL_CHUNK if impl.endswith("8 chunks") else CHUNK)
        est = benchmark.pedantic(lambda: nmf().fit(X), rounds=5, iterations=1, warmup_rounds=1)
    benchmark.extra_info["final KL"] = float(est.loss_history_[-1])
    assert est.n_iter_ == ITER


@pytest.mark.parametrize("impl", IMPLS[:2])
def test_nmf_frobenius_dask_vs_memory(benchmark, cube, client, impl):
    benchmark.group = f"NMF Frobenius {N}x{C} uint16 K={K} {ITER} it"
    data = cube if impl.startswith("in-memory") else on_cluster(client, cube, CHUNK)
    est = benchmark.pedantic(
        lambda: nmf("frobenius").fit(data), rounds=5, iterations=1, warmup_rounds=1
    )
    benchmark.extra_info["final loss"] = float(est.loss_history_[-1])
    assert est.n_iter_ == ITER


@pytest.mark.parametrize("impl", IMPLS[:2])
def test_pca_dask_vs_memory(benchmark, cube, client, impl):
    benchmark.group = f"Poisson PCA {N}x{C} uint16 K=8"
    data = cube if impl.startswith("in-memory") else on_cluster(client, cube, CHUNK)
    est = benchmark.pedantic(
        lambda: mc.spectral.PCA(8, random_state=0).fit(data),
        rounds=5,
        iterations=1,
        warmup_rounds=1,
    )
    assert est.components_.shape == (8, C)
