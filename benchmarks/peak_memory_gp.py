"""Peak resident memory of polynomial_kernel vs the NumPy chain, each in a fresh process.

Run: python benchmarks/peak_memory_gp.py [--n N --m M --d D --dtype float32|float64]
(the sparse-GP target shape: --n 100000 --m 2000 --d 5000 --dtype float32).
Prints, per implementation, the peak RSS above the inputs, in units of the output size;
"gemm" (a bare X @ Y.T) is the floor: the output plus OpenBLAS's fixed work buffers.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource

import numpy as np


def _run(impl: str, shape: tuple[int, int, int], dtype: str, queue) -> None:
    import matchar as mc
    from matchar._bench import kernel_features, numpy_polynomial_kernel

    X, Y = kernel_features(*shape, dtype=dtype)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if impl == "matchar":
        K = mc.gp.polynomial_kernel(X, Y)
    elif impl == "gemm":  # the floor: the output plus OpenBLAS's own work buffers
        K = X @ Y.T
    else:  # the NumPy chain
        K = numpy_polynomial_kernel(X, Y)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    queue.put(((peak - base) / K.nbytes, (peak - base) / 1e6))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--m", type=int, default=1000)
    ap.add_argument("--d", type=int, default=2000)
    ap.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    a = ap.parse_args()
    size = np.dtype(a.dtype).itemsize
    ctx = mp.get_context("spawn")
    print(
        f"X ({a.n}, {a.d}), Y ({a.m}, {a.d}) {a.dtype}; output {a.n * a.m * size / 1e6:.0f} MB,"
        f" X {a.n * a.d * size / 1e6:.0f} MB"
    )
    for impl in ("gemm", "numpy", "matchar"):
        q = ctx.Queue()
        p = ctx.Process(target=_run, args=(impl, (a.n, a.m, a.d), a.dtype, q))
        p.start()
        ratio, mb = q.get()
        p.join()
        print(f"  {impl:8s} peak RSS above inputs: {ratio:.2f} x output size ({mb:.0f} MB)")


if __name__ == "__main__":
    main()
