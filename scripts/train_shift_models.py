"""Train (and evaluate) the ShiftModels shipped in python/matchar/nmr/models/.

Data: ../shared/data/CSD-1000R.json.gz (500 CSD molecular crystals, GIPAW CS_total in
ppm). Split by structure with a fixed seed: numpy.random.default_rng(0).permutation(500),
the first 400 structures train, the last 100 test (the same split in docs/nmr.md).

Usage:
    python scripts/train_shift_models.py [--elements H C N O] [--n-sparse N]
        [--data ../shared/data/CSD-1000R.json.gz] [--out python/matchar/nmr/models]
        [--metrics docs/nmr_models.json]

Every model option left out takes ShiftModel's default (docs/nmr.md).

Writes one <element>.npz per element and a JSON file with the held-out metrics.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import matchar as mc

ROOT = Path(__file__).resolve().parents[1]


def split(n_structures: int = 500, n_train: int = 400, seed: int = 0):
    """Structure indices (train, test) of the documented CSD-1000R split."""
    order = np.random.default_rng(seed).permutation(n_structures)
    return np.sort(order[:n_train]), np.sort(order[n_train:])


def evaluate(model, frames, shieldings, z):
    mean, std = model.predict(frames, return_std=True)
    y = np.concatenate([s[f.numbers == z] for f, s in zip(frames, shieldings)])
    err = mean - y
    return {
        "n_test_atoms": len(y),
        "rmse_ppm": float(np.sqrt(np.mean(err**2))),
        "mae_ppm": float(np.mean(np.abs(err))),
        "target_std_ppm": float(np.std(y)),
        "fraction_within_1_sigma": float(np.mean(np.abs(err) <= std)),
        "fraction_within_2_sigma": float(np.mean(np.abs(err) <= 2 * std)),
        "mean_predicted_std_ppm": float(np.mean(std)),
    }


def compression_metrics(model, path: Path) -> dict:
    """What ShiftModel.compress kept: ranks per SOAP block and the error measures (ppm)."""
    g = model.gpr_
    return {
        "compress_ranks": [int(V.shape[1]) for V in g.mean_basis_],
        "compress_error_sparse_ppm": g.mean_error_sparse_,
        "compress_error_bound_ppm": g.mean_error_bound_,
        "file_bytes": path.stat().st_size,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "CSD-1000R.json.gz"))
    p.add_argument("--elements", nargs="+", default=["H", "C", "N", "O"])
    p.add_argument(
        "--n-sparse",
        type=int,
        default=None,
        help="sparse points of the mean (default: ShiftModel's, the full GP up to 25,000)",
    )
    p.add_argument("--n-committee", type=int, default=8)
    p.add_argument(
        "--n-sparse-committee",
        type=int,
        default=None,
        help="sparse points of the committee (the first of the selection; default: "
        "ShiftModel's, 3000)",
    )
    soap_default = mc.nmr.DEFAULT_SOAP
    p.add_argument("--cutoffs", type=float, nargs="+", default=list(soap_default["cutoff"]))
    p.add_argument("--max-radial", type=int, default=soap_default["max_radial"])
    p.add_argument("--max-angular", type=int, default=soap_default["max_angular"])
    p.add_argument(
        "--radial-scaling",
        type=float,
        nargs=3,
        default=list(soap_default["radial_scaling"]),
        metavar=("RADIUS", "RATE", "EXPONENT"),
        help="SOAP radial scaling u(r) = rate / (rate + (r/radius)^exponent) "
        "(default: ShiftModel's, 2.5 1 6)",
    )
    p.add_argument("--no-radial-scaling", action="store_true", help="no radial scaling")
    p.add_argument("--selection", default="fps")
    p.add_argument(
        "--calibration-folds",
        type=int,
        default=None,
        help="k-fold cross-validated calibration over the training structures "
        "(0: calibrate on 10 %% held out; default: ShiftModel's, 5)",
    )
    p.add_argument(
        "--regularizer",
        type=float,
        default=None,
        help="GP noise relative to the spread of the training shieldings "
        "(default: ShiftModel's for the element)",
    )
    p.add_argument(
        "--calibration", default="band", choices=["band", "coverage", "affine", "musil", "ml"]
    )
    p.add_argument(
        "--recalibrate-existing",
        action="store_true",
        help="refit only the calibration of the shipped models (ShiftModel.recalibrate)",
    )
    p.add_argument(
        "--compress-tol",
        type=float,
        default=0.01,
        help="ShiftModel.compress tolerance, ppm (0: do not compress)",
    )
    p.add_argument(
        "--compress-existing",
        action="store_true",
        help="only compress the model files already in --out (no training)",
    )
    p.add_argument("--out", default=str(ROOT / "python" / "matchar" / "nmr" / "models"))
    p.add_argument("--metrics", default=str(ROOT / "docs" / "nmr_models.json"))
    args = p.parse_args()

    frames, shieldings = mc.nmr.load_chemiscope(args.data, "CS_total")
    train, test = split(len(frames))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    metrics = json.loads(Path(args.metrics).read_text()) if Path(args.metrics).exists() else {}
    soap = dict(mc.nmr.DEFAULT_SOAP)
    soap.update(
        cutoff=tuple(args.cutoffs), max_radial=args.max_radial, max_angular=args.max_angular
    )
    soap["radial_scaling"] = tuple(args.radial_scaling)
    if args.no_radial_scaling:
        del soap["radial_scaling"]
    if args.recalibrate_existing:
        tr_frames = [frames[i] for i in train]
        tr_y = [shieldings[i] for i in train]
        te_frames = [frames[i] for i in test]
        te_y = [shieldings[i] for i in test]
        for element in args.elements:
            path = out / f"{element}.npz"
            model = mc.nmr.ShiftModel.load(path).recalibrate(tr_frames, tr_y, args.calibration)
            model.save(path)
            m = metrics.setdefault(element, {})
            m.update(evaluate(mc.nmr.ShiftModel.load(path), te_frames, te_y, model.z_))
            m.update(
                alpha=model.gpr_.alpha_,
                beta=model.gpr_.beta_,
                calibration=args.calibration,
                file_bytes=path.stat().st_size,
            )
            print(element, json.dumps(m), flush=True)
        Path(args.metrics).write_text(json.dumps(metrics, indent=2) + "\n")
        return
    if args.compress_existing:
        for element in args.elements:
            path = out / f"{element}.npz"
            model = mc.nmr.ShiftModel.load(path).compress(args.compress_tol)
            model.save(path)
            metrics.setdefault(element, {}).update(compression_metrics(model, path))
            print(element, metrics[element])
        Path(args.metrics).write_text(json.dumps(metrics, indent=2) + "\n")
        return
    for element in args.elements:
        z = mc.nmr.ShiftModel(element).z_
        tr_frames = [frames[i] for i in train]
        tr_y = [shieldings[i] for i in train]
        t0 = time.perf_counter()
        model = mc.nmr.ShiftModel(
            element,
            soap=soap,
            n_sparse=args.n_sparse,
            n_committee=args.n_committee,
            n_sparse_committee=args.n_sparse_committee,
            calibration_folds=args.calibration_folds,
            selection=args.selection,
            regularizer=args.regularizer,
            calibration=args.calibration,
        ).fit(tr_frames, tr_y)
        t_fit = time.perf_counter() - t0
        path = out / f"{element}.npz"
        if args.compress_tol > 0:
            model.compress(args.compress_tol)
        model.save(path)
        reloaded = mc.nmr.ShiftModel.load(path)
        te_frames = [frames[i] for i in test]
        te_y = [shieldings[i] for i in test]
        m = evaluate(reloaded, te_frames, te_y, z)
        # What storing the sparse points as environments changed, on the test set.
        m["max_abs_change_from_storage_ppm"] = float(
            np.max(np.abs(reloaded.predict(te_frames) - model.predict(te_frames)))
        )
        m.update(
            n_train_environments=model.n_train_environments_,
            n_sparse=len(model.gpr_.X_sparse_),
            n_sparse_committee=int(model.gpr_.n_committee_sparse_),
            alpha=model.gpr_.alpha_,
            beta=model.gpr_.beta_,
            fit_seconds=round(t_fit, 1),
            regularizer=model.gpr_.regularizer,
            calibration=args.calibration,
            file_bytes=path.stat().st_size,
            soap={k: (list(v) if isinstance(v, tuple) else v) for k, v in soap.items()},
        )
        if args.compress_tol > 0:
            m.update(compression_metrics(model, path))
        metrics[element] = m
        print(element, json.dumps(m), flush=True)
        Path(args.metrics).write_text(json.dumps(metrics, indent=2) + "\n")


if __name__ == "__main__":
    main()
