"""The data side of the EDX model: the settings a file records (:func:`edx_metadata`), the
energy axis, the summed spectrum of a spectrum image, and the non-negative Poisson
regression of a spectrum on model columns (used by the element proposal)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._validation import check_float, check_int
from ._edx_physics import MAX_RESOLUTION_EV, MIN_RESOLUTION_EV, take_off_angle


def _number(value: Any) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _tree_get(tree: Any, *keys: str) -> Any:
    for key in keys:
        if isinstance(tree, dict):
            tree = tree.get(key)
        else:
            tree = getattr(tree, key, None)
        if tree is None:
            return None
    return tree


#: Energy units of a spectrum's axis -> keV.
_TO_KEV = {"kev": 1.0, "ev": 1e-3, "mev": 1e3}


def edx_metadata(metadata: Any, n_channels: int | None = None) -> dict[str, Any]:
    """The EDX settings a file records: energy axis (keV), beam energy, take-off angle,
    energy resolution and elements.

    Parameters
    ----------
    metadata : dict or HyperSpy signal
        The metadata dict of :func:`matchar.io.load_spectrum_image` (with
        ``energy_offset``/``energy_scale``/``energy_unit`` and the reader's ``metadata``
        tree), a HyperSpy-style metadata tree (``Acquisition_instrument``, ``Sample``),
        or a HyperSpy/exspy signal.
    n_channels : int, optional
        Channel count when the metadata do not say (the data's last axis).

    Returns
    -------
    dict
        ``energy_axis`` ((offset_keV, scale_keV, n) or None), ``energy_unit`` (the
        file's), ``beam_energy_keV``, ``takeoff_deg`` (from the detector's elevation and
        azimuth and the stage tilt, :func:`take_off_angle`), ``resolution_eV`` (FWHM at Mn
        K-alpha, ``Detector.EDS.energy_resolution_MnKa``) and ``elements``
        (``Sample.elements``); each None when the metadata do not record it.

    Raises
    ------
    ValueError
        If the energy axis's unit is neither eV nor keV (nor unrecorded).

    Example
    -------
    >>> md = {"energy_offset": -250.0, "energy_scale": 10.0, "energy_unit": "eV",
    ...       "energy_size": 4096, "metadata": {"Acquisition_instrument": {"TEM": {
    ...       "beam_energy": 300.0, "Detector": {"EDS": {"elevation_angle": 18.0}}}}}}
    >>> s = edx_metadata(md)
    >>> s["energy_axis"], s["beam_energy_keV"], s["takeoff_deg"]
    ((-0.25, 0.01, 4096), 300.0, 18.0)
    """
    out: dict[str, Any] = dict(
        energy_axis=None,
        energy_unit=None,
        beam_energy_keV=None,
        takeoff_deg=None,
        resolution_eV=None,
        elements=None,
    )
    if is_signal(metadata):
        axis = metadata.axes_manager.signal_axes[0]
        tree: Any = metadata.metadata
        offset, scale, unit = axis.offset, axis.scale, getattr(axis, "units", None)
        n_channels = int(axis.size)
    else:
        if not isinstance(metadata, dict):
            raise ValueError(
                f"metadata must be a dict (load_spectrum_image's, or a HyperSpy-style tree) "
                f"or a HyperSpy signal, got {type(metadata).__name__}"
            )
        tree = metadata.get("metadata", metadata)
        offset, scale = metadata.get("energy_offset"), metadata.get("energy_scale")
        unit = metadata.get("energy_unit", metadata.get("energy_units"))
        n_channels = metadata.get("energy_size", n_channels)
    unit_text = "" if unit is None else str(unit).strip()
    if unit_text.lower() in ("", "<undefined>", "undefined"):
        factor = 1.0  # no unit recorded: keV, the EDX convention
    elif unit_text.lower() in _TO_KEV:
        factor = _TO_KEV[unit_text.lower()]
    else:
        raise ValueError(
            f"metadata: the energy axis is in {unit_text!r}; expected eV or keV for an "
            "X-ray spectrum"
        )
    out["energy_unit"] = unit_text or None
    off, sc = _number(offset), _number(scale)
    if off is not None and sc is not None and n_channels is not None:
        out["energy_axis"] = (off * factor, sc * factor, int(n_channels))
    instrument = _tree_get(tree, "Acquisition_instrument")
    for mode in ("TEM", "SEM"):
        sub = _tree_get(instrument, mode)
        if sub is None:
            continue
        beam = _number(_tree_get(sub, "beam_energy"))
        if beam is not None and beam > 0:
            out["beam_energy_keV"] = beam
        eds = _tree_get(sub, "Detector", "EDS")
        elevation = _number(_tree_get(eds, "elevation_angle"))
        if elevation is not None:
            azimuth = _number(_tree_get(eds, "azimuth_angle")) or 0.0
            tilt = _number(_tree_get(sub, "Stage", "tilt_alpha")) or 0.0
            toa = take_off_angle(tilt, azimuth, elevation)
            out["takeoff_deg"] = toa if 0 < toa <= 90 else None
        res = _number(_tree_get(eds, "energy_resolution_MnKa"))
        if res is not None and MIN_RESOLUTION_EV <= res <= MAX_RESOLUTION_EV:
            out["resolution_eV"] = res
        break
    elements = _tree_get(tree, "Sample", "elements")
    if elements is not None and not isinstance(elements, str):
        els = [str(e) for e in elements]
        out["elements"] = els or None
    return out


def _summed_spectrum(data: Any, n_channels: int, chunk_bytes: int = 1 << 26) -> np.ndarray:
    """Sum of the spectra of ``data`` ((C,), (N, C), (H, W, C), scipy.sparse, dask, or a
    signal) as float64 (C,), accumulated in row blocks of about ``chunk_bytes``: no
    float64 copy of the whole cube. Raises ValueError for a channel-count mismatch or
    negative/non-finite values."""
    if is_signal(data):
        data = data.data
    shape = getattr(data, "shape", None)
    if shape is None:
        data = np.asarray(data)
        shape = data.shape
    if len(shape) == 0 or shape[-1] != n_channels:
        raise ValueError(
            f"data has {shape[-1] if len(shape) else 0} channels, the energy axis {n_channels}"
        )
    bad = "data must be finite and non-negative counts"
    if hasattr(data, "tocsr") or hasattr(data, "compute"):  # scipy.sparse, dask
        total = data.reshape(-1, n_channels).sum(axis=0)
        if hasattr(data, "compute"):
            import dask.array as da

            lo = da.nanmin(data) if data.dtype.kind == "f" else None
            total, lo = da.compute(total, lo)
            if lo is not None and lo < 0:
                raise ValueError(bad)
        spec = np.asarray(total, dtype=np.float64).ravel()
        if hasattr(data, "tocsr") and data.nnz and (data.data < 0).any():
            raise ValueError(bad)
        if not np.isfinite(spec).all() or (spec < 0).any():
            raise ValueError(bad)
        return spec
    x = np.asarray(data)
    if x.dtype.kind not in "biuf":
        raise ValueError(f"data must be numeric counts, got dtype {x.dtype}")
    # blocks along the first axis: views even of a cropped (non-contiguous) cube, and
    # the float64 sum casts in NumPy's small buffers, not a copy of the block
    lead = x.reshape(x.shape[0], -1, n_channels) if x.ndim >= 2 else x.reshape(1, 1, -1)
    step = max(1, chunk_bytes // max(1, lead.shape[1] * n_channels * 8))
    spec = np.zeros(n_channels, dtype=np.float64)
    for i in range(0, lead.shape[0], step):
        block = lead[i : i + step]
        if x.dtype.kind == "f" and not (np.isfinite(block).all() and (block >= 0).all()):
            raise ValueError(bad)
        if x.dtype.kind == "i" and (block < 0).any():
            raise ValueError(bad)
        spec += block.sum(axis=(0, 1), dtype=np.float64)
    return spec


def is_signal(obj: Any) -> bool:
    """Duck-typed HyperSpy/exspy signal: has ``.data``, ``.axes_manager`` and ``.metadata``."""
    return all(hasattr(obj, a) for a in ("data", "axes_manager", "metadata"))


def parse_energy_axis(energy_axis: Any, name: str = "energy_axis") -> tuple[float, float, int]:
    """(offset, scale, n) from a 3-tuple or a uniform 1-D array of channel energies (keV)."""
    if isinstance(energy_axis, tuple) and len(energy_axis) == 3:
        offset, scale, n = energy_axis
        n = check_int(n, f"{name}: the channel count", low=2)
        offset = check_float(offset, f"{name}: the offset (keV)")
        scale = check_float(scale, f"{name}: the scale (keV per channel)", low=0.0, low_open=True)
        if not np.isfinite(offset + scale * (n - 1)) or offset + scale == offset:
            raise ValueError(
                f"{name}: offset {offset} and scale {scale} do not give distinct finite "
                "channel energies"
            )
        return offset, scale, n
    try:
        e = np.asarray(energy_axis, dtype=np.float64)
    except (TypeError, ValueError):
        e = np.empty(0)
    if e.ndim != 1 or e.size < 2 or not np.isfinite(e).all():
        raise ValueError(
            f"{name} must be (offset_keV, scale_keV, n_channels) or a 1-D array of >= 2 "
            f"finite channel energies (keV), got {energy_axis!r:.80}"
        )
    d = np.diff(e)
    scale = float(d.mean())
    if scale <= 0 or np.abs(d - scale).max() > 1e-6 * max(abs(scale), 1e-12) + 1e-9:
        raise ValueError(f"{name}: channel energies must be increasing and uniformly spaced")
    return float(e[0]), scale, int(e.size)


def _poisson_fit(
    x: np.ndarray,
    B: np.ndarray,
    n_iter: int = 300,
    start: np.ndarray | None = None,
    return_coef: bool = False,
) -> tuple:
    """Non-negative Poisson regression x ~ B c by KL multiplicative updates.

    Returns (B c, deviance), plus c when ``return_coef``; ``start`` is an initial c.
    """
    scale = np.maximum(B.sum(axis=0), 1e-300)
    if start is None:
        c = np.full(B.shape[1], max(x.sum(), 1.0) / B.shape[1]) / scale
    else:
        c = np.maximum(np.asarray(start, dtype=np.float64), 1e-12)
    for _ in range(n_iter):
        f = np.maximum(B @ c, 1e-12)
        c *= (B.T @ (x / f)) / scale
    f = np.maximum(B @ c, 1e-12)
    pos = x > 0
    dev = 2.0 * float(np.sum(x[pos] * np.log(x[pos] / f[pos])) - x.sum() + f.sum())
    return (f, dev, c) if return_coef else (f, dev)
