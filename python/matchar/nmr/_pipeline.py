"""End to end: candidate structures -> predicted shieldings ± σ -> posterior."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ._posterior import StructurePosterior, structure_posterior
from ._shift_model import ShiftModel, _as_frames


def rank_candidates(
    candidates: Any,
    experimental: ArrayLike,
    element: str = "H",
    *,
    model: ShiftModel | None = None,
    sigma_exp: float | None = None,
    assignment: str = "marginalize",
    groups: ArrayLike | None = None,
    **posterior_kwargs: Any,
) -> StructurePosterior:
    """Posterior probability of each candidate structure from its predicted shieldings.

    Every candidate's shieldings (ppm) and their calibrated σ come from ``model``
    (default: the shipped ``ShiftModel.pretrained(element)``); the experimental shifts
    are compared through :func:`structure_posterior` with slope −1 and the reference
    offset marginalised, so no shielding reference needs to be known.

    Parameters
    ----------
    candidates : sequence of ase.Atoms
        Candidate structures; each must hold the same number of atoms of ``element``
        (in the same chemical order when ``assignment="given"``).
    experimental : array_like, shape (n_peaks,)
        Experimental shifts (ppm). Without ``groups``, one per atom of ``element``.
    element : str, default "H"
    model : ShiftModel, optional
    sigma_exp : float, optional
        Typical prediction-vs-experiment error (ppm) added in quadrature to the model's
        σ; default 0.33 ppm for ¹H (Engel et al. 2019), 1.9 ppm for ¹³C, else 0.
    assignment : {"marginalize", "given"}, default "marginalize"
    groups : array_like of int, shape (n_sites,), optional
        Peak label of every site (e.g. methyl protons share one peak).
    **posterior_kwargs
        Passed to :func:`structure_posterior` (``prior``, ``method``, ...).

    Returns
    -------
    StructurePosterior
        ``.probabilities`` (n_candidates,), ``.log_evidence``, ``.plot()``.

    Example
    -------
    >>> res = mc.nmr.rank_candidates(frames, shifts_H, "H")   # doctest: +SKIP
    >>> res.probabilities                                     # doctest: +SKIP
    """
    frames = _as_frames(candidates)
    model = ShiftModel.pretrained(element) if model is None else model
    counts = [int((f.numbers == model.z_).sum()) for f in frames]
    if len(set(counts)) != 1:
        raise ValueError(
            f"every candidate must hold the same number of {element} atoms, got {counts}"
        )
    sigma, std = model.predict(frames, return_std=True)
    n = counts[0]
    if sigma_exp is None:
        sigma_exp = {1: 0.33, 6: 1.9}.get(model.z_, 0.0)
    return structure_posterior(
        sigma.reshape(len(frames), n),
        std.reshape(len(frames), n),
        np.asarray(experimental, dtype=np.float64),
        sigma_exp=sigma_exp,
        assignment=assignment,
        groups=groups,
        return_details=True,
        **posterior_kwargs,
    )
