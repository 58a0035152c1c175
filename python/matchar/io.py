"""Reading spectrum images (EDX/EELS) from microscope files through rosettasciio."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np

# File extension -> rosettasciio reader module.
_READERS = {
    ".bcf": "rsciio.bruker",
    ".spx": "rsciio.bruker",
    ".emd": "rsciio.emd",
    ".hspy": "rsciio.hspy",
    ".dm3": "rsciio.digitalmicrograph",
    ".dm4": "rsciio.digitalmicrograph",
    ".pts": "rsciio.jeol",
}


def _is_spectrum_image(item: dict[str, Any]) -> bool:
    axes = item.get("axes", [])
    signal = [a for a in axes if not a.get("navigate", True)]
    return np.ndim(item["data"]) >= 2 and len(signal) == 1


def load_spectrum_image(
    path: str | Path, *, lazy: bool = False
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Load a spectrum image and its energy axis from a .bcf, .emd, .hspy, .dm3/.dm4 or .pts file.

    The first dataset in the file with one signal (energy) axis and at least one
    navigation axis is returned, with the energy axis last, in the file's own dtype
    (raw counts stay integers, which :class:`matchar.spectral.NMF` reads in place).

    Parameters
    ----------
    path : str or pathlib.Path
        The file. Requires the optional dependency ``rosettasciio``
        (``pip install matchar[io]``).
    lazy : bool, default False
        Ask the reader for a lazy (dask) array where it supports it.

    Returns
    -------
    cube : ndarray, shape (H, W, C) or (N, C)
        Counts per energy channel.
    energy_axis : ndarray, shape (C,), float64
        Channel energies in the file's units (keV for EDX), ``offset + scale * i``.
    metadata : dict
        ``{"energy_offset", "energy_scale", "energy_units", "signal_type",
        "navigation_axes": [{name, size, scale, offset, units}, ...],
        "metadata": <the reader's metadata>, "original_metadata": <...>}``.

    Raises
    ------
    ImportError
        If rosettasciio is not installed.
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the extension is not supported or the file holds no spectrum image.

    Example
    -------
    >>> import matchar as mc                                    # doctest: +SKIP
    >>> cube, energy, meta = mc.io.load_spectrum_image("map.bcf")  # doctest: +SKIP
    >>> cube.shape, energy[:2], meta["energy_units"]            # doctest: +SKIP
    ((64, 64, 2048), array([-0.4754, -0.4654]), 'keV')
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"path does not exist: {p}")
    module = _READERS.get(p.suffix.lower())
    if module is None:
        raise ValueError(
            f"path: unsupported extension {p.suffix!r}; expected one of {sorted(_READERS)}"
        )
    try:
        reader = importlib.import_module(module).file_reader
    except ImportError as err:
        raise ImportError(
            "load_spectrum_image needs rosettasciio: pip install 'matchar[io]' "
            "(or pip install rosettasciio)"
        ) from err
    items = reader(str(p), lazy=lazy)
    items = items if isinstance(items, list) else [items]
    for item in items:
        if not _is_spectrum_image(item):
            continue
        axes = item["axes"]
        signal_index = next(i for i, a in enumerate(axes) if not a.get("navigate", True))
        data = item["data"]
        if signal_index != len(axes) - 1:
            data = np.moveaxis(data, signal_index, -1)
        energy = axes[signal_index]
        offset = float(energy.get("offset", 0.0))
        scale = float(energy.get("scale", 1.0))
        size = int(energy.get("size", np.shape(data)[-1]))
        meta = item.get("metadata", {}) or {}
        nav = [
            {k: a.get(k) for k in ("name", "size", "scale", "offset", "units")}
            for i, a in enumerate(axes)
            if i != signal_index
        ]
        return (
            data,
            offset + scale * np.arange(size, dtype=np.float64),
            {
                "energy_offset": offset,
                "energy_scale": scale,
                "energy_units": energy.get("units"),
                "signal_type": meta.get("Signal", {}).get("signal_type"),
                "navigation_axes": nav,
                "metadata": meta,
                "original_metadata": item.get("original_metadata", {}),
            },
        )
    raise ValueError(f"path: {p.name} holds no spectrum image (no dataset with an energy axis)")
