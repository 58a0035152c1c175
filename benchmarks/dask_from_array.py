"""KL NMF of an in-memory cube handed to a dask.distributed cluster without persisting it.

``da.from_array(cube)`` embeds the data in the graph; matchar scatters the chunks to the
workers once at the start of the fit (``spectral._dask._resident``). Three rounds of: the
in-memory fit (2 OpenMP threads), the fit of ``da.from_array(cube)`` (counting distributed's
"Sending large graph" warnings), and the fit of a cube persisted beforehand; 2-worker x
1-thread LocalCluster, 65,536 x 1,024 Poisson counts, K = 4, 20 iterations.

Run: OMP_NUM_THREADS=2 PYTHONPATH=python python benchmarks/dask_from_array.py
(N=<rows> for another size).
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))


def main() -> None:
    import dask.array as da
    import distributed
    from spectral_cube import poisson_cube

    import matchar as mc

    n, c, k, iters = int(os.environ.get("N", 65536)), 1024, 4, 20

    def nmf():
        return mc.spectral.NMF(
            k, loss="kl", init="random", random_state=0, max_iter=iters, tol=0,
            compute_residual_map=False,
        )  # fmt: skip

    cube = poisson_cube(n, c, k)
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
        env={"OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    client = distributed.Client(cluster)
    res: dict[str, list[float]] = {}
    for rnd in range(3):
        t = time.perf_counter()
        nmf().fit(cube)
        res.setdefault("in memory", []).append(time.perf_counter() - t)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            t = time.perf_counter()
            nmf().fit(da.from_array(cube, chunks=(n // 2, c)))
            res.setdefault("dask, from_array", []).append(time.perf_counter() - t)
        big = sum("large graph" in str(w.message) for w in caught)
        X = client.persist(da.from_array(cube, chunks=(n // 2, c)))
        distributed.wait(X)
        t = time.perf_counter()
        nmf().fit(X)
        res.setdefault("dask, persisted", []).append(time.perf_counter() - t)
        print(rnd, {key: round(v[-1], 3) for key, v in res.items()}, "large-graph warnings:", big)
    ref = np.median(res["in memory"])
    for key, v in res.items():
        print(f"{key}: median {np.median(v):.3f} s, {np.median(v) / ref:.2f}x in memory")
    client.close()
    cluster.close()


if __name__ == "__main__":
    main()
