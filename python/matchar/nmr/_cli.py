"""``matchar rank``: the whole structure-determination case from files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np


def add_arguments(rk: argparse.ArgumentParser) -> None:
    """The options of ``matchar rank``."""
    rk.add_argument(
        "candidates",
        help="candidate structures: one file ase reads (e.g. extxyz), one frame per "
        "candidate, any Z; names from each frame's info 'name' (or NAME, label, title)",
    )
    rk.add_argument(
        "--experimental",
        required=True,
        help="CSV of peaks: columns peak,shift,sites (sites: 1-based atom numbers of the "
        "reference molecule; '11,12,13' = equivalent sites of one peak, '4|5' = one of "
        "them, empty = unknown); a one-column file is plain shifts",
    )
    rk.add_argument(
        "--reference",
        default=None,
        help="labelled reference molecule (.xyz/.mol/.sdf); default: the first candidate's "
        "first molecule, atoms numbered in file order",
    )
    rk.add_argument("--element", default="H", help="nucleus (default: %(default)s)")
    rk.add_argument(
        "--sigma-exp",
        type=float,
        default=None,
        help="prediction-vs-experiment error in ppm (default: 0.33 for H, 1.9 for C)",
    )
    rk.add_argument(
        "--assignment",
        choices=["auto", "given", "marginalize"],
        default="auto",
        help="auto: the table's site sets; given: one site per peak; marginalize: ignore "
        "the sites and sum over every assignment (default: %(default)s)",
    )
    rk.add_argument(
        "--groups",
        default=None,
        help="extra groups of equivalent sites: 'rotors' (every XH3 rotor), 'symmetric' "
        "(sites the bond graph cannot tell apart: rotors, ring flips) or '11,12,13;20,21,22'",
    )
    rk.add_argument(
        "--band",
        type=int,
        default=None,
        help="banded permanent half-width for large ambiguous blocks (1-10; default adaptive)",
    )
    rk.add_argument("--model", default=None, help="a ShiftModel .npz (default: the shipped model)")
    rk.add_argument(
        "--top",
        type=int,
        default=3,
        help="parity plots of this many top candidates (default 3; at most all of them)",
    )


def _parse_groups(text: str | None) -> Any:
    if text is None or text in ("rotors", "symmetric"):
        return text
    groups = []
    for part in text.split(";"):
        tokens = [t for t in part.replace(" ", ",").split(",") if t]
        try:
            groups.append([int(t.lstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"))
                           for t in tokens])  # fmt: skip
        except ValueError:
            raise ValueError(
                f"--groups: cannot read {part!r} (1-based atom numbers joined by ',', groups "
                "separated by ';', or 'rotors')"
            ) from None
    return groups


def run(args: argparse.Namespace, frames: list[Any], model: Any, out: Path) -> int:
    """Rank the candidates, write posterior.csv, sites.txt and the figures; print a summary."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import matchar as mc

    if args.top < 1:
        raise ValueError(f"--top must be >= 1 (parity plots), got {args.top}")
    table = mc.nmr.read_shift_table(args.experimental)
    kwargs = {} if args.band is None else {"band": args.band, "method": "banded"}
    res = mc.nmr.rank_candidates(
        frames,
        table,
        args.element,
        model=model,
        sigma_exp=args.sigma_exp,
        assignment=args.assignment,
        groups=_parse_groups(args.groups),
        reference=args.reference,
        **kwargs,
    )
    names = list(res.candidate_names or [str(c) for c in range(len(frames))])
    order = np.argsort(-res.probabilities, kind="stable")
    rank = np.empty(len(order), dtype=int)
    rank[order] = np.arange(1, len(order) + 1)
    rows = ["candidate,name,posterior,log_evidence,rank,molecules"]
    maps = res.site_maps or [None] * len(frames)
    for c, (p, le) in enumerate(zip(res.probabilities, res.log_evidence)):
        z = "" if maps[c] is None else str(maps[c].n_molecules)
        name = names[c].replace('"', "'")
        rows.append(f'{c},"{name}",{p:.6g},{le:.6f},{rank[c]},{z}')
    (out / "posterior.csv").write_text("\n".join(rows) + "\n")
    if res.reference is not None:
        ref = res.reference
        text = [
            f"reference molecule {ref.formula} from {ref.source}",
            ref.describe(args.element),
            "",
            "sites matched to peaks: " + "; ".join(res.site_labels or ()),
        ]
        rotors = ref.rotor_groups(args.element)
        symmetric = ref.symmetry_groups(args.element)
        if args.groups is None and (rotors or symmetric):
            text.append(
                "proposed groups of equivalent sites (each averaged as one peak if accepted): "
                "--groups rotors: "
                + ("; ".join(",".join(ref.labels[k] for k in g) for g in rotors) or "none")
                + " | --groups symmetric: "
                + ("; ".join(",".join(ref.labels[k] for k in g) for g in symmetric) or "none")
            )
        (out / "sites.txt").write_text("\n".join(text) + "\n")
        print(text[0])
        print(text[1])
        if len(text) > 4:
            print(text[4])
    fig, ax = plt.subplots(figsize=(max(4.0, 0.35 * len(frames) + 2.0), 3.5))
    res.plot(ax=ax)
    fig.tight_layout()
    fig.savefig(out / "posterior.png", dpi=100)
    plt.close(fig)
    top = order[: max(1, min(int(args.top), len(frames)))]
    fig, axes = plt.subplots(1, len(top), figsize=(3.6 * len(top), 3.6), squeeze=False)
    for ax, c in zip(axes[0], top):
        res.plot_parity(int(c), ax=ax)
    fig.tight_layout()
    fig.savefig(out / "parity.png", dpi=100)
    plt.close(fig)
    if len(frames) >= 2:
        fig, ax = plt.subplots(figsize=(5.5, 4))
        mc.nmr.candidate_similarity(frames).plot(res.probabilities, ax=ax, labels=names)
        fig.tight_layout()
        fig.savefig(out / "similarity.png", dpi=100)
        plt.close(fig)
    best = int(order[0])
    print(f"most probable: {names[best]} (p = {res.probabilities[best]:.3f}) -> {out}")
    return 0


def run_trajectory(args: argparse.Namespace, model: Any, out: Path) -> int:
    """``matchar shifts --trajectory``: stream every frame, write per-site statistics."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import matchar as mc

    traj = mc.nmr.Trajectory(args.structures, index=args.index)
    res = mc.nmr.predict_trajectory(
        model,
        traj,
        chunk_size=args.chunk_size,
        timestep_fs=args.timestep_fs,
        progress=sys.stderr.isatty(),
    )
    # timestep_fs only when given (no NaN standing for "not given")
    step = {} if res.timestep_fs is None else {"timestep_fs": res.timestep_fs}
    np.savez(
        out / "trajectory_shieldings.npz",
        shielding=res.shielding,
        std=res.std,
        atoms=res.atoms,
        **step,
    )
    tau = res.autocorrelation_time()
    unit = "fs" if res.timestep_fs is not None else "frames"
    rows = [f"atom,element,mean_ppm,fluctuation_ppm,standard_error_ppm,mean_std_ppm,tau_{unit}"]
    for k, a in enumerate(res.atoms):
        rows.append(
            f"{a},{res.element},{res.mean()[k]:.4f},{res.fluctuation()[k]:.4f},"
            f"{res.standard_error()[k]:.4f},{float(res.std[:, k].mean()):.4f},{tau[k]:.4g}"
        )
    (out / "site_statistics.csv").write_text("\n".join(rows) + "\n")
    flagged = res.flagged_frames()
    (out / "flagged_frames.csv").write_text("frame\n" + "".join(f"{int(f)}\n" for f in flagged))
    fig, ax = plt.subplots(figsize=(max(5.0, 0.18 * len(res.atoms) + 2.0), 3.6))
    res.plot_sites(ax=ax)
    fig.tight_layout()
    fig.savefig(out / "site_averages.png", dpi=100)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    res.plot_distributions(ax=ax)
    fig.tight_layout()
    fig.savefig(out / "distributions.png", dpi=100)
    plt.close(fig)
    print(
        f"{res.n_frames} frames x {len(res.atoms)} {res.element} sites; "
        f"{len(flagged)} frames flagged (σ > 2x the site's median) -> {out}"
    )
    return 0
