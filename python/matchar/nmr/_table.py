"""Experimental shift tables: peaks, their shifts and what is known of their sites.

CSV format (one row per experimental peak; ``#`` starts a comment)::

    peak,shift,sites
    H-a,7.31,"2|3|4|5|6"      # one of the five ring H (ambiguous)
    Me1,2.27,"11,12,13"       # a methyl: three sites seen as one peak (averaged)
    H7,4.02,7                 # assigned
    H8,3.10,                  # unknown: any site

``shift`` (ppm) is required; ``peak`` (a name) and ``sites`` are optional. In ``sites``,
``|`` separates alternatives (the peak is one of them) and ``,``/``;``/spaces join the
sites of one alternative (equivalent sites observed as one peak: methyl rotors, ring flips,
fast exchange). Sites are the 1-based atom numbers of the reference molecule, bare
(``12``) or with their element (``H12``). A file with no header and one column is a list
of shifts with nothing known of their sites.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

_SHIFT_COLUMNS = ("shift", "shift_ppm", "delta", "delta_ppm", "ppm")
_LABEL_COLUMNS = ("peak", "label", "name")
_SITE_COLUMNS = ("sites", "site", "atoms", "assignment")


@dataclass(frozen=True)
class Peak:
    """One experimental peak.

    Attributes
    ----------
    label : str
    shift : float
        Chemical shift (ppm).
    options : tuple of tuple of int, or None
        The alternatives for its sites, each a tuple of 1-based reference atom numbers
        (several numbers: equivalent sites observed as this one peak); ``None``: unknown.
    """

    label: str
    shift: float
    options: tuple[tuple[int, ...], ...] | None = None


@dataclass(frozen=True)
class SiteProblem:
    """The assignment problem a :class:`ShiftTable` poses on one reference molecule.

    Attributes
    ----------
    units : list of tuple of int
        The predicted "sites" the peaks are matched to: a single atom or a group of
        equivalent atoms (0-based reference positions), ordered by their first atom.
    groups : numpy.ndarray of int, shape (n_element_sites,)
        Unit of every atom of the element, in reference order (``structure_posterior``'s
        ``groups``).
    allowed : list of (list of int or None)
        Per peak, the units it may belong to (``None``: any).
    unit_labels : list of str
        E.g. ``"H11,H12,H13"``.
    """

    units: list[tuple[int, ...]]
    groups: np.ndarray
    allowed: list[list[int] | None]
    unit_labels: list[str]

    @property
    def fully_assigned(self) -> bool:
        """Every peak has exactly one allowed unit."""
        return all(a is not None and len(a) == 1 for a in self.allowed)


@dataclass(frozen=True)
class ShiftTable:
    """Experimental peaks of one nucleus (see the module docstring for the CSV format).

    Attributes
    ----------
    peaks : tuple of Peak
    source : str
        The file it was read from (for messages).
    """

    peaks: tuple[Peak, ...]
    source: str = "the shift table"

    @property
    def shifts(self) -> np.ndarray:
        """Shifts (ppm), shape (n_peaks,)."""
        return np.array([p.shift for p in self.peaks], dtype=np.float64)

    @property
    def labels(self) -> list[str]:
        """Peak names."""
        return [p.label for p in self.peaks]

    @property
    def has_sites(self) -> bool:
        """Any peak says something about its sites."""
        return any(p.options is not None for p in self.peaks)

    def problem(self, reference: Any, element: str, groups: Any = None) -> SiteProblem:
        """Units, groups and allowed sets of the peaks on ``reference``'s ``element`` sites.

        Parameters
        ----------
        reference : ReferenceMolecule
            From :func:`matchar.nmr.map_sites`.
        element : str
        groups : sequence of sequence of int, optional
            More groups of equivalent sites (1-based atom numbers), e.g. the rotors of
            ``reference.rotor_groups`` that the user accepts. Groups named in the table
            need not be repeated.

        Returns
        -------
        SiteProblem

        Raises
        ------
        ValueError
            Naming the peak and the site: a site that is not an atom of ``element`` of the
            reference, overlapping groups, one site given to two peaks, an empty set, or a
            number of peaks that does not match the number of units.
        """
        src = self.source
        sites = [int(k) for k in reference.sites(element)]
        site_set = set(sites)
        owner: dict[frozenset[int], str] = {}
        member: dict[int, frozenset[int]] = {}

        def add(group: tuple[int, ...], who: str) -> None:
            g = frozenset(k - 1 for k in group)
            if g in owner:
                return
            for k in g:
                if k in member and member[k] != g:
                    other = member[k]
                    raise ValueError(
                        f"{src}: overlapping groups: {who} has sites "
                        f"{_names(reference, g)} and {owner[other]} has "
                        f"{_names(reference, other)} (both hold {reference.labels[k]})"
                    )
            owner[g] = who
            for k in g:
                member[k] = g

        for p in self.peaks:
            for opt in p.options or ():
                for k in opt:
                    if not 1 <= k <= len(reference.numbers):
                        raise ValueError(
                            f"{src}: peak {p.label!r} refers to site {k}; the reference "
                            f"molecule has atoms 1..{len(reference.numbers)}"
                        )
                    if k - 1 not in site_set:
                        raise ValueError(
                            f"{src}: peak {p.label!r} refers to site {k}, which is "
                            f"{reference.labels[k - 1]}, not an {element} site of the "
                            "reference molecule"
                        )
                if len(set(opt)) != len(opt):
                    raise ValueError(f"{src}: peak {p.label!r} lists a site twice in {opt}")
                add(opt, f"peak {p.label!r}")
        for g in groups or ():
            g = tuple(int(k) for k in g)
            bad = [k for k in g if k - 1 not in site_set]
            if bad:
                raise ValueError(f"groups: sites {bad} are not {element} sites of the reference")
            add(g, f"group {g}")
        for k in sites:
            if k not in member:
                member[k] = frozenset([k])
                owner[member[k]] = "(single site)"
        units = sorted({tuple(sorted(g)) for g in member.values()}, key=lambda u: u[0])
        index = {frozenset(u): i for i, u in enumerate(units)}
        labels = [",".join(reference.labels[k] for k in u) for u in units]
        if len(units) != len(self.peaks):
            n_grouped = sum(1 for u in units if len(u) > 1)
            raise ValueError(
                f"{src} lists {len(self.peaks)} peaks, but the reference molecule's "
                f"{len(sites)} {element} sites form {len(units)} sites to match "
                f"({n_grouped} groups of equivalent sites); every site needs exactly one "
                "peak: list unresolved sites as separate rows with the same shift, or "
                "join equivalent sites into one row ('11,12,13')"
            )
        allowed: list[list[int] | None] = []
        taken: dict[int, str] = {}
        for p in self.peaks:
            if p.options is None:
                allowed.append(None)
                continue
            units_p = sorted({index[frozenset(k - 1 for k in opt)] for opt in p.options})
            if len(units_p) == 1:
                u = units_p[0]
                if u in taken:
                    raise ValueError(
                        f"{src}: site {labels[u]} is given to two peaks, {taken[u]!r} and "
                        f"{p.label!r}"
                    )
                taken[u] = p.label
            allowed.append(units_p)
        grp = np.array([index[member[k]] for k in sites], dtype=np.int64)
        return SiteProblem(units, grp, allowed, labels)


def _names(reference: Any, group: frozenset[int]) -> str:
    return ",".join(reference.labels[k] for k in sorted(group))


def _parse_sites(text: str, where: str) -> tuple[tuple[int, ...], ...] | None:
    text = text.strip()
    if not text or text in ("?", "*", "any"):
        return None
    options = []
    for alt in text.split("|"):
        tokens = [t for t in re.split(r"[,;\s]+", alt.strip()) if t]
        if not tokens:
            raise ValueError(f"{where}: an empty set of sites in {text!r}")
        nums = []
        for t in tokens:
            m = re.fullmatch(r"([A-Z][a-z]?)?(\d+)", t)
            if m is None:
                raise ValueError(
                    f"{where}: cannot read site {t!r} (a 1-based atom number such as 12 or H12)"
                )
            nums.append(int(m.group(2)))
        options.append(tuple(nums))
    return tuple(options)


def read_shift_table(source: Any) -> ShiftTable:
    """Read an experimental shift table (CSV; see :mod:`matchar.nmr` ``ShiftTable``).

    Parameters
    ----------
    source : str or pathlib.Path or ShiftTable or array_like
        A CSV file; an existing table (returned as is); or shifts (ppm) with nothing known
        of their sites.

    Returns
    -------
    ShiftTable

    Raises
    ------
    matchar.io.FileFormatError
        One message naming the file: no ``shift`` column, a value that is not a finite
        number, an unreadable site list, no rows.

    Example
    -------
    >>> import matchar as mc
    >>> t = mc.nmr.read_shift_table([1.2, 3.4])
    >>> t.shifts.tolist(), t.has_sites
    ([1.2, 3.4], False)
    """
    from ..io import FileFormatError

    if isinstance(source, ShiftTable):
        return source
    if not isinstance(source, (str, Path)):
        arr = np.asarray(source, dtype=np.float64)
        if arr.ndim != 1 or arr.size == 0:
            raise ValueError(f"experimental shifts must be a non-empty 1-D array, got {arr.shape}")
        if not np.isfinite(arr).all():
            raise ValueError("experimental shifts must be finite")
        return ShiftTable(tuple(Peak(f"peak {j + 1}", float(v)) for j, v in enumerate(arr)))
    path = Path(source)
    if path.is_dir():
        raise IsADirectoryError(21, "expected a CSV file of shifts, got a directory", str(path))
    if not path.exists():
        raise FileNotFoundError(2, "no such file", str(path))
    what = f"cannot read {str(path)!r} as a table of experimental shifts"
    try:
        text = path.read_text()
    except UnicodeDecodeError as err:
        raise FileFormatError(f"{what}: not a text file ({err.reason})") from err
    lines = [ln.split("#", 1)[0] for ln in text.splitlines()]
    rows = [r for r in csv.reader(io.StringIO("\n".join(lines))) if any(c.strip() for c in r)]
    if not rows:
        raise FileFormatError(f"{what}: the file holds no rows")
    head = [c.strip().lower() for c in rows[0]]
    col_shift = next((head.index(c) for c in _SHIFT_COLUMNS if c in head), None)
    peaks = []
    if col_shift is None:
        if _is_number(rows[0][0]):  # no header: the first column is the shift
            col_shift, col_label, col_sites, body, first_line = 0, None, None, rows, 1
        else:
            raise FileFormatError(
                f"{what}: no 'shift' column in the header {rows[0]} (columns: peak, shift, sites)"
            )
    else:
        col_label = next((head.index(c) for c in _LABEL_COLUMNS if c in head), None)
        col_sites = next((head.index(c) for c in _SITE_COLUMNS if c in head), None)
        body, first_line = rows[1:], 2
    if not body:
        raise FileFormatError(f"{what}: no peaks below the header")
    for r, row in enumerate(body):
        where = f"{str(path)!r}, row {r + first_line}"
        cell = row[col_shift].strip() if col_shift < len(row) else ""
        if not _is_number(cell):
            raise FileFormatError(f"{what}: {where}: shift {cell!r} is not a number")
        value = float(cell)
        if not np.isfinite(value):
            raise FileFormatError(f"{what}: {where}: shift {cell!r} is not finite")
        label = (
            row[col_label].strip()
            if col_label is not None and col_label < len(row) and row[col_label].strip()
            else f"peak {r + 1}"
        )
        options = None
        if col_sites is not None and col_sites < len(row):
            try:
                options = _parse_sites(row[col_sites], f"{where} (peak {label!r})")
            except ValueError as err:
                raise FileFormatError(f"{what}: {err}") from None
        peaks.append(Peak(label, value, options))
    labels = [p.label for p in peaks]
    dup = sorted({x for x in labels if labels.count(x) > 1})
    if dup:
        raise FileFormatError(f"{what}: peak names used twice: {dup[:5]}")
    return ShiftTable(tuple(peaks), str(path))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
