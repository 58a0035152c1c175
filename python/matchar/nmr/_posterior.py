"""Bayesian posterior over candidate structures from predicted and experimental shifts."""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from .. import _core
from .._arrays import as_array
from .._validation import check_float, check_int

_LOG_2PI = math.log(2.0 * math.pi)
_METHODS = {"exact": 0, "quadrature": 1, "bethe": 2, "sampling": 3, "banded": 4}
# (step_factor, tail_nats, max BP iterations, BP tolerance): exact quadrature needs the
# fine grid (error ~exp(-2 pi^2 / 0.7^2) ~ 1e-17); the approximations are far coarser.
# The banded grid (1.5: error ~exp(-2 pi^2 / 1.5^2) ~ 2e-4 relative) is finer than its band error.
_QUADRATURE = {
    1: (0.7, 45.0, 300, 1e-10),
    2: (1.5, 25.0, 100, 1e-7),
    3: (1.5, 25.0, 100, 1e-7),
    4: (1.5, 25.0, 100, 1e-7),
}
_OFFSET_MODES = {"marginalize": 0, "fit": 1}
#: largest assignment group that ``method="quadrature"`` (exact permanents) accepts
MAX_QUADRATURE_GROUP = 20
#: ``method="auto"`` uses exact permanents up to this group size, the banded permanent above
AUTO_EXACT_GROUP = 16
#: ``method="banded"`` with ``band=None``: the half-width w of each group's band grows from 1
#: until the log-permanent (at the heaviest offset node) changes by less than this (nats) ...
BAND_TOLERANCE = 1e-2
#: ... or reaches this value
MAX_BAND = 5

OffsetArg = str | float
#: Largest magnitude (ppm, after ``slope``) the evidence is computed at, per dtype: larger
#: shifts, standard deviations and offsets are rescaled by a power of two (and the
#: evidence corrected exactly), so that their squares stay finite.
_MAX_SCALE = {np.dtype(np.float64): 1e150, np.dtype(np.float32): 1e15}
#: An ``offset_prior`` std below this fraction of the data's own resolution of the offset
#: (``1 / sqrt(sum_j 1 / var_j)``) is used as a known offset, the limit of the Gaussian
#: prior (the evidence then differs by ~1e-8 nats; the quadrature cannot resolve it).
_DELTA_PRIOR = 1e-4


@dataclass(frozen=True)
class NucleusTerms:
    """What one nucleus contributes to the posterior (all shifts in ppm).

    Attributes
    ----------
    log_evidence : numpy.ndarray, shape (n_candidates,)
        ``log p(experimental | candidate)`` for this nucleus, float64.
    site_log_likelihood : numpy.ndarray or None, shape (n_candidates, n_peaks)
        Per-peak contributions ``log N(y_j; b + slope mu_j, var_j)`` at the offset
        ``offset``; they sum to ``log_evidence - offset_log_term``. Large negative values
        mark the peaks that count against a candidate. With a marginalised assignment, the
        posterior expectation over the assignment,
        ``sum_k P(j -> k) log N(y_j; b + slope mu_k, var_jk)`` with ``P`` the
        ``assignment_probabilities`` and ``b`` the posterior-mean ``offset``. ``None`` with
        ``offset="fit"`` and a marginalised assignment.
    offset_log_term : numpy.ndarray or None, shape (n_candidates,)
        ``log_evidence - site_log_likelihood.sum(axis=1)``: the Occam factor of the offset
        (with a marginalised assignment it also holds the assignment's entropy and prior).
    offset : numpy.ndarray or None, shape (n_candidates,)
        Posterior mean (``"marginalize"``), fitted (``"fit"``) or given offset ``b`` in
        ``experimental = b + slope * predicted``; ``None`` where ``site_log_likelihood`` is.
    kept_peaks : numpy.ndarray of int
        Indices of the experimental peaks used (all unless ``missing="drop"`` removed some).
    experimental, model_mean, model_std : numpy.ndarray
        The kept experimental shifts (n_kept,), ``slope * predicted`` averaged per peak
        (n_candidates, n_kept) and the total standard deviation per peak, for plots.
    method : str
        ``"given"``, ``"exact"``, ``"quadrature"``, ``"bethe"``, ``"sampling"`` or
        ``"banded"``; ``"allowed"`` when ``allowed`` sets leave only single pairs that
        are not peak ``j`` to site ``j`` (or several enumerated bijections of them).
    band : numpy.ndarray of int or None, shape (n_candidates, n_assignment_groups)
        ``method="banded"``: the band half-width used per candidate and assignment group
        (groups ordered by decreasing size, ties by label).
    band_change : numpy.ndarray or None, shape (n_candidates, n_assignment_groups)
        ``method="banded"`` with ``band=None``: how much the log-permanent (at the heaviest
        offset node) still changed from ``w - 1`` to ``w`` (nats; below ``BAND_TOLERANCE``
        when converged, 0 when the band holds every permutation, NaN for a fixed band).
    assignment_probabilities : numpy.ndarray or None, shape (n_candidates, n_peaks, n_peaks)
        (A property.) Marginalised assignments: ``P[c, j, k]``, the posterior probability
        under candidate ``c`` that experimental peak ``j`` belongs to predicted site (peak)
        ``k``, averaged over the offset posterior; rows and columns sum to 1 and pairs in
        different ``assignment_groups`` are 0. Exact for ``"exact"`` and ``"quadrature"``
        (computed by the exact quadrature for ``"exact"`` and ``"sampling"``, or by the
        banded permanent for groups over 20 peaks); within the band for ``"banded"``; BP
        beliefs for ``"bethe"``. The identity for ``assignment="given"``; ``None`` with
        ``offset="fit"``.
    """

    log_evidence: np.ndarray
    site_log_likelihood: np.ndarray | None
    offset_log_term: np.ndarray | None
    offset: np.ndarray | None
    kept_peaks: np.ndarray
    experimental: np.ndarray
    model_mean: np.ndarray
    model_std: np.ndarray
    method: str
    band: np.ndarray | None = None
    band_change: np.ndarray | None = None
    _packed: np.ndarray | None = field(default=None, repr=False)
    _packed_index: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    @property
    def assignment_probabilities(self) -> np.ndarray | None:
        """Assignment marginals ``P[c, j, k]`` (n_candidates, n_peaks, n_peaks), float64."""
        n_cand, n = self.model_mean.shape
        if self.method == "given":
            return np.broadcast_to(np.eye(n), (n_cand, n, n)).copy()
        if self._packed is None or self._packed_index is None:
            return None
        out = np.zeros((n_cand, n, n))
        rows, cols = self._packed_index
        out[:, rows, cols] = self._packed
        return out


@dataclass(frozen=True)
class StructurePosterior:
    """Result of :func:`structure_posterior` with ``return_details=True``.

    Attributes
    ----------
    probabilities : numpy.ndarray, shape (n_candidates,)
        Posterior probability of each candidate (sums to 1), float64.
    log_evidence : numpy.ndarray, shape (n_candidates,)
        ``log p(all experimental shifts | candidate)``, summed over nuclei (nats).
    log_prior : numpy.ndarray, shape (n_candidates,)
        The normalised log prior used (``-inf`` for zero prior weight).
    log_posterior : numpy.ndarray, shape (n_candidates,)
        ``log probabilities`` (``-inf`` where the probability is exactly zero).
    nuclei : dict of str to NucleusTerms
        Per-nucleus contributions. A plain-array call has one entry named ``"shifts"``.
    candidate_names : tuple of str or None
        Names of the candidates (:func:`rank_candidates`: from ``atoms.info``), used by the
        plots.
    site_labels : tuple of str or None
        Labels of the predicted sites (columns of ``model_mean``), e.g. ``"H11,H12,H13"``.
    peak_labels : tuple of str or None
        Names of the experimental peaks.
    reference : ReferenceMolecule or None
        The labelled molecule of a molecule-mapped :func:`rank_candidates`.
    site_maps : tuple of SiteMap or None
        Per candidate, its atoms at every reference site (molecule mapping).
    """

    probabilities: np.ndarray
    log_evidence: np.ndarray
    log_prior: np.ndarray
    log_posterior: np.ndarray
    nuclei: dict[str, NucleusTerms] = field(default_factory=dict)
    candidate_names: tuple[str, ...] | None = None
    site_labels: tuple[str, ...] | None = None
    peak_labels: tuple[str, ...] | None = None
    reference: Any = None
    site_maps: tuple[Any, ...] | None = None

    @property
    def site_log_likelihood(self) -> np.ndarray | dict[str, np.ndarray | None] | None:
        """Per-peak contributions: an array for a single nucleus, else a dict per nucleus."""
        if len(self.nuclei) == 1:
            return next(iter(self.nuclei.values())).site_log_likelihood
        return {k: v.site_log_likelihood for k, v in self.nuclei.items()}

    def plot(self, ax: Any = None, labels: Any = None, sort: bool = True, top: int | None = None):
        """Lollipop chart of the posterior probabilities (needs matplotlib).

        Parameters
        ----------
        ax : matplotlib.axes.Axes, optional
            Where to draw; a new figure when omitted.
        labels : sequence of str, optional
            Candidate names (default: ``candidate_names``, else their indices).
        sort : bool, default True
            Most probable candidate first.
        top : int, optional
            Show only this many candidates.

        Returns
        -------
        matplotlib.axes.Axes

        Example
        -------
        >>> import numpy as np, matchar as mc
        >>> res = mc.nmr.structure_posterior([[1.0, 2.0], [1.5, 2.6]], 0.2, [1.1, 2.0],
        ...                                  sigma_exp=0.3, slope=1.0, return_details=True)
        >>> ax = res.plot()
        """
        from ._plots import plot_posterior

        return plot_posterior(self, ax=ax, labels=labels, sort=sort, top=top)

    def plot_parity(self, candidate: int, nucleus: str | None = None, ax: Any = None):
        """Experimental vs predicted shifts of one candidate with ±σ bars.

        With a marginalised assignment each peak is drawn against its most probable site
        (the largest entry of its row of ``assignment_probabilities``).

        Parameters
        ----------
        candidate : int
            Candidate index.
        nucleus : str, optional
            Which nucleus (required when several were combined).
        ax : matplotlib.axes.Axes, optional

        Returns
        -------
        matplotlib.axes.Axes

        Example
        -------
        >>> import matchar as mc
        >>> res = mc.nmr.structure_posterior([[1.0, 2.0]], 0.2, [1.1, 2.0], sigma_exp=0.3,
        ...                                  slope=1.0, return_details=True)
        >>> ax = res.plot_parity(0)
        """
        from ._plots import plot_parity

        return plot_parity(self, candidate, nucleus=nucleus, ax=ax)


# ---------------------------------------------------------------------------
# Input handling
# ---------------------------------------------------------------------------


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


def _parse_offset(offset: Any, offset_prior: Any, name: str) -> tuple[int, float, float, float]:
    if isinstance(offset, str):
        if offset not in _OFFSET_MODES:
            raise ValueError(
                f"{name}: offset must be 'marginalize', 'fit' or a number (a known offset in "
                f"ppm), got {offset!r}"
            )
        mode, value = _OFFSET_MODES[offset], 0.0
    else:
        mode, value = 2, _real_scalar(offset, f"{name}: offset")
    prior_mean, prior_std = 0.0, math.inf
    if offset_prior is not None:
        if mode != 0:
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
    if off[0] == 0 and math.isfinite(off[3]):
        resolution = 1.0 / math.sqrt(float((1.0 / (var + var_exp[None, :])).sum(axis=1).max()))
        reach = resolution + float(np.abs(y_kept).max()) + float(np.abs(mean).max()) + abs(off[2])
        if off[3] < _DELTA_PRIOR * resolution:
            # far below the data's resolution of the offset: its limit, a known offset
            off = (2, off[2], 0.0, math.inf)
        elif off[3] * _DELTA_PRIOR > reach:
            # far wider than any offset the data allow: a flat prior times its density
            log_prior_density = -math.log(off[3] / scale) - 0.5 * _LOG_2PI
            off = (0, 0.0, 0.0, math.inf)
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


def _unscale(terms: NucleusTerms, nuc: _Nucleus) -> NucleusTerms:
    """Terms of a problem computed in units scaled by ``nuc.scale`` back in ppm.

    Densities of n scaled peaks are ``1 / scale**n`` times the original ones; integrating
    the offset over a flat prior (density 1/ppm) gives back one factor ``scale``: the log
    evidence changes by a constant, the probabilities not at all. A very wide Gaussian
    offset prior computed as a flat one adds the log of its density."""
    s = nuc.scale
    if s == 1.0 and nuc.log_prior_density == 0.0:
        return terms
    log_s = math.log(s)
    n = terms.experimental.shape[0]
    flat = nuc.offset[0] == 0 and math.isinf(nuc.offset[3])
    shift = (n - 1 if flat else n) * log_s + nuc.log_prior_density
    site = None if terms.site_log_likelihood is None else terms.site_log_likelihood + log_s
    extra = None if terms.offset_log_term is None else terms.offset_log_term + shift - n * log_s
    return dataclasses.replace(
        terms,
        log_evidence=terms.log_evidence + shift,
        site_log_likelihood=site,
        offset_log_term=extra,
        offset=None if terms.offset is None else terms.offset / s,
        experimental=terms.experimental / s,
        model_mean=terms.model_mean / s,
        model_std=terms.model_std / s,
    )


# ---------------------------------------------------------------------------
# Evidence
# ---------------------------------------------------------------------------


def _given_assignment(nuc: _Nucleus) -> NucleusTerms:
    """Closed form with the peak-site assignment known (docs/nmr.md, eqs. 2-5)."""
    mean = nuc.mean.astype(np.float64)
    v = nuc.var.astype(np.float64) + nuc.var_exp[None, :]
    w = 1.0 / v
    r = nuc.y[None, :] - mean
    c0 = r.mean(axis=1, keepdims=True)  # centring keeps the result offset-invariant
    rc = r - c0
    log_norm = -0.5 * (_LOG_2PI + np.log(v))
    mode, value, prior_mean, prior_std = nuc.offset
    W = w.sum(axis=1)
    S1 = (w * rc).sum(axis=1)
    if mode == 2:
        b = np.full(mean.shape[0], value) - c0[:, 0]
        extra = np.zeros(mean.shape[0])
    elif mode == 1:
        b = S1 / W
        extra = np.zeros(mean.shape[0])
    elif math.isinf(prior_std):
        b = S1 / W
        extra = 0.5 * _LOG_2PI - 0.5 * np.log(W)
    else:
        w0 = prior_std**-2.0  # may underflow to 0 for a huge std: its log does not
        m0 = prior_mean - c0[:, 0]
        b = (S1 + w0 * m0) / (W + w0)
        extra = (
            -0.5 * w0 * (m0 - b) ** 2
            + 0.5 * (-2.0 * math.log(prior_std) - _LOG_2PI)
            + 0.5 * _LOG_2PI
            - 0.5 * np.log(W + w0)
        )
    site = log_norm - 0.5 * w * (rc - b[:, None]) ** 2
    logz = site.sum(axis=1) + extra
    return NucleusTerms(
        log_evidence=logz,
        site_log_likelihood=site,
        offset_log_term=extra,
        offset=b + c0[:, 0],
        kept_peaks=nuc.kept,
        experimental=nuc.y,
        model_mean=mean,
        model_std=np.sqrt(v),
        method="given",
    )


def _marginal_assignment(
    nuc: _Nucleus,
    method: str,
    max_permutations: float,
    exact_group_size: int,
    n_samples: int,
    seed: int,
    band: int | None,
    details: bool,
) -> NucleusTerms:
    labels, sizes = np.unique(nuc.assignment_groups, return_counts=True)
    order_groups = np.argsort(-sizes, kind="stable")  # largest group first
    perm = np.concatenate(
        [np.flatnonzero(nuc.assignment_groups == labels[g]) for g in order_groups]
    )
    gsizes = sizes[order_groups].astype(np.int64)
    log_perms = float(sum(math.lgamma(int(k) + 1) for k in gsizes))
    kmax = int(gsizes.max())
    mode = nuc.offset[0]
    if method == "auto":
        if mode == 1:
            method = "exact"
        else:
            method = "quadrature" if kmax <= AUTO_EXACT_GROUP else "banded"
    if method not in _METHODS:
        raise ValueError(
            "method must be 'auto', 'exact', 'quadrature', 'bethe', 'sampling' or 'banded', "
            f"got {method!r}"
        )
    if method == "exact" and log_perms > math.log(max_permutations):
        raise ValueError(
            f"{nuc.name}: exact enumeration would visit {math.exp(log_perms):.3g} assignments "
            f"(> max_permutations={max_permutations:.3g}); use method='quadrature' (exact "
            "permanents, groups up to 20 sites) or 'banded'"
        )
    if method == "quadrature" and kmax > MAX_QUADRATURE_GROUP:
        raise ValueError(
            f"{nuc.name}: method='quadrature' handles assignment groups of up to "
            f"{MAX_QUADRATURE_GROUP} peaks, got {kmax}; use method='banded'"
        )
    if mode == 1 and method != "exact":
        raise ValueError(
            f"{nuc.name}: offset='fit' with assignment='marginalize' needs method='exact' "
            "(the offset is fitted per assignment); or use offset='marginalize'"
        )
    _, value, prior_mean, prior_std = nuc.offset
    fn = (
        _core.nmr.assignment_log_evidence_f32
        if nuc.mean.dtype == np.float32
        else _core.nmr.assignment_log_evidence_f64
    )
    args = (
        nuc.mean[:, perm],
        nuc.var[:, perm],
        np.ascontiguousarray(nuc.y[perm]),
        np.ascontiguousarray(nuc.var_exp[perm]),
        gsizes,
        mode,
        value,
        prior_mean,
        prior_std,
    )

    def call(name: str, want: bool) -> Any:
        code = _METHODS[name]
        step, tail, iters, tol = _QUADRATURE.get(code, _QUADRATURE[1])
        return fn(
            *args,
            code,
            step,
            tail,
            int(exact_group_size),
            iters,
            tol,
            int(n_samples),
            int(seed),
            band=0 if band is None else int(band),
            band_tolerance=BAND_TOLERANCE,
            max_band=MAX_BAND,
            details=want,
        )

    # Marginals and per-site terms come from the quadrature methods; "exact" and
    # "sampling" take them from the exact quadrature (or the banded one for big groups).
    in_kernel = method in ("quadrature", "bethe", "banded")
    want = details and mode != 1
    logz, marg, site, b_mean, bands, change = call(method, want and in_kernel)
    if want and not in_kernel:
        _, marg, site, b_mean, _, _ = call(
            "quadrature" if kmax <= MAX_QUADRATURE_GROUP else "banded", True
        )
    if method == "banded" and band is None and np.any(change >= BAND_TOLERANCE):
        c, g = np.argwhere(change >= BAND_TOLERANCE)[0]
        warnings.warn(
            f"{nuc.name}: the adaptive band stopped at its cap w={MAX_BAND} before converging "
            f"(candidate {c}: the log-permanent still changed by {change[c, g]:.3g} nats from "
            f"w={MAX_BAND - 1}); the evidence may be too low. Pass a wider band= (matchar "
            "rank --band; slower) and compare.",
            RuntimeWarning,
            stacklevel=3,
        )
    n = nuc.y.shape[0]
    packed_index = site_orig = extra = None
    if marg is not None:
        # packed row of (permuted) peak j: the sites of its group, in (permuted) order
        starts = np.repeat(np.cumsum(gsizes) - gsizes, gsizes)
        reps = gsizes[np.repeat(np.arange(gsizes.size), gsizes)]
        rows = np.repeat(np.arange(n), reps)
        cols = np.concatenate([np.arange(s0, s0 + k) for s0, k in zip(starts, reps)])
        packed_index = (perm[rows], perm[cols])
        site_orig = np.empty_like(site)
        site_orig[:, perm] = site
        extra = logz - site_orig.sum(axis=1)
    return NucleusTerms(
        log_evidence=logz,
        site_log_likelihood=site_orig,
        offset_log_term=extra,
        offset=b_mean,
        kept_peaks=nuc.kept,
        experimental=nuc.y,
        model_mean=nuc.mean.astype(np.float64),
        model_std=np.sqrt(nuc.var.astype(np.float64) + nuc.var_exp[None, :]),
        method=method,
        band=bands if method == "banded" else None,
        band_change=change if method == "banded" else None,
        _packed=marg,
        _packed_index=packed_index,
    )


#: Largest number of peak-site assignments that ``allowed`` sets which are not complete
#: blocks (e.g. peak A in {1, 2}, peak B in {2, 3}) may leave to enumerate.
MAX_ENUMERATED = 100_000


def _parse_allowed(allowed: Any, n: int, name: str) -> np.ndarray:
    """``allowed`` (one entry per peak: None for any site, else an iterable of site indices)
    as a boolean (n_peaks, n_sites) mask."""
    tag = "" if name == "shifts" else f"[{name!r}]"
    try:
        entries = list(allowed)
    except TypeError:
        raise ValueError(f"allowed{tag} must be a sequence with one entry per peak") from None
    if len(entries) != n:
        raise ValueError(f"allowed{tag} must have one entry per peak ({n}), got {len(entries)}")
    mask = np.zeros((n, n), dtype=bool)
    for j, entry in enumerate(entries):
        if entry is None:
            mask[j] = True
            continue
        if isinstance(entry, (int, np.integer)):
            entry = [entry]
        try:
            idx = [int(k) for k in entry]
            if any(int(k) != k for k in entry):
                raise TypeError
        except (TypeError, ValueError):
            raise ValueError(
                f"allowed{tag}[{j}] must be None or a set of site indices, got {entry!r}"
            ) from None
        if not idx:
            raise ValueError(f"allowed{tag}[{j}] is an empty set: peak {j} could be no site")
        bad = [k for k in idx if not 0 <= k < n]
        if bad:
            raise ValueError(f"allowed{tag}[{j}] holds site indices outside 0..{n - 1}: {bad}")
        mask[j, idx] = True
    return mask


def _reduce_allowed(mask: np.ndarray, name: str) -> np.ndarray:
    """Remove the pairs no bijection can use: a peak with one allowed site takes it from every
    other peak (and a site allowed for one peak only takes that peak), until nothing
    changes; then refuse masks without any consistent bijection."""
    import scipy.sparse as sp
    from scipy.sparse.csgraph import maximum_bipartite_matching

    m = mask.copy()
    changed = True
    while changed:
        changed = False
        for j in np.flatnonzero(m.sum(axis=1) == 1):
            k = int(np.argmax(m[j]))
            col = m[:, k].copy()
            col[j] = False
            if col.any():
                m[col, k] = False
                changed = True
        for k in np.flatnonzero(m.sum(axis=0) == 1):
            j = int(np.argmax(m[:, k]))
            if m[j].sum() > 1:
                m[j] = False
                m[j, k] = True
                changed = True
    match = maximum_bipartite_matching(sp.csr_matrix(m.astype(np.int8)), perm_type="column")
    if (m.sum(axis=1) == 0).any() or (match < 0).any():
        j = int(np.flatnonzero((m.sum(axis=1) == 0) | (match < 0))[0])
        raise ValueError(
            f"{name}: no assignment of peaks to sites is consistent with the allowed sets "
            f"(peak {j} is left without a site: two peaks claim the same single site, or "
            "more peaks than sites share a set)"
        )
    return m


def _matchings(block: np.ndarray, limit: int) -> list[np.ndarray]:
    """Every perfect matching of a boolean square ``block`` (row -> column), up to ``limit``."""
    n = block.shape[0]
    out: list[np.ndarray] = []
    cols = [np.flatnonzero(block[r]) for r in range(n)]
    used = np.zeros(n, dtype=bool)
    cur = np.zeros(n, dtype=np.int64)

    def rec(r: int) -> None:
        if len(out) > limit:
            return
        if r == n:
            out.append(cur.copy())
            return
        for c in cols[r]:
            if not used[c]:
                used[c] = True
                cur[r] = c
                rec(r + 1)
                used[c] = False

    rec(0)
    return out


def _constrained_assignment(nuc: _Nucleus, mask: np.ndarray, run: Any) -> NucleusTerms:
    """Evidence summed over the bijections peak -> site allowed by ``mask`` (uniform prior).

    The mask is reduced (forced pairs propagated) and split into connected blocks; a block
    where every peak may take every site is an assignment group of the permanent kernels
    (``run``), a single pair is a given assignment, and the bijections of the remaining
    (incomplete) blocks are enumerated, each one a kernel call; the log-evidences combine by
    log-sum-exp over them minus the log of their number."""
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    n = mask.shape[0]
    m = _reduce_allowed(mask, nuc.name)
    big = sp.bmat([[None, sp.csr_matrix(m)], [sp.csr_matrix(m.T), None]])
    _, lab = connected_components(big, directed=False)
    rows_lab, cols_lab = lab[:n], lab[n:]
    complete, incomplete = [], []
    for comp in np.unique(rows_lab):
        R = np.flatnonzero(rows_lab == comp)
        C = np.flatnonzero(cols_lab == comp)
        (complete if m[np.ix_(R, C)].all() else incomplete).append((R, C))
    per_block = []
    total = 1
    for R, C in incomplete:
        found = _matchings(m[np.ix_(R, C)], MAX_ENUMERATED)
        total *= len(found)
        if total > MAX_ENUMERATED:
            raise ValueError(
                f"{nuc.name}: the allowed sets leave more than {MAX_ENUMERATED} assignments "
                "that are not blocks of interchangeable peaks to enumerate; give narrower "
                "sets, or sets shared by whole groups of peaks"
            )
        per_block.append(found)

    def terms_for(choice: tuple[np.ndarray, ...]) -> tuple[NucleusTerms, np.ndarray]:
        # position of every peak: its site (pairs), or the sites of its block in order
        pos = np.empty(n, dtype=np.int64)
        groups = np.empty(n, dtype=np.int64)
        label = 0
        for R, C in complete:
            pos[R] = C
            groups[C] = label
            label += 1
        for (R, C), sel in zip(incomplete, choice):
            pos[R] = C[sel]
            for c in C[sel]:
                groups[c] = label
                label += 1
        y = np.empty_like(nuc.y)
        ve = np.empty_like(nuc.var_exp)
        y[pos] = nuc.y
        ve[pos] = nuc.var_exp
        sub = dataclasses.replace(nuc, y=y, var_exp=ve, assignment_groups=groups)
        if label == n:
            return _given_assignment(sub), pos
        return run(sub), pos

    import itertools

    results = [terms_for(ch) for ch in itertools.product(*per_block)]
    logz = np.stack([t.log_evidence for t, _ in results])  # (n_choices, n_cand)
    top = logz.max(axis=0)
    w = np.exp(logz - top)
    total_w = w.sum(axis=0)
    combined = top + np.log(total_w) - math.log(len(results))
    w = w / total_w
    # back to peak order; mixtures over the enumerated choices, weighted per candidate
    n_cand = logz.shape[1]
    site = (
        np.zeros((n_cand, n))
        if all(t.site_log_likelihood is not None for t, _ in results)
        else None
    )
    offset = np.zeros(n_cand) if all(t.offset is not None for t, _ in results) else None
    probs = (
        np.zeros((n_cand, n, n))
        if all(t.assignment_probabilities is not None for t, _ in results)
        else None
    )
    for (t, pos), wk in zip(results, w):
        if site is not None:
            site += wk[:, None] * t.site_log_likelihood[:, pos]
        if offset is not None:
            offset += wk * t.offset
        if probs is not None:
            probs += wk[:, None, None] * t.assignment_probabilities[:, pos, :]
    extra = None if site is None else combined - site.sum(axis=1)
    packed = index = None
    if probs is not None:
        rows, cols = np.nonzero(m)
        packed, index = probs[:, rows, cols], (rows, cols)
    first = results[0][0]
    if all(t.method == "given" for t, _ in results):
        identity = len(results) == 1 and np.array_equal(results[0][1], np.arange(n))
        method = "given" if identity else "allowed"
    else:
        method = first.method
    return NucleusTerms(
        log_evidence=combined,
        site_log_likelihood=site,
        offset_log_term=extra,
        offset=offset,
        kept_peaks=nuc.kept,
        experimental=nuc.y,
        model_mean=first.model_mean,
        model_std=np.sqrt(nuc.var.astype(np.float64) + nuc.var_exp[None, :]),
        method=method,
        _packed=packed,
        _packed_index=index,
    )


def structure_posterior(
    predicted: ArrayLike | Mapping[str, ArrayLike],
    predicted_std: ArrayLike | Mapping[str, ArrayLike] | float | None,
    experimental: ArrayLike | Mapping[str, ArrayLike],
    sigma_exp: float | ArrayLike | Mapping[str, Any] | None = None,
    assignment: str | Mapping[str, str] = "given",
    groups: ArrayLike | Mapping[str, ArrayLike] | None = None,
    prior: ArrayLike | None = None,
    *,
    assignment_groups: ArrayLike | Mapping[str, ArrayLike] | None = None,
    allowed: Any = None,
    offset: OffsetArg | Mapping[str, OffsetArg] = "marginalize",
    offset_prior: tuple[float, float] | Mapping[str, Any] | None = None,
    slope: float | Mapping[str, float] = -1.0,
    method: str = "auto",
    missing: str = "error",
    max_permutations: float = 4e7,
    exact_group_size: int = 8,
    n_samples: int = 2000,
    seed: int = 0,
    band: int | None = None,
    return_details: bool = False,
) -> np.ndarray | StructurePosterior:
    """Posterior probability of each candidate structure given experimental NMR shifts.

    The model (derived in ``docs/nmr.md``): for each nucleus, experimental shift ``y_j``
    of peak ``j`` is ``b + slope * p_j + e_j`` with ``p_j`` the candidate's prediction
    (averaged over the equivalent sites of the peak), ``b`` a reference offset shared by
    all peaks of the nucleus and ``e_j ~ N(0, slope² σ_pred,j² + σ_exp,j²)``. With
    ``slope=-1`` (default) the predictions are *shieldings* and ``δ = b - σ`` (``b`` is
    the reference shielding); with ``slope=1`` they are shifts and ``b`` is a small
    referencing correction. The offset is integrated out analytically (flat prior, or
    Gaussian ``offset_prior``), fitted, or fixed. Nuclei combine as independent terms,
    each with its own offset. Everything is computed in log space.

    Parameters
    ----------
    predicted : array_like, shape (n_candidates, n_sites), or dict of str to such arrays
        Predicted shieldings (``slope=-1``) or shifts (``slope=1``) in ppm; a dict keyed by
        nucleus (e.g. ``{"H": ..., "C": ...}``) combines nuclei. float32 or float64.
        NaN marks a missing site (see ``missing``).
    predicted_std : array_like or float or None (or dict)
        Predicted standard deviations in ppm, broadcast to ``predicted``'s shape; ``None``
        means 0 (then ``sigma_exp`` must be > 0).
    experimental : array_like, shape (n_peaks,) (or dict)
        Experimental shifts in ppm. ``n_peaks = n_sites`` without ``groups``.
    sigma_exp : float or array_like of shape (n_peaks,) or dict, optional
        Extra standard deviation per peak in ppm (the typical prediction-vs-experiment
        error, e.g. ~0.3 ppm for ¹H, ~2 ppm for ¹³C). Default 0.
    assignment : {"given", "marginalize"} or dict
        ``"given"``: peak ``j`` belongs to site (group) ``j``. ``"marginalize"``: sum over
        every assignment of peaks to sites within ``assignment_groups``, uniform prior.
    groups : array_like of int, shape (n_sites,), optional (or dict)
        Peak index of each site, for equivalent sites (e.g. the three methyl protons)
        whose predictions are averaged (their σ too, as fully correlated errors).
    prior : array_like, shape (n_candidates,), optional
        Non-negative prior weights of the candidates (normalised here); default uniform.
    assignment_groups : array_like of int, shape (n_peaks,), optional (or dict)
        With ``assignment="marginalize"``: peaks with the same label may be permuted among
        each other (e.g. CH₃ vs aromatic). Default: all peaks of a nucleus in one group.
    allowed : sequence of (None or iterable of int), one per peak, optional (or dict)
        Partial assignment knowledge, with ``assignment="marginalize"``: ``allowed[j]``
        holds the sites (peak indices after ``groups``, 0-based) that experimental peak
        ``j`` may belong to: one site (assigned), a few (ambiguous) or ``None`` (any site).
        The evidence sums over the bijections consistent with every set, uniform prior.
        Blocks of peaks that share one set are summed by the permanent kernels of
        ``method``; the rest (overlapping sets) are enumerated (at most
        ``MAX_ENUMERATED`` = 100,000 assignments). Not combined with ``assignment_groups``
        or ``missing="drop"``.
    offset : {"marginalize", "fit"} or float (or dict)
        How to treat the offset ``b`` (ppm): integrate it out (Bayesian evidence, the
        default), maximise the likelihood over it (profile likelihood, per assignment), or
        a known value (a full global calibration together with ``slope``).
    offset_prior : (mean, std) or dict, optional
        Gaussian prior on ``b`` in ppm when marginalising; default flat (density 1/ppm).
        A std far below what the shifts resolve of ``b`` (< 1e-4 of
        ``1 / sqrt(sum_j 1 / var_j)``) is taken as its limit: ``b`` known, ``= mean``; one
        far wider than the shifts (> 1e4 times their largest magnitude) as a flat prior
        times its density ``1 / (std sqrt(2 pi))``.
    slope : float or dict, default -1.0
        Fixed slope between predictions and experimental shifts (``-1`` for shieldings,
        ``1`` for shifts, or a calibrated value such as ``-1.02``).
    method : {"auto", "exact", "quadrature", "bethe", "sampling", "banded"}
        For marginalised assignments. ``"exact"``: enumerate every assignment with the
        offset integral done analytically for each (``∏ k_g!`` terms, at most
        ``max_permutations``). ``"quadrature"``: offset integrated by a trapezoid rule
        fine enough to be exact to ~1e-15 relative, times exact permanents (subset dynamic
        programming; groups of up to 20 peaks). ``"bethe"``: the same quadrature with the
        Bethe permanent (belief propagation) for groups larger than ``exact_group_size``,
        an approximation for large problems (a lower bound; its error is measured in
        ``docs/nmr.md``). ``"sampling"``: importance sampling of whole assignments with the
        Bethe marginals as proposal and the offset integrated analytically per sample
        (unbiased for the evidence, ``n_samples`` per candidate, reproducible by ``seed``).
        ``"banded"``: the same quadrature with a banded permanent: peaks sorted by
        experimental shift and sites by predicted shift, only the assignments that move no
        peak more than ``band`` ranks from its sorted position are summed (exactly, by
        dynamic programming in C++); a lower bound that converges quickly as the band
        widens (measured in ``docs/nmr.md``: within 0.007 of exact at ``band=3`` on 8-10
        sites). ``"auto"``: ``"quadrature"`` up to 16 peaks per group, else ``"banded"``
        (``"exact"`` when ``offset="fit"``).
    missing : {"error", "drop"}
        What a NaN in ``predicted``, ``predicted_std`` or ``experimental`` does: raise, or
        drop the affected peak for *every* candidate (so evidences stay comparable).
    max_permutations : float, default 4e7
        Largest number of assignments ``method="exact"`` enumerates per candidate (>= 1;
        ``inf``: no limit).
    exact_group_size : int, default 8
        ``method="bethe"``: groups up to this size (0 to 20) still use exact permanents.
    n_samples, seed : int
        ``method="sampling"``: assignments drawn per candidate (1 to 2**31 - 1), and the
        random seed (0 to 2**64 - 1).
    band : int, optional
        ``method="banded"``: the half-width ``w`` of the band (1 to 10; cost grows as
        ``4^w``). Default: per candidate and group, ``w`` grows from 1 at the heaviest offset
        node until the log-permanent changes by less than ``BAND_TOLERANCE`` (0.01 nats), up
        to ``MAX_BAND`` (5); the widths used are in ``NucleusTerms.band``.
    return_details : bool, default False
        Return a :class:`StructurePosterior` instead of the probabilities alone. With a
        marginalised assignment it also holds the assignment marginals
        (``NucleusTerms.assignment_probabilities``) and the per-peak contributions as their
        posterior expectation (``site_log_likelihood``); this costs about twice the time.

    Returns
    -------
    probabilities : numpy.ndarray, shape (n_candidates,), float64
        Or a :class:`StructurePosterior` with the log-evidence per candidate and nucleus
        and the per-peak contributions (``return_details=True``).

    Raises
    ------
    ValueError
        Naming the argument: shape mismatches, NaN with ``missing="error"``, negative σ,
        zero total variance (σ_pred = 0 and no σ_exp), bad labels, an unknown option,
        too many permutations for ``"exact"``.

    Example
    -------
    >>> import numpy as np, matchar as mc
    >>> exp = np.array([1.2, 3.4, 7.1])                    # measured ¹H shifts (ppm)
    >>> pred = np.array([[30.1, 27.9, 24.2],               # shieldings, candidate 0
    ...                  [29.0, 28.5, 24.0]])              # candidate 1
    >>> p = mc.nmr.structure_posterior(pred, 0.2, exp, sigma_exp=0.3)
    >>> p.round(3)
    array([0.996, 0.004])
    """
    n_samples = check_int(n_samples, "n_samples", low=1)
    seed = check_int(seed, "seed", low=0, high=2**64 - 1)
    exact_group_size = check_int(
        exact_group_size, "exact_group_size", low=0, high=MAX_QUADRATURE_GROUP
    )
    max_permutations = check_float(max_permutations, "max_permutations", low=1.0, allow_inf=True)
    if band is not None and not (isinstance(band, int | np.integer) and 1 <= band <= 10):
        raise ValueError(f"band must be None (adaptive) or an integer in [1, 10], got {band!r}")
    if missing not in ("error", "drop"):
        raise ValueError(f"missing must be 'error' or 'drop', got {missing!r}")
    multi = isinstance(predicted, Mapping)
    if multi:
        names = list(predicted)
        if not names:
            raise ValueError("predicted is an empty dict; give at least one nucleus")
        for arg, val in (("predicted_std", predicted_std), ("experimental", experimental)):
            if isinstance(val, Mapping) and set(val) != set(names):
                raise ValueError(
                    f"{arg} must have the same nuclei as predicted {sorted(names)}, "
                    f"got {sorted(val)}"
                )
        if not isinstance(experimental, Mapping):
            raise ValueError("experimental must be a dict per nucleus when predicted is one")
    else:
        names = ["shifts"]
        if isinstance(experimental, Mapping):
            raise ValueError("experimental is a dict but predicted is not")
        predicted = {"shifts": predicted}
        experimental = {"shifts": experimental}
        predicted_std = {"shifts": predicted_std}
        for arg, val in (
            ("sigma_exp", sigma_exp),
            ("groups", groups),
            ("assignment_groups", assignment_groups),
            ("allowed", allowed),
            ("offset", offset),
            ("offset_prior", offset_prior),
            ("slope", slope),
            ("assignment", assignment),
        ):
            if isinstance(val, Mapping):
                raise ValueError(f"{arg} is a dict but predicted is a single array")

    terms: dict[str, NucleusTerms] = {}
    n_cand = None
    for name in names:
        nuc = _prepare_nucleus(
            name,
            predicted[name],
            _per_nucleus(predicted_std, name, names, "predicted_std"),
            experimental[name],
            _per_nucleus(sigma_exp, name, names, "sigma_exp"),
            _per_nucleus(groups, name, names, "groups"),
            _per_nucleus(assignment_groups, name, names, "assignment_groups"),
            _per_nucleus(offset, name, names, "offset"),
            _per_nucleus(offset_prior, name, names, "offset_prior"),
            _per_nucleus(slope, name, names, "slope"),
            missing,
        )
        if n_cand is None:
            n_cand = nuc.mean.shape[0]
        elif nuc.mean.shape[0] != n_cand:
            raise ValueError(
                f"predicted[{name!r}] has {nuc.mean.shape[0]} candidates, but an earlier "
                f"nucleus has {n_cand}"
            )
        how = _per_nucleus(assignment, name, names, "assignment")
        sets = _per_nucleus(allowed, name, names, "allowed")
        if sets is not None:
            tag = "" if name == "shifts" else f"[{name!r}]"
            if how != "marginalize":
                raise ValueError(
                    f"allowed{tag} needs assignment='marginalize' (a peak with one allowed "
                    "site is a given assignment)"
                )
            if _per_nucleus(assignment_groups, name, names, "assignment_groups") is not None:
                raise ValueError(f"give allowed{tag} or assignment_groups{tag}, not both")
            if len(nuc.kept) != len(nuc.y) or missing == "drop":
                raise ValueError(f"allowed{tag} cannot be combined with missing='drop'")
            mask = _parse_allowed(sets, len(nuc.y), name)

            def run(sub: _Nucleus) -> NucleusTerms:
                return _marginal_assignment(
                    sub, method, max_permutations, exact_group_size, n_samples, seed, band,
                    return_details,
                )  # fmt: skip

            terms[name] = _unscale(_constrained_assignment(nuc, mask, run), nuc)
        elif how == "given":
            terms[name] = _unscale(_given_assignment(nuc), nuc)
        elif how == "marginalize":
            terms[name] = _unscale(
                _marginal_assignment(
                    nuc,
                    method,
                    max_permutations,
                    exact_group_size,
                    n_samples,
                    seed,
                    band,
                    return_details,
                ),
                nuc,
            )
        else:
            raise ValueError(f"assignment must be 'given' or 'marginalize', got {how!r}")
    assert n_cand is not None

    if prior is None:
        log_prior = np.full(n_cand, -math.log(n_cand))
    else:
        pr = np.asarray(as_array(prior, "prior", ndim=1), dtype=np.float64)
        if pr.shape[0] != n_cand:
            raise ValueError(f"prior must have one weight per candidate ({n_cand}), got {pr.shape}")
        if not np.all(np.isfinite(pr)) or (pr < 0).any() or pr.sum() <= 0:
            raise ValueError("prior must hold finite, non-negative weights with a positive sum")
        with np.errstate(divide="ignore"):
            log_prior = np.log(pr / pr.sum())
    log_evidence = np.sum([t.log_evidence for t in terms.values()], axis=0)
    joint = log_prior + log_evidence
    finite = np.isfinite(joint)
    if not finite.any():
        raise ValueError(
            "every candidate has zero posterior weight (zero prior or a likelihood that "
            "underflows even in log space)"
        )
    top = joint[finite].max()
    shifted = np.where(finite, joint - top, -np.inf)
    log_post = shifted - np.log(np.exp(shifted).sum())
    probs = np.exp(log_post)
    if not return_details:
        return probs
    return StructurePosterior(probs, log_evidence, log_prior, log_post, terms)
