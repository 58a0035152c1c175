"""What one nucleus contributes to the posterior: :class:`NucleusTerms`, and the evidence
with the peak-site assignment given (closed form) or marginalised (the C++ kernels of
``_core.nmr``, ``cpp/src/nmr/assignment*.cpp``)."""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import _core
from ._posterior_input import _LOG_2PI, _Nucleus, _OffsetMode

_Method = _core.nmr.AssignmentMethod
_METHODS = {
    "exact": _Method.Enumerate,
    "quadrature": _Method.Quadrature,
    "bethe": _Method.Bethe,
    "sampling": _Method.Sampling,
    "banded": _Method.Banded,
}
# (step_factor, tail_nats, max BP iterations, BP tolerance): exact quadrature needs the
# fine grid (error ~exp(-2 pi^2 / 0.7^2) ~ 1e-17); the approximations are far coarser.
# The banded grid (1.5: error ~exp(-2 pi^2 / 1.5^2) ~ 2e-4 relative) is finer than its band error.
_QUADRATURE = {
    _Method.Quadrature: (0.7, 45.0, 300, 1e-10),
    _Method.Bethe: (1.5, 25.0, 100, 1e-7),
    _Method.Sampling: (1.5, 25.0, 100, 1e-7),
    _Method.Banded: (1.5, 25.0, 100, 1e-7),
}
#: largest assignment group that ``method="quadrature"`` (exact permanents) accepts
MAX_QUADRATURE_GROUP = 20
#: ``method="auto"`` uses exact permanents up to this group size, the banded permanent above
AUTO_EXACT_GROUP = 16
#: ``method="banded"`` with ``band=None``: the half-width w of each group's band grows from 1
#: until the log-permanent (at the heaviest offset node) changes by less than this (nats) ...
BAND_TOLERANCE = 1e-2
#: ... or reaches this value
MAX_BAND = 5


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
    flat = nuc.offset[0] == _OffsetMode.Marginal and math.isinf(nuc.offset[3])
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
    if mode == _OffsetMode.Fixed:
        b = np.full(mean.shape[0], value) - c0[:, 0]
        extra = np.zeros(mean.shape[0])
    elif mode == _OffsetMode.Profile:
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
        if mode == _OffsetMode.Profile:
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
    if mode == _OffsetMode.Profile and method != "exact":
        raise ValueError(
            f"{nuc.name}: offset='fit' with assignment='marginalize' needs method='exact' "
            "(the offset is fitted per assignment); or use offset='marginalize'"
        )
    _, value, prior_mean, prior_std = nuc.offset
    offset = _core.nmr.OffsetSpec(
        mode=mode, value=value, prior_mean=prior_mean, prior_std=prior_std
    )
    args = (
        nuc.mean[:, perm],
        nuc.var[:, perm],
        np.ascontiguousarray(nuc.y[perm]),
        np.ascontiguousarray(nuc.var_exp[perm]),
        gsizes,
        offset,
    )

    def call(name: str, want: bool) -> Any:
        kernel_method = _METHODS[name]
        step, tail, iters, tol = _QUADRATURE.get(kernel_method, _QUADRATURE[_Method.Quadrature])
        options = _core.nmr.QuadratureOptions(
            step_factor=step,
            tail_nats=tail,
            exact_group_size=int(exact_group_size),
            max_bp_iterations=iters,
            bp_tolerance=tol,
            n_samples=int(n_samples),
            seed=int(seed),
            band=0 if band is None else int(band),
            band_tolerance=BAND_TOLERANCE,
            max_band=MAX_BAND,
        )
        # dispatches on the dtype of mean (float32 or float64)
        return _core.nmr.assignment_log_evidence(*args, kernel_method, options, details=want)

    # Marginals and per-site terms come from the quadrature methods; "exact" and
    # "sampling" take them from the exact quadrature (or the banded one for big groups).
    in_kernel = method in ("quadrature", "bethe", "banded")
    want = details and mode != _OffsetMode.Profile
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
