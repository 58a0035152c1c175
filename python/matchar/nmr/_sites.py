"""Molecule-aware site mapping: every candidate crystal onto the labelled sites of one molecule.

Candidates of one compound differ in Z (molecules per cell), cell choice and atom order.
:func:`map_sites` finds the molecules of every candidate (covalent bonds, periodic images
included), maps each molecule atom by atom onto a reference molecule by graph matching
(element + bonds) and, among the mappings the molecule's own symmetry allows, keeps the one
closest in 3-D to the reference. Per-atom values (predicted shieldings) are then averaged
over the molecule copies with :meth:`SiteMap.average`, so every candidate gives one value
per labelled site of the reference molecule.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from .._optional import require
from .._validation import check_float

#: Covalent radii (ase.data.covalent_radii) times this factor: the bond criterion.
BOND_TOLERANCE = 1.15
#: Most symmetry-equivalent mappings (graph automorphisms) compared in 3-D per molecule.
MAX_AUTOMORPHISMS = 20000


def candidate_name(atoms: Any, index: int) -> str:
    """The name of a candidate: ``info["name"]`` (or ``NAME``, ``label``, ``title``,
    ``refcode``, any case), else ``"candidate <index>"``."""
    info = getattr(atoms, "info", {}) or {}
    lower = {str(k).lower(): v for k, v in info.items()}
    for key in ("name", "label", "title", "refcode", "identifier", "id"):
        v = lower.get(key)
        if v is not None and str(v).strip():
            return str(v).strip()
    return f"candidate {index}"


def _bonds(atoms: Any, tolerance: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bonded pairs (i < j listed both ways) and their vectors ``D`` (Å, periodic images)."""
    nl = require("ase.neighborlist", feature="find_molecules")
    natural_cutoffs, neighbor_list = nl.natural_cutoffs, nl.neighbor_list

    work = atoms
    if np.any(atoms.pbc) and abs(atoms.cell.volume) < 1e-6:
        raise ValueError("periodic structure with a degenerate (zero-volume) cell")
    i, j, D = neighbor_list("ijD", work, natural_cutoffs(work, mult=tolerance))
    return i, j, D


@dataclass(frozen=True)
class Molecule:
    """One molecule of a structure.

    Attributes
    ----------
    atoms : numpy.ndarray of int, shape (n,)
        Indices of its atoms in the structure, ascending.
    positions : numpy.ndarray, shape (n, 3)
        Cartesian positions (Å), unwrapped across periodic boundaries (a whole molecule).
    edges : numpy.ndarray of int, shape (n_bonds, 2)
        Bonds as pairs of positions in ``atoms`` (each bond once).
    """

    atoms: np.ndarray
    positions: np.ndarray
    edges: np.ndarray


def find_molecules(atoms: Any, bond_tolerance: float = BOND_TOLERANCE) -> list[Molecule]:
    """Split a structure into covalently bonded molecules, whole across cell boundaries.

    Two atoms are bonded when closer than ``bond_tolerance`` times the sum of their covalent
    radii (``ase.data.covalent_radii``), periodic images included. Each molecule's atoms are
    unwrapped by walking its bonds, so a molecule broken by the cell boundary comes out
    whole.

    Parameters
    ----------
    atoms : ase.Atoms
        A periodic crystal or an isolated molecule.
    bond_tolerance : float, default 1.15

    Returns
    -------
    list of Molecule
        Ordered by their lowest atom index.

    Raises
    ------
    ValueError
        A covalent network bonded to its own periodic image (a polymer or a framework: no
        finite molecule), or an empty structure.
    """
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    tol = check_float(bond_tolerance, "bond_tolerance", low=0.5, high=3.0)
    n = len(atoms)
    if n == 0:
        raise ValueError("the structure holds no atoms")
    i, j, D = _bonds(atoms, tol)
    adj = sp.coo_matrix((np.ones(len(i)), (i, j)), shape=(n, n)).tocsr()
    n_mol, lab = connected_components(adj, directed=False)
    pos = atoms.get_positions()
    order = np.argsort(i, kind="stable")
    i, j, D = i[order], j[order], D[order]
    start = np.searchsorted(i, np.arange(n + 1))
    unwrapped = np.full((n, 3), np.nan)
    mols: list[Molecule] = []
    for m in range(n_mol):
        members = np.flatnonzero(lab == m)
        root = int(members[0])
        unwrapped[root] = pos[root]
        stack = [root]
        while stack:
            a = stack.pop()
            for e in range(start[a], start[a + 1]):
                b = int(j[e])
                p = unwrapped[a] + D[e]
                if np.isnan(unwrapped[b, 0]):
                    unwrapped[b] = p
                    stack.append(b)
                elif np.abs(unwrapped[b] - p).max() > 1e-3:
                    raise ValueError(
                        f"atoms {root}..{members[-1]} form a covalent network bonded to its "
                        "own periodic image (a polymer or framework), not a finite molecule"
                    )
        local = -np.ones(n, dtype=np.int64)
        local[members] = np.arange(len(members))
        sel = (lab[i] == m) & (i < j)
        edges = (
            np.stack([local[i[sel]], local[j[sel]]], axis=1)
            if sel.any()
            else np.zeros((0, 2), dtype=np.int64)
        )
        mols.append(Molecule(members, unwrapped[members].copy(), edges.astype(np.int64)))
    return mols


def _formula(numbers: np.ndarray) -> str:
    chemical_symbols = require("ase.data", feature="matchar.nmr").chemical_symbols
    Formula = require("ase.formula", feature="matchar.nmr").Formula

    return str(Formula("".join(chemical_symbols[int(z)] for z in numbers)).format("hill"))


def _procrustes_rmsd(ref: np.ndarray, mobile: np.ndarray) -> np.ndarray:
    """RMSD (Å) after the best superposition, rotations and reflections allowed.

    ``ref`` (n, 3); ``mobile`` (m, n, 3), one arrangement per row. Reflections are allowed
    because a centrosymmetric crystal holds both mirror images of a chiral conformer."""
    a = ref - ref.mean(axis=0)
    b = mobile - mobile.mean(axis=1, keepdims=True)
    s = np.linalg.svd(np.einsum("ni,mnj->mij", a, b), compute_uv=False)
    ss = (a**2).sum() + (b**2).sum(axis=(1, 2)) - 2.0 * s.sum(axis=1)
    return np.sqrt(np.maximum(ss, 0.0) / len(ref))


@dataclass(frozen=True)
class SiteMap:
    """Where every labelled site of the reference molecule sits in one candidate.

    Attributes
    ----------
    name : str
        The candidate's name (see :func:`candidate_name`).
    atoms : numpy.ndarray of int, shape (n_molecules, n_reference_atoms)
        ``atoms[m, s]``: the candidate's atom index at reference site ``s`` (0-based
        position in the reference molecule) in molecule copy ``m``.
    rmsd : numpy.ndarray, shape (n_molecules,)
        Superposition RMSD (Å) of every copy on the reference molecule (conformational
        difference; reflections allowed).
    """

    name: str
    atoms: np.ndarray
    rmsd: np.ndarray

    @property
    def n_molecules(self) -> int:
        """Molecules of the reference kind in the candidate (Z for one molecule per
        asymmetric unit, Z·Z′ in general)."""
        return int(self.atoms.shape[0])

    def average(self, values: ArrayLike, sites: ArrayLike | None = None) -> np.ndarray:
        """Average per-atom values over the molecule copies, per site.

        Parameters
        ----------
        values : array_like, shape (n_atoms,)
            One value per atom of the candidate (e.g. predicted shieldings, ppm; NaN where
            not predicted).
        sites : array_like of int, optional
            0-based reference positions to return (default: all).

        Returns
        -------
        numpy.ndarray, shape (n_sites,)
        """
        v = np.asarray(values, dtype=np.float64)
        idx = self.atoms if sites is None else self.atoms[:, np.asarray(sites, dtype=np.int64)]
        if v.ndim != 1 or v.shape[0] <= int(self.atoms.max()):
            raise ValueError(f"values must hold one entry per atom of {self.name}")
        return v[idx].mean(axis=0)

    def spread(self, values: ArrayLike, sites: ArrayLike | None = None) -> np.ndarray:
        """Standard deviation of per-atom values across the molecule copies, per site
        (0 for symmetry-equivalent copies; large values flag Z′ > 1 or a broken mapping)."""
        v = np.asarray(values, dtype=np.float64)
        idx = self.atoms if sites is None else self.atoms[:, np.asarray(sites, dtype=np.int64)]
        return v[idx].std(axis=0)


@dataclass(frozen=True)
class ReferenceMolecule:
    """The labelled molecule every candidate is mapped onto.

    Attributes
    ----------
    numbers : numpy.ndarray of int, shape (n,)
        Atomic numbers in label order.
    positions : numpy.ndarray, shape (n, 3)
        Cartesian positions (Å) of a whole molecule.
    edges : numpy.ndarray of int, shape (n_bonds, 2)
    labels : list of str
        ``"<symbol><1-based index>"``, e.g. ``"H12"``: the site names used in tables.
    source : str
        Where it came from (a file, or the first candidate).
    """

    numbers: np.ndarray
    positions: np.ndarray
    edges: np.ndarray
    labels: list[str]
    source: str

    @property
    def formula(self) -> str:
        """Hill formula, e.g. ``"C9H8N2"``."""
        return _formula(self.numbers)

    def sites(self, element: str | int) -> np.ndarray:
        """0-based positions of the atoms of ``element``, in label order."""
        atomic_numbers = require("ase.data", feature="ReferenceMolecule").atomic_numbers
        z = atomic_numbers[element] if isinstance(element, str) else int(element)
        return np.flatnonzero(self.numbers == z)

    def neighbours(self, k: int) -> list[int]:
        """0-based positions bonded to position ``k``."""
        e = self.edges
        return sorted(set(e[e[:, 0] == k, 1].tolist()) | set(e[e[:, 1] == k, 0].tolist()))

    def describe(self, element: str | int) -> str:
        """One line per site of ``element``: its label and what it is bonded to, for the
        user to check the labels against the reference drawing."""
        lines = []
        for k in self.sites(element):
            nb = ", ".join(self.labels[b] for b in self.neighbours(int(k))) or "nothing"
            lines.append(f"{self.labels[k]}: bonded to {nb}")
        return "\n".join(lines)

    def rotor_groups(self, element: str | int = "H") -> list[list[int]]:
        """Sites of ``element`` that dynamics usually make equivalent, from topology alone:
        the three atoms of every XH₃ rotor (methyl, –NH₃⁺; 0-based positions), for the user
        to accept or not."""
        sites = set(self.sites(element).tolist())
        groups = []
        for k in range(len(self.numbers)):
            if self.numbers[k] == 1 and k in sites:
                continue
            hs = [b for b in self.neighbours(k) if b in sites and self.numbers[b] == 1]
            if len(hs) == 3 and len(self.neighbours(k)) == 4:
                groups.append(hs)
        return groups

    def symmetry_groups(self, element: str | int = "H") -> list[list[int]]:
        """Sites of ``element`` that the molecule's bond graph cannot tell apart (orbits of
        its automorphisms, size > 1; 0-based positions): every XH₃ rotor, the two ortho
        and the two meta H of a phenyl ring (ring flips), the nine H of a tert-butyl
        group, ... Dynamics make many of them one peak, but not all (diastereotopic
        groups stay distinct): a proposal for the user to accept or not."""
        graph, keep = _skeleton_graph(self.numbers, self.edges)
        autos = _automorphisms(graph, keep)
        term, parent = _terminal_h(self.numbers, self.edges)
        sites = set(self.sites(element).tolist())
        col = {int(k): i for i, k in enumerate(keep)}
        seen: set[int] = set()
        groups = []
        for k in sorted(sites):
            if k in seen:
                continue
            if term[k]:  # terminal H: every terminal H on an atom of its parent's orbit
                orbit_parents = set(autos[:, col[int(parent[k])]].tolist())
                orbit = [int(h) for h in np.flatnonzero(term) if parent[h] in orbit_parents]
            else:
                orbit = sorted(set(autos[:, col[k]].tolist()))
            orbit = [h for h in orbit if h in sites]
            seen.update(orbit)
            if len(orbit) > 1:
                groups.append(sorted(orbit))
        return groups


def _as_reference(reference: Any, first: Any, tol: float) -> ReferenceMolecule:
    ase = require("ase", feature="map_sites")
    ase_io = require("ase.io", feature="map_sites")

    if reference is None:
        mols = find_molecules(first, tol)
        mol = next(m for m in mols if 0 in m.atoms)
        nums = first.numbers[mol.atoms]
        return ReferenceMolecule(
            nums,
            mol.positions,
            mol.edges,
            _make_labels(nums),
            "the first candidate's molecule holding its atom 1 (labels: that molecule's "
            "atoms in file order)",
        )
    source = "the given ase.Atoms"
    if isinstance(reference, (str, Path)):
        path = Path(reference)
        if not path.is_file():
            raise FileNotFoundError(2, "no such reference molecule file", str(path))
        try:
            reference = ase_io.read(str(path), index=0)
        except Exception as err:
            from ..io import FileFormatError

            raise FileFormatError(
                f"cannot read {str(path)!r} as a reference molecule (.xyz, .mol, .sdf or any "
                f"format ase reads): {str(err).splitlines()[0] if str(err) else type(err).__name__}"
            ) from err
        source = str(path)
    if not isinstance(reference, ase.Atoms):
        raise ValueError(f"reference must be ase.Atoms or a file path, got {type(reference)}")
    mols = find_molecules(reference, tol)
    if len(mols) != 1:
        raise ValueError(
            f"the reference molecule ({source}) holds {len(mols)} separate molecules; give "
            "one whole molecule"
        )
    return ReferenceMolecule(
        reference.numbers.copy(),
        mols[0].positions,
        mols[0].edges,
        _make_labels(reference.numbers),
        source,
    )


def _make_labels(numbers: np.ndarray) -> list[str]:
    chemical_symbols = require("ase.data", feature="matchar.nmr").chemical_symbols
    return [f"{chemical_symbols[int(z)]}{k + 1}" for k, z in enumerate(numbers)]


def _terminal_h(numbers: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hydrogen atoms with exactly one bond, and the atom each is bonded to (-1 otherwise).

    Those H are matched by geometry after the rest of the molecule ("the skeleton") is
    matched by graph isomorphism: their permutations (a methyl rotor alone has 3! = 6)
    would multiply the automorphisms to enumerate."""
    n = len(numbers)
    deg = np.bincount(edges.ravel(), minlength=n) if len(edges) else np.zeros(n, int)
    term = (numbers == 1) & (deg == 1)
    parent = -np.ones(n, dtype=np.int64)
    for a, b in edges:
        if term[a]:
            parent[a] = b
        if term[b]:
            parent[b] = a
    return term, parent


def _skeleton_graph(numbers: np.ndarray, edges: np.ndarray) -> tuple[Any, np.ndarray]:
    """Graph of the atoms that are not terminal H, each labelled with its element and its
    number of terminal H; and the skeleton's atom positions (indices into the molecule)."""
    nx = require("networkx", feature="map_sites")

    term, parent = _terminal_h(numbers, edges)
    keep = np.flatnonzero(~term)
    n_h = (
        np.bincount(parent[term], minlength=len(numbers))
        if term.any()
        else np.zeros(len(numbers), int)
    )
    g = nx.Graph()
    g.add_nodes_from((int(k), {"z": (int(numbers[k]), int(n_h[k]))}) for k in keep)
    g.add_edges_from((int(a), int(b)) for a, b in edges if not term[a] and not term[b])
    return g, keep


def _automorphisms(graph: Any, nodes: np.ndarray) -> np.ndarray:
    """Automorphisms of the (skeleton) graph as rows of node ids in the order of ``nodes``."""
    GraphMatcher = require("networkx.algorithms.isomorphism", feature="map_sites").GraphMatcher
    gm = GraphMatcher(graph, graph, node_match=_same_z)
    out = []
    for m in gm.isomorphisms_iter():
        out.append([m[int(k)] for k in nodes])
        if len(out) >= MAX_AUTOMORPHISMS:
            break
    return np.asarray(out, dtype=np.int64).reshape(-1, len(nodes))


def _superpositions(ref: np.ndarray, mobile: np.ndarray) -> list[np.ndarray]:
    """``mobile`` (m, 3) moved onto ``ref`` (n, 3) by the best proper rotation and by the best
    improper one (a rotation times a reflection), both fitted on the first ``n`` rows (the
    matched skeleton). Both are kept: a flat or tiny skeleton fits either equally well, and
    only the terminal H decide the handedness."""
    n = len(ref)
    ra, mb = ref.mean(axis=0), mobile[:n].mean(axis=0)
    u, _, vt = np.linalg.svd((mobile[:n] - mb).T @ (ref - ra))
    out = []
    for sign in (1.0, -1.0):
        d = np.ones(3)
        if np.linalg.det(u @ vt) * sign < 0:
            d[-1] = -1.0
        out.append((mobile - mb) @ (u @ np.diag(d) @ vt) + ra)
    return out


def _match_terminal_h(
    ref_pos: np.ndarray,
    ref_groups: list[tuple[np.ndarray, int]],
    moved: np.ndarray,
    parent: np.ndarray,
    site: np.ndarray,
) -> tuple[np.ndarray, float]:
    """Complete ``site`` (reference position -> molecule atom) with the terminal H: per
    parent atom, the permutation of its H closest to the reference. Returns the completed
    map and the RMSD (Å) of all atoms."""
    from scipy.optimize import linear_sum_assignment

    site = site.copy()
    for hr, p_ref in ref_groups:
        hm = np.flatnonzero(parent == site[p_ref])
        if len(hr) == 1:
            site[hr] = hm
            continue
        d = ((ref_pos[hr][:, None, :] - moved[hm][None, :, :]) ** 2).sum(-1)
        _, cols = linear_sum_assignment(d)
        site[hr] = hm[cols]
    return site, float(np.sqrt(((moved[site] - ref_pos) ** 2).sum(axis=1).mean()))


#: Skeleton mappings within this RMSD (Å) of the best one are completed with their H and
#: compared on all atoms (at most ``MAX_SHORTLIST`` of them).
SHORTLIST_RMSD = 0.25
MAX_SHORTLIST = 64


def map_sites(
    candidates: Any,
    reference: Any = None,
    *,
    bond_tolerance: float = BOND_TOLERANCE,
) -> tuple[ReferenceMolecule, list[SiteMap]]:
    """Map every candidate's atoms onto the labelled sites of one reference molecule.

    For every candidate: find its molecules (:func:`find_molecules`), check that each is the
    reference molecule (same formula, same bond graph), find a graph isomorphism onto the
    reference (networkx VF2, element-labelled) and, among the isomorphisms the molecule's own
    symmetry allows (equivalent methyl H, ring flips, ...), keep the one with the smallest
    superposition RMSD to the reference geometry. Candidates may differ in Z, Z′, cell
    choice and atom order.

    Parameters
    ----------
    candidates : sequence of ase.Atoms
        Crystal structures (or isolated molecules) of the same compound.
    reference : ase.Atoms or str or pathlib.Path, optional
        The labelled molecule: an ase.Atoms or a file ase reads (.xyz, .mol, .sdf); site
        ``k`` (1-based) is its k-th atom, labelled ``"<symbol>k"`` (e.g. ``"H12"``).
        Default: the molecule of the first candidate that holds its first atom, its atoms
        labelled in file order.
    bond_tolerance : float, default 1.15
        Bonds: distances below this times the sum of covalent radii.

    Returns
    -------
    reference : ReferenceMolecule
        With ``.labels`` and ``.describe(element)`` to check them.
    maps : list of SiteMap
        One per candidate: ``maps[c].atoms`` (n_molecules, n_reference_atoms).

    Raises
    ------
    ValueError
        Naming the candidate and the molecule: a molecule of another formula (missing H, a
        solvent), another bond graph (connectivity mismatch), or no molecule at all.

    Example
    -------
    >>> from ase.build import molecule
    >>> import matchar as mc
    >>> a = molecule("CH3CH2OH"); b = a[[8, 0, 3, 2, 1, 4, 5, 6, 7]]  # shuffled
    >>> ref, maps = mc.nmr.map_sites([a, b])
    >>> [ref.labels[k] for k in ref.sites("O")], maps[1].atoms.shape
    (['O3'], (1, 9))
    """
    from ._shift_model import _as_frames

    GraphMatcher = require("networkx.algorithms.isomorphism", feature="map_sites").GraphMatcher

    frames = _as_frames(candidates, "map_sites")
    tol = check_float(bond_tolerance, "bond_tolerance", low=0.5, high=3.0)
    ref = _as_reference(reference, frames[0], tol)
    ref_graph, ref_keep = _skeleton_graph(ref.numbers, ref.edges)
    ref_term, ref_parent = _terminal_h(ref.numbers, ref.edges)
    autos = _automorphisms(ref_graph, ref_keep)  # (n_auto, n_skeleton) reference ids
    h_groups = [
        (np.flatnonzero(ref_term & (ref_parent == p)), int(p))
        for p in np.unique(ref_parent[ref_term])
    ]
    ref_formula = ref.formula
    n_ref = len(ref.numbers)
    maps: list[SiteMap] = []
    for c, frame in enumerate(frames):
        name = candidate_name(frame, c)
        try:
            mols = find_molecules(frame, tol)
        except ValueError as err:
            raise ValueError(f"{name}: {err}") from None
        rows, rmsds = [], []
        for k, mol in enumerate(mols):
            nums = frame.numbers[mol.atoms]
            where = f"{name}, molecule {k + 1} (atoms {mol.atoms[0] + 1}..{mol.atoms[-1] + 1})"
            formula = _formula(nums)
            if formula != ref_formula:
                raise ValueError(
                    f"{where} is {formula}, the reference molecule is {ref_formula} (a missing "
                    "or extra atom, a solvent or a counter-ion; or a bond the bond tolerance, "
                    f"{tol:g} × the sum of covalent radii, makes or breaks)"
                )
            graph, _ = _skeleton_graph(nums, mol.edges)
            gm = GraphMatcher(ref_graph, graph, node_match=_same_z)
            phi = next(gm.isomorphisms_iter(), None)
            if phi is None:
                raise ValueError(
                    f"{where} has the reference's formula {ref_formula} but another bond "
                    "graph (connectivity mismatch: another isomer or a broken bond)"
                )
            # every skeleton mapping the reference's symmetry allows: phi o automorphism;
            # the near-best ones are completed with their terminal H (both handednesses)
            options = np.vectorize(phi.__getitem__, otypes=[np.int64])(autos)
            r = _procrustes_rmsd(ref.positions[ref_keep], mol.positions[options])
            short = np.argsort(r, kind="stable")[:MAX_SHORTLIST]
            short = short[r[short] <= r[short[0]] + SHORTLIST_RMSD]
            _, parent = _terminal_h(nums, mol.edges)
            best_rmsd, best_site = np.inf, None
            for o in short:
                skeleton = options[o]
                start = -np.ones(n_ref, dtype=np.int64)
                start[ref_keep] = skeleton
                mobile = mol.positions[np.r_[skeleton, : len(nums)]]
                for moved in _superpositions(ref.positions[ref_keep], mobile):
                    cand, rmsd = _match_terminal_h(
                        ref.positions, h_groups, moved[len(skeleton) :], parent, start
                    )
                    if rmsd < best_rmsd - 1e-9:
                        best_rmsd, best_site = rmsd, cand
            site = best_site
            rmsds.append(best_rmsd)
            rows.append(mol.atoms[site])
        if not rows:
            raise ValueError(f"{name} holds no molecule")
        maps.append(SiteMap(name, np.asarray(rows, dtype=np.int64), np.asarray(rmsds)))
    return ref, maps


def _same_z(a: dict, b: dict) -> bool:
    return a["z"] == b["z"]
