"""
Physics-constrained EDX decomposition
=====================================

A simulated EDX spectrum image (a steel matrix with an SiO₂ and a TiO₂ particle, about
200 counts per pixel) is decomposed by :class:`matchar.spectral.PhysicsNMF`, whose
components are X-ray spectra modelled by :class:`matchar.spectral.EDXModel` (lines from
xraylib, detector efficiency, bremsstrahlung). The result is a composition per phase in
atomic percent and an abundance map per phase.
"""

import itertools

import matplotlib.pyplot as plt
import numpy as np
from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

import matchar as mc

# %%
# Simulate the spectrum image
# ---------------------------
# The model's columns are the spectra of one atom of each element, then the
# bremsstrahlung terms; phases are mixtures of them. 1000 channels of 20 eV, 200 kV.

elements = ["Fe", "Cr", "Ni", "Si", "Ti", "O"]
truth = np.array(
    [[0.70, 0.20, 0.10, 0, 0, 0], [0, 0, 0, 1 / 3, 0, 2 / 3], [0, 0, 0, 0, 1 / 3, 2 / 3]]
)
model = mc.spectral.EDXModel(elements, (0.0, 0.02, 1000), beam_energy_keV=200.0)
energy = model.energy  # keV

h = w = 48
pixel_nm = 2.0
yy, xx = np.mgrid[:h, :w]


def disc(cx, cy, r):
    return 1 / (1 + np.exp((np.hypot(xx - cx * w, yy - cy * h) - r * w) / 1.0))


p1, p2 = disc(0.3, 0.35, 0.2), disc(0.72, 0.65, 0.2)
maps_true = np.stack([1 - p1 - p2, p1, p2], -1).clip(0)
maps_true /= maps_true.sum(-1, keepdims=True)
W = np.zeros((model.G.shape[1], 3))
W[: len(elements)] = truth.T
W[len(elements) :] = [[0.3, 0.2, 0.25], [0.1, 0.15, 0.1]]
spectra = (model.G @ W).T
spectra /= spectra.sum(1, keepdims=True)
rng = np.random.default_rng(0)
cube = rng.poisson(200 * maps_true.reshape(-1, 3) @ spectra).reshape(h, w, -1).astype(np.uint16)
print(f"spectrum image {cube.shape} ({cube.dtype}), {cube.sum(-1).mean():.0f} counts per pixel")

# %%
# Decompose
# ---------

est = mc.spectral.PhysicsNMF(model, 3, max_iter=200, tol=0, random_state=0)
maps = est.fit_transform(cube)
# The order of the components is arbitrary: match them to the simulated phases.
perm = list(
    min(
        itertools.permutations(range(3)),
        key=lambda p: np.abs(est.composition_[list(p)] - truth).max(),
    )
)
for k, name in enumerate(["matrix", "SiO2 particle", "TiO2 particle"]):
    found = ", ".join(
        f"{e} {100 * est.composition_[perm[k], i]:.1f}" for i, e in enumerate(elements)
    )
    print(f"{name:14s} at.%: {found}")

# %%
# Abundance maps and component spectra
# ------------------------------------

fig, ax = plt.subplots(2, 3, figsize=(10, 6), gridspec_kw={"height_ratios": [1.2, 1]})
for k, name in enumerate(["matrix", "SiO₂ particle", "TiO₂ particle"]):
    im = ax[0, k].imshow(maps[..., perm[k]], cmap="viridis")
    ax[0, k].set_title(name)
    ax[0, k].set_axis_off()
    fig.colorbar(im, ax=ax[0, k], shrink=0.8, label="counts per pixel")
    ax[0, k].add_artist(
        AnchoredSizeBar(ax[0, k].transData, 20 / pixel_nm, "20 nm", "lower left",
                        color="white", frameon=False, size_vertical=0.8)
    )  # fmt: skip
    ax[1, k].plot(energy, est.components_[perm[k]], lw=0.8)
    ax[1, k].set_xlim(0, 10)
    ax[1, k].set_xlabel("energy (keV)")
ax[1, 0].set_ylabel("component spectrum (counts)")
fig.tight_layout()
plt.show()
