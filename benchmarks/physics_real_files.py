"""PhysicsNMF and refine_detector on the real EDX files of ../shared/data.

Two measurements quoted in docs/spectral_physics.md:

- ``refine``: ``refine_detector(EDXModel(data=cube, metadata=meta), cube)`` on one file's
  whole energy axis: the refined detector, its standard errors and the time;
- ``init``: ``PhysicsNMF(model, K)`` fitted with ``init="kmeans"`` and with the default
  ``init="auto"`` (nominal detector, ``refine=False``, so that only the start differs) on
  one file (default jeol-edx-512x512.pts, whose zero peak below 0.15 keV is left out as
  ``matchar decompose`` does): seconds, the start kept and the iterations.

Run (2 cores; writes a results file to benchmarks/results)::

    OMP_NUM_THREADS=2 python benchmarks/physics_real_files.py refine \
        ../shared/data/sem-edx-ebsd.bcf
    OMP_NUM_THREADS=2 python benchmarks/physics_real_files.py init \
        ../shared/data/jeol-edx-512x512.pts
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_results

import matchar as mc

KEYS = ("offset_keV", "gain", "noise_eV", "fano", "collection", "window_scale", "dead_layer_um")


def _model(path: str, zero_peak_keV: float = 0.15):
    cube, energy, meta = mc.io.load_spectrum_image(path)
    unit = 1e-3 if meta.get("energy_units") == "eV" else 1.0
    keep = np.asarray(energy) * unit >= zero_peak_keV
    cube = cube[..., keep]
    e = np.asarray(energy)[keep] * unit
    axis = (float(e[0]), float(meta["energy_scale"]) * unit, int(e.size))
    return cube, mc.spectral.EDXModel(None, axis, metadata=meta, data=cube)


def refine(path: str) -> list[dict]:
    cube, model = _model(path, zero_peak_keV=-np.inf)
    t = time.perf_counter()
    _, rep = mc.spectral.refine_detector(model, cube)
    row = {"file": Path(path).name, "seconds": round(time.perf_counter() - t, 1)}
    row.update({k: rep[k] for k in KEYS})
    row.update({f"{k}_stderr": rep["stderr"][k] for k in KEYS})
    row["resolution_mnka_eV"] = rep["resolution_mnka_eV"]
    row["deviance_before"], row["deviance_after"] = rep["deviance_before"], rep["deviance_after"]
    row["at_bounds"] = ",".join(rep["at_bounds"]) or "none"
    return [row]


def init(path: str, k: int = 3) -> list[dict]:
    cube, model = _model(path)
    rows = []
    for start in ("kmeans", "auto"):
        t = time.perf_counter()
        est = mc.spectral.PhysicsNMF(model, k, random_state=0, init=start, refine=False).fit(cube)
        rows.append(
            {
                "file": Path(path).name,
                "elements": ",".join(model.elements),
                "init": start,
                "init_used": est.init_used_,
                "iterations": int(est.n_iter_),
                "seconds": round(time.perf_counter() - t, 1),
            }
        )
        print(rows[-1], flush=True)
    return rows


if __name__ == "__main__":
    mode, file = sys.argv[1], sys.argv[2]
    rows = {"refine": refine, "init": init}[mode](file)
    for r in rows:
        print(r)
    write_results(f"physics_real_files_{mode}", rows)
