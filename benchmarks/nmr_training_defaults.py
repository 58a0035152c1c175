"""ShiftModel trained with its defaults on CSD-1000R: accuracy, time and memory.

Two parts:

``scan``
    How the default ``regularizer`` of each element was chosen: the 400 training
    structures of the documented split (``numpy.random.default_rng(0)``) split again
    by ``default_rng(1)``, 320 to fit and 80 to validate; the full GP on the default
    SOAP features, one Cholesky factorisation per value. The 100 test structures are
    not read.

``splits``
    ``ShiftModel(element).fit(400 structures)`` with every default, then the RMSE and
    the fractions of errors within 1σ and 2σ on the other 100, for the split seeds
    given (seed 0 is the split of the shipped models, docs/nmr.md). Each fit runs in a
    fresh process, whose wall time and peak resident memory are recorded.

Usage (from the repository root)::

    OMP_NUM_THREADS=2 python benchmarks/nmr_training_defaults.py scan --elements H C N O
    OMP_NUM_THREADS=2 python benchmarks/nmr_training_defaults.py splits --elements C H \\
        --seeds 1 2 3

Writes ``benchmarks/results/nmr_training_defaults-<date>-<commit>.json``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import command_line, write_results

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "CSD-1000R.json.gz"


def _split(seed: int, n: int = 500, n_train: int = 400):
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[:n_train]), np.sort(order[n_train:])


def _targets(frames, shieldings, z):
    return np.concatenate([s[f.numbers == z] for f, s in zip(frames, shieldings)])


def scan(elements: list[str], data: Path, grid: dict[str, list[float]]) -> list[dict]:
    """Validation RMSE of the full GP per regularizer (the selection of the defaults)."""
    import scipy.linalg

    import matchar as mc
    from matchar.gp._linalg import _cholesky_in_place, _full_kernel

    frames, shieldings = mc.nmr.load_chemiscope(data, "CS_total")
    train, _ = _split(0, len(frames))
    inner = np.random.default_rng(1).permutation(len(train))
    fit_idx, val_idx = np.sort(train[inner[:320]]), np.sort(train[inner[320:]])
    rows = []
    for element in elements:
        model = mc.nmr.ShiftModel(element)
        fit_frames = [frames[i] for i in fit_idx]
        val_frames = [frames[i] for i in val_idx]
        X = model.features(fit_frames)
        Xv = model.features(val_frames)
        y = _targets(fit_frames, [shieldings[i] for i in fit_idx], model.z_)
        yv = _targets(val_frames, [shieldings[i] for i in val_idx], model.z_)
        kernel = model._kernel(X.shape[1])
        t0 = time.perf_counter()
        K = _full_kernel(kernel, X)
        Kv = np.asarray(kernel(Xv, X), dtype=np.float64)
        scale, mean = float(np.std(y)), float(np.mean(y))
        for reg in grid.get(element, grid["default"]):
            L = K.copy()
            L[np.diag_indices_from(L)] += reg**2
            L = _cholesky_in_place(L)  # blockwise, no further n x n copy
            w = scipy.linalg.solve_triangular(L, (y - mean) / scale, lower=True)
            w = scipy.linalg.solve_triangular(L, w, lower=True, trans="T")
            del L
            rmse = float(np.sqrt(np.mean((Kv @ w * scale + mean - yv) ** 2)))
            row = {
                "element": element,
                "regularizer": reg,
                "validation_rmse_ppm": rmse,
                "n_fit_environments": len(X),
                "n_validation_environments": len(Xv),
            }
            print(json.dumps(row), flush=True)
            rows.append(row)
        print(f"{element}: scan took {time.perf_counter() - t0:.0f} s", flush=True)
        del K, Kv, X, Xv
    return rows


def one_split(element: str, seed: int, data: Path) -> dict:
    """Train with the defaults on one split and evaluate on its test structures."""
    import matchar as mc

    frames, shieldings = mc.nmr.load_chemiscope(data, "CS_total")
    train, test = _split(seed, len(frames))
    t0 = time.perf_counter()
    model = mc.nmr.ShiftModel(element).fit(
        [frames[i] for i in train], [shieldings[i] for i in train]
    )
    fit_s = time.perf_counter() - t0
    te_frames = [frames[i] for i in test]
    mean, std = model.predict(te_frames, return_std=True)
    err = mean - _targets(te_frames, [shieldings[i] for i in test], model.z_)
    return {
        "element": element,
        "split_seed": seed,
        "rmse_ppm": float(np.sqrt(np.mean(err**2))),
        "fraction_within_1_sigma": float(np.mean(np.abs(err) <= std)),
        "fraction_within_2_sigma": float(np.mean(np.abs(err) <= 2 * std)),
        "n_test_atoms": len(err),
        "n_train_environments": int(model.n_train_environments_),
        "n_sparse_mean": int(model.n_sparse_mean_),
        "fit_seconds": round(fit_s, 1),
        "total_seconds": round(time.perf_counter() - t0, 1),
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("mode", choices=["scan", "splits", "one"])
    p.add_argument("--elements", nargs="+", default=["C", "H"])
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--grid", type=float, nargs="+", help="regularizers to scan (scan only)")
    args = p.parse_args(argv)
    if args.mode == "one":  # the child process of "splits"
        print(json.dumps(one_split(args.elements[0], args.seeds[0], args.data)), flush=True)
        return 0
    if args.mode == "scan":
        grid = {
            "H": [0.08, 0.12, 0.16, 0.24],
            "C": [0.02, 0.03, 0.045],
            "default": [0.02, 0.03, 0.05, 0.08],
        }
        if args.grid:
            grid = {"default": args.grid}
        rows = scan(args.elements, args.data, grid)
    else:
        rows = []
        for element in args.elements:
            for seed in args.seeds:
                t0 = time.perf_counter()
                out = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "one",
                        "--elements",
                        element,
                        "--seeds",
                        str(seed),
                        "--data",
                        str(args.data),
                    ],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                row = json.loads(out.stdout.strip().splitlines()[-1])
                row["process_seconds"] = round(time.perf_counter() - t0, 1)
                print(json.dumps(row), flush=True)
                rows.append(row)
        for element in args.elements:
            r = np.array([row["rmse_ppm"] for row in rows if row["element"] == element])
            print(f"{element}: RMSE {r.mean():.3f} ± {r.std(ddof=1) if len(r) > 1 else 0:.3f} ppm")
    write_results(f"nmr_training_defaults_{args.mode}", rows, command=command_line())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
