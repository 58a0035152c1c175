"""polynomial_kernel, the NumPy chain and the bare GEMM, interleaved round by round.

On a shared machine the load drifts during a pytest-benchmark group (each
implementation's rounds run one after the other); interleaving them and taking the
ratios within each round cancels most of that drift.

Run: OMP_NUM_THREADS=2 python benchmarks/kernel_rounds_gp.py --n 100000 --m 2000 \
        --d 5000 --dtype float32 --rounds 2
"""

from __future__ import annotations

import argparse
import os
import time

import matchar as mc
from matchar._bench import kernel_features, numpy_polynomial_kernel


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--m", type=int, default=1000)
    ap.add_argument("--d", type=int, default=2000)
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    X, Y = kernel_features(a.n, a.m, a.d, a.dtype)
    impls = {
        "GEMM": lambda: X @ Y.T,
        "chain": lambda: numpy_polynomial_kernel(X, Y),
        "matchar": lambda: mc.gp.polynomial_kernel(X, Y),
    }
    print(
        f"X ({a.n}, {a.d}), Y ({a.m}, {a.d}) {a.dtype}, OMP_NUM_THREADS="
        f"{os.environ.get('OMP_NUM_THREADS')}, load {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    for r in range(a.rounds):
        t = {}
        for name, fn in impls.items():
            t0 = time.perf_counter()
            K = fn()
            t[name] = time.perf_counter() - t0
            del K
        print(
            f"round {r}: GEMM {t['GEMM']:.2f} s, chain {t['chain']:.2f} s, matchar "
            f"{t['matchar']:.2f} s; matchar / GEMM {t['matchar'] / t['GEMM']:.3f}, "
            f"chain / matchar {t['chain'] / t['matchar']:.3f}; load {os.getloadavg()[0]:.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
