"""Matplotlib views of a StructurePosterior (matplotlib is imported only when plotting)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._plotting import new_axes, set_title, style_axes
from .._validation import check_int


def _axes(ax: Any, figsize: tuple[float, float] = (6.0, 3.8)) -> Any:
    return new_axes(figsize) if ax is None else ax


def plot_posterior(
    result: Any, ax: Any = None, labels: Any = None, sort: bool = True, top: int | None = None
) -> Any:
    """Lollipop chart of posterior probabilities (see StructurePosterior.plot)."""
    ax = _axes(ax)
    p = np.asarray(result.probabilities)
    if labels is None:
        labels = getattr(result, "candidate_names", None)
    names = [str(i) for i in range(p.size)] if labels is None else [str(s) for s in labels]
    if len(names) != p.size:
        raise ValueError(f"labels must have {p.size} entries, got {len(names)}")
    order = np.argsort(-p, kind="stable") if sort else np.arange(p.size)
    if top is not None:
        order = order[: check_int(top, "top", low=1, high=None)]
    x = np.arange(order.size)
    ax.vlines(x, 0.0, p[order], color="0.6", lw=1.5)
    ax.plot(x, p[order], "o", color="C0")
    ax.set_xticks(x)
    long = order.size > 12 or max(len(names[i]) for i in order) * order.size > 60
    ax.set_xticklabels([names[i] for i in order], rotation=90 if long else 0)
    ax.set_ylim(0.0, 1.05)
    style_axes(ax, "candidate", "posterior probability")
    return ax


def plot_parity(result: Any, candidate: int, nucleus: str | None = None, ax: Any = None) -> Any:
    """Experimental vs modelled shifts of one candidate (see StructurePosterior.plot_parity)."""
    if nucleus is None:
        if len(result.nuclei) != 1:
            raise ValueError(f"nucleus must be one of {sorted(result.nuclei)}")
        nucleus = next(iter(result.nuclei))
    terms = result.nuclei[nucleus]
    if terms.offset is None:
        raise ValueError(
            "a parity plot needs a single offset: a given assignment, or a marginalised one "
            "with offset='marginalize' or a known offset"
        )
    c = check_int(candidate, "candidate", low=0, high=terms.model_mean.shape[0] - 1)
    site = np.arange(terms.experimental.size)
    if terms.method != "given":  # each peak against its most probable site
        site = np.argmax(terms.assignment_probabilities[c], axis=1)
    ax = _axes(ax, (4.8, 4.5))
    model = terms.model_mean[c, site] + terms.offset[c]
    ax.errorbar(model, terms.experimental, xerr=terms.model_std[c, site], fmt="o", ms=4, capsize=2)
    lo = float(min(model.min(), terms.experimental.min()))
    hi = float(max(model.max(), terms.experimental.max()))
    ax.plot([lo, hi], [lo, hi], "k--", lw=1)
    names = getattr(result, "candidate_names", None)
    name = names[c] if names else f"candidate {c}"
    style_axes(ax, "predicted shift + offset (ppm)", "experimental shift (ppm)")
    what = "" if nucleus == "shifts" else f" ({nucleus})"
    set_title(ax, f"{name}{what}: P = {result.probabilities[c]:.3g}")
    ax.set_aspect("equal", adjustable="datalim")
    return ax
