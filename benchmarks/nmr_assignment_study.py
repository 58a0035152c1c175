"""Calibration and power of the assignment modes on synthetic candidate pools.

Each pool mimics one compound's crystal-structure candidates ranked by one ML model:

- a molecule of ``n_sites`` ¹H sites with shieldings spread over 20-32 ppm;
- every candidate's "DFT" shieldings: the molecule's plus a packing effect per site,
  N(0, tau) (tau = 0.45 ppm: ¹H polymorph differences);
- the ML predictions: DFT plus an error of the model's own calibrated std sigma_ml
  (0.3-0.6 ppm per site), **correlated across candidates** with coefficient ``rho`` (one
  model makes similar errors on the same site of similar packings);
- the experiment: a random true candidate's DFT shieldings, offset, plus N(0, 0.3 ppm).

Modes compared (rank_candidates' ``assignment``):

- ``given``: every peak's site known;
- ``partial``: half the peaks assigned, a third ambiguous among 2-3 sites of similar shift
  (the true one included), the rest unknown (``allowed`` sets);
- ``marginalize``: nothing known, every bijection summed.

Reported per mode and rho: expected calibration error (10 bins, every (candidate, pool)
pair: sum_b n_b/N |frequency_b - mean posterior_b|), top-1 accuracy, median rank of the
true candidate, mean posterior of the true candidate.

Run::

    PYTHONPATH=python python benchmarks/nmr_assignment_study.py --pools 400

(about 4 minutes on 2 cores; ``--pools 100`` for a quick look).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import matchar as mc

MODES = ("given", "partial", "marginalize")


def make_pool(rng, n_cand, n_sites, rho, tau=0.45, sig_exp=0.3):
    base = rng.uniform(20.0, 32.0, n_sites)
    dft = base + rng.normal(0.0, tau, (n_cand, n_sites))
    std = rng.uniform(0.3, 0.6, n_sites) * np.ones((n_cand, 1))
    shared = rng.normal(0.0, 1.0, n_sites)
    own = rng.normal(0.0, 1.0, (n_cand, n_sites))
    err = std * (np.sqrt(rho) * shared + np.sqrt(1.0 - rho) * own)
    pred = dft + err
    t = int(rng.integers(n_cand))
    site_of_peak = rng.permutation(n_sites)  # peak j is site site_of_peak[j]
    y = rng.uniform(-5, 5) + 31.0 - dft[t, site_of_peak] + rng.normal(0.0, sig_exp, n_sites)
    return pred, std, y, sig_exp, t, site_of_peak


def partial_sets(rng, y, site_of_peak, pred_mean):
    """Half assigned, a third ambiguous among 2-3 sites of close predicted shift (truth
    included), the rest unknown."""
    n = len(y)
    n_given, n_ambiguous = n // 2, n // 3
    kinds = np.r_[np.zeros(n_given), np.ones(n_ambiguous), 2 * np.ones(n - n_given - n_ambiguous)]
    kind = rng.permutation(kinds)
    allowed = []
    for j in range(n):
        s = int(site_of_peak[j])
        if kind[j] == 0:
            allowed.append([s])
        elif kind[j] == 1:
            near = np.argsort(np.abs(pred_mean - pred_mean[s]))
            extra = [int(k) for k in near if k != s][: int(rng.integers(1, 3))]
            allowed.append(sorted([s, *extra]))
        else:
            allowed.append(None)
    return allowed


def run(n_pools, n_cand, n_sites, rhos, seed):
    rows = []
    for rho in rhos:
        rng = np.random.default_rng(seed)
        res = {m: ([], [], []) for m in MODES}  # probs, hits, rank
        t0 = time.perf_counter()
        for _ in range(n_pools):
            pred, std, y, sig, t, sop = make_pool(rng, n_cand, n_sites, rho)
            sets = partial_sets(rng, y, sop, pred.mean(axis=0))
            for mode in MODES:
                if mode == "given":
                    yy = np.empty_like(y)
                    yy[sop] = y  # the experiment in site order
                    p = mc.nmr.structure_posterior(pred, std, yy, sigma_exp=sig)
                elif mode == "partial":
                    p = mc.nmr.structure_posterior(
                        pred, std, y, sigma_exp=sig, assignment="marginalize", allowed=sets
                    )
                else:
                    p = mc.nmr.structure_posterior(
                        pred, std, y, sigma_exp=sig, assignment="marginalize"
                    )
                hits = np.zeros(n_cand)
                hits[t] = 1.0
                res[mode][0].append(p)
                res[mode][1].append(hits)
                res[mode][2].append(int((p > p[t]).sum()) + 1)
        dt = time.perf_counter() - t0
        for mode in MODES:
            probs = np.concatenate(res[mode][0])
            hits = np.concatenate(res[mode][1])
            ranks = np.array(res[mode][2])
            idx = np.minimum((probs * 10).astype(int), 9)
            ece = sum(
                (idx == b).sum() / probs.size * abs(hits[idx == b].mean() - probs[idx == b].mean())
                for b in range(10)
                if (idx == b).any()
            )
            p_true = probs[hits == 1]
            rows.append(
                (rho, mode, ece, float((ranks == 1).mean()), float(np.median(ranks)),
                 float(p_true.mean()), dt)
            )  # fmt: skip
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pools", type=int, default=400)
    ap.add_argument("--candidates", type=int, default=20)
    ap.add_argument("--sites", type=int, default=13)
    ap.add_argument("--rho", type=float, nargs="+", default=[0.0, 0.5, 0.8])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rows = run(args.pools, args.candidates, args.sites, args.rho, args.seed)
    print(f"{args.pools} pools x {args.candidates} candidates x {args.sites} sites per row")
    print("| rho | mode | ECE | top-1 | median rank of truth | mean P(truth) |")
    print("|---|---|---|---|---|---|")
    for rho, mode, ece, top1, med, pt, _ in rows:
        print(f"| {rho:.1f} | {mode} | {ece:.3f} | {top1:.2f} | {med:.0f} | {pt:.2f} |")


if __name__ == "__main__":
    main()
