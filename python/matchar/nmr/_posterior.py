"""Bayesian posterior over candidate structures from predicted and experimental shifts.

:func:`structure_posterior` and its result, :class:`StructurePosterior`. The pieces live in
sibling modules: input handling in ``_posterior_input.py``, the per-nucleus evidence
(:class:`NucleusTerms`, given and marginalised assignments, the calls into
``_core.nmr``) in ``_posterior_terms.py``, allowed sets in ``_posterior_allowed.py``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from .._arrays import as_array
from .._moved import forward_private
from .._validation import check_float, check_int
from . import _posterior_allowed, _posterior_input, _posterior_terms
from ._posterior_allowed import MAX_ENUMERATED as MAX_ENUMERATED
from ._posterior_allowed import _constrained_assignment, _parse_allowed
from ._posterior_input import _Nucleus, _per_nucleus, _prepare_nucleus
from ._posterior_terms import AUTO_EXACT_GROUP as AUTO_EXACT_GROUP
from ._posterior_terms import BAND_TOLERANCE as BAND_TOLERANCE
from ._posterior_terms import MAX_BAND as MAX_BAND
from ._posterior_terms import (
    MAX_QUADRATURE_GROUP,
    _given_assignment,
    _marginal_assignment,
    _unscale,
)
from ._posterior_terms import NucleusTerms as NucleusTerms

OffsetArg = str | float


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


#: The private helpers moved to the sibling modules, under this module's name as well.
__getattr__ = forward_private(__name__, _posterior_input, _posterior_terms, _posterior_allowed)
