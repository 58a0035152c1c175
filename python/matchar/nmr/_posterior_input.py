"""Input handling of :func:`structure_posterior`: one nucleus's arrays checked, averaged per
peak and scaled into a :class:`_Nucleus` (the problem the evidence kernels take)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import _core
from .._arrays import as_array

_LOG_2PI = math.log(2.0 * math.pi)
_OffsetMode = _core.nmr.OffsetMode
_OFFSET_MODES = {"marginalize": _OffsetMode.Marginal, "fit": _OffsetMode.Profile}
#: Largest magnitude (ppm, after ``slope``) the evidence is computed at, per dtype: larger
#: shifts, standard deviations and offsets are rescaled by a power of two (and the
#: evidence corrected exactly), so that their squares stay finite.
_MAX_SCALE = {np.dtype(np.float64): 1e150, np.dtype(np.float32): 1e15}
#: An ``offset_prior`` std below this fraction of the data's own resolution of the offset
#: (``1 / sqrt(sum_j 1 / var_j)``) is used as a known offset, the limit of the Gaussian
#: prior (the evidence then differs by ~1e-8 nats; the quadrature cannot resolve it).
_DELTA_PRIOR = 1e-4


def _per_nucleus(value: Any, key: str, names: list[str], arg: str) -> Any:
    if isinstance(value, Mapping):
        if key not in value:
            raise ValueError(f"{arg} is a dict without an entry for nucleus {key!r}")
        return value[key]
    return value


def _real_scalar(x: Any, name: str) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real number, got {x!r}") from None
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {x!r}")
    return v


def _parse_offset(
    offset: Any, offset_prior: Any, name: str
) -> tuple[_OffsetMode, float, float, float]:
    if isinstance(offset, str):
        if offset not in _OFFSET_MODES:
            raise ValueError(
                f"{name}: offset must be 'marginalize', 'fit' or a number (a known offset in "
                f"ppm), got {offset!r}"
            )
        mode, value = _OFFSET_MODES[offset], 0.0
    else:
        mode, value = _OffsetMode.Fixed, _real_scalar(offset, f"{name}: offset")
    prior_mean, prior_std = 0.0, math.inf
    if offset_prior is not None:
        if mode != _OffsetMode.Marginal:
            raise ValueError(f"{name}: offset_prior only applies to offset='marginalize'")
        try:
            m, s = offset_prior
        except (TypeError, ValueError):
            raise ValueError(
                f"{name}: offset_prior must be a (mean, std) pair in ppm, got {offset_prior!r}"
            ) from None
        prior_mean = _real_scalar(m, f"{name}: offset_prior mean")
        prior_std = _real_scalar(s, f"{name}: offset_prior std")
        if prior_std <= 0:
            raise ValueError(f"{name}: offset_prior std must be > 0, got {s!r}")
    return mode, value, prior_mean, prior_std


def _labels(x: Any, n: int, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"{name} must be a 1-D array of {n} integer labels, got shape {arr.shape}")
    if arr.dtype.kind not in "iu":
        if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise ValueError(f"{name} must hold integer labels, got dtype {arr.dtype}")
    return arr.astype(np.int64)


@dataclass
class _Nucleus:
    name: str
    mean: np.ndarray  # (n_cand, n_peaks) slope * predicted, averaged per peak
    var: np.ndarray  # (n_cand, n_peaks) slope^2 * std^2
    y: np.ndarray  # (n_peaks,)
    var_exp: np.ndarray  # (n_peaks,)
    assignment_groups: np.ndarray  # (n_peaks,) labels
    kept: np.ndarray
    offset: tuple[int, float, float, float]
    scale: float = 1.0  # ppm values are multiplied by this (a power of two) before the kernels
    log_prior_density: float = 0.0  # a very wide offset prior, computed as a flat one


def _prepare_nucleus(
    name: str,
    predicted: Any,
    predicted_std: Any,
    experimental: Any,
    sigma_exp: Any,
    groups: Any,
    assignment_groups: Any,
    offset: Any,
    offset_prior: Any,
    slope: Any,
    missing: str,
) -> _Nucleus:
    tag = "" if name == "shifts" else f"[{name!r}]"
    pred = as_array(predicted, f"predicted{tag}", ndim=2)
    n_sites = pred.shape[1]
    if np.isinf(pred).any():
        raise ValueError(f"predicted{tag} holds infinite values")
    if predicted_std is None:
        std = np.zeros(pred.shape)
    else:
        std = as_array(predicted_std, f"predicted_std{tag}", ndim=(0, 1, 2))
        try:
            std = np.broadcast_to(std, pred.shape)
        except ValueError:
            raise ValueError(
                f"predicted_std{tag} must be a scalar or have the shape of predicted "
                f"{pred.shape}, got {std.shape}"
            ) from None
        if np.isinf(std).any() or (std < 0).any():
            raise ValueError(f"predicted_std{tag} must be finite and >= 0")
    y = as_array(experimental, f"experimental{tag}", ndim=1).astype(np.float64)
    if np.isinf(y).any():
        raise ValueError(f"experimental{tag} holds infinite values")
    sl = _real_scalar(slope, f"slope{tag}")
    if sl == 0.0:
        raise ValueError(f"slope{tag} must be non-zero (-1 for shieldings, 1 for shifts)")

    # Equivalent sites -> peaks: average the predictions (and, as fully correlated errors,
    # the standard deviations) of the sites of each peak.
    if groups is None:
        site_peak = np.arange(n_sites)
        n_peaks = n_sites
    else:
        site_peak = _labels(groups, n_sites, f"groups{tag}")
        if site_peak.min() < 0:
            raise ValueError(f"groups{tag} labels must be >= 0 (peak indices)")
        n_peaks = int(site_peak.max()) + 1
        if np.bincount(site_peak, minlength=n_peaks).min() == 0:
            raise ValueError(f"groups{tag} must use every peak index 0..{n_peaks - 1}")
    if y.shape[0] != n_peaks:
        what = "sites" if groups is None else "groups (peaks)"
        raise ValueError(
            f"experimental{tag} has {y.shape[0]} shifts but predicted{tag} has {n_peaks} {what}"
        )
    pred64 = pred.astype(np.float64)
    std64 = np.asarray(std, dtype=np.float64)
    if groups is None:
        mu_peak, std_peak = pred64, std64
    else:  # np.add.at keeps a NaN inside its own peak (a matrix product would spread it)
        counts = np.bincount(site_peak, minlength=n_peaks).astype(np.float64)
        mu_peak = np.zeros((pred.shape[0], n_peaks))
        std_peak = np.zeros((pred.shape[0], n_peaks))
        np.add.at(mu_peak, (slice(None), site_peak), pred64)
        np.add.at(std_peak, (slice(None), site_peak), std64)
        mu_peak /= counts
        std_peak /= counts

    if sigma_exp is None:
        sig = np.zeros(n_peaks)
    else:
        sig = np.asarray(as_array(sigma_exp, f"sigma_exp{tag}", ndim=(0, 1)), dtype=np.float64)
        try:
            sig = np.broadcast_to(sig, (n_peaks,)).copy()
        except ValueError:
            raise ValueError(
                f"sigma_exp{tag} must be a scalar or have one entry per peak ({n_peaks}), "
                f"got shape {sig.shape}"
            ) from None
        if not np.all(np.isfinite(sig)) or (sig < 0).any():
            raise ValueError(f"sigma_exp{tag} must be finite and >= 0")

    if assignment_groups is None:
        agroups = np.zeros(n_peaks, dtype=np.int64)
    else:
        agroups = _labels(assignment_groups, n_peaks, f"assignment_groups{tag}")

    # Missing values: a NaN anywhere in a peak (experiment, or any site of it in any
    # candidate) either raises or drops that peak for every candidate alike.
    bad = np.isnan(y) | np.isnan(mu_peak).any(axis=0) | np.isnan(std_peak).any(axis=0)
    if bad.any():
        if missing == "error":
            where = []
            if np.isnan(y).any():
                where.append(f"experimental peaks {np.flatnonzero(np.isnan(y)).tolist()[:10]}")
            for arg, values in (("predicted", mu_peak), ("predicted_std", std_peak)):
                cand, peaks = np.nonzero(np.isnan(values))
                if cand.size:
                    where.append(
                        f"{arg}{tag} (candidate, peak) "
                        + ", ".join(f"({c}, {p})" for c, p in zip(cand[:10], peaks[:10]))
                    )
            raise ValueError(
                f"missing values (NaN) in {name}: {'; '.join(where)}. Pass missing='drop' to "
                "leave these peaks out for every candidate."
            )
        if bad.all():
            raise ValueError(f"every peak of {name} has a missing value; nothing to compare")
    kept = np.flatnonzero(~bad)
    dtype = np.float32 if pred.dtype == np.float32 and std.dtype == np.float32 else np.float64
    off = _parse_offset(offset, offset_prior, name)
    scale = _unit_scale(
        abs(sl),
        (mu_peak[:, kept], std_peak[:, kept]),
        (y[kept], sig[kept], np.array(off[1:3])),
        np.dtype(dtype),
    )
    sls = sl * scale
    mean = sls * mu_peak[:, kept]
    var = (sls * std_peak[:, kept]) ** 2
    var_exp = (scale * sig[kept]) ** 2
    y_kept = scale * y[kept]
    off = (off[0], off[1] * scale, off[2] * scale, off[3] * scale)
    log_prior_density = 0.0
    if off[0] == _OffsetMode.Marginal and math.isfinite(off[3]):
        resolution = 1.0 / math.sqrt(float((1.0 / (var + var_exp[None, :])).sum(axis=1).max()))
        reach = resolution + float(np.abs(y_kept).max()) + float(np.abs(mean).max()) + abs(off[2])
        if off[3] < _DELTA_PRIOR * resolution:
            # far below the data's resolution of the offset: its limit, a known offset
            off = (_OffsetMode.Fixed, off[2], 0.0, math.inf)
        elif off[3] * _DELTA_PRIOR > reach:
            # far wider than any offset the data allow: a flat prior times its density
            log_prior_density = -math.log(off[3] / scale) - 0.5 * _LOG_2PI
            off = (_OffsetMode.Marginal, 0.0, 0.0, math.inf)
    zero = (var == 0.0) & (var_exp[None, :] == 0.0)
    if zero.any():
        c, p = np.argwhere(zero)[0]
        raise ValueError(
            f"{name}: zero variance at candidate {c}, peak {kept[p]}: predicted_std is 0 and "
            "sigma_exp is 0 (or absent); give sigma_exp > 0 (e.g. the typical prediction "
            "error) or positive predicted_std"
        )
    return _Nucleus(
        name,
        mean.astype(dtype),
        var.astype(dtype),
        y_kept,
        var_exp,
        agroups[kept],
        kept,
        off,
        scale,
        log_prior_density,
    )


def _unit_scale(slope: float, model: tuple, data: tuple, dtype: np.dtype) -> float:
    """1.0, or the power of two that brings the largest magnitude of the problem (ppm,
    model values times ``|slope|``) down to ``_MAX_SCALE``, so that variances and squared
    residuals stay finite. Computed on logarithms: nothing here overflows."""
    logs = []
    for arrays, factor in ((model, slope), (data, 1.0)):
        for a in arrays:
            a = np.abs(np.asarray(a, dtype=np.float64))
            a = a[np.isfinite(a) & (a > 0)]
            if a.size and factor > 0:
                logs.append(math.log(float(a.max())) + math.log(factor))
    limit = math.log(_MAX_SCALE[dtype])
    if not logs or max(logs) <= limit:
        return 1.0
    return 2.0 ** math.floor((limit - max(logs)) / math.log(2.0))
