"""Peak memory of local_correlation_map on a 4096² image (issue 6: ≤ 3× the descriptor).

Run: OMP_NUM_THREADS=2 python benchmarks/imaging_memory_4096.py [side]
Needs ~7 GB of RAM at 4096² (the descriptor itself is 6.2 GB of float32).
"""

from __future__ import annotations

import resource
import sys
import time

import numpy as np

import matchar as mc


def main(side: int = 4096) -> None:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:side, 0:side]
    lattice = 1.2 + np.cos(2 * np.pi * xx / 9.7) * np.cos(2 * np.pi * yy / 10.3)
    img = rng.poisson(20 * lattice).astype(np.uint16)
    del yy, xx, lattice
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    t = time.perf_counter()
    maps, _ = mc.imaging.local_correlation_map(img, patch=20, window=20, n_shifts=100)
    dt = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(
        f"maps {maps.shape} {maps.nbytes / 2**20:.0f} MiB in {dt:.1f} s; peak RSS above start "
        f"{(peak - base) / 2**20:.0f} MiB = {(peak - base) / maps.nbytes:.3f} x descriptor"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 4096)
