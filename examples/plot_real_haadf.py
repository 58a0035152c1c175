"""
Segmentation of a measured HAADF image
======================================

A real atomic-resolution HAADF image of a high-entropy alloy with twin lamellae
(1024 × 1024 pixels, uint16 counts), segmented by :func:`matchar.imaging.segment`. The
misorientation between the regions (about 69°, near the 70.5° of a Σ3 twin) says that
the lamellae are twins of the matrix. The image is one of the project's test data files
(``shared/data/high_entropy_alloy.npy`` next to the repository); without it, this example
only says so. The file has no pixel size, so lengths are in pixels.
"""

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import matchar as mc

# The gallery runs with examples/ as the working directory.
path = Path("..", "..", "shared", "data", "high_entropy_alloy.npy")
image = np.load(path) if path.is_file() else None
if image is None:
    print(f"{path} not found: nothing to segment")

# %%
# Segment
# -------
# ``stride=4`` computes the descriptor on every fourth pixel, enough for regions that
# are tens of pixels wide.

if image is not None:
    print(f"{image.shape} {image.dtype}, counts {image.min()}..{image.max()}")
    seg = mc.imaging.segment(image, stride=4)
    for k in range(seg.n_regions):
        lengths = np.linalg.norm(seg.lattice_vectors[k], axis=1)
        share = np.mean(seg.labels == k)
        print(f"region {k}: {100 * share:.0f} % of the image, lattice vectors "
              f"{lengths.round(2)} {seg.units}")  # fmt: skip
    for (a, b), angle in sorted(seg.misorientation.items()):
        print(f"misorientation between regions {a} and {b}: {angle:.1f}°")

    fig, ax = plt.subplots(1, 2, figsize=(11, 5))
    im = ax[0].imshow(image, cmap="gray")
    fig.colorbar(im, ax=ax[0], shrink=0.8, label="counts")
    ax[0].set_title("HAADF")
    ax[1].imshow(image, cmap="gray")
    ax[1].imshow(seg.labels, cmap="tab10", alpha=0.35, vmin=0, vmax=9)
    ax[1].contour(seg.boundaries, levels=[0.5], colors="yellow", linewidths=0.6)
    ax[1].set_title(f"{seg.n_regions} regions")
    for a in ax:
        a.set_xlabel("x (px)")
    ax[0].set_ylabel("y (px)")
    fig.tight_layout()
    plt.show()
