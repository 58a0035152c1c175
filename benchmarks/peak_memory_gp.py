"""Peak resident memory of polynomial_kernel vs the NumPy chain, each in a fresh process.

Run: python benchmarks/peak_memory_gp.py
Prints, per implementation, the peak RSS above the inputs, in units of the output size.
"""

from __future__ import annotations

import multiprocessing as mp
import resource

import numpy as np

N, M, D = 20000, 1000, 2000


def _run(impl: str, queue) -> None:
    import matchar as mc

    rng = np.random.default_rng(0)
    basis = rng.random((16, D))
    X = rng.random((N, 16)) @ basis
    Y = rng.random((M, 16)) @ basis
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if impl == "matchar":
        K = mc.gp.polynomial_kernel(X, Y)
    else:
        Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
        Yn = Y / np.linalg.norm(Y, axis=1, keepdims=True)
        K = (Xn @ Yn.T) ** 2
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    queue.put((peak - base) / K.nbytes)


def main() -> None:
    ctx = mp.get_context("spawn")
    print(f"X ({N}, {D}), Y ({M}, {D}) float64; output {N * M * 8 / 1e6:.0f} MB")
    for impl in ("numpy", "matchar"):
        q = ctx.Queue()
        p = ctx.Process(target=_run, args=(impl, q))
        p.start()
        ratio = q.get()
        p.join()
        print(f"  {impl:8s} peak RSS above inputs: {ratio:.2f} x output size")


if __name__ == "__main__":
    main()
