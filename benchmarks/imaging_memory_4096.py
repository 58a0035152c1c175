"""Peak memory of local_correlation_map on a 4096² image (target: ≤ 3× the descriptor).

Run: OMP_NUM_THREADS=2 python benchmarks/imaging_memory_4096.py [side]
Needs ~7 GB of RAM at 4096² (the descriptor itself is 6.2 GB of float32).

    OMP_NUM_THREADS=2 python benchmarks/imaging_memory_4096.py segment

measures the whole ``segment`` (stride 4, 2 regions) of a 4096² 15° bicrystal at dose
20; the image is made in a child process and read from a temporary file, so the
generator's own peak does not hide segment's.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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


def make_bicrystal(path: str) -> None:
    from matchar import datasets

    img, truth = datasets.bicrystal(15.0, shape=(4096, 4096), dose=20, seed=0)
    np.savez(path, image=img.astype(np.uint16), truth=truth.astype(np.uint8))


def segment_peak() -> None:
    from sklearn.metrics import adjusted_rand_score

    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "bicrystal.npz")
        subprocess.run([sys.executable, __file__, "make-image", path], check=True)
        data = np.load(path)
        img, truth = data["image"], data["truth"]
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    t = time.perf_counter()
    seg = mc.imaging.segment(img, n_regions=2, stride=4)
    dt = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    side = -(-(4096 - 80) // 4)
    desc = side * side * 100 * 4
    ari = adjusted_rand_score(truth.ravel(), seg.labels.ravel())
    print(
        f"segment 4096² stride 4: {dt:.1f} s; peak RSS above start {(peak - base) / 2**20:.0f} "
        f"MiB = {(peak - base) / desc:.2f} x its descriptor ({desc / 2**20:.0f} MiB); ARI {ari:.3f}"
    )


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "make-image":
        make_bicrystal(sys.argv[2])
    elif len(sys.argv) > 1 and sys.argv[1] == "segment":
        segment_peak()
    else:
        main(int(sys.argv[1]) if len(sys.argv) > 1 else 4096)
