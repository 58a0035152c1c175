"""Evaluate matchar's shipped crystal classifier on fresh simulated data.

    OMP_NUM_THREADS=2 python scripts/evaluate_crystal_classifier.py --n 2400 --write

Test sets (all drawn with a seed the training never used, continuous random parameters,
so no window repeats a training window):

* held-out: 12 classes balanced, a ~ U(2.5, 5.4) Å, rotation ~ U(0, 360)°, dose
  log-uniform 50-5000 e/pixel, thermal sigma 0.03-0.1 Å (fixed per sub-batch), no
  scan distortion;
* low dose: the same at 20 e/pixel (320 e/Å^2 at 0.25 Å/pixel);
* distortion: 5% scan distortion (jitter 0.05 a per line, 5% shear and stretch), 1000 e/px;
* each of the three sets also with the lattice constant known (the true a passed as
  ``lattice_constant`` with the default 5% tolerance): "lattice_known";
* stacked grains: windows through the microscope nuisance model (1000 e/px) with a second
  grain of the same crystal at another rotation on top along the beam (thickness fraction
  0.15-0.45; fcc [110]: two thirds at the Σ3 twin rotation);
* bicrystals: two grains meeting on a vertical boundary, 0.12 Å/pixel, classify_map with
  the default window (16 Å) and stride; mean uncertainty of windows centred within 1 nm
  of the boundary over that of windows whose whole 16 Å field lies inside one grain;
  the same for boundaries between two grains of one class (a Σ5 boundary in bcc [100] Fe,
  a Σ3 twin boundary in fcc [110]), pairs/2 of each.

--write stores the numbers in python/matchar/imaging/models/crystal_classifier.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

import matchar as mc
from matchar.imaging._classifier import LATTICE_TOLERANCE as LATTICE_TOL
from matchar.imaging._dataset import A_RANGE, WindowGenerator
from matchar.imaging._lookalike import LOOKALIKE_GROUPS
from matchar.imaging._lookalike import column_spacing as column_spacing
from matchar.imaging._simulate import ZONE_AXES

#: Classes whose projected column patterns coincide up to scale and rotation (the same
#: 2-D lattice with equal columns): only the absolute spacing tells them apart, and the
#: lattice-constant ranges overlap, so no image-based classifier can separate them fully.
DEGENERATE = [list(group) for group in LOOKALIKE_GROUPS]


def image_alone_limit(a_range: tuple[float, float]) -> dict:
    """The best accuracy any classifier can reach from the image alone on balanced
    classes with a ~ U(a_range): within a look-alike group only the spacing d = k a tells
    the classes apart (k: :func:`column_spacing`), so the Bayes rule takes the class with
    the highest density of d, 1 / (k (hi - lo)) on [k lo, k hi]. Returns the limit of each
    group (their mean accuracy) and of all 12 classes."""
    lo, hi = a_range
    out, total = {}, 0.0
    for members in DEGENERATE:
        k = np.array([column_spacing(*m) for m in members])
        edges = np.unique(np.concatenate([k * lo, k * hi]))
        mid = 0.5 * (edges[1:] + edges[:-1])
        inside = (mid[None, :] >= (k * lo)[:, None]) & (mid[None, :] <= (k * hi)[:, None])
        density = np.where(inside, 1.0 / (k * (hi - lo))[:, None], 0.0)
        acc = float(np.sum(density.max(axis=0) * np.diff(edges)) / len(members))
        out[" / ".join(f"{p}{list(z)}" for p, z in members)] = acc
        total += acc * len(members)
    n_alone = len(ZONE_AXES) - sum(len(m) for m in DEGENERATE)
    out["all_classes"] = (total + n_alone) / len(ZONE_AXES)
    return out


def pattern_groups() -> np.ndarray:
    group = np.arange(len(ZONE_AXES))
    for members in DEGENERATE:
        idx = [ZONE_AXES.index(m) for m in members]
        group[idx] = idx[0]
    return group


def evaluate_windows(clf, gen: WindowGenerator, n: int, **kw) -> dict:
    classes = np.arange(n) % len(ZONE_AXES)
    imgs, cls, a, rot = [], [], [], []
    for part, thermal in zip(np.array_split(np.arange(n), 4), (0.03, 0.05, 0.08, 0.1)):
        x, c, aa, r = gen.sample(len(part), classes=classes[part], thermal=thermal, **kw)
        imgs.append(x)
        cls.append(c)
        a.append(aa)
        rot.append(r)
    x, cls, a, rot = (np.concatenate(v) for v in (imgs, cls, a, rot))
    out = clf.predict_windows(x)
    s = clf._summarize(out)
    res = scores(cls, a, rot, gen.order, *(s[key] for key in SUMMARY_KEYS))
    # The same windows when the user knows the lattice constant (predict(...,
    # lattice_constant=a), default tolerance): what separates the look-alike classes.
    with warnings.catch_warnings():  # windows no class fits warn; they are scored like the rest
        warnings.simplefilter("ignore", UserWarning)
        known = [
            clf._summarize(
                {key: v[i : i + 1] for key, v in out.items()}, clf._prior(a[i], LATTICE_TOL)
            )
            for i in range(len(a))
        ]
    k, lat, r, u = (np.concatenate([d[key] for d in known]) for key in SUMMARY_KEYS)
    res["lattice_known"] = scores(cls, a, rot, gen.order, k, lat, r, u)
    return res


#: What CrystalClassifier._summarize returns, in the order scores() takes it.
SUMMARY_KEYS = ("class", "lattice_constant", "rotation_deg", "uncertainty")


def scores(cls, a, rot, order, k, lattice, rotation, uncertainty) -> dict:
    """Accuracies and errors of predictions (class ``k``, ``lattice`` Å, ``rotation``
    degrees, ``uncertainty`` nats) against the truth (``cls``, ``a``, ``rot``); ``order``
    (n_classes,) is each class's rotational order (rotation errors modulo 360°/order)."""
    ok = k == cls
    grp = pattern_groups()
    unique = [i for i in range(len(grp)) if np.sum(grp == grp[i]) == 1]
    period = 360.0 / np.asarray(order)[cls]
    drot = np.abs((rotation - rot + period / 2) % period - period / 2)
    lat = np.abs(lattice / a - 1.0) * 100
    per_class = {  # classes the set holds
        f"{p}{list(z)}": float(ok[cls == i].mean())
        for i, (p, z) in enumerate(ZONE_AXES)
        if (cls == i).any()
    }
    return {
        "n": len(cls),
        "class_accuracy": float(ok.mean()),
        "pattern_accuracy": float((grp[k] == grp[cls]).mean()),
        "class_accuracy_non_degenerate": float(ok[np.isin(cls, unique)].mean()),
        "lattice_mae_percent_correct": float(lat[ok].mean()) if ok.any() else None,
        "lattice_mae_percent_all": float(lat.mean()),
        "rotation_mae_deg_correct": float(drot[ok].mean()) if ok.any() else None,
        "per_class_accuracy": per_class,
        # mean class accuracy of each look-alike group, to set beside image_alone_limit
        "look_alike_group_accuracy": {
            " / ".join(f"{p}{list(z)}" for p, z in members): float(
                np.mean([per_class[f"{p}{list(z)}"] for p, z in members])
            )
            for members in DEGENERATE
            if all(f"{p}{list(z)}" in per_class for p, z in members)
        },
        "mean_uncertainty": float(np.mean(uncertainty)),
    }


def bicrystal(pair, a, rots, seed, ps=0.12, size=400):
    (p1, z1), (p2, z2) = pair
    kw = dict(shape=(size, size), pixel_size=ps, dose=1000, thermal_sigma=0.05)
    g1 = mc.imaging.simulate_haadf(p1, z1, a[0], rotation_deg=rots[0], seed=seed, **kw)
    g2 = mc.imaging.simulate_haadf(p2, z2, a[1], rotation_deg=rots[1], seed=seed + 1, **kw)
    col = np.arange(size)
    img = np.where(col[None, :] < size // 2, g1, g2)
    return img, (size // 2 - 0.5)


def evaluate_bicrystals(clf, n_pairs: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    near, inside = [], []
    ps = 0.12
    for i in range(n_pairs):
        c1, c2 = rng.choice(len(ZONE_AXES), 2, replace=True)
        pair = (ZONE_AXES[c1], ZONE_AXES[c2])
        a = rng.uniform(3.0, 5.0, 2)
        rots = rng.uniform(0, 360, 2)
        img, xb = bicrystal(pair, a, rots, seed + 10 * i, ps)
        m = mc.imaging.classify_map(img, ps, classifier=clf)
        d = np.abs(m.centers[..., 1] - xb) * ps  # Å from the boundary
        half = m.window * ps / 2
        near.append(m.uncertainty[d <= 10.0])
        inside.append(m.uncertainty[d > half + 1.0])
    near_m = float(np.mean(np.concatenate(near)))
    inside_m = float(np.mean(np.concatenate(inside)))
    return {
        "pairs": n_pairs,
        "uncertainty_within_1nm": near_m,
        "uncertainty_inside_grains": inside_m,
        "ratio": near_m / inside_m,
    }


#: Boundaries between two grains of one crystal: (name, class, lattice constant in Å,
#: misorientation in degrees): a Σ5 [100] tilt boundary in bcc Fe (the class of a real Fe
#: grain-boundary image) and a Σ3 twin boundary in an fcc [110] crystal at a = 3.6 Å.
SAME_CLASS_BOUNDARIES = (
    ("bcc[1, 0, 0] Fe, sigma5", ("bcc", (1, 0, 0)), 2.87, 36.87),
    ("fcc[1, 1, 0] a=3.6, sigma3 twin", ("fcc", (1, 1, 0)), 3.6, 70.53),
)


def evaluate_same_class_bicrystals(clf, n_pairs: int, seed: int) -> dict:
    """As :func:`evaluate_bicrystals`, for ``n_pairs`` bicrystals of each entry of
    ``SAME_CLASS_BOUNDARIES`` (random rotation of the first grain, the second at the
    misorientation): where the class is the same on both sides."""
    rng = np.random.default_rng(seed)
    ps = 0.12
    res = {}
    for name, cls, a, mis in SAME_CLASS_BOUNDARIES:
        near, inside = [], []
        for i in range(n_pairs):
            r0 = rng.uniform(0, 360)
            img, xb = bicrystal((cls, cls), (a, a), (r0, r0 + mis), seed + 10 * i, ps)
            with warnings.catch_warnings():  # the boundary's own FFT streak is not a lattice
                warnings.simplefilter("ignore", UserWarning)
                m = mc.imaging.classify_map(img, ps, classifier=clf)
            d = np.abs(m.centers[..., 1] - xb) * ps
            near.append(m.uncertainty[d <= 10.0])
            inside.append(m.uncertainty[d > m.window * ps / 2 + 1.0])
        near_m = float(np.mean(np.concatenate(near)))
        inside_m = float(np.mean(np.concatenate(inside)))
        res[name] = {
            "pairs": n_pairs,
            "uncertainty_within_1nm": near_m,
            "uncertainty_inside_grains": inside_m,
            "ratio": near_m / inside_m,
        }
    return res


def add_model_arguments(ap: argparse.ArgumentParser) -> None:
    """``--write`` and ``--model`` of both evaluation scripts."""
    ap.add_argument("--write", action="store_true", help="store results in the model JSON")
    ap.add_argument(
        "--model",
        help="evaluate this ONNX graph (its JSON beside it) instead of the shipped one",
    )


def classifier_from_args(ap: argparse.ArgumentParser, args, modality: str):
    """The classifier to evaluate: ``--model`` if given, else the shipped one."""
    if args.model and args.write:
        ap.error("--write stores results for the shipped model only; drop --model")
    if args.model:
        return mc.imaging.CrystalClassifier(args.model)
    return mc.imaging.CrystalClassifier.default(modality)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2400)
    ap.add_argument("--pairs", type=int, default=12)
    ap.add_argument("--seed", type=int, default=777)
    add_model_arguments(ap)
    args = ap.parse_args(argv)
    clf = classifier_from_args(ap, args, "haadf")
    t0 = time.perf_counter()
    gen = WindowGenerator(args.seed)
    dose = np.exp(gen.rng.uniform(np.log(50), np.log(5000)))
    res = {"held_out": evaluate_windows(clf, gen, args.n, dose=dose, distortion=0.0)}
    res["held_out"]["dose"] = float(dose)
    res["low_dose_20e_per_pixel"] = evaluate_windows(
        clf, gen, args.n // 2, dose=20.0, distortion=0.0
    )
    res["distortion_5_percent"] = evaluate_windows(
        clf, gen, args.n // 2, dose=1000.0, distortion=0.05
    )
    # windows with a second grain of the same crystal stacked along the beam (inclined
    # grain or twin boundaries; for fcc [110] two thirds Σ3 twins), through the nuisance model
    stacked = WindowGenerator(args.seed + 1, nuisance=True, stacked=1.0)
    res["stacked_grains"] = evaluate_windows(clf, stacked, args.n // 2, dose=1000.0)
    res["bicrystals"] = evaluate_bicrystals(clf, args.pairs, args.seed)
    res["same_class_bicrystals"] = evaluate_same_class_bicrystals(clf, args.pairs // 2, args.seed)
    res["class_accuracy_limit_image_alone"] = image_alone_limit(A_RANGE)
    res["command"] = "OMP_NUM_THREADS=2 python scripts/evaluate_crystal_classifier.py " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    res["seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(res, indent=2))
    if args.write:
        path = Path(__file__).resolve().parents[1] / "python/matchar/imaging/models"
        meta_path = path / "crystal_classifier.json"
        meta = json.loads(meta_path.read_text())
        meta["evaluation"] = res
        meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
