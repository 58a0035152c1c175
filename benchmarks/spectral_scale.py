"""Scale run: KL NMF of a large uint16 spectrum image read from a memmap.

Run (the target size, ~4 GB on disk, minutes on 2 cores):
    OMP_NUM_THREADS=2 python benchmarks/spectral_scale.py --side 1000 --channels 2048 \\
        --components 8 --iterations 100 --path /tmp/cube.u16
A smaller check: --side 200 --channels 1024 --iterations 20.

The cube (4 phases, ~--counts per pixel) is generated here in row chunks straight into
the memmap file (never stored in the repository); the fit reads it in place. Prints the
time, the final KL divergence and the peak resident memory (ru_maxrss) relative to the
cube's size.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from spectral_cube import poisson_cube

import matchar as mc


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--side", type=int, default=200)
    p.add_argument("--channels", type=int, default=1024)
    p.add_argument("--components", type=int, default=8)
    p.add_argument("--iterations", type=int, default=20)
    p.add_argument("--counts", type=float, default=1000.0)
    p.add_argument("--path", default="spectral_scale_cube.u16")
    args = p.parse_args()
    n, c = args.side * args.side, args.channels
    path = Path(args.path)
    t0 = time.perf_counter()
    mm = np.memmap(path, dtype=np.uint16, mode="w+", shape=(n, c))
    chunk = 65536
    for i in range(0, n, chunk):
        mm[i : i + chunk] = poisson_cube(min(chunk, n - i), c, counts=args.counts, seed=i)
    mm.flush()
    del mm
    print(
        f"generated {n} x {c} uint16 ({n * c * 2 / 1e9:.2f} GB) in {time.perf_counter() - t0:.1f} s"
    )
    cube = np.memmap(path, dtype=np.uint16, mode="r", shape=(args.side, args.side, c))
    nmf = mc.spectral.NMF(args.components, max_iter=args.iterations, tol=0, random_state=0)
    t0 = time.perf_counter()
    maps = nmf.fit_transform(cube)
    dt = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(
        f"NMF K={args.components}, {nmf.n_iter_} iterations: {dt:.1f} s "
        f"({dt / nmf.n_iter_ * 1e3:.0f} ms/iteration incl. init), final KL "
        f"{nmf.loss_history_[-1]:.6g}, maps {maps.shape} {maps.dtype}"
    )
    print(
        f"peak RSS {peak / 1e9:.2f} GB = {peak / (n * c * 2):.2f}x the cube "
        f"(the memmap's pages count as resident once read)"
    )
    path.unlink()


if __name__ == "__main__":
    main()
