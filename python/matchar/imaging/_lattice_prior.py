"""What the user knows of the lattice constant (``lattice_constant`` and
``lattice_tolerance`` of the crystal classifier): per-class bounds, the reweighting of the
class probabilities by them, and the warnings when the image disagrees."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from ._classifier_checks import _warn

#: Default relative tolerance of a known lattice constant (``lattice_tolerance``).
LATTICE_TOLERANCE = 0.05


def _lattice_range(value: Any, name: str) -> tuple[float, float]:
    """(lo, hi) in Å from a number or a (lo, hi) pair, validated."""
    shape = () if isinstance(value, (bool, str, bytes)) else np.shape(value)
    if isinstance(value, (bool, str, bytes)) or shape not in ((), (2,)):
        raise TypeError(f"{name} must be a number or a (min, max) pair in Å, got {value!r}")
    try:
        lo, hi = (float(value), float(value)) if shape == () else map(float, value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must hold numbers (Å), got {value!r}") from exc
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo <= hi):
        raise ValueError(f"{name} must be finite and > 0 Å, with min <= max, got {value!r}")
    return lo, hi


def _lattice_prior(
    lattice_constant: Any, tolerance: float, prototypes: list[str]
) -> tuple[np.ndarray, np.ndarray, float] | None:
    """Per-class bounds (log Å) of a known lattice constant, or None without one.

    Classes of prototypes that a dict leaves out get empty bounds (NaN): excluded.
    """
    if lattice_constant is None:
        return None
    try:
        tol = float(tolerance)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"lattice_tolerance must be a number, got {tolerance!r}") from exc
    if not (math.isfinite(tol) and 0 < tol <= 1):
        raise ValueError(f"lattice_tolerance must be in (0, 1] (relative), got {tolerance!r}")
    n = len(prototypes)
    lo, hi = np.full(n, np.nan), np.full(n, np.nan)
    if isinstance(lattice_constant, dict):
        unknown = sorted(set(map(str, lattice_constant)) - set(prototypes))
        if unknown or not lattice_constant:
            raise ValueError(
                f"lattice_constant keys must be prototypes among {sorted(set(prototypes))}, "
                f"got {sorted(map(str, lattice_constant))}"
            )
        for c, proto in enumerate(prototypes):
            if proto in lattice_constant:
                lo[c], hi[c] = _lattice_range(
                    lattice_constant[proto], f"lattice_constant[{proto!r}]"
                )
    else:
        lo[:], hi[:] = _lattice_range(lattice_constant, "lattice_constant")
    return np.log(lo), np.log(hi), tol


_MISFIT = (
    "no class's predicted lattice constant is within 3 tolerances of the given lattice constant"
)


def _apply_lattice_prior(
    probs_mc: np.ndarray,
    log_a: np.ndarray,
    prior: tuple[np.ndarray, np.ndarray, float],
    warn: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities (N, T, C) reweighted by how well each class's predicted
    lattice constant fits the known one: ``p_c exp(-d_c² / (2 tol²))``, ``d_c`` the
    distance of ``log a_c`` from the known log range (0 inside), then renormalised.
    Also returns the (N,) mask of the rows that no class fits within 3 tolerances (a
    warning names how many when ``warn``)."""
    llo, lhi, tol = prior

    def log_weight(la: np.ndarray) -> np.ndarray:  # NaN bounds (excluded classes): -inf
        d = np.maximum(llo - la, 0.0) + np.maximum(la - lhi, 0.0)
        return np.where(np.isnan(llo), -np.inf, -0.5 * np.square(d / tol))

    la = np.asarray(log_a, dtype=np.float64)
    logw = log_weight(la)
    misfit = log_weight(la.mean(axis=1)).max(axis=-1) < -4.5  # no class within 3 tol
    if warn and misfit.any():
        warnings.warn(
            f"for {int(misfit.sum())} of {len(misfit)} windows/patterns {_MISFIT}; they get "
            "the class that fits it best",
            UserWarning,
            stacklevel=4,
        )
    lp = np.log(np.clip(probs_mc, 1e-30, None)) + logw
    lp -= lp.max(axis=-1, keepdims=True)
    p = np.exp(lp)
    return p / p.sum(axis=-1, keepdims=True), misfit


def _given_text(lattice_constant: Any, prototype: str | None) -> str:
    """The known lattice constant as the user gave it, for messages ("2.87 Å")."""

    def one(v: Any) -> str:
        lo, hi = _lattice_range(v, "lattice_constant")
        return f"{lo:.3g} Å" if lo == hi else f"{lo:.3g}-{hi:.3g} Å"

    if not isinstance(lattice_constant, dict):
        return one(lattice_constant)
    if prototype is not None and prototype in lattice_constant:
        return f"{prototype} {one(lattice_constant[prototype])}"
    return ", ".join(f"{k} {one(v)}" for k, v in lattice_constant.items())


def _prior_deviation(
    a: np.ndarray, k: np.ndarray, prior: tuple[np.ndarray, np.ndarray, float]
) -> np.ndarray:
    """Relative distance of lattice constants ``a`` (Å) from the known range of their
    class ``k`` (0 inside; NaN for classes the prior excludes)."""
    lo, hi = np.exp(prior[0][k]), np.exp(prior[1][k])
    return np.maximum(lo - a, 0.0) / lo + np.maximum(a - hi, 0.0) / hi


def warn_prior(
    protos: list[str], a: np.ndarray, k: np.ndarray, measured: np.ndarray, misfit: np.ndarray,
    prior: tuple[np.ndarray, np.ndarray, float], lattice_constant: Any,
) -> None:  # fmt: skip
    """One warning when the lattice constants reported (measured, else the network's)
    disagree with the known one beyond the tolerance, or no class fitted it (``protos``:
    the prototype of each class)."""
    tol = prior[2]
    dev = np.nan_to_num(_prior_deviation(a, k, prior), nan=0.0)
    off = dev > tol
    n = len(a)
    tail = ""
    if misfit.any():
        tail = f"; {_MISFIT}" + (
            f" for {int(misfit.sum())} of {n} windows: they get" if n > 1
            else ": the image gets"
        ) + " the class that fits it best"  # fmt: skip
    if not off.any():
        if tail:
            _warn(tail[2].upper() + tail[3:])
        return
    if n == 1:
        src = "measured from the image" if measured[0] else "read by the network"
        _warn(
            f"lattice constant {src}, {a[0]:.2f} Å, differs from the given "
            f"{_given_text(lattice_constant, protos[int(k[0])])} by {dev[0]:.0%} "
            f"(tolerance {tol:.0%}): check the pixel size or the material{tail}"
        )
        return
    med = int(np.argsort(dev[off])[len(dev[off]) // 2])
    src = "measured from the image" if measured[off].all() else (
        "(measured, or read by the network in windows with too few lattice peaks)"
    )  # fmt: skip
    _warn(
        f"lattice constant {src} differs from the given "
        f"{_given_text(lattice_constant, None)} by more than {tol:.0%} in "
        f"{int(off.sum())} of {n} windows (median {float(np.median(a[off])):.2f} Å, "
        f"{dev[off][med]:.0%} off): check the pixel size or the material{tail}"
    )
