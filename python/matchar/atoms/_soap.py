"""SOAP power spectra and spherical expansions, featomic's convention, computed in C++.

Kept as one module (about 640 lines) because it is one class, :class:`SOAP`: its public
methods (``compute``, ``compute_atoms``, ``spherical_expansion``, ``feature_labels``)
share the species, the feature layout and the compiled calculators, and a third of
the file is their documented parameters; the arithmetic is in ``cpp/src/atoms/``.
"""

from __future__ import annotations

import itertools
import math
import numbers
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from .. import _core
from .._optional import require
from .._threads import serialized
from .._validation import check_float, check_int

__all__ = ["SOAP"]

#: Largest ``max_radial``: from 22 radial functions on, the overlap matrix of the GTOs is
#: numerically singular (their Löwdin orthonormalisation fails), at any cutoff.
MAX_RADIAL = 21
MAX_ANGULAR = 20
#: Cutoff range, Å: beyond it the GTO overlaps (powers of σ_n up to 2 max_radial + 3)
#: leave the float64 range for the larger max_radial.
MIN_CUTOFF, MAX_CUTOFF = 1e-3, 1e5
#: Narrowest ``atomic_width`` relative to the largest cutoff: narrower Gaussians need
#: radial tables beyond any memory, then underflow to NaN features.
MIN_WIDTH_RATIO = 1e-3
#: Largest ``|center_weight|``: the power spectrum holds its square (9e305 at 1e153).
MAX_CENTER_WEIGHT = 1e100


def _atomic_number(s: Any, name: str) -> int:
    atomic_numbers = require("ase.data", "nmr", "SOAP").atomic_numbers
    if isinstance(s, str):
        if s not in atomic_numbers:
            raise ValueError(f"{name}: unknown chemical symbol {s!r}")
        return int(atomic_numbers[s])
    if isinstance(s, numbers.Integral) and not isinstance(s, bool) and 0 < int(s) < 119:
        return int(s)
    raise ValueError(f"{name} must hold atomic numbers (1..118) or chemical symbols, got {s!r}")


class SOAP:
    """SOAP power spectrum (Bartók, Kondor, Csányi 2013) in featomic's convention.

    For every centre ``i`` the neighbour density of each species ``a`` (Gaussians of
    width ``atomic_width`` on the neighbours within ``cutoff``, multiplied by a shifted
    cosine cutoff of width ``smoothing``, plus the centre's own Gaussian with weight
    ``center_weight`` in its own species channel) is expanded on ``max_radial``
    Löwdin-orthonormalised GTO radial functions ``r^n exp(-r²/(2σ_n²))``,
    ``σ_n = cutoff·max(√n, 1)/max_radial``, and real spherical harmonics up to
    ``max_angular``; the radial integrals are the exact ones (confluent hypergeometric
    function 1F1). The power spectrum is

        ``p^{ab}_{l n1 n2} = s_ab (-1)^l / √(2l+1) Σ_m c^a_{n1 l m} c^b_{n2 l m}``

    with ``s_ab = √2`` for ``a ≠ b`` and 1 for ``a = b``. This reproduces featomic's
    ``SoapPowerSpectrum`` (GTO basis, Gaussian density, ShiftedCosine smoothing) to
    about 1e-10 relative; featomic's ``max_radial=7`` means 8 radial functions, i.e.
    ``max_radial=8`` here.

    Feature layout of one row (``n_features = n_pairs·(max_angular+1)·max_radial²``):
    for every species pair ``a ≤ b`` (in the order of ``species_``), for
    ``l = 0..max_angular``, the full ``n1 × n2`` block (row-major). This is featomic's
    layout after ``keys_to_properties(["neighbor_1_type", "neighbor_2_type"])``;
    :meth:`feature_labels` returns it as an array. With several cutoffs the blocks of
    each cutoff follow one another; ``pairs`` keeps only some species pairs and
    ``compress`` stores ``n1 ≤ n2`` of same-species blocks.

    Parameters
    ----------
    cutoff : float or sequence of float, default 5.0
        Cutoff radius, Å (1e-3 to 1e5). A sequence computes one block of features per
        cutoff in one call (multi-SOAP), concatenated in the given order.
    max_radial : int, default 8
        Number of radial basis functions (1..21: from 22 on the overlap matrix of the
        GTOs is numerically singular).
    max_angular : int, default 6
        Largest angular channel l (0..20).
    atomic_width : float, default 0.3
        Width σ of the atomic Gaussians, Å, at least the largest cutoff / 1000.
    smoothing : float, default 0.5
        Width of the shifted-cosine cutoff region, Å; 0 gives a step at the cutoff.
    species : sequence of int or str, optional
        Neighbour and centre species (atomic numbers or symbols). ``None``: the sorted
        species found in the frames of the first :meth:`compute` call (then fixed).
    pairs : sequence of (species, species), optional
        Neighbour-species pairs to keep (order inside a pair does not matter);
        ``None``: every pair ``a ≤ b``.
    compress : bool, default False
        Same-species blocks store ``n1 ≤ n2`` only, off-diagonal entries multiplied by
        √2, so that dot products between rows (and so kernels) are unchanged.
    center_weight : float, default 1.0
        Weight of the centre atom's own Gaussian (featomic's ``center_atom_weight``),
        ``|center_weight| <= 1e100`` (the features hold its square).
    normalize : bool, default False
        Scale every row to unit Euclidean norm.
    exact_radial : bool, default False
        Evaluate 1F1 for every pair instead of the cubic-Hermite table built once from
        the exact values (both agree with featomic's regression data to < 1e-9).
    dtype : numpy dtype, default float64
        float64 or float32 output (computed in float64 in both cases).
    radial_scaling : (radius, rate, exponent), optional
        Multiply each neighbour's Gaussian by
        ``u(r) = rate / (rate + (r / radius) ** exponent)`` (Willatt, Musil & Ceriotti,
        PCCP 20, 29661 (2018); featomic's ``Willatt2018`` radial scaling with
        ``scale=radius``), which damps far neighbours; radius in Å, rate > 0,
        exponent ≥ 0. The centre's own Gaussian is not scaled. ``None``: no scaling.

    Attributes
    ----------
    species_ : numpy.ndarray of int, shape (n_species,)
        Atomic numbers in feature order (set by the constructor or the first compute).
    samples_ : numpy.ndarray of int64, shape (n_envs, 3)
        Deprecated: the samples of the last :meth:`compute` call on this instance, which
        in a calculator shared between threads may be another thread's. Pass
        ``return_samples=True`` to :meth:`compute` instead.

    Example
    -------
    >>> import ase.build, matchar as mc
    >>> soap = mc.atoms.SOAP(cutoff=4.0, max_radial=4, max_angular=3, species=["H", "O"])
    >>> X, samples = soap.compute([ase.build.molecule("H2O")], return_samples=True)
    >>> X.shape, samples[:, 2].tolist()
    ((3, 192), [8, 1, 1])
    """

    def __init__(
        self,
        cutoff: float = 5.0,
        max_radial: int = 8,
        max_angular: int = 6,
        atomic_width: float = 0.3,
        smoothing: float = 0.5,
        species: Sequence[int | str] | None = None,
        *,
        pairs: Sequence[tuple[int | str, int | str]] | None = None,
        compress: bool = False,
        center_weight: float = 1.0,
        normalize: bool = False,
        exact_radial: bool = False,
        dtype: Any = np.float64,
        radial_scaling: tuple[float, float, float] | None = None,
    ) -> None:
        def one_cutoff(c: Any) -> float:
            return check_float(c, "cutoff (Å)", low=MIN_CUTOFF, high=MAX_CUTOFF)

        if isinstance(cutoff, (Sequence, np.ndarray)) and not isinstance(cutoff, str):
            cutoffs = tuple(one_cutoff(c) for c in cutoff)
            if not cutoffs:
                raise ValueError("cutoff must be a number or a non-empty sequence of numbers")
            self.cutoff: float | tuple[float, ...] = cutoffs
        else:
            cutoffs = (one_cutoff(cutoff),)
            self.cutoff = cutoffs[0]
        self._cutoffs = cutoffs
        self.max_radial = check_int(max_radial, "max_radial", low=1, high=MAX_RADIAL)
        self.max_angular = check_int(max_angular, "max_angular", low=0, high=MAX_ANGULAR)
        self.atomic_width = check_float(atomic_width, "atomic_width (Å)", low=0.0, low_open=True)
        if self.atomic_width < MIN_WIDTH_RATIO * max(cutoffs):
            raise ValueError(
                f"atomic_width must be >= cutoff / {1 / MIN_WIDTH_RATIO:g} = "
                f"{MIN_WIDTH_RATIO * max(cutoffs):g} Å (narrower Gaussians need radial tables "
                f"beyond any memory and underflow to NaN features), got {atomic_width!r}"
            )
        self.smoothing = check_float(smoothing, "smoothing (Å)", low=0.0)
        if self.smoothing > min(cutoffs):
            raise ValueError(f"smoothing must be <= cutoff, got {smoothing!r} > {min(cutoffs)!r}")
        self.center_weight = check_float(
            center_weight, "center_weight", low=-MAX_CENTER_WEIGHT, high=MAX_CENTER_WEIGHT
        )
        self.normalize = bool(normalize)
        self.exact_radial = bool(exact_radial)
        self.radial_scaling: tuple[float, float, float] | None = None
        if radial_scaling is not None:
            try:
                r0, rate, expo = (float(v) for v in radial_scaling)
            except (TypeError, ValueError):
                raise ValueError(
                    f"radial_scaling must be (radius, rate, exponent), got {radial_scaling!r}"
                ) from None
            if not (
                math.isfinite(r0)
                and r0 > 0
                and math.isfinite(rate)
                and rate > 0
                and math.isfinite(expo)
                and expo >= 0
            ):
                raise ValueError(
                    "radial_scaling needs radius > 0, rate > 0 and exponent >= 0 (finite), "
                    f"got {radial_scaling!r}"
                )
            self.radial_scaling = (r0, rate, expo)
        self.compress = bool(compress)
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
        self.pairs = None
        if pairs is not None:
            pair_list = []
            for pair in pairs:
                if isinstance(pair, str) or len(pair) != 2:
                    raise ValueError(f"pairs must hold (species, species) tuples, got {pair!r}")
                a, b = (_atomic_number(x, "pairs") for x in pair)
                pair_list.append((min(a, b), max(a, b)))
            if not pair_list:
                raise ValueError("pairs must select at least one neighbour-species pair")
            self.pairs = sorted(set(pair_list))
        self.species_: np.ndarray | None = None
        self._calculators: list[Any] | None = None
        if species is not None:
            self._set_species(species)

    # -- configuration -----------------------------------------------------------------
    def _set_species(self, species: Iterable[int | str]) -> None:
        if isinstance(species, (str, numbers.Integral)):
            species = [species]
        zs = sorted({_atomic_number(s, "species") for s in species})
        if not zs:
            raise ValueError("species must hold at least one species")
        if self.pairs is not None:
            missing = sorted({z for pair in self.pairs for z in pair} - set(zs))
            if missing:
                raise ValueError(f"pairs name species {missing} that are not in species={zs}")
        self.species_ = np.array(zs, dtype=np.int64)
        self._calculators = None

    def _pair_mask(self) -> np.ndarray:
        assert self.species_ is not None
        S = len(self.species_)
        if self.pairs is None:
            return np.ones((S, S), dtype=bool)
        index = {int(z): k for k, z in enumerate(self.species_)}
        mask = np.zeros((S, S), dtype=bool)
        for a, b in self.pairs:
            mask[index[a], index[b]] = True
        return mask

    def _core(self) -> list[Any]:
        if self._calculators is None:
            assert self.species_ is not None
            mask = self._pair_mask()
            self._calculators = [
                _core.atoms.Soap(
                    rc,
                    self.max_radial,
                    self.max_angular,
                    self.atomic_width,
                    self.smoothing,
                    self.center_weight,
                    self.exact_radial,
                    len(self.species_),
                    self.compress,
                    mask,
                    *(self.radial_scaling or (0.0, 1.0, 0.0)),
                )
                for rc in self._cutoffs
            ]
        return self._calculators

    @property
    def n_features(self) -> int:
        """Features per environment, all cutoffs together (see :meth:`feature_labels`)."""
        if self.species_ is None:
            raise ValueError("species are not known yet: pass species= or call compute()")
        mask = np.triu(self._pair_mask())
        N = self.max_radial
        diag = int(np.trace(mask)) * (N * (N + 1) // 2 if self.compress else N * N)
        off = int(mask.sum() - np.trace(mask)) * N * N
        return len(self._cutoffs) * (self.max_angular + 1) * (diag + off)

    def feature_labels(self) -> np.ndarray:
        """What each column holds.

        Returns
        -------
        labels : numpy.ndarray of int64, shape (n_features, 6)
            Columns: cutoff index (into the ``cutoff`` sequence, 0 for a single cutoff),
            neighbour species a, neighbour species b (atomic numbers, a ≤ b), l, n1, n2.
            With ``compress=True``, same-species blocks hold ``n1 ≤ n2`` only.

        Example
        -------
        >>> import matchar as mc
        >>> mc.atoms.SOAP(max_radial=2, max_angular=1, species=[1]).feature_labels()[:3]
        array([[0, 1, 1, 0, 0, 0],
               [0, 1, 1, 0, 0, 1],
               [0, 1, 1, 0, 1, 0]])
        """
        if self.species_ is None:
            raise ValueError("species are not known yet: pass species= or call compute()")
        sp, L, N = self.species_, self.max_angular, self.max_radial
        mask = self._pair_mask()
        rows = [
            (k, sp[a], sp[b], l, n1, n2)
            for k in range(len(self._cutoffs))
            for a in range(len(sp))
            for b in range(a, len(sp))
            if mask[a, b]
            for l in range(L + 1)
            for n1 in range(N)
            for n2 in range(n1 if (self.compress and a == b) else 0, N)
        ]
        return np.array(rows, dtype=np.int64).reshape(-1, 6)

    # -- input conversion --------------------------------------------------------------
    def _prepare(
        self, frames: Any, centers: Any, first: int = 0
    ) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
        # `first`: index of frames[0] in the caller's sequence, for error messages.
        ase = require("ase", "nmr", "SOAP")
        if isinstance(frames, ase.Atoms):
            frames = [frames]
        frames = list(frames)
        if not frames:
            raise ValueError("frames is empty: at least one ase.Atoms is needed")
        for k, f in enumerate(frames):
            if not isinstance(f, ase.Atoms):
                raise ValueError(
                    f"frames[{first + k}] must be an ase.Atoms, got {type(f).__name__}"
                )
            if len(f) == 0:
                raise ValueError(f"frames[{first + k}] is empty (no atoms)")
        if self.species_ is None:
            self._set_species(np.unique(np.concatenate([f.numbers for f in frames])).tolist())
        assert self.species_ is not None
        lookup = np.full(119, -1, dtype=np.int32)
        lookup[self.species_] = np.arange(len(self.species_), dtype=np.int32)

        center_z: np.ndarray | None = None
        if centers is not None:
            if isinstance(centers, (str, numbers.Integral)):
                centers = [centers]
            center_z = np.array(sorted({_atomic_number(c, "centers") for c in centers}))

        counts = np.array([len(f) for f in frames], dtype=np.int64)
        offsets = np.zeros(len(frames) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        numbers_all = np.concatenate([f.numbers for f in frames]).astype(np.int64)
        bad = (numbers_all < 1) | (numbers_all > 118)
        species_idx = np.where(bad, -1, lookup[np.clip(numbers_all, 0, 118)])
        if (species_idx < 0).any():
            k = int(np.argmax(species_idx < 0))
            frame = int(np.searchsorted(offsets, k, side="right") - 1)
            raise ValueError(
                f"frames[{first + frame}] holds atomic number {numbers_all[k]} "
                f"(atom {k - offsets[frame]}), which is not in species={self.species_.tolist()}"
            )
        positions = np.ascontiguousarray(
            np.concatenate([f.positions for f in frames]), dtype=np.float64
        )
        if not np.isfinite(positions).all():
            raise ValueError("frames hold NaN or infinite positions")
        cells = np.ascontiguousarray(
            np.stack([np.asarray(f.cell.array, dtype=np.float64) for f in frames])
        )
        pbc = np.ascontiguousarray(np.stack([np.asarray(f.pbc, dtype=bool) for f in frames]))

        frame_of = np.repeat(np.arange(len(frames), dtype=np.int64), counts)
        atom_of = np.arange(len(numbers_all), dtype=np.int64) - offsets[frame_of]
        keep = np.ones(len(numbers_all), dtype=bool)
        if center_z is not None:
            keep = np.isin(numbers_all, center_z)
        samples = np.stack([frame_of[keep], atom_of[keep], numbers_all[keep]], axis=1)
        args = (positions, species_idx.astype(np.int32), offsets, cells, pbc)
        return args, samples

    # -- computation -------------------------------------------------------------------
    @serialized
    def compute(
        self,
        frames: Any,
        centers: Sequence[int | str] | None = None,
        *,
        chunk_size: int | None = None,
        callback: Callable[[int, np.ndarray, np.ndarray], None] | None = None,
        out: np.ndarray | None = None,
        progress: bool = False,
        return_samples: bool = False,
    ) -> Any:
        """SOAP power spectra of every (selected) atom of ``frames``.

        Parameters
        ----------
        frames : ase.Atoms, sequence or iterator of ase.Atoms
            Periodic (any triclinic cell, also smaller than the cutoff, mixed pbc) or
            not; positions in Å. Every atomic number must be in ``species_``. An
            iterator (e.g. ``ase.io.iread``) is consumed ``chunk_size`` frames at a
            time; pass ``species`` then, as they are otherwise taken from the first
            chunk only.
        centers : sequence of int or str, optional
            Centre species to keep (atomic numbers or symbols); ``None``: all atoms.
        chunk_size : int, optional
            Process this many frames at a time (bounded memory with ``callback`` or
            ``out``). Default: all frames in one go.
        callback : callable, optional
            ``callback(start_row, features, samples)`` per chunk; ``features`` is
            (rows, n_features), ``samples`` (rows, 3). With a callback nothing is kept
            and ``None`` is returned.
        out : numpy.ndarray, optional
            Preallocated C-contiguous (n_envs, n_features) array of ``dtype`` (e.g. a
            ``numpy.memmap``) filled in place, without temporaries for one cutoff.
        progress : bool, default False
            Show a tqdm progress bar over chunks.
        return_samples : bool, default False
            Also return which atom each row describes.

        Returns
        -------
        features : numpy.ndarray, shape (n_envs, n_features), or None with a callback
            Rows in frame order, then atom order; ``dtype`` float64 or float32.
        samples : numpy.ndarray of int64, shape (n_envs, 3)
            Only with ``return_samples=True``: (frame index, atom index, centre atomic
            number) per row. Each call returns its own samples, so one instance can
            serve several threads.

        Raises
        ------
        ValueError
            Empty frames, species outside ``species_``, NaN positions, atoms closer than
            1e-3 Å, a periodic cell of zero volume, a wrong ``out``.
        MemoryError
            If the output cannot fit in memory (raised before allocating).

        Example
        -------
        >>> import ase.build, matchar as mc
        >>> soap = mc.atoms.SOAP(cutoff=3.0, max_radial=3, max_angular=2, species=[14])
        >>> soap.compute(ase.build.bulk("Si", "diamond", a=5.43)).shape
        (2, 27)
        """
        ase = require("ase", "nmr", "SOAP")
        chunk = check_int(chunk_size, "chunk_size", low=1, high=None, allow_none=True)
        total: int | None = None
        if isinstance(frames, ase.Atoms):
            frames = [frames]
        if isinstance(frames, Sequence):
            total = len(frames)
            if total == 0:
                raise ValueError("frames is empty: at least one ase.Atoms is needed")
            step = total if chunk is None else chunk
            if self.species_ is None:  # fixed from all frames, before the first chunk
                for k, f in enumerate(frames):
                    if not isinstance(f, ase.Atoms):
                        raise ValueError(
                            f"frames[{k}] must be an ase.Atoms, got {type(f).__name__}"
                        )
                self._set_species(np.unique(np.concatenate([f.numbers for f in frames])).tolist())
            chunks: Iterable[Sequence[Any]] = (frames[s : s + step] for s in range(0, total, step))
            n_chunks: int | None = math.ceil(total / step)
        else:
            # An iterator (e.g. ase.io.iread): frames are read chunk by chunk.
            iterator = iter(frames)
            if chunk is None:
                chunks = [list(iterator)]
            else:
                chunks = iter(lambda: list(itertools.islice(iterator, chunk)), [])
            n_chunks = None

        if out is not None:
            if not isinstance(out, np.ndarray) or out.dtype != self.dtype or out.ndim != 2:
                raise ValueError(f"out must be a 2-D numpy array of dtype {self.dtype}")
        if progress:
            from tqdm.auto import tqdm

            chunks = tqdm(chunks, total=n_chunks, desc="SOAP", unit="chunk")
        results: list[np.ndarray] = []
        all_samples: list[np.ndarray] = []
        row = 0
        first_frame = 0
        for frame_chunk in chunks:
            if len(frame_chunk) == 0:
                break
            args, samples = self._prepare(frame_chunk, centers, first_frame)
            fns = [calc.power_spectrum for calc in self._core()]
            if out is not None and (out.shape[1] != self.n_features or not out.flags.c_contiguous):
                raise ValueError(
                    f"out must be C-contiguous with {self.n_features} columns, got "
                    f"shape {out.shape}"
                )
            if out is not None and row + len(samples) > out.shape[0]:
                raise ValueError(f"out has {out.shape[0]} rows, more environments are needed")
            cen = np.ascontiguousarray(samples[:, :2])
            samples[:, 0] += first_frame
            first_frame += len(frame_chunk)
            if len(fns) == 1:
                target = None
                if out is not None and callback is None:
                    target = out[row : row + len(samples)]  # written in place by C++
                X = fns[0](*args, cen, self.normalize, self.dtype, target)
            else:
                X = np.hstack([fn(*args, cen, False, self.dtype) for fn in fns])
                if self.normalize:
                    norm = np.linalg.norm(X, axis=1, keepdims=True)
                    np.divide(X, norm, out=X, where=norm > 0)
            if callback is not None:
                callback(row, X, samples)
            elif out is not None:
                if len(fns) > 1:
                    out[row : row + len(X)] = X
            else:
                results.append(X)
            all_samples.append(samples)
            row += len(samples)
        if row == 0 and not all_samples:
            raise ValueError("frames is empty: at least one ase.Atoms is needed")
        samples = np.concatenate(all_samples)
        self._last_samples = samples
        if callback is not None:
            X = None
        elif out is not None:
            X = out[:row]
        else:
            X = results[0] if len(results) == 1 else np.concatenate(results)
        return (X, samples) if return_samples else X

    @property
    def samples_(self) -> np.ndarray:
        """Deprecated: the samples of the last :meth:`compute` or
        :meth:`spherical_expansion` call (``compute(..., return_samples=True)`` returns
        them with the features and is safe when threads share the calculator)."""
        warnings.warn(
            "SOAP.samples_ is deprecated and will be removed in the next release: it holds "
            "the last call's samples, which another thread may have replaced; use "
            "X, samples = soap.compute(frames, return_samples=True)",
            FutureWarning,
            stacklevel=2,
        )
        last = self.__dict__.get("_last_samples", self.__dict__.get("samples_"))
        if last is None:
            raise AttributeError("samples_: compute has not been called")
        return last

    def compute_atoms(self, frames: Any, atoms: Any) -> np.ndarray:
        """SOAP power spectra of chosen atoms: one row per (frame index, atom index) pair.

        Parameters
        ----------
        frames : ase.Atoms or sequence of ase.Atoms
            As for :meth:`compute`.
        atoms : array_like of int, shape (n, 2)
            Rows ``(frame index, atom index)``, in the order wanted.

        Returns
        -------
        numpy.ndarray, shape (n, n_features)
            The same values as the corresponding rows of :meth:`compute`.

        Example
        -------
        >>> import ase.build, matchar as mc
        >>> soap = mc.atoms.SOAP(cutoff=3.0, max_radial=3, max_angular=2, species=["H", "O"])
        >>> soap.compute_atoms([ase.build.molecule("H2O")], [[0, 2], [0, 0]]).shape
        (2, 81)
        """
        ase = require("ase", "nmr", "SOAP")
        frame_list = [frames] if isinstance(frames, ase.Atoms) else list(frames)
        args, _ = self._prepare(frame_list, None)
        pairs = np.asarray(atoms)
        if pairs.ndim != 2 or pairs.shape[1] != 2 or pairs.dtype.kind not in "iu":
            raise ValueError(f"atoms must be an (n, 2) integer array, got shape {pairs.shape}")
        counts = np.diff(args[2])
        if len(pairs) and (
            pairs[:, 0].min() < 0
            or pairs[:, 0].max() >= len(counts)
            or pairs[:, 1].min() < 0
            or (pairs[:, 1] >= counts[pairs[:, 0]]).any()
        ):
            raise ValueError("atoms holds a (frame, atom) pair outside the frames")
        fns = [calc.power_spectrum for calc in self._core()]
        cen = np.ascontiguousarray(pairs, dtype=np.int64)
        if len(fns) == 1:
            return fns[0](*args, cen, self.normalize, self.dtype, None)
        X = np.hstack([fn(*args, cen, False, self.dtype) for fn in fns])
        if self.normalize:
            norm = np.linalg.norm(X, axis=1, keepdims=True)
            np.divide(X, norm, out=X, where=norm > 0)
        return X

    def spherical_expansion(
        self,
        frames: Any,
        centers: Sequence[int | str] | None = None,
        *,
        return_samples: bool = False,
    ) -> Any:
        """Density expansion coefficients ``c^a_{nlm}`` (float64).

        Parameters
        ----------
        frames : ase.Atoms or sequence of ase.Atoms
            As for :meth:`compute`.
        centers : sequence of int or str, optional
            Centre species to keep; ``None``: all atoms.
        return_samples : bool, default False
            Also return the (n_envs, 3) samples, as :meth:`compute` does.

        Returns
        -------
        coefficients : numpy.ndarray, shape (n_envs, (max_angular+1)², n_species, max_radial)
            Axis 1 is ``lm = l² + l + m`` (m = -l..l, real spherical harmonics without
            the Condon-Shortley phase, m < 0 ↔ ``sin |m|φ``). Flattened per row this is
            featomic's dense spherical-expansion layout.

        Example
        -------
        >>> import ase.build, matchar as mc
        >>> soap = mc.atoms.SOAP(cutoff=4.0, max_radial=4, max_angular=2)
        >>> soap.spherical_expansion([ase.build.molecule("H2O")]).shape
        (3, 9, 2, 4)
        """
        args, samples = self._prepare(frames, centers)
        if len(self._cutoffs) > 1:
            raise NotImplementedError("spherical_expansion supports a single cutoff only")
        calc = self._core()[0]
        C = calc.spherical_expansion(*args, np.ascontiguousarray(samples[:, :2]))
        self._last_samples = samples
        assert self.species_ is not None
        C = C.reshape(len(samples), (self.max_angular + 1) ** 2, len(self.species_), -1)
        return (C, samples) if return_samples else C

    def __getstate__(self) -> dict[str, Any]:
        # The compiled calculators are rebuilt on demand (pickle, joblib, spawn).
        state = self.__dict__.copy()
        state["_calculators"] = None
        return state

    def __repr__(self) -> str:
        return (
            f"SOAP(cutoff={self.cutoff}, max_radial={self.max_radial}, "
            f"max_angular={self.max_angular}, atomic_width={self.atomic_width}, "
            f"smoothing={self.smoothing}, species="
            f"{None if self.species_ is None else self.species_.tolist()})"
        )
