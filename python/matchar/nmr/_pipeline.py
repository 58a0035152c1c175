"""End to end: candidate structures -> predicted shieldings ± σ -> posterior."""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass
class CandidateMap:
    """Similarity of candidate structures (see :func:`candidate_similarity`).

    Attributes
    ----------
    kernel : numpy.ndarray, shape (n_candidates, n_candidates)
        Normalised polynomial kernel between structure-averaged SOAP vectors, 1 on the
        diagonal; ``1 - kernel`` is a squared-distance-like dissimilarity.
    coordinates : numpy.ndarray, shape (n_candidates, 2)
        Kernel-PCA embedding (the two leading components of the centred kernel).
    explained : numpy.ndarray, shape (2,)
        Fraction of the centred kernel's trace carried by each coordinate.
    """

    kernel: np.ndarray
    coordinates: np.ndarray
    explained: np.ndarray

    def plot(
        self,
        probabilities: ArrayLike | None = None,
        ax: Any = None,
        labels: Any = None,
    ) -> Any:
        """Scatter plot of the embedding, coloured (and sized) by posterior probability.

        Parameters
        ----------
        probabilities : array_like, shape (n_candidates,), optional
            E.g. ``structure_posterior(...)`` or ``rank_candidates(...).probabilities``.
        ax : matplotlib Axes, optional
        labels : sequence of str, optional
            Text next to every point (default: the candidate index).

        Returns
        -------
        matplotlib Axes
        """
        if ax is None:
            import matplotlib.pyplot as plt

            _, ax = plt.subplots(figsize=(5, 4))
        n = len(self.coordinates)
        names = [str(i) for i in range(n)] if labels is None else [str(s) for s in labels]
        if len(names) != n:
            raise ValueError(f"labels must have {n} entries, got {len(names)}")
        x, y = self.coordinates[:, 0], self.coordinates[:, 1]
        if probabilities is None:
            ax.scatter(x, y, s=30, color="C0")
        else:
            p = np.asarray(probabilities, dtype=np.float64)
            if p.shape != (n,):
                raise ValueError(f"probabilities must have shape ({n},), got {p.shape}")
            order = np.argsort(p)  # most probable drawn last (on top)
            sc = ax.scatter(
                x[order], y[order], c=p[order], s=20 + 200 * p[order], cmap="viridis",
                vmin=0.0, vmax=max(float(p.max()), 1e-12), edgecolors="k", linewidths=0.5,
            )  # fmt: skip
            ax.figure.colorbar(sc, ax=ax, label="posterior probability")
        for i in range(n):
            ax.annotate(
                names[i], (x[i], y[i]), fontsize=7, xytext=(3, 3), textcoords="offset points"
            )
        ax.set_xlabel(f"kernel PC 1 ({100 * self.explained[0]:.0f} %)")
        ax.set_ylabel(f"kernel PC 2 ({100 * self.explained[1]:.0f} %)")
        ax.set_title("candidate similarity (structure-averaged SOAP)", fontsize=9)
        return ax


def candidate_similarity(candidates: Any, soap: Any = None, zeta: int = 2) -> CandidateMap:
    """A similarity map of candidate structures: kernel PCA of structure-averaged SOAP.

    Every structure is described by the mean of its atoms' SOAP power spectra (all
    centres, all species); the kernel between structures is the normalised polynomial
    kernel of these means; kernel PCA (scikit-learn, precomputed kernel) gives 2-D
    coordinates in which similar packings lie close. Colour it by a posterior to see
    whether the probable candidates form one family (see :meth:`CandidateMap.plot`).

    Parameters
    ----------
    candidates : sequence of ase.Atoms
        At least 2 structures.
    soap : matchar.atoms.SOAP, optional
        Default: ``SOAP(cutoff=5.0, max_radial=6, max_angular=4)`` over the species of
        all candidates.
    zeta : int, default 2

    Returns
    -------
    CandidateMap
        ``.kernel`` (n, n), ``.coordinates`` (n, 2), ``.explained``, ``.plot()``.

    Example
    -------
    >>> from ase.build import molecule
    >>> import matchar as mc
    >>> frames = [molecule("CH3CH2OH"), molecule("CH3OCH3"), molecule("CH3CH2OH")]
    >>> frames[2].positions += 0.01
    >>> m = mc.nmr.candidate_similarity(frames)
    >>> m.coordinates.shape, round(float(m.kernel[0, 2]), 6)
    ((3, 2), 1.0)
    """
    from sklearn.decomposition import KernelPCA

    from .._validation import check_int
    from ..atoms import SOAP
    from ..gp import polynomial_kernel

    zeta = check_int(zeta, "zeta", low=1)
    frames = _as_frames(candidates)
    if len(frames) < 2:
        raise ValueError(f"candidate_similarity needs at least 2 candidates, got {len(frames)}")
    if soap is None:
        species = sorted({int(z) for f in frames for z in f.numbers})
        soap = SOAP(cutoff=5.0, max_radial=6, max_angular=4, species=species)
    means = np.stack([soap.compute([f]).mean(axis=0) for f in frames])
    K = polynomial_kernel(means, None, zeta=zeta)
    kpca = KernelPCA(n_components=2, kernel="precomputed", random_state=0)
    coords = kpca.fit_transform(K)
    if coords.shape[1] < 2:  # all candidates identical: a degenerate (zero) embedding
        coords = np.pad(coords, ((0, 0), (0, 2 - coords.shape[1])))
    n = len(frames)
    J = np.eye(n) - 1.0 / n
    trace = float(np.trace(J @ K @ J))
    eig = np.zeros(2)
    eig[: len(kpca.eigenvalues_)] = kpca.eigenvalues_[:2]
    explained = eig / trace if trace > 0 else np.zeros(2)
    return CandidateMap(kernel=K, coordinates=coords, explained=explained)
