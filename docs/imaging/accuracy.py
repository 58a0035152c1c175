"""Reproduce the accuracy table and figures of docs/imaging.md.

Run from anywhere with matchar installed (matplotlib needed for the figures):

    OMP_NUM_THREADS=2 python docs/imaging/accuracy.py [path/to/high_entropy_alloy.npy]

Prints a Markdown table of the adjusted Rand index against dose and writes
ari_vs_dose.png and high_entropy_alloy.png next to this script.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import adjusted_rand_score

import matchar as mc
from matchar import datasets

HERE = Path(__file__).resolve().parent
DOSES = [0.5, 1, 2, 5, 20, 100]
SEEDS = [0, 1]
SMALL = dict(patch=12, window=16, n_shifts=80)
CASES = {
    "bicrystal 10° (defaults)": (lambda d, s: datasets.bicrystal(10.0, dose=d, seed=s), {}),
    "bicrystal 10°": (lambda d, s: datasets.bicrystal(10.0, dose=d, seed=s), SMALL),
    "bicrystal 20° hexagonal": (
        lambda d, s: datasets.bicrystal(20.0, lattice="hexagonal", dose=d, seed=s),
        SMALL,
    ),
    "Σ3 twin (fcc [110])": (lambda d, s: datasets.twin(dose=d, seed=s), SMALL),
    "stacking-fault band": (lambda d, s: datasets.stacking_fault(dose=d, seed=s), SMALL),
    "two-phase": (lambda d, s: datasets.two_phase(dose=d, seed=s), SMALL),
}


def main() -> None:
    results = {}
    t0 = time.perf_counter()
    for name, (make, kw) in CASES.items():
        row = []
        for dose in DOSES:
            scores = []
            for seed in SEEDS:
                image, truth = make(dose, seed)
                labels = mc.imaging.segment(image, n_regions=2, **kw).labels
                scores.append(adjusted_rand_score(truth.ravel(), labels.ravel()))
            row.append(float(np.mean(scores)))
        results[name] = row
    print(f"(computed in {time.perf_counter() - t0:.0f} s)\n")
    print("| image (256², n_regions=2) | " + " | ".join(f"dose {d}" for d in DOSES) + " |")
    print("|---|" + "---|" * len(DOSES))
    for name, row in results.items():
        print(f"| {name} | " + " | ".join(f"{v:.3f}" for v in row) + " |")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, row in results.items():
        ax.semilogx(DOSES, row, "o-", label=name)
    ax.set_xlabel("dose (electrons per pixel)")
    ax.set_ylabel("adjusted Rand index")
    ax.set_ylim(0, 1.02)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(HERE / "ari_vs_dose.png", dpi=80)

    if len(sys.argv) > 1:
        image = np.load(sys.argv[1])
        t = time.perf_counter()
        seg = mc.imaging.segment(image, stride=4)
        print(f"\nhigh_entropy_alloy: {time.perf_counter() - t:.1f} s, {seg.n_regions} regions")
        for k, v in enumerate(seg.lattice_vectors):
            print(f"  region {k}: {np.round(v, 2).tolist()} px")
        print("  misorientation:", {k: round(v, 1) for k, v in seg.misorientation.items()})
        fig, ax = plt.subplots(1, 2, figsize=(8, 4))
        shown = image[::2, ::2]  # half resolution keeps the figure small
        ax[0].imshow(shown, cmap="gray")
        ax[0].set_title("high_entropy_alloy.npy")
        ax[1].imshow(shown, cmap="gray")
        ax[1].imshow(seg.labels[::2, ::2], cmap="tab10", alpha=0.35, vmin=0, vmax=9)
        ax[1].set_title(f"segment(image, stride=4): {seg.n_regions} regions")
        for a in ax:
            a.set_axis_off()
        fig.tight_layout()
        fig.savefig(HERE / "high_entropy_alloy.png", dpi=50)


if __name__ == "__main__":
    main()
