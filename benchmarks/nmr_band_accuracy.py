"""Posterior error of method="banded" against the exact quadrature on random 8-10-site
problems (5 candidates each, one assignment group), per band half-width.

Run: OMP_NUM_THREADS=2 python benchmarks/nmr_band_accuracy.py [n_problems]
Prints a markdown table (docs/nmr.md, docs/benchmarks.md).
"""

from __future__ import annotations

import pathlib
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).parents[1] / "tests" / "nmr"))
from nmr_reference import random_problem

import matchar as mc

sp = mc.nmr.structure_posterior
KW = dict(assignment="marginalize", return_details=True)


def main(n_problems: int = 200) -> None:
    rng = np.random.default_rng(2026)
    cases = []
    for t in range(n_problems):
        pred, std, y, sig = random_problem(rng, 5, 8 + t % 3)
        cases.append(
            (pred, std, y, sig, sp(pred, std, y, sigma_exp=sig, method="quadrature", **KW))
        )
    print(f"{n_problems} problems, 8-10 sites x 5 candidates, one assignment group\n")
    print("| method | max error | 99th pct | median | max dlogZ (nats) | bands used | time |")
    print("|---|---|---|---|---|---|---|")
    runs = [("bethe", dict(method="bethe", exact_group_size=2))]
    runs += [(f"banded, band={w}", dict(method="banded", band=w)) for w in (1, 2, 3, 4)]
    runs += [("banded, adaptive", dict(method="banded"))]
    for name, kw in runs:
        errs, dz, bands = [], [], []
        t0 = time.perf_counter()
        for pred, std, y, sig, exact in cases:
            r = sp(pred, std, y, sigma_exp=sig, **kw, **KW)
            errs.append(np.abs(r.probabilities - exact.probabilities).max())
            dz.append(np.abs(r.log_evidence - exact.log_evidence).max())
            if r.nuclei["shifts"].band is not None:
                bands.extend(r.nuclei["shifts"].band.ravel().tolist())
        dt = time.perf_counter() - t0
        used = "-" if not bands else f"{min(bands)}-{max(bands)}"
        errs = np.array(errs)
        print(
            f"| {name} | {errs.max():.2g} | {np.quantile(errs, 0.99):.2g} | "
            f"{np.median(errs):.2g} | {max(dz):.2g} | {used} | {dt:.1f} s |"
        )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
