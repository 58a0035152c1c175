"""Larger than RAM: KL NMF of a uint16 cube on disk, as a dask array read chunk by chunk.

Run (the recorded run; ~28.7 GB on disk with the defaults, more than the 24 GB of RAM):
    OMP_NUM_THREADS=1 python benchmarks/spectral_out_of_core.py --path /tmp/ooc.u16
A small check of the same code path: --pixels 200000 --channels 1024.

The cube is generated here (never stored in the repository) and deleted afterwards
(unless --keep): a 65,536-pixel Poisson block of 4 phases (~--counts per pixel) is
written over and over with its pixels in a fresh random order per block, so that every
block is different on disk while the phases stay the same. The fit reads every chunk from
the file in a dask task (np.memmap opened, the rows copied, the map closed), so the
process's resident memory holds a few chunks, the maps W (N x K float32) and per-chunk
statistics: not the cube. Prints the time of each stage, the final KL divergence and the
peak resident memory (ru_maxrss) against the cube's size.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from spectral_cube import poisson_cube

import matchar as mc

BASE = 65536


def load_rows(path: str, start: int, stop: int, channels: int) -> np.ndarray:
    """Rows [start, stop) of the raw uint16 file, as an in-memory array (map closed)."""
    mm = np.memmap(
        path, dtype=np.uint16, mode="r", offset=start * channels * 2, shape=(stop - start, channels)
    )
    out = np.array(mm)
    del mm
    return out


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--pixels", type=int, default=7_000_000)
    p.add_argument("--channels", type=int, default=2048)
    p.add_argument("--components", type=int, default=4)
    p.add_argument("--iterations", type=int, default=3)
    p.add_argument("--counts", type=float, default=500.0)
    p.add_argument("--chunk-rows", type=int, default=32768)
    p.add_argument("--workers", type=int, default=2, help="dask threads")
    p.add_argument("--path", default="spectral_out_of_core.u16")
    p.add_argument("--keep", action="store_true")
    args = p.parse_args()
    import dask
    import dask.array as da

    n, c = args.pixels, args.channels
    size = n * c * 2
    path = Path(args.path)
    free = shutil.disk_usage(path.resolve().parent).free
    if free < size * 1.05:
        sys.exit(f"not enough disk: {size / 1e9:.1f} GB needed, {free / 1e9:.1f} GB free")
    ram = None
    try:
        import os

        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        pass

    t0 = time.perf_counter()
    base = poisson_cube(BASE, c, 4, counts=args.counts, seed=0)
    rng = np.random.default_rng(1)
    with open(path, "wb") as f:
        for i in range(0, n, BASE):
            rows = min(BASE, n - i)
            f.write(base[rng.permutation(BASE)[:rows]].tobytes())
    del base
    t_gen = time.perf_counter() - t0
    print(
        f"generated {n} x {c} uint16 = {size / 1e9:.2f} GB"
        + (f" (RAM {ram / 1e9:.1f} GB)" if ram else "")
        + f" in {t_gen:.1f} s",
        flush=True,
    )

    load = dask.delayed(load_rows, pure=True)
    step = args.chunk_rows
    parts = [
        da.from_delayed(
            load(str(path), a, min(n, a + step), c),
            shape=(min(n, a + step) - a, c),
            dtype=np.uint16,
        )
        for a in range(0, n, step)
    ]
    X = da.concatenate(parts, axis=0)
    rss_before = peak_rss()
    nmf = mc.spectral.NMF(
        args.components,
        init="random",
        random_state=0,
        max_iter=args.iterations,
        tol=0,
        eval_every=1,
        compute_residual_map=False,
    )
    t0 = time.perf_counter()
    with dask.config.set(scheduler="threads", num_workers=args.workers):
        maps = nmf.fit_transform(X)
        t_fit = time.perf_counter() - t0
        W = maps.compute()
    passes = 1 + args.iterations + 1  # data mean (random init), iterations, final loss
    peak = peak_rss()
    print(
        f"NMF KL K={args.components}, {nmf.n_iter_} iterations, {len(parts)} chunks of "
        f"{step} rows, {args.workers} dask threads x {mc.get_num_threads()} OpenMP: "
        f"fit {t_fit:.1f} s ({passes} passes over the file, {t_fit / passes:.1f} s/pass, "
        f"{size / 1e9 * passes / t_fit:.2f} GB/s)",
        flush=True,
    )
    print(
        f"KL history {np.array2string(nmf.loss_history_, precision=6)}; maps {W.shape} "
        f"{W.dtype} ({W.nbytes / 1e9:.2f} GB)"
    )
    print(
        f"peak RSS {peak / 1e9:.2f} GB = {peak / size:.3f}x the cube "
        f"(before the fit: {rss_before / 1e9:.2f} GB)"
    )
    if not args.keep:
        path.unlink()
        print(f"deleted {path}")


if __name__ == "__main__":
    main()
