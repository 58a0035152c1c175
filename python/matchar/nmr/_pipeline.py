"""End to end: candidate structures -> predicted shieldings ± σ -> posterior."""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ._posterior import StructurePosterior, structure_posterior
from ._shift_model import ShiftModel, _as_frames

#: Generous bounds (ppm) of the chemical shifts of a nucleus in any compound, by atomic
#: number: 1H about -50 (metal hydrides) to 25; 13C about -50 to 350; 15N, 17O, 19F and
#: 31P over their full documented ranges. Experimental shifts outside them are in other
#: units (Hz) or on another scale, which the marginalised offset would silently absorb.
SHIFT_BOUNDS: dict[int, tuple[float, float]] = {
    1: (-60.0, 40.0),
    6: (-100.0, 400.0),
    7: (-500.0, 1000.0),
    8: (-100.0, 1800.0),
    9: (-500.0, 500.0),
    15: (-500.0, 500.0),
}


def _check_shift_range(shifts: np.ndarray, z: int, element: str) -> None:
    """Warn when experimental shifts lie outside every compound's range for nucleus z."""
    bounds = SHIFT_BOUNDS.get(int(z))
    shifts = np.asarray(shifts, dtype=np.float64)
    shifts = shifts[np.isfinite(shifts)]  # missing peaks are the posterior's to refuse
    if bounds is None or shifts.size == 0:
        return
    lo, hi = float(shifts.min()), float(shifts.max())
    if lo < bounds[0] or hi > bounds[1]:
        warnings.warn(
            f"the experimental {element} shifts reach {lo:g} to {hi:g} ppm, outside the "
            f"{bounds[0]:g} to {bounds[1]:g} ppm of {element} chemical shifts in any compound: "
            "check their units (ppm, not Hz) and scale; the fitted reference offset absorbs "
            "any constant, so the posterior cannot tell",
            UserWarning,
            stacklevel=3,
        )


def rank_candidates(
    candidates: Any,
    experimental: Any,
    element: str = "H",
    *,
    model: ShiftModel | None = None,
    sigma_exp: float | None = None,
    assignment: str = "auto",
    groups: Any = None,
    reference: Any = None,
    bond_tolerance: float | None = None,
    **posterior_kwargs: Any,
) -> StructurePosterior:
    """Posterior probability of each candidate structure from its predicted shieldings.

    Every candidate's shieldings (ppm) and their calibrated σ come from ``model``
    (default: the shipped ``ShiftModel.pretrained(element)``); the experimental shifts
    are compared through :func:`structure_posterior` with slope −1 and the reference
    offset marginalised, so no shielding reference needs to be known.

    Two ways to line predictions up with peaks:

    - **Molecule mapping** (used when ``reference`` is given, when ``experimental`` is a
      table that names sites, when the candidates hold different numbers of ``element``
      atoms, or when there are fewer peaks than atoms and no ``groups``):
      :func:`map_sites` maps every molecule of every candidate onto the
      labelled sites of the reference molecule and the predictions are averaged over the
      molecule copies, so candidates of any Z, cell and atom order compare site by site.
      The table says which sites each peak may be (see :func:`read_shift_table`).
    - **Atom order** (a plain array, no ``reference``, equal counts): one shift per atom of
      ``element`` in the file's order (or per ``groups`` label).

    Parameters
    ----------
    candidates : sequence of ase.Atoms
        Candidate structures of one compound.
    experimental : ShiftTable or str or pathlib.Path or array_like, shape (n_peaks,)
        Experimental shifts (ppm): a table (or its CSV file) with what is known of each
        peak's sites, or plain shifts.
    element : str, default "H"
    model : ShiftModel, optional
    sigma_exp : float, optional
        Typical prediction-vs-experiment error (ppm) added in quadrature to the model's
        σ; default 0.33 ppm for ¹H (Engel et al. 2019), 1.9 ppm for ¹³C, else 0.
    assignment : {"auto", "given", "marginalize"}, default "auto"
        ``"auto"``: the table's site sets (a peak with one site is assigned, one with a few
        is ambiguous among them, one without is any site); a plain array has no site
        knowledge and is marginalised. ``"given"``: every peak must name exactly one site
        (group), or for a plain array peak ``j`` is atom (group) ``j``. ``"marginalize"``:
        ignore the table's site sets (its groups of equivalent sites stay) and sum over
        every assignment. ``docs/nmr.md`` measures what each costs in power.
    groups : optional
        Molecule mapping: more groups of equivalent sites, as sequences of 1-based atom
        numbers of the reference (e.g. from ``ReferenceMolecule.rotor_groups``), or
        ``"rotors"`` for every XH₃ rotor, or ``"symmetric"`` for every set of sites the
        bond graph cannot tell apart (rotors, ring flips; ``symmetry_groups``). Atom
        order: the peak label of every atom (``structure_posterior``'s ``groups``).
    reference : ase.Atoms or str or pathlib.Path, optional
        The labelled reference molecule (see :func:`map_sites`; default: the first
        candidate's first molecule).
    bond_tolerance : float, optional
        Bond criterion of the molecule mapping (default 1.15 × the covalent radii sum).
    **posterior_kwargs
        Passed to :func:`structure_posterior` (``prior``, ``method``, ``band``, ...).

    Returns
    -------
    StructurePosterior
        ``.probabilities`` (n_candidates,), ``.log_evidence``, ``.candidate_names``,
        ``.site_labels``, ``.plot()``, ``.plot_parity(c)``.

    Raises
    ------
    ValueError
        Naming the candidate, peak or site: a molecule that is not the reference one,
        a peak naming an unknown site, overlapping groups, a site in two peaks, a number
        of peaks that does not match the sites.

    Example
    -------
    ``frames`` stands for the candidate structures and ``shifts.csv`` for the measured
    shift table (see :func:`read_shift_table`), neither part of matchar, so the example
    is not run:

    >>> res = mc.nmr.rank_candidates(frames, "shifts.csv", "H")   # doctest: +SKIP
    >>> res.probabilities                                         # doctest: +SKIP
    """
    from ._sites import BOND_TOLERANCE, candidate_name, map_sites
    from ._table import read_shift_table

    if assignment not in ("auto", "given", "marginalize"):
        raise ValueError(f"assignment must be 'auto', 'given' or 'marginalize', got {assignment!r}")
    frames = _as_frames(candidates)
    names = [candidate_name(f, c) for c, f in enumerate(frames)]
    model = ShiftModel.pretrained(element) if model is None else model
    if sigma_exp is None:
        sigma_exp = {1: 0.33, 6: 1.9}.get(model.z_, 0.0)
    counts = [int((f.numbers == model.z_).sum()) for f in frames]
    table = read_shift_table(experimental)
    _check_shift_range(table.shifts, model.z_, element)
    use_molecules = (
        reference is not None
        or table.has_sites
        or len(set(counts)) != 1
        or (groups is None and len(table.peaks) != counts[0])
    )
    if 0 in counts:
        c = counts.index(0)
        raise ValueError(f"{names[c]} holds no {element} atom")
    sigma, std = model.predict(frames, return_std=True)
    ends = np.cumsum([0, *counts])
    kwargs = dict(posterior_kwargs)
    if not use_molecules:
        n = counts[0]
        how = "marginalize" if assignment == "auto" else assignment
        res = structure_posterior(
            sigma.reshape(len(frames), n),
            std.reshape(len(frames), n),
            table.shifts,
            sigma_exp=sigma_exp,
            assignment=how,
            groups=groups,
            return_details=True,
            **kwargs,
        )
        return dataclasses.replace(res, candidate_names=tuple(names))

    tol = BOND_TOLERANCE if bond_tolerance is None else bond_tolerance
    ref, maps = map_sites(frames, reference, bond_tolerance=tol)
    sites = ref.sites(element)
    pred = np.empty((len(frames), sites.size))
    pstd = np.empty((len(frames), sites.size))
    for c, (frame, smap) in enumerate(zip(frames, maps)):
        full = np.full(len(frame), np.nan)
        full_std = np.full(len(frame), np.nan)
        mask = frame.numbers == model.z_
        full[mask] = sigma[ends[c] : ends[c + 1]]
        full_std[mask] = std[ends[c] : ends[c + 1]]
        pred[c] = smap.average(full, sites)
        pstd[c] = smap.average(full_std, sites)
    extra = None
    if isinstance(groups, str):
        if groups not in ("rotors", "symmetric"):
            raise ValueError(
                f"groups must be 'rotors', 'symmetric' or a list of site groups, got {groups!r}"
            )
        found = ref.rotor_groups(element) if groups == "rotors" else ref.symmetry_groups(element)
        extra = [[k + 1 for k in g] for g in found]
    elif groups is not None:
        extra = [list(g) for g in groups]
    problem = table.problem(ref, element, groups=extra)
    if assignment == "given" and not table.has_sites:
        # plain shifts in the order of the reference's sites (units)
        problem = dataclasses.replace(problem, allowed=[[u] for u in range(len(problem.units))])
    if assignment == "given":
        if not problem.fully_assigned:
            open_peaks = [
                table.labels[j] for j, a in enumerate(problem.allowed) if a is None or len(a) != 1
            ]
            raise ValueError(
                f"assignment='given' needs one site per peak; {len(open_peaks)} peaks have "
                f"none or several: {open_peaks[:6]}; use assignment='auto'"
            )
        unit_of_peak = [a[0] for a in problem.allowed]  # type: ignore[index]
        peak_of_unit = np.empty(len(unit_of_peak), dtype=np.int64)
        peak_of_unit[unit_of_peak] = np.arange(len(unit_of_peak))
        res = structure_posterior(
            pred, pstd, table.shifts, sigma_exp=sigma_exp, assignment="given",
            groups=peak_of_unit[problem.groups], return_details=True, **kwargs,
        )  # fmt: skip
        labels = [problem.unit_labels[u] for u in unit_of_peak]
    else:
        allowed = problem.allowed if assignment == "auto" else None
        if allowed is not None and all(a is None for a in allowed):
            allowed = None
        res = structure_posterior(
            pred, pstd, table.shifts, sigma_exp=sigma_exp, assignment="marginalize",
            groups=problem.groups, allowed=allowed, return_details=True, **kwargs,
        )  # fmt: skip
        labels = list(problem.unit_labels)
    return dataclasses.replace(
        res,
        candidate_names=tuple(names),
        site_labels=tuple(labels),
        peak_labels=tuple(table.labels),
        reference=ref,
        site_maps=tuple(maps),
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
        from .._plotting import SMALL_FONT_SIZE, add_colorbar, new_axes, set_title, style_axes

        if ax is None:
            ax = new_axes((5.5, 4.5))
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
            add_colorbar(ax.figure, sc, ax, "posterior probability")
        for i in range(n):
            ax.annotate(
                names[i],
                (x[i], y[i]),
                fontsize=SMALL_FONT_SIZE,
                xytext=(3, 3),
                textcoords="offset points",
            )
        style_axes(
            ax,
            f"kernel PC 1 ({100 * self.explained[0]:.0f} %)",
            f"kernel PC 2 ({100 * self.explained[1]:.0f} %)",
        )
        set_title(ax, "candidate similarity (structure-averaged SOAP)")
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
