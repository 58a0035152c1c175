"""``matchar demo``: every available job on built-in synthetic data, as one HTML report.

A job whose optional dependency is not installed (its extra: ``edx``, ``imaging``,
``nmr``) is skipped with one line naming the extra; ``pip install 'matchar[all]'`` runs
them all.
"""

from __future__ import annotations

import base64
import html
import io
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._optional import MissingDependency, require


@dataclass
class JobResult:
    """What one demo job did: a title, lines of text, numbers and an optional figure."""

    title: str
    lines: list[str] = field(default_factory=list)
    numbers: dict[str, Any] = field(default_factory=dict)
    figure: Any = None  # a matplotlib Figure
    seconds: float = 0.0


def _job_gp_kernel() -> JobResult:
    import matchar as mc

    rng = np.random.default_rng(0)
    n, m, d = 4000, 1000, 2000
    basis = rng.random((16, d))
    X = rng.random((n, 16)) @ basis
    Y = rng.random((m, 16)) @ basis
    t0 = time.perf_counter()
    K = mc.gp.polynomial_kernel(X, Y, zeta=2)
    t_mc = time.perf_counter() - t0
    t0 = time.perf_counter()
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    Yn = Y / np.linalg.norm(Y, axis=1, keepdims=True)
    K_ref = (Xn @ Yn.T) ** 2
    t_np = time.perf_counter() - t0
    err = float(np.max(np.abs(K - K_ref)))
    res = JobResult("GP kernel: matchar.gp.polynomial_kernel")
    res.lines.append(
        f"({n}×{d}) × ({m}×{d}) features, ζ=2: matchar {t_mc * 1e3:.0f} ms, "
        f"NumPy normalise-matmul-power chain {t_np * 1e3:.0f} ms; max |difference| {err:.1e}."
    )
    res.numbers = {"seconds_matchar": t_mc, "seconds_numpy": t_np, "max_abs_difference": err}
    return res


def _job_segmentation() -> JobResult:
    import matplotlib.pyplot as plt
    from sklearn.metrics import adjusted_rand_score

    import matchar as mc
    from matchar import datasets

    image, truth = datasets.bicrystal(15.0, shape=(256, 256), dose=50, seed=0)
    seg = mc.imaging.segment(image, pixel_size=0.2)
    ari = float(adjusted_rand_score(truth.ravel(), seg.labels.ravel()))
    res = JobResult("STEM segmentation: matchar.imaging.segment")
    res.lines.append(
        f"Synthetic 15° bicrystal, 256×256 px, dose 50: {seg.n_regions} regions found "
        f"(chosen automatically); adjusted Rand index against the truth {ari:.3f}."
    )
    for (a, b), angle in sorted(seg.misorientation.items()):
        res.lines.append(f"Misorientation between regions {a} and {b}: {angle:.1f}°.")
    res.numbers = {"n_regions": seg.n_regions, "adjusted_rand_index": ari}
    fig, ax = plt.subplots(1, 2, figsize=(8, 4))
    ax[0].imshow(image, cmap="gray")
    ax[0].set_title("synthetic HAADF image")
    ax[1].imshow(image, cmap="gray")
    ax[1].imshow(seg.labels, cmap="tab10", alpha=0.35, vmin=0, vmax=9)
    ax[1].contour(seg.boundaries, levels=[0.5], colors="yellow", linewidths=0.8)
    ax[1].set_title(f"{seg.n_regions} regions, ARI {ari:.3f}")
    for a in ax:
        a.set_axis_off()
    fig.tight_layout()
    res.figure = fig
    return res


def _synthetic_spectrum_image(seed: int = 0):
    """A 64×64×512 Poisson cube of 4 phases: Gaussian-peak spectra on a smooth background,
    smooth abundance maps summing to 1, ~200 counts per pixel. Returns (cube, maps, spectra).
    """
    rng = np.random.default_rng(seed)
    h = w = 64
    c = 512
    e = np.arange(c, dtype=np.float64)
    spectra = np.empty((4, c))
    for k, peaks in enumerate([(60, 300), (120, 330), (200, 420), (90, 250)]):
        s = 0.05 * np.exp(-e / 300.0)
        for p in peaks:
            s += np.exp(-0.5 * ((e - p) / 4.0) ** 2)
        spectra[k] = s / s.sum()
    yy, xx = np.mgrid[0:h, 0:w] / 63.0
    centres = [(0.25, 0.25), (0.25, 0.75), (0.75, 0.25), (0.75, 0.75)]
    maps = np.stack([np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 0.03) for cy, cx in centres], -1)
    maps /= maps.sum(-1, keepdims=True)
    cube = rng.poisson(200.0 * maps.reshape(-1, 4) @ spectra).astype(np.uint16)
    return cube.reshape(h, w, c), maps, spectra


def _job_spectral() -> JobResult:
    import matplotlib.pyplot as plt

    import matchar as mc

    cube, _, spectra_true = _synthetic_spectrum_image()
    nmf = mc.spectral.NMF(4, loss="kl", max_iter=200, tol=0, random_state=0)
    maps = nmf.fit_transform(cube)
    comp = nmf.components_
    # Match components to the true spectra by spectral angle.
    cos = (comp / np.linalg.norm(comp, axis=1, keepdims=True)) @ (
        spectra_true / np.linalg.norm(spectra_true, axis=1, keepdims=True)
    ).T
    order = np.argmax(cos, axis=0)
    angles = np.degrees(np.arccos(np.clip(cos[order, np.arange(4)], -1, 1)))
    res = JobResult("Hyperspectral decomposition: matchar.spectral.NMF (Poisson/KL)")
    res.lines.append(
        f"Synthetic 64×64×512 uint16 Poisson cube, 4 phases, ~200 counts/pixel: KL NMF, "
        f"200 iterations; spectral angles to the true spectra "
        f"{', '.join(f'{a:.1f}°' for a in angles)}."
    )
    res.numbers = {"spectral_angles_deg": angles.tolist(), "final_kl": nmf.reconstruction_err_}
    fig, ax = plt.subplots(2, 4, figsize=(10, 5))
    for k in range(4):
        ax[0, k].imshow(maps[..., order[k]], cmap="viridis")
        ax[0, k].set_title(f"map {k}")
        ax[0, k].set_axis_off()
        ax[1, k].plot(spectra_true[k] / spectra_true[k].max(), "k", lw=1, label="truth")
        ax[1, k].plot(comp[order[k]] / comp[order[k]].max(), "r--", lw=1, label="NMF")
        ax[1, k].set_title(f"{angles[k]:.1f}°")
        ax[1, k].set_yticks([])
    ax[1, 0].legend(fontsize=7)
    fig.tight_layout()
    res.figure = fig
    return res


def _job_soap() -> JobResult:
    import matchar as mc

    ase_build = require("ase.build", "nmr", "the SOAP demo")
    crystal = ase_build.bulk("NaCl", "rocksalt", a=5.64).repeat((3, 3, 3))
    crystal.rattle(0.05, seed=0)
    soap = mc.atoms.SOAP(cutoff=5.0, max_radial=8, max_angular=6)
    t0 = time.perf_counter()
    X = soap.compute(crystal)
    dt = time.perf_counter() - t0
    res = JobResult("SOAP power spectra: matchar.atoms.SOAP")
    res.lines.append(
        f"Rattled 3×3×3 rock-salt NaCl supercell ({len(crystal)} atoms), cutoff 5 Å, "
        f"8 radial × l≤6: features {X.shape}, {dt * 1e3:.1f} ms "
        f"({dt / len(crystal) * 1e6:.0f} µs per environment), featomic's convention."
    )
    res.numbers = {"shape": list(X.shape), "seconds": dt}
    return res


def _job_posterior() -> JobResult:
    import matplotlib.pyplot as plt

    import matchar as mc

    rng = np.random.default_rng(1)
    n_cand, n_sites = 6, 12
    truth = 2
    pred = 20.0 + 8.0 * rng.random((n_cand, n_sites))  # predicted 1H shieldings, ppm
    pred[truth + 1] = pred[truth] + rng.normal(0, 0.4, n_sites)  # a close competitor
    std = np.full((n_cand, n_sites), 0.3)
    experimental = 31.0 - pred[truth] + rng.normal(0, 0.4, n_sites)  # shifts, ppm
    res_p = mc.nmr.structure_posterior(
        pred, std, experimental, sigma_exp=0.33, assignment="marginalize", return_details=True
    )
    probs = np.asarray(res_p.probabilities)
    res = JobResult("Bayesian NMR structure determination: matchar.nmr.structure_posterior")
    res.lines.append(
        f"{n_cand} synthetic candidates, {n_sites} ¹H peaks with the assignment unknown "
        f"(marginalised), reference offset marginalised: the true candidate ({truth}) gets "
        f"posterior {probs[truth]:.3f}; its near-copy ({truth + 1}) {probs[truth + 1]:.3f}."
    )
    res.numbers = {"posterior": probs.tolist(), "true_candidate": truth}
    fig, ax = plt.subplots(figsize=(5, 3))
    res_p.plot(ax=ax)
    fig.tight_layout()
    res.figure = fig
    return res


def _job_shifts() -> JobResult:
    import matchar as mc

    ase_build = require("ase.build", "nmr", "the NMR shielding demo")
    mol = ase_build.molecule("CH3CH2OH")
    mol.center(vacuum=6.0)
    t0 = time.perf_counter()
    model = mc.nmr.ShiftModel.pretrained("H")
    t_load = time.perf_counter() - t0
    t0 = time.perf_counter()
    sigma, std = model.predict(mol, return_std=True)
    t_pred = time.perf_counter() - t0
    res = JobResult("NMR shielding prediction: matchar.nmr.ShiftModel.pretrained('H')")
    values = ", ".join(f"{s:.1f}±{e:.1f}" for s, e in zip(sigma, std))
    res.lines.append(
        f"Shipped ¹H model (trained on CSD-1000R, offline), gas-phase ethanol: shieldings "
        f"{values} ppm; load {t_load:.2f} s, prediction {t_pred * 1e3:.0f} ms."
    )
    res.numbers = {"shieldings_ppm": sigma.tolist(), "std_ppm": std.tolist()}
    return res


def _job_edx() -> JobResult:
    import itertools

    import matchar as mc

    elements = ["Fe", "Cr", "Ni", "Si", "Ti", "O"]
    truth = np.array(
        [[0.70, 0.20, 0.10, 0, 0, 0], [0, 0, 0, 1 / 3, 0, 2 / 3], [0, 0, 0, 0, 1 / 3, 2 / 3]]
    )
    model = mc.spectral.EDXModel(elements, (0.0, 0.02, 1000), beam_energy_keV=200.0)
    # A steel matrix with a SiO2 and a TiO2 particle, ~200 counts per pixel.
    h = w = 32
    yy, xx = np.mgrid[:h, :w]

    def disc(cx, cy, r):
        return 1 / (1 + np.exp((np.hypot(xx - cx * w, yy - cy * h) - r * w) / 1.0))

    p1, p2 = disc(0.3, 0.35, 0.2), disc(0.72, 0.65, 0.2)
    maps = np.stack([1 - p1 - p2, p1, p2], -1).clip(0)
    maps /= maps.sum(-1, keepdims=True)
    W = np.zeros((model.G.shape[1], 3))
    W[: len(elements)] = truth.T
    W[len(elements) :] = [[0.3, 0.2, 0.25], [0.1, 0.15, 0.1]]
    spec = (model.G @ W).T
    spec /= spec.sum(1, keepdims=True)
    rng = np.random.default_rng(0)
    cube = rng.poisson(200 * maps.reshape(-1, 3) @ spec).reshape(h, w, -1).astype(np.uint16)
    est = mc.spectral.PhysicsNMF(model, 3, max_iter=200, tol=0, random_state=0)
    est.fit_transform(cube)
    perm = min(
        itertools.permutations(range(3)),
        key=lambda p: np.abs(est.composition_[list(p)] - truth).max(),
    )
    found = est.composition_[list(perm)]
    err = float(np.abs(found - truth).max())
    res = JobResult("Physics-constrained EDX: matchar.spectral.EDXModel + PhysicsNMF")
    res.lines.append(
        f"Synthetic 32×32 EDX map (steel matrix, SiO₂ and TiO₂ particles, ~200 counts per "
        f"pixel, 1000 channels at 20 eV) simulated with EDXModel ({len(model.lines)} X-ray "
        f"lines from xraylib); PhysicsNMF with 3 phases, 200 iterations: largest composition "
        f"error {100 * err:.1f} at.%."
    )
    for k in range(3):
        parts = ", ".join(
            f"{e} {100 * found[k, i]:.1f}% (true {100 * truth[k, i]:.1f}%)"
            for i, e in enumerate(elements)
            if truth[k, i] > 0 or found[k, i] > 0.01
        )
        res.lines.append(f"Phase {k}: {parts}.")
    res.numbers = {
        "max_composition_error_at_percent": 100 * err,
        "composition": found.tolist(),
        "true_composition": truth.tolist(),
        "elements": elements,
    }
    res.figure = est.plot()
    return res


def _job_crystal_id() -> JobResult:
    import matplotlib.pyplot as plt

    import matchar as mc

    cls = mc.imaging.CrystalClassifier.default()
    rng = np.random.default_rng(0)
    px = 0.12
    cases = [
        ("fcc", (1, 1, 0), 3.61),
        ("bcc", (1, 1, 0), 2.87),
        ("hcp", (0, 0, 0, 1), 3.21),
        ("diamond", (1, 1, 0), 5.43),
    ]
    res = JobResult("Crystal identification: matchar.imaging.CrystalClassifier (CNN, onnxruntime)")
    correct, rows, images = 0, [], []
    for i, (proto, zone, a) in enumerate(cases):
        rot = float(rng.uniform(0, 30))
        img = mc.imaging.simulate_haadf(
            proto, zone, a, rotation_deg=rot, shape=(160, 160), pixel_size=px, dose=200, seed=i
        )
        images.append(img)
        pred = cls.predict(img, px)
        ok = pred.prototype == proto and tuple(pred.zone_axis) == tuple(zone)
        correct += int(ok)
        rows.append(
            {
                "true": f"{proto} {zone}",
                "predicted": f"{pred.prototype} {tuple(pred.zone_axis)}",
                "probability": float(np.max(pred.probabilities)),
                "lattice_constant": float(pred.lattice_constant),
                "true_lattice_constant": a,
            }
        )
        res.lines.append(
            f"Simulated {proto} {list(zone)}, a = {a} Å, rotated {rot:.0f}°, dose 200 e/px: "
            f"predicted {pred.prototype} {list(pred.zone_axis)} (p = "
            f"{float(np.max(pred.probabilities)):.2f}), a = {pred.lattice_constant:.2f} Å."
        )
    # Cu [100]: the same square column pattern as bcc and diamond [100] up to scale; the
    # known lattice constant tells them apart where the image cannot.
    cu = mc.imaging.simulate_haadf("fcc", (1, 0, 0), 3.61, rotation_deg=10.0, shape=(160, 160),
                                   pixel_size=px, dose=200, seed=7)  # fmt: skip
    alone, known = cls.predict(cu, px), cls.predict(cu, px, lattice_constant=3.61)
    res.lines.append(
        f"Simulated Cu (fcc [1, 0, 0], a = 3.61 Å), a square pattern shared with bcc and "
        f"diamond [1, 0, 0] up to scale: from the image alone {alone.prototype} "
        f"{list(alone.zone_axis)} (a = {alone.lattice_constant:.2f} Å); with "
        f"lattice_constant=3.61 {known.prototype} {list(known.zone_axis)} (p = "
        f"{float(np.max(known.probabilities)):.2f})."
    )
    # Two crystals side by side (fcc [110] | bcc [110], 58 Å square): the sliding-window
    # maps show the class change and the uncertainty at the interface.
    left = mc.imaging.simulate_haadf("fcc", (1, 1, 0), 3.61, shape=(480, 240), pixel_size=px,
                                     dose=200, seed=10)  # fmt: skip
    right = mc.imaging.simulate_haadf("bcc", (1, 1, 0), 2.87, rotation_deg=20.0, shape=(480, 240),
                                      pixel_size=px, dose=200, seed=11)  # fmt: skip
    pair = np.hstack([left, right])
    cmap = mc.imaging.classify_map(pair, px, stride=16)
    res.lines.insert(
        0,
        f"{correct} of {len(cases)} simulated HAADF images identified (prototype and zone "
        f"axis); the classifier ships in the package (ONNX) and needs no torch.",
    )
    res.numbers = {
        "correct": correct,
        "n_images": len(cases),
        "predictions": rows,
        "cu_100_image_alone": f"{alone.prototype}{list(alone.zone_axis)}",
        "cu_100_lattice_known": f"{known.prototype}{list(known.zone_axis)}",
        "map_classes": sorted({cmap.classes[int(c)] for c in np.unique(cmap.class_index)}),
    }
    fig = plt.figure(figsize=(15, 7.5))
    top, bottom = fig.subfigures(2, 1)
    axes = top.subplots(1, len(cases))
    for ax, img, row in zip(axes, images, rows):
        ax.imshow(img, cmap="gray")
        ax.set_title(f"{row['true']} -> {row['predicted']}", fontsize=8)
        ax.set_axis_off()
    cmap.plot(pair, fig=bottom)
    res.figure = fig
    return res


JOBS: list[tuple[str, Callable[[], JobResult]]] = [
    ("spectral", _job_spectral),
    ("edx", _job_edx),
    ("imaging", _job_segmentation),
    ("crystal_id", _job_crystal_id),
    ("soap", _job_soap),
    ("nmr_shifts", _job_shifts),
    ("nmr_posterior", _job_posterior),
    ("gp", _job_gp_kernel),
]

NOT_YET: list[str] = []


def _figure_png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def run_demo(out: str | Path, verbose: bool = True) -> Path:
    """Run every available job on synthetic data and write ``out/report.html``.

    Parameters
    ----------
    out : str or pathlib.Path
        Output folder (created if needed). Receives ``report.html`` (self-contained,
        figures embedded), ``report.json`` and one PNG per figure.
    verbose : bool, default True
        Print one line per job.

    Returns
    -------
    pathlib.Path
        The path of ``report.html``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import matchar as mc

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, JobResult] = {}
    skipped: dict[str, str] = {}  # job -> why (the missing optional dependency)
    for name, job in JOBS:
        t0 = time.perf_counter()
        try:
            res = job()
        except MissingDependency as err:
            skipped[name] = str(err)
            plt.close("all")
            if verbose:
                print(f"  [skipped] {name}: {err}")
            continue
        res.seconds = time.perf_counter() - t0
        results[name] = res
        if verbose:
            print(f"  [{res.seconds:5.1f} s] {res.title}: {res.lines[0]}")
    if verbose and NOT_YET:
        print("  not yet available in this version: " + "; ".join(NOT_YET))

    sections = []
    summary: dict[str, Any] = {
        "matchar": mc.__version__,
        "threads": mc.get_num_threads(),
        "jobs": {},
        "not_yet_available": NOT_YET,
        "skipped": skipped,
    }
    for name, res in results.items():
        body = "".join(f"<p>{html.escape(line)}</p>" for line in res.lines)
        if res.figure is not None:
            png = _figure_png(res.figure)
            (out / f"{name}.png").write_bytes(png)
            plt.close(res.figure)
            b64 = base64.b64encode(png).decode()
            body += f'<img alt="{html.escape(res.title)}" src="data:image/png;base64,{b64}">'
        sections.append(
            f"<section><h2>{html.escape(res.title)}</h2>{body}"
            f"<p class='t'>{res.seconds:.1f} s</p></section>"
        )
        summary["jobs"][name] = {"title": res.title, "seconds": res.seconds, **res.numbers}
    missing = "".join(f"<li>{html.escape(x)}</li>" for x in NOT_YET)
    not_run = "".join(f"<li>{html.escape(k)}: {html.escape(v)}</li>" for k, v in skipped.items())
    doc = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>matchar {mc.__version__} demo</title>"
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em}"
        "img{max-width:100%}section{border-top:1px solid #ccc;margin-top:1.5em}"
        ".t{color:#777;font-size:90%}</style></head><body>"
        f"<h1>matchar {mc.__version__} demo</h1>"
        f"<p>{mc.get_num_threads()} thread(s). The jobs ran on built-in synthetic data.</p>"
        + "".join(sections)
        + (f"<section><h2>Skipped</h2><ul>{not_run}</ul></section>" if skipped else "")
        + (f"<section><h2>Not yet available</h2><ul>{missing}</ul></section>" if NOT_YET else "")
        + "</body></html>"
    )
    report = out / "report.html"
    report.write_text(doc, encoding="utf-8")
    (out / "report.json").write_text(json.dumps(summary, indent=2))
    return report
