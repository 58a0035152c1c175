"""
Crystal identification with uncertainty
=======================================

:func:`matchar.imaging.simulate_haadf` renders HAADF images of crystals along a zone
axis (probe, thermal blur, Poisson dose). The classifier shipped with matchar
(:class:`matchar.imaging.CrystalClassifier`, a small ensemble of convolutional networks
run by onnxruntime) gives the prototype, zone axis, lattice constant and in-plane
rotation of an image, with an uncertainty; :func:`matchar.imaging.classify_map` slides it
over a larger image and maps where the crystal changes.
"""

import matplotlib.pyplot as plt
import numpy as np

import matchar as mc

classifier = mc.imaging.CrystalClassifier.default()
pixel_size = 0.12  # Å

# %%
# One image at a time
# -------------------
# Four crystals, each rotated in the plane, at a dose of 200 electrons per pixel.

cases = [
    ("fcc", (1, 1, 0), 3.61, 12.0),
    ("bcc", (1, 1, 0), 2.87, 25.0),
    ("hcp", (0, 0, 0, 1), 3.21, 7.0),
    ("diamond", (1, 1, 0), 5.43, 3.0),
]
images = []
for i, (prototype, zone, a, rotation) in enumerate(cases):
    img = mc.imaging.simulate_haadf(
        prototype, zone, a, rotation_deg=rotation, shape=(160, 160), pixel_size=pixel_size,
        dose=200, seed=i,
    )  # fmt: skip
    images.append(img)
    p = classifier.predict(img, pixel_size)
    print(
        f"true {prototype} {zone}, a = {a} Å -> {p.prototype} {p.zone_axis} "
        f"(p = {p.probabilities.max():.2f}), a = {p.lattice_constant:.2f} Å, "
        f"uncertainty {p.uncertainty:.3f} nats"
    )

extent = [0, 160 * pixel_size / 10, 160 * pixel_size / 10, 0]  # nm
fig, ax = plt.subplots(1, 4, figsize=(12, 3.3))
for a, img, (prototype, zone, lattice, _) in zip(ax, images, cases):
    a.imshow(img, cmap="gray", extent=extent)
    a.set_title(f"{prototype} {list(zone)}, a = {lattice} Å", fontsize=9)
    a.set_xlabel("x (nm)")
ax[0].set_ylabel("y (nm)")
fig.tight_layout()

# %%
# A map across an interface
# -------------------------
# fcc [110] on the left, bcc [110] rotated by 20° on the right. The class changes at
# the interface, where the windows see both crystals and the uncertainty rises.

left = mc.imaging.simulate_haadf(
    "fcc", (1, 1, 0), 3.61, shape=(480, 240), pixel_size=pixel_size, dose=200, seed=10
)
right = mc.imaging.simulate_haadf(
    "bcc", (1, 1, 0), 2.87, rotation_deg=20.0, shape=(480, 240), pixel_size=pixel_size,
    dose=200, seed=11,
)  # fmt: skip
pair = np.hstack([left, right])
cmap = mc.imaging.classify_map(pair, pixel_size, stride=16, classifier=classifier)
present = np.unique(cmap.class_index)
found = [cmap.classes[int(c)] for c in present]
print("classes in the map:", ", ".join(found))

h, w = pair.shape
extent = [0, w * pixel_size / 10, h * pixel_size / 10, 0]  # nm
# The window grid spans the window centres; draw each map over the area they cover.
cy, cx = cmap.centers[..., 0] * pixel_size / 10, cmap.centers[..., 1] * pixel_size / 10
step = cmap.stride * pixel_size / 10 / 2
grid_extent = [cx.min() - step, cx.max() + step, cy.max() + step, cy.min() - step]

fig, ax = plt.subplots(1, 3, figsize=(13, 4.2))
ax[0].imshow(pair, cmap="gray", extent=extent)
ax[0].set_title("simulated HAADF")
codes = np.searchsorted(present, cmap.class_index)  # 0 .. len(found) - 1
im = ax[1].imshow(codes, cmap="tab10", vmin=0, vmax=9, extent=grid_extent)
ax[1].set_title("class")
handles = [plt.Rectangle((0, 0), 1, 1, color=plt.get_cmap("tab10")(k)) for k in range(len(found))]
ax[1].legend(handles, found, loc="lower right", fontsize=8)
im = ax[2].imshow(cmap.uncertainty, cmap="magma", extent=grid_extent)
ax[2].set_title("uncertainty")
fig.colorbar(im, ax=ax[2], shrink=0.8, label="mutual information (nats)")
for a in ax:
    a.set_xlabel("x (nm)")
    a.set_xlim(extent[0], extent[1])
    a.set_ylim(extent[2], extent[3])
ax[0].set_ylabel("y (nm)")
fig.tight_layout()
plt.show()
