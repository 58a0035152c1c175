"""Figure and numbers of docs/spectral_physics.md: PhysicsNMF on bruker-test_TEM.bcf.

    OMP_NUM_THREADS=2 .venv/bin/python scripts/edx_bcf_figure.py \
        ../shared/data docs/spectral_physics
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

import matchar as mc

data, out = Path(sys.argv[1]), Path(sys.argv[2])
out.mkdir(parents=True, exist_ok=True)
cube, energy, meta = mc.io.load_spectrum_image(data / "bruker-test_TEM.bcf")
md = meta["metadata"]
beam = md["Acquisition_instrument"]["TEM"]["beam_energy"]
listed = list(md["Sample"]["elements"])
print("counts", int(cube.sum(dtype=np.int64)), "metadata elements", listed)
t0 = time.perf_counter()
proposal = mc.spectral.EDXModel(None, energy, beam_energy_keV=beam, data=cube)
t_prop = time.perf_counter() - t0
print(f"proposed from the peaks alone ({t_prop:.1f} s):", proposal.elements)
found = proposal.propose_elements(cube, known=listed)
print("with the metadata elements as known ones:")
for p in found:
    print(
        f"  {p['element']:3s} {p['source']:6s} {p['line']:5s} {p['energy_keV']:6.3f} keV "
        f"significance {p['significance']:7.1f} deviance drop {p['deviance_gain']:9.1f}"
    )
elements = [p["element"] for p in found]
model = mc.spectral.EDXModel(elements, energy, beam_energy_keV=beam)
# ~6 counts per pixel and no spatial contrast: simplex on W (maps in counts), no penalty
est = mc.spectral.PhysicsNMF(model, 3, simplex="W", max_iter=200, tol=0, random_state=0)
t0 = time.perf_counter()
maps = est.fit_transform(cube)
print(f"PhysicsNMF K=3, simplex=W, 200 iterations: {time.perf_counter() - t0:.2f} s")
for k, row in enumerate(est.composition_):
    print(k, {el: round(float(v), 3) for el, v in zip(elements, row) if v > 0.005})
fig = plt.figure(figsize=(10, 6))
grid = fig.add_gridspec(2, 3)
for k in range(3):
    a = fig.add_subplot(grid[0, k])
    im = a.imshow(maps[..., k], cmap="viridis")
    fig.colorbar(im, ax=a, fraction=0.046)
    a.set_title(f"phase {k} abundance")
    a.axis("off")
ax = fig.add_subplot(grid[1, :])
for k in range(3):
    ax.plot(model.energy, est.components_[k], label=f"phase {k}")
ax.set_xlim(0, 10)
ax.set_xlabel("energy (keV)")
ax.set_ylabel("counts / channel / unit map")
ax.legend()
for el in elements:
    lines = [ln for ln in model.lines if ln["element"] == el]
    top = max(lines, key=lambda ln: ln["weight"])
    ax.axvline(top["energy_keV"], color="0.8", lw=0.5)
    ax.text(top["energy_keV"], ax.get_ylim()[1] * 0.9, el, fontsize=7, rotation=90)
fig.tight_layout()
fig.savefig(out / "bcf_physics_nmf.png", dpi=80)
print("wrote", out / "bcf_physics_nmf.png")
