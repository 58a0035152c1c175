"""EELS reference spectra as a physical dictionary: ``ReferenceModel`` builds G from
measured reference spectra plus a power-law background, for
:class:`matchar.spectral.PhysicsNMF`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from .._validation import check_float
from ._edx import parse_energy_axis

__all__ = ["ReferenceModel"]


class ReferenceModel:
    """A dictionary of measured reference spectra plus a power-law background (EELS).

    ``G = [references | background]``: the reference spectra (edges measured on
    standards, background-subtracted) divided by one common constant, then one power-law
    column ``E^-r`` per exponent r in ``exponents`` (each normalised to unit sum).
    Non-negative combinations of power laws with different exponents model the smoothly
    decaying EELS background.

    Parameters
    ----------
    references : array_like, shape (C, R)
        Non-negative reference spectra, one column each (R >= 1).
    energy_axis : (offset, scale, n_channels) or 1-D array
        Channel energy losses (eV or keV; the exponents are unit-free). Must be > 0 where
        a background is modelled.
    names : sequence of str, optional
        Names of the references (default "ref0", "ref1", ...).
    background : {"power_law", None}, default "power_law"
    exponents : sequence of float, default (2.0, 3.0, 4.0)
        Power-law exponents r of the background columns (finite).

    Attributes
    ----------
    G : ndarray, shape (C, R + n_background)
    elements : list of str
        The reference names (PhysicsNMF's ``composition_`` is over these).
    n_elements, n_background : int
    energy : ndarray, shape (C,)
    fit_channels : ndarray of bool, shape (C,)
    yields : ndarray, shape (R,)
        The column sums of the references; G holds them divided by ``max(yields)`` (one
        common constant), so that fitted weights are amounts of each reference.

    Raises
    ------
    ValueError
        A dictionary whose channel count differs from the energy axis, negative,
        non-finite or complex references, an all-zero reference, column sums beyond the
        float64 range, non-positive energies with a background.

    Example
    -------
    >>> import numpy as np
    >>> refs = np.abs(np.random.default_rng(0).normal(size=(300, 2)))
    >>> ReferenceModel(refs, (100.0, 1.0, 300)).G.shape
    (300, 5)
    """

    def __init__(
        self,
        references: ArrayLike,
        energy_axis: Any,
        names: Sequence[str] | None = None,
        background: str | None = "power_law",
        exponents: Sequence[float] = (2.0, 3.0, 4.0),
    ) -> None:
        offset, scale, n = parse_energy_axis(energy_axis)
        self.energy = offset + scale * np.arange(n, dtype=np.float64)
        raw = np.asarray(references)
        if raw.dtype.kind not in "biuf":
            raise ValueError(f"references must hold real numbers, got dtype {raw.dtype}")
        R = np.array(raw, dtype=np.float64, copy=True)
        if R.ndim == 1:
            R = R[:, None]
        if R.ndim != 2:
            raise ValueError(f"references must be 2-D (channels, references), got shape {R.shape}")
        if R.shape[0] != n:
            raise ValueError(
                f"references have {R.shape[0]} channels but energy_axis has {n}: the dictionary "
                "must be sampled on the data's energy axis"
            )
        if R.shape[1] < 1:
            raise ValueError("references must hold at least one spectrum")
        if not np.isfinite(R).all() or (R < 0).any():
            raise ValueError("references must be finite and non-negative")
        with np.errstate(over="ignore"):
            self.yields = R.sum(axis=0)
        if not np.isfinite(self.yields).all():
            raise ValueError(
                f"references are too large: a column sums to more than {np.finfo(float).max:.3g}"
                "; divide them by a common constant"
            )
        if (self.yields <= 0).any():
            bad = np.flatnonzero(self.yields <= 0).tolist()
            raise ValueError(f"references: column(s) {bad} are all zero")
        R /= self.yields.max()  # one common constant: W stays in units of the references
        if names is None:
            names = [f"ref{i}" for i in range(R.shape[1])]
        names = [str(s) for s in names]
        if len(names) != R.shape[1]:
            raise ValueError(f"names has {len(names)} entries for {R.shape[1]} references")
        self.elements = names
        if background not in ("power_law", None):
            raise ValueError(f"background must be 'power_law' or None, got {background!r}")
        cols = [R]
        if background == "power_law":
            if (self.energy <= 0).any():
                raise ValueError("energy_axis must be > 0 everywhere for a power-law background")
            try:
                exps = [check_float(r, "exponents") for r in exponents]
            except TypeError:
                raise ValueError(
                    f"exponents must be a sequence of numbers, got {exponents!r}"
                ) from None
            if not exps:
                raise ValueError("exponents must hold at least one exponent")
            # E^-r in log space, shifted to a maximum of 1: no overflow for any exponent
            log_e = np.log(self.energy)
            bg = np.stack([-r * log_e for r in exps], axis=1)
            bg = np.exp(bg - bg.max(axis=0))
            cols.append(bg / bg.sum(axis=0))
        self.G = np.ascontiguousarray(np.concatenate(cols, axis=1))
        self.n_elements = R.shape[1]
        self.n_background = self.G.shape[1] - self.n_elements
        self.fit_channels = np.ones(n, dtype=bool)

    def __repr__(self) -> str:
        return f"ReferenceModel({self.elements}, n_background={self.n_background})"
