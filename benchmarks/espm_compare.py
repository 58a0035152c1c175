"""PhysicsNMF against espm's SmoothNMF on espm's own simulated "particles" dataset.

espm (PyPI ``espm==1.1.3``) pins an old HyperSpy and writes into its site-packages at
import, so it lives in its own virtual environment, never in matchar's extras::

    python -m venv build/espm-venv && build/espm-venv/bin/pip install espm==1.1.3
    # 1. in espm's venv: simulate with espm's EDXS model, fit with SmoothNMF, save
    OMP_NUM_THREADS=2 build/espm-venv/bin/python benchmarks/espm_compare.py espm build/espm_bench
    # 2. in matchar's venv: fit the same data with PhysicsNMF (same G, same settings)
    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/espm_compare.py matchar build/espm_bench
    # 3. speed: seconds per iteration of each from the same start, (t(25) - t(5)) / 20
    #    (no initialisation or set-up in it), alternating espm / matchar, 3 rounds
    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/espm_compare.py timing build/espm_bench \
        build/espm-venv/bin/python
    # 4. matchar's own EDXModel (not espm's G), nominal and refined on the data
    #    (refine_detector), against SmoothNMF with espm's G, 200 iterations each
    OMP_NUM_THREADS=2 build/espm-venv/bin/python benchmarks/espm_compare.py espm-fit \
        build/espm_bench
    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/espm_compare.py own-model build/espm_bench

The dataset is espm's built-in "particles" configuration (``particles_phases_dict`` /
``particles_misc_dict`` of espm.datasets.built_in_EDXS_datasets: 80 x 80 pixels, 1980
channels from 0.2 keV by 10 eV, 3 phases = a matrix and 2 spherical particles, N = 500
counts per pixel times the phase densities, 9 elements, 200 keV), generated in memory
(espm's own dataset generator writes files into its package). Both fit X (6400 x 1980)
with espm's G (1980 x 22: espm's 20 element columns for the 9 elements + 2
bremsstrahlung terms), K = 3, no regularisation (lambda_L = mu = 0: the same objective
for both), the same number of iterations and the same constraint: espm, given G as an
array, puts its simplex on *all* rows of W, so matchar's model declares all 22 columns
as elements (``simplex_rows="all"``; the "elements" variant, the element rows only, is
reported for reference: a different gauge). espm from its own initialisation
(scikit-learn NMF projected onto G), matchar from the same scheme (``init="nmf"``) and,
for reference, from its default ``init="kmeans"`` (which suits images of phase regions,
not these smooth mixtures). Times include the initialisation. Reported: abundance error
(mean absolute error of the per-pixel phase fractions after matching the phases: espm's
metric, gauge-dependent), the gauge-free count-fraction error, spectral angles between
fitted and true phase spectra, seconds per iteration, and peak resident memory during
the fit above the memory before it (ru_maxrss), against the data's size. The ``timing``
mode measures seconds per iteration of both from the same start, alternating.
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


def smooth_nmf(G, shape_2d, max_iter: int, **extra):
    """espm's SmoothNMF as every mode here runs it (espm venv only): K = 3, espm's G, no
    regularisation (lambda_L = mu = 0), simplex on W, max_iter iterations, no stopping."""
    from espm.estimators import SmoothNMF

    return SmoothNMF(
        n_components=3,
        G=G,
        shape_2d=tuple(int(v) for v in shape_2d),
        lambda_L=0.0,
        mu=0.0,
        max_iter=max_iter,
        tol=0.0,
        no_stop_criterion=True,
        simplex_W=True,
        simplex_H=False,
        random_state=0,
        verbose=0,
        **extra,
    )


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def metrics(maps, spectra, true_maps, true_spectra):
    """(abundance MAE, spectral angles in degrees) after the best matching of the phases.

    The abundance MAE compares ``maps / maps.sum(1)`` with the true weights, so it depends
    on how the fit splits each phase's scale between its map and its spectrum (the gauge
    the simplex constraint fixes); :func:`count_fraction_mae` does not depend on it.
    """
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


def generalised_kl(X, maps, spectra) -> float:
    """sum(x log(x / m) - x + m), m = maps @ spectra: the fitted objective, computed the
    same way (dense NumPy, float64) for both tools."""
    m = np.maximum(maps @ spectra, 1e-300)
    x = np.asarray(X, dtype=np.float64)
    pos = x > 0
    return float(np.sum(x[pos] * np.log(x[pos] / m[pos])) - x.sum() + m.sum())


def count_fraction_mae(maps, spectra, true_maps, true_spectra, densities):
    """Gauge-free abundance error: MAE of the per-pixel fractions of the counts each phase
    contributes (``maps_k * sum(spectrum_k)``), against the true ones (``d_k * A_k``
    normalised, espm's generator ``N * sum_k d_k A_k D_k`` with unit-sum phases D), after
    the best matching of the phases. 0 for the exact solution whatever the gauge."""
    c = maps * np.maximum(spectra.sum(axis=1), 0.0)[None, :]
    t = true_maps * np.asarray(densities)[None, :]
    t = t / np.maximum(t.sum(1, keepdims=True), 1e-300)
    return metrics(c, spectra, t, true_spectra)[0]


def run_espm(out: Path) -> None:
    from espm.datasets.base import generate_spim
    from espm.datasets.built_in_EDXS_datasets import particles_misc_dict, particles_phases_dict
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
    est = smooth_nmf(G, misc["shape_2d"], N_ITER)
    t0 = time.perf_counter()
    GW = est.fit_transform(X.T)  # espm: (channels, pixels)
    seconds = time.perf_counter() - t0
    peak = peak_rss_mb() - before
    maps = np.asarray(est.H_).T  # (pixels, K)
    spectra = np.asarray(GW).T  # (K, channels)
    true_maps = weights.reshape(-1, 3)
    err, angles = metrics(maps, spectra, true_maps, phases)
    err_counts = count_fraction_mae(maps, spectra, true_maps, phases, misc["densities"])
    out.mkdir(parents=True, exist_ok=True)
    np.savez(
        out / "data.npz",
        X=X.astype(np.uint16),
        G=G,
        true_maps=true_maps,
        true_spectra=phases,
        shape_2d=np.array(misc["shape_2d"]),
        densities=np.array(misc["densities"]),
    )
    result = dict(
        tool="espm SmoothNMF 1.1.3",
        iterations=int(est.n_iter_),
        seconds=seconds,
        s_per_iter=seconds / max(est.n_iter_, 1),
        abundance_mae=err,
        count_fraction_mae=err_counts,
        kl=generalised_kl(X, maps, spectra),
        spectral_angles_deg=angles,
        peak_extra_mb=peak,
        data_mb_float64=X.nbytes / 2**20,
        n_elements=len(elements),
    )
    (out / "espm.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


def run_matchar_one(
    out: Path, dtype: str, init: str, n_iter: int, eval_every: int, simplex_rows: str = "all"
) -> dict:
    """One PhysicsNMF fit in this (fresh) process: metrics, time, peak memory.

    ``simplex_rows="all"``: the simplex on every row of W, as espm applies it when G is
    given as an array (``physics_model_`` is None, ``NMF_simplex`` not consulted);
    ``"elements"``: on the element rows only (PhysicsNMF's EDXModel convention)."""
    from types import SimpleNamespace

    import matchar as mc

    d = np.load(out / "data.npz")
    X = d["X"].reshape(*d["shape_2d"], -1)  # uint16 counts, (80, 80, 1980)
    if dtype == "float64":
        X = X.astype(np.float64)
    G = d["G"]
    n_el = G.shape[1] if simplex_rows == "all" else G.shape[1] - 2
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
    args = (
        maps.reshape(-1, 3).astype(float),
        est.components_.astype(float),
        d["true_maps"],
        d["true_spectra"],
    )
    err, angles = metrics(*args)
    return dict(
        tool=(
            f"matchar PhysicsNMF ({dtype} input, init={init}, eval_every={eval_every}, "
            f"simplex on {simplex_rows} rows of W)"
        ),
        iterations=est.n_iter_,
        seconds=seconds,
        abundance_mae=err,
        count_fraction_mae=count_fraction_mae(*args, d["densities"]),
        kl=generalised_kl(X.reshape(-1, X.shape[-1]), args[0], args[1]),
        spectral_angles_deg=angles,
        peak_extra_mb=peak,
        data_mb=X.nbytes / 2**20,
    )


def run_matchar(out: Path) -> None:
    import subprocess

    results = []
    configs = (
        ("uint16", "nmf", 10, "all"),
        ("float64", "nmf", 10, "all"),
        ("uint16", "nmf", 1000, "all"),  # no loss evaluations (tol=0 anyway)
        ("uint16", "nmf", 10, "elements"),
        ("uint16", "kmeans", 10, "all"),
    )
    for dtype, init, every, rows in configs:
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
                rows,
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


def common_start(X: np.ndarray, G: np.ndarray, K: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """The same random start for both tools (timing runs): maps (N, K), W (E, K)."""
    rng = np.random.default_rng(0)
    A0 = rng.random((X.shape[0], K)) + 0.5
    W0 = rng.random((G.shape[1], K)) + 0.5
    W0 /= W0.sum(axis=0)  # simplex on all rows, as espm applies it
    A0 *= float(X.sum()) / float((A0 @ (G @ W0).T).sum())
    return A0, W0


def time_espm_iters(out: Path, n_iter: int) -> dict:
    """espm SmoothNMF from the common start (init="custom"): seconds for n_iter iterations."""
    d = np.load(out / "data.npz")
    X = d["X"].reshape(-1, d["X"].shape[-1]).astype(np.float64)
    A0, W0 = common_start(X, d["G"])
    est = smooth_nmf(d["G"], d["shape_2d"], n_iter, init="custom")
    t0 = time.perf_counter()
    est.fit_transform(X.T, W=W0.copy(), H=A0.T.copy())
    return dict(tool="espm", iterations=int(est.n_iter_), seconds=time.perf_counter() - t0)


def time_matchar_iters(out: Path, n_iter: int) -> dict:
    """PhysicsNMF (uint16 input, simplex on all rows) from the common start: seconds."""
    from types import SimpleNamespace

    import matchar as mc

    d = np.load(out / "data.npz")
    X = d["X"].reshape(*d["shape_2d"], -1)
    G = d["G"]
    A0, W0 = common_start(X.reshape(-1, X.shape[-1]), G)
    model = SimpleNamespace(
        G=G,
        n_elements=G.shape[1],
        elements=[f"e{i}" for i in range(G.shape[1])],
        fit_channels=np.ones(G.shape[0], dtype=bool),
    )
    est = mc.spectral.PhysicsNMF(
        model, 3, simplex="W", max_iter=n_iter, tol=0, init=(A0, W0), eval_every=10
    )
    t0 = time.perf_counter()
    est.fit_transform(X)
    return dict(tool="matchar", iterations=int(est.n_iter_), seconds=time.perf_counter() - t0)


def run_timing(out: Path, espm_python: str, n_iter: int = 20, rounds: int = 3) -> None:
    """Alternate espm and matchar runs from the same start; seconds per iteration as
    (t(5 + n_iter) - t(5)) / n_iter, so that set-up costs (espm's Laplacian and first
    loss, matchar's conversion) are not counted."""
    import os
    import subprocess

    def seconds(py: str, tool: str, n: int) -> float:
        cmd = [py, __file__, f"{tool}-iters", str(out), str(n)]
        line = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        return json.loads(line.strip().splitlines()[-1])["seconds"]

    rows = []
    for _ in range(rounds):
        row = {"load_before": os.getloadavg()[0]}
        for tool, py in (("espm", espm_python), ("matchar", sys.executable)):
            t_short = seconds(py, tool, 5)
            row[tool] = (seconds(py, tool, 5 + n_iter) - t_short) / n_iter
        row["ratio"] = row["espm"] / row["matchar"]
        row["load_after"] = os.getloadavg()[0]
        print(json.dumps(row), flush=True)
        rows.append(row)
    ratios = sorted(r["ratio"] for r in rows)
    summary = dict(rounds=rows, median_ratio=ratios[len(ratios) // 2], min_ratio=ratios[0])
    (out / "timing.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))


OWN_ITER = 200  # iterations of the "own-model" comparison (both tools)


def run_espm_fit(out: Path) -> None:
    """espm venv: SmoothNMF with espm's own G, OWN_ITER iterations, default settings but
    lambda_L = mu = 0; saves the maps, spectra and seconds to ``espm_fit.npz``."""
    d = np.load(out / "data.npz")
    X = d["X"].astype(np.float64)
    est = smooth_nmf(d["G"], d["shape_2d"], OWN_ITER)
    t0 = time.perf_counter()
    GW = est.fit_transform(X.T)
    seconds = time.perf_counter() - t0
    np.savez(
        out / "espm_fit.npz",
        maps=np.asarray(est.H_).T,
        spectra=np.asarray(GW).T,
        seconds=seconds,
        iterations=int(est.n_iter_),
    )


def abundance_mse(maps, true_maps, spectra=None, densities=None) -> float:
    """Mean squared error of the per-pixel phase fractions after the best matching; with
    ``spectra`` and ``densities``, of the count fractions (gauge-free, see
    :func:`count_fraction_mae`)."""
    K = true_maps.shape[1]
    if spectra is not None:
        maps = maps * np.maximum(spectra.sum(axis=1), 0.0)[None, :]
        true_maps = true_maps * np.asarray(densities)[None, :]
        true_maps = true_maps / np.maximum(true_maps.sum(1, keepdims=True), 1e-300)
    frac = maps / np.maximum(maps.sum(1, keepdims=True), 1e-300)
    return float(
        min(np.mean((frac[:, list(p)] - true_maps) ** 2) for p in itertools.permutations(range(K)))
    )


def run_own_model(out: Path) -> None:
    """matchar venv: PhysicsNMF with matchar's own EDXModel (not espm's G), built from the
    dataset's elements, energy axis and beam energy, with and without
    :func:`matchar.spectral.refine_detector`, against espm's SmoothNMF with its own G
    (``espm_fit.npz`` of the ``espm-fit`` mode). OWN_ITER iterations, tol=0, each
    PhysicsNMF with init="kmeans" and init="nmf" on each model given (refine=False), and
    PhysicsNMF with its defaults on the nominal model (refine="auto": the shell-ratio
    refinement; init="auto"). Seconds per iteration of PhysicsNMF: (t(60) - t(10)) / 50
    from the fitted state (no initialisation, on the fitted model ``model_``), the least
    of 3 repeats of each; espm's: its fit's seconds over its iterations. The defaults'
    row also gives its whole fit's seconds (refinement and the three trial inits
    included)."""
    import matchar as mc

    d = np.load(out / "data.npz")
    X = d["X"].reshape(*d["shape_2d"], -1)
    T, M = d["true_spectra"], d["true_maps"]
    elements = ["V", "Rb", "W", "N", "Yb", "Pt", "Al", "Ti", "La"]  # the particles' 9
    nominal = mc.spectral.EDXModel(elements, (0.2, 0.01, X.shape[-1]), 200.0)
    t0 = time.perf_counter()
    refined, report = mc.spectral.refine_detector(nominal, X)
    t_refine = time.perf_counter() - t0
    rows = []
    ef = out / "espm_fit.npz"
    if ef.exists():
        e = np.load(ef)
        err, ang = metrics(e["maps"], e["spectra"], M, T)
        rows.append(
            dict(
                tool=f"espm SmoothNMF, espm's G, {int(e['iterations'])} iterations",
                max_angle_deg=max(ang),
                angles_deg=ang,
                abundance_mse=abundance_mse(e["maps"], M),
                count_fraction_mse=abundance_mse(e["maps"], M, e["spectra"], d["densities"]),
                abundance_mae=err,
                s_per_iter=float(e["seconds"]) / int(e["iterations"]),
            )
        )
    t0 = time.perf_counter()
    shell, report_shell = mc.spectral.refine_detector(nominal, X, ratios="shell")
    t_refine_shell = time.perf_counter() - t0
    models = (
        ("nominal EDXModel", nominal),
        ("refined EDXModel", refined),
        ('refined EDXModel (ratios="shell")', shell),
    )
    runs = [(name, model, init) for name, model in models for init in ("kmeans", "nmf")]
    runs.append(("defaults", nominal, None))
    for name, model, init in runs:
        kw = dict(init=init, refine=False) if init is not None else {}
        t0 = time.perf_counter()
        est = mc.spectral.PhysicsNMF(model, 3, max_iter=OWN_ITER, tol=0, random_state=0, **kw)
        maps = est.fit_transform(X).reshape(-1, 3)
        t_fit = time.perf_counter() - t0
        err, ang = metrics(maps, est.components_, M, T)
        times = {}
        for n in (10, 60):
            ts = []
            for _ in range(3):
                again = mc.spectral.PhysicsNMF(
                    est.model_,
                    3,
                    max_iter=n,
                    tol=0,
                    init=(maps.copy(), est.W_.copy()),
                    refine=False,
                )
                t0 = time.perf_counter()
                again.fit_transform(X)
                ts.append(time.perf_counter() - t0)
            times[n] = min(ts)
        rows.append(
            dict(
                tool=(
                    f"matchar PhysicsNMF, {name}, init={init}, {OWN_ITER} iterations"
                    if init is not None
                    else f"matchar PhysicsNMF, defaults (nominal EDXModel; refined: "
                    f"{est.detector_ is not None}, init used: {est.init_used_}), "
                    f"{OWN_ITER} iterations"
                ),
                max_angle_deg=max(ang),
                angles_deg=ang,
                abundance_mse=abundance_mse(maps, M),
                count_fraction_mse=abundance_mse(
                    maps, M, est.components_.astype(float), d["densities"]
                ),
                abundance_mae=err,
                s_per_iter=(times[60] - times[10]) / 50,
                fit_seconds=t_fit,
            )
        )
    # the best any non-negative combination of G's columns does for each true phase
    # spectrum (Poisson fit on G): the model's own limit, whatever the NMF
    from matchar.spectral._edx import _poisson_fit

    span = {}
    for name, model in (("nominal", nominal), ("refined", refined), ("refined, shell", shell)):
        span[name] = []
        for t in T:
            f, _ = _poisson_fit(t * 1e6, model.G, n_iter=3000)
            c = f @ t / (np.linalg.norm(f) * np.linalg.norm(t))
            span[name].append(float(np.degrees(np.arccos(np.clip(c, -1, 1)))))
    result = dict(
        rows=rows,
        refine_seconds=t_refine,
        refine_shell_seconds=t_refine_shell,
        detector=report,
        detector_shell=report_shell,
        best_in_span_deg=span,
    )
    (out / "own_model.json").write_text(json.dumps(result, indent=1))
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _results import write_results

    table = [
        {
            k: r.get(k)
            for k in ("tool", "max_angle_deg", "count_fraction_mse", "s_per_iter", "fit_seconds")
        }
        for r in rows
    ]
    write_results(
        "espm_compare_own_model",
        table,
        extra={k: v for k, v in result.items() if k != "rows"},
    )
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    which, folder = sys.argv[1], Path(sys.argv[2])
    if which == "timing":
        run_timing(folder, sys.argv[3])
    elif which in ("espm-iters", "matchar-iters"):
        f = time_espm_iters if which == "espm-iters" else time_matchar_iters
        print(json.dumps(f(folder, int(sys.argv[3]))))
    elif which == "matchar-one":
        args = sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6]), sys.argv[7]
        print(json.dumps(run_matchar_one(folder, *args)))
    else:
        modes = {"espm": run_espm, "matchar": run_matchar, "espm-fit": run_espm_fit}
        modes["own-model"] = run_own_model
        modes[which](folder)
