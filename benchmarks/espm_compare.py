"""PhysicsNMF against espm's SmoothNMF on espm's own simulated "particles" dataset.

espm (PyPI ``espm==1.1.3``) pins an old HyperSpy and writes into its site-packages at
import, so it lives in its own virtual environment, never in matchar's extras::

    python -m venv build/espm-venv && build/espm-venv/bin/pip install espm==1.1.3
    # 1. in espm's venv: simulate with espm's EDXS model, fit with SmoothNMF, save
    OMP_NUM_THREADS=2 build/espm-venv/bin/python benchmarks/espm_compare.py espm build/espm_bench
    # 2. in matchar's venv: fit the same data with PhysicsNMF (same G, same settings)
    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/espm_compare.py matchar build/espm_bench

The dataset is espm's built-in "particles" configuration (``particles_phases_dict`` /
``particles_misc_dict`` of espm.datasets.built_in_EDXS_datasets: 80 x 80 pixels, 1980
channels from 0.2 keV by 10 eV, 3 phases = a matrix and 2 spherical particles, N = 500
counts per pixel times the phase densities, 9 elements, 200 keV), generated in memory
(espm's own dataset generator writes files into its package). Both fit X (6400 x 1980)
with espm's G (1980 x 11: 9 elements + 2 bremsstrahlung terms), K = 3, simplex on W,
no regularisation (lambda_L = mu = 0: the same objective for both), the same number of
iterations; espm from its own initialisation (scikit-learn NMF projected onto G),
matchar from the same scheme (``init="nmf"``) and, for reference, from its default
``init="kmeans"`` (which suits images of phase regions, not these smooth mixtures).
Times include the initialisation. Reported: abundance error (mean
absolute error of the per-pixel phase fractions after matching the phases), spectral
angles between fitted and true phase spectra, seconds per iteration, and peak resident
memory during the fit above the memory before it (ru_maxrss), against the data's size.
"""

from __future__ import annotations

import itertools
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

N_ITER = 50


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def metrics(maps, spectra, true_maps, true_spectra):
    """(abundance MAE, spectral angles in degrees) after the best matching of the phases."""
    K = true_maps.shape[1]
    frac = maps / np.maximum(maps.sum(1, keepdims=True), 1e-300)
    best = None
    for p in itertools.permutations(range(K)):
        err = np.abs(frac[:, list(p)] - true_maps).mean()
        if best is None or err < best[0]:
            best = (err, p)
    err, p = best
    angles = []
    for k in range(K):
        a, b = spectra[p[k]], true_spectra[k]
        c = a @ b / (np.linalg.norm(a) * np.linalg.norm(b))
        angles.append(float(np.degrees(np.arccos(np.clip(c, -1, 1)))))
    return float(err), angles


def run_espm(out: Path) -> None:
    from espm.datasets.base import generate_spim
    from espm.datasets.built_in_EDXS_datasets import particles_misc_dict, particles_phases_dict
    from espm.estimators import SmoothNMF
    from espm.models import EDXS
    from espm.models.EDXS_function import elts_list_from_dict_list
    from espm.models.generate_EDXS_phases import generate_modular_phases
    from espm.weights.generate_weights import generate_weights

    misc = particles_misc_dict
    phases = generate_modular_phases(**particles_phases_dict)  # (3, 1980)
    weights = generate_weights("sphere", misc["shape_2d"], n_phases=3, seed=misc["seed"], radius=20)
    X = generate_spim(phases, weights, misc["densities"], misc["N"], seed=misc["seed"])
    X = X.reshape(-1, X.shape[-1]).astype(np.float64)  # (6400, 1980)
    elements = elts_list_from_dict_list(particles_phases_dict["elts_dicts"])
    model = EDXS(**particles_phases_dict["model_params"])
    model.generate_g_matr(g_type="bremsstrahlung", elements=elements, elements_dict={})
    G = np.asarray(model.G, dtype=np.float64)
    before = peak_rss_mb()
    est = SmoothNMF(
        n_components=3,
        G=G,
        shape_2d=misc["shape_2d"],
        lambda_L=0.0,
        mu=0.0,
        max_iter=N_ITER,
        tol=0.0,
        no_stop_criterion=True,
        simplex_W=True,
        simplex_H=False,
        random_state=0,
        verbose=0,
    )
    t0 = time.perf_counter()
    GW = est.fit_transform(X.T)  # espm: (channels, pixels)
    seconds = time.perf_counter() - t0
    peak = peak_rss_mb() - before
    maps = np.asarray(est.H_).T  # (pixels, K)
    spectra = np.asarray(GW).T  # (K, channels)
    true_maps = weights.reshape(-1, 3)
    err, angles = metrics(maps, spectra, true_maps, phases)
    out.mkdir(parents=True, exist_ok=True)
    np.savez(
        out / "data.npz",
        X=X.astype(np.uint16),
        G=G,
        true_maps=true_maps,
        true_spectra=phases,
        shape_2d=np.array(misc["shape_2d"]),
    )
    result = dict(
        tool="espm SmoothNMF 1.1.3",
        iterations=int(est.n_iter_),
        seconds=seconds,
        s_per_iter=seconds / max(est.n_iter_, 1),
        abundance_mae=err,
        spectral_angles_deg=angles,
        peak_extra_mb=peak,
        data_mb_float64=X.nbytes / 2**20,
        n_elements=len(elements),
    )
    (out / "espm.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


def run_matchar_one(out: Path, dtype: str, init: str, n_iter: int, eval_every: int) -> dict:
    """One PhysicsNMF fit in this (fresh) process: metrics, time, peak memory."""
    from types import SimpleNamespace

    import matchar as mc

    d = np.load(out / "data.npz")
    X = d["X"].reshape(*d["shape_2d"], -1)  # uint16 counts, (80, 80, 1980)
    if dtype == "float64":
        X = X.astype(np.float64)
    G = d["G"]
    n_el = G.shape[1] - 2
    model = SimpleNamespace(
        G=G,
        n_elements=n_el,
        elements=[f"e{i}" for i in range(n_el)],
        fit_channels=np.ones(G.shape[0], dtype=bool),
    )
    before = peak_rss_mb()
    est = mc.spectral.PhysicsNMF(
        model,
        3,
        simplex="W",
        max_iter=n_iter,
        tol=0,
        random_state=0,
        init=init,
        eval_every=eval_every,
    )
    t0 = time.perf_counter()
    maps = est.fit_transform(X)
    seconds = time.perf_counter() - t0
    peak = peak_rss_mb() - before
    err, angles = metrics(
        maps.reshape(-1, 3).astype(float),
        est.components_.astype(float),
        d["true_maps"],
        d["true_spectra"],
    )
    return dict(
        tool=f"matchar PhysicsNMF ({dtype} input, init={init}, eval_every={eval_every})",
        iterations=est.n_iter_,
        seconds=seconds,
        abundance_mae=err,
        spectral_angles_deg=angles,
        peak_extra_mb=peak,
        data_mb=X.nbytes / 2**20,
    )


def run_matchar(out: Path) -> None:
    import subprocess

    results = []
    configs = (
        ("uint16", "nmf", 10),
        ("float64", "nmf", 10),
        ("uint16", "kmeans", 10),
        ("uint16", "nmf", 1000),
    )  # the last: no loss evaluations (tol=0 anyway)
    for dtype, init, every in configs:
        runs = {}
        for n in (N_ITER, 3 * N_ITER):
            cmd = [
                sys.executable,
                __file__,
                "matchar-one",
                str(out),
                dtype,
                init,
                str(n),
                str(every),
            ]
            line = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            runs[n] = json.loads(line.strip().splitlines()[-1])
        r = runs[N_ITER]
        # steady-state seconds per iteration, without the initialisation
        r["s_per_iter"] = (runs[3 * N_ITER]["seconds"] - r["seconds"]) / (2 * N_ITER)
        r["seconds_incl_init"] = r.pop("seconds")
        results.append(r)
    (out / "matchar.json").write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))
    espm_file = out / "espm.json"
    if espm_file.exists():
        e = json.loads(espm_file.read_text())
        for r in results:
            print(
                f"{r['tool']}: {e['s_per_iter'] / r['s_per_iter']:.1f}x faster per iteration, "
                f"{e['seconds'] / r['seconds_incl_init']:.1f}x for {N_ITER} iterations with init"
            )


if __name__ == "__main__":
    which, folder = sys.argv[1], Path(sys.argv[2])
    if which == "matchar-one":
        args = sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6])
        print(json.dumps(run_matchar_one(folder, *args)))
    else:
        {"espm": run_espm, "matchar": run_matchar}[which](folder)
