"""Cost of the calibrated σ of a ShiftModel with and without the compressed committee.

Two models on the water trajectory of ``nmr_trajectory_study.py`` (64 TIP3P-FB molecules,
192 atoms, 128 H per frame): one trained with light settings on 40 frames (labels: the
shipped ¹H model), and the shipped ¹H model itself. For each, the time of
``gpr_.predict(X, return_std=True)`` per frame with the exact committee and after
``compress(0.01, committee=True)``, and the largest change of σ.

Run (after ``nmr_trajectory_study.py learning`` wrote the trajectory):
    PYTHONPATH=python python benchmarks/shift_committee_compression.py [--work /tmp/matchar-md]
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np

import matchar as mc

# The light settings of the trajectory study (the numbers were measured with them).
sys.path.insert(0, str(Path(__file__).resolve().parent))
from nmr_trajectory_study import LIGHT


def timed(model, X, n_frames):
    best = np.inf
    for _ in range(2):
        t = time.perf_counter()
        _, std = model.gpr_.predict(X, return_std=True)
        best = min(best, time.perf_counter() - t)
    return 1e3 * best / n_frames, std


def main() -> None:
    import ase.io

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="/tmp/matchar-md")
    args = ap.parse_args()
    frames = ase.io.read(Path(args.work) / "water-1000.extxyz", index=":")
    shipped = mc.nmr.ShiftModel.pretrained("H")
    train = frames[::25]
    labels = shipped.predict(train).reshape(len(train), -1)
    targets = []
    for f, lab in zip(train, labels):
        full = np.full(len(f), np.nan)
        full[f.numbers == 1] = lab
        targets.append(full)
    trained = mc.nmr.ShiftModel("H", **LIGHT).fit(train, targets)
    test = frames[100:120]
    for name, model in (("trained with the light settings", trained), ("shipped 1H", shipped)):
        X = model.features(test)
        exact_ms, exact_std = timed(model, X, len(test))
        fast = copy.deepcopy(model)
        t = time.perf_counter()
        fast.compress(0.01, committee=True)
        t_compress = time.perf_counter() - t
        fast_ms, fast_std = timed(fast, X, len(test))
        change = np.abs(fast_std - exact_std).max()
        print(f"{name}: mean+σ {exact_ms:.1f} -> {fast_ms:.1f} ms per frame "
              f"(compression {t_compress:.0f} s); max |Δσ| {change:.1e} ppm")  # fmt: skip


if __name__ == "__main__":
    main()
