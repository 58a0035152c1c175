"""Reproduce the accuracy table and figures of docs/imaging.md.

Run from anywhere with matchar installed (matplotlib needed for the figures):

    OMP_NUM_THREADS=2 python docs/imaging/accuracy.py [path/to/high_entropy_alloy.npy]

Prints Markdown tables (adjusted Rand index against dose; boundary location error in px
and nm; segmentation under scan drift and flyback distortion; k-means against the
Gaussian mixture) and writes ari_vs_dose.png and high_entropy_alloy.png next to this
script.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage
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


# Boundary errors in nm need a pixel size: each synthetic lattice is read as copper
# (a = 3.615 Å). bicrystal/two-phase: 10 px square spacing = the [001] column spacing
# a/2 = 1.81 Å; twin: a = 16 px; stacking fault: 10 px in-row spacing = a/√2 = 2.56 Å.
KINDS = {
    "bicrystal 10° (defaults)": (lambda s, **k: datasets.bicrystal(10.0, seed=s, **k), {}, 0.181),
    "Σ3 twin": (lambda s, **k: datasets.twin(seed=s, **k), SMALL, 0.226),
    "stacking-fault band": (lambda s, **k: datasets.stacking_fault(seed=s, **k), SMALL, 0.256),
    "two-phase": (lambda s, **k: datasets.two_phase(seed=s, **k), SMALL, 0.181),
}
DISTORTIONS = {
    "none": {},
    "moderate": dict(drift=(0.02, 0.03), flyback=(4.0, 20.0), scan_jitter=0.3),
    "strong": dict(drift=(0.05, 0.08), flyback=(8.0, 30.0), scan_jitter=0.5),
}


def edges(labels: np.ndarray) -> np.ndarray:
    b = np.zeros(labels.shape, dtype=bool)
    b[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    b[:-1, :] |= labels[:-1, :] != labels[1:, :]
    return b


def boundary_error(truth: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(mean, worst p95) boundary distance in px: mean over true boundary pixels of the
    distance to the nearest predicted boundary; worst p95 of that and of the distance
    from predicted boundary pixels to the nearest true one (double boundaries)."""
    bt, bp = edges(truth), edges(labels)
    if not bp.any():
        return float("inf"), float("inf")
    to_pred = ndimage.distance_transform_edt(~bp)[bt]
    to_true = ndimage.distance_transform_edt(~bt)[bp]
    return float(to_pred.mean()), float(max(np.percentile(to_pred, 95), np.percentile(to_true, 95)))


def run_kind(kind: str, seeds=SEEDS, method: str = "kmeans", **data_kw) -> tuple:
    make, kw, scale = KINDS[kind]
    aris, means, worsts = [], [], []
    for seed in seeds:
        image, truth = make(seed, **data_kw)
        labels = mc.imaging.segment(image, n_regions=2, method=method, **kw).labels
        aris.append(adjusted_rand_score(truth.ravel(), labels.ravel()))
        m, w = boundary_error(truth, labels)
        means.append(m)
        worsts.append(w)
    return float(np.mean(aris)), float(np.mean(means)), float(np.max(worsts)), scale


def boundary_tables() -> None:
    print("\nBoundary location (n_regions=2, mean of 2 seeds; worst p95 over the seeds):\n")
    print("| image | dose | ARI | mean error (px) | p95 error (px) | p95 error (nm) |")
    print("|---|---|---|---|---|---|")
    for kind in KINDS:
        for dose in (50, 5, 1):
            a, m, w, scale = run_kind(kind, dose=dose)
            print(f"| {kind} | {dose} | {a:.3f} | {m:.1f} | {w:.1f} | {w * scale / 10:.2f} |")
    print("\nUnder scan distortion (dose 20):\n")
    print("| image | distortion | ARI | mean error (px) | p95 error (px) | p95 error (nm) |")
    print("|---|---|---|---|---|---|")
    for kind in KINDS:
        for name, dist in DISTORTIONS.items():
            a, m, w, scale = run_kind(kind, dose=20, **dist)
            print(f"| {kind} | {name} | {a:.3f} | {m:.1f} | {w:.1f} | {w * scale / 10:.2f} |")
    print("\nk-means against the tied-covariance Gaussian mixture (ARI, mean of 2 seeds):\n")
    print("| image | dose | kmeans | gmm |")
    print("|---|---|---|---|")
    for kind in KINDS:
        for dose in (50, 5):
            ak = run_kind(kind, dose=dose)[0]
            ag = run_kind(kind, dose=dose, method="gmm")[0]
            print(f"| {kind} | {dose} | {ak:.3f} | {ag:.3f} |")


def main() -> None:
    t0 = time.perf_counter()
    boundary_tables()
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
