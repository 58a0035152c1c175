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


# File extension -> rosettasciio reader module, for 2-D images.
_IMAGE_READERS = {
    ".tif": "rsciio.tiff",
    ".tiff": "rsciio.tiff",
    ".dm3": "rsciio.digitalmicrograph",
    ".dm4": "rsciio.digitalmicrograph",
    ".emd": "rsciio.emd",
    ".hspy": "rsciio.hspy",
}
_TO_ANGSTROM = {"å": 1.0, "a": 1.0, "angstrom": 1.0, "nm": 10.0, "pm": 0.01, "µm": 1e4, "um": 1e4}


def load_image(path: str | Path) -> tuple[np.ndarray, float | None, dict[str, Any]]:
    """Load a 2-D image (e.g. HAADF STEM) and its pixel size.

    ``.npy`` through NumPy, ``.png``/``.jpg`` through matplotlib (colour averaged to grey),
    ``.tif``/``.tiff``, ``.dm3``/``.dm4``, ``.emd`` and ``.hspy`` through rosettasciio
    (``pip install 'matchar[io]'``); the first 2-D dataset in the file is returned.

    Parameters
    ----------
    path : str or pathlib.Path

    Returns
    -------
    image : ndarray, shape (H, W)
        In the file's dtype.
    pixel_size : float or None
        Å per pixel from the file's axes when they are calibrated in a length unit
        (Å, nm, pm, µm) and square; None otherwise (and for .npy/.png).
    metadata : dict
        ``{"axes": [...], "metadata": <the reader's>}`` (empty for .npy/.png).

    Raises
    ------
    FileNotFoundError, ValueError (unsupported extension, no 2-D dataset), ImportError
    (rosettasciio missing for a microscope format).

    Example
    -------
    >>> import numpy as np, matchar as mc, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "img.npy")
    >>> np.save(path, np.zeros((8, 9)))
    >>> image, pixel_size, _ = mc.io.load_image(path)
    >>> image.shape, pixel_size
    ((8, 9), None)
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"path does not exist: {p}")
    ext = p.suffix.lower()
    if ext == ".npy":
        img = np.load(p, allow_pickle=False)
        return _check_2d(img, p), None, {}
    if ext in (".png", ".jpg", ".jpeg"):
        import matplotlib.image

        img = np.asarray(matplotlib.image.imread(p))
        img = img if img.ndim == 2 else img[..., :3].mean(axis=-1)
        return img, None, {}
    module = _IMAGE_READERS.get(ext)
    if module is None:
        raise ValueError(
            f"{p.name}: unsupported image format {ext!r}; expected .npy, .png, .jpg or one of "
            f"{sorted(_IMAGE_READERS)}"
        )
    try:
        reader = importlib.import_module(module).file_reader
    except ImportError as err:
        raise ImportError(
            f"reading {ext} files needs rosettasciio with its optional readers: "
            "pip install 'matchar[io]'"
        ) from err
    items = reader(str(p))
    items = items if isinstance(items, list) else [items]
    for item in items:
        data = np.asarray(item["data"])
        if data.ndim != 2:
            continue
        axes = item.get("axes", [])
        return data, _pixel_size(axes), {"axes": axes, "metadata": item.get("metadata", {})}
    raise ValueError(f"{p.name} holds no 2-D image")


def _check_2d(img: np.ndarray, p: Path) -> np.ndarray:
    if img.ndim != 2:
        raise ValueError(f"{p.name}: expected a 2-D image, got shape {img.shape}")
    return img


def _pixel_size(axes: list[dict[str, Any]]) -> float | None:
    sizes = []
    for a in axes[:2]:
        factor = _TO_ANGSTROM.get(str(a.get("units", "")).strip().lower())
        scale = a.get("scale")
        if factor is None or scale is None or not np.isfinite(scale) or scale <= 0:
            return None
        sizes.append(float(scale) * factor)
    if len(sizes) != 2 or not np.isclose(sizes[0], sizes[1], rtol=1e-3):
        return None
    return sizes[0]


def save_hspy(
    path: str | Path,
    data: np.ndarray,
    *,
    n_signal_axes: int = 1,
    axes: list[dict[str, Any]] | None = None,
    title: str = "",
    signal_type: str = "",
) -> Path:
    """Write an array as a HyperSpy ``.hspy`` file (through rosettasciio; HyperSpy itself
    is not needed), so that ``hyperspy.api.load(path)`` gives a signal.

    Parameters
    ----------
    path : str or pathlib.Path
        Output file (``.hspy`` is appended when missing).
    data : ndarray, shape (*navigation, *signal)
    n_signal_axes : int, default 1
        How many trailing axes are signal axes (1 for spectra, 2 for images).
    axes : list of dict, optional
        Per axis ``{"name", "scale", "offset", "units"}`` (sizes are taken from ``data``);
        default: uncalibrated axes.
    title, signal_type : str
        Stored in the signal's metadata (e.g. ``signal_type="EDS_TEM"``).

    Returns
    -------
    pathlib.Path
        The file written.

    Example
    -------
    >>> import numpy as np, matchar as mc, tempfile, os
    >>> folder = tempfile.mkdtemp()
    >>> mc.io.save_hspy(os.path.join(folder, "maps"), np.zeros((4, 5, 2))).name
    'maps.hspy'
    """
    try:
        from rsciio.hspy import file_writer
    except ImportError as err:
        raise ImportError(
            "writing .hspy needs rosettasciio and h5py: pip install 'matchar[io]'"
        ) from err
    arr = np.asarray(data)
    if not 1 <= n_signal_axes <= arr.ndim:
        raise ValueError(f"n_signal_axes must be in 1..{arr.ndim}, got {n_signal_axes}")
    if axes is not None and len(axes) != arr.ndim:
        raise ValueError(f"axes must have {arr.ndim} entries, got {len(axes)}")
    out_axes = []
    for i, n in enumerate(arr.shape):
        # None values (uncalibrated axes from a reader) fall back to the defaults
        a = {k: v for k, v in (dict(axes[i]) if axes is not None else {}).items() if v is not None}
        out_axes.append(
            {
                "name": str(a.get("name", f"axis{i}")),
                "size": int(n),
                "scale": float(a.get("scale", 1.0)),
                "offset": float(a.get("offset", 0.0)),
                "units": str(a.get("units", "")),
                "navigate": i < arr.ndim - n_signal_axes,
            }
        )
    p = Path(path)
    if p.suffix.lower() != ".hspy":
        p = p.with_name(p.name + ".hspy")
    from . import __version__

    file_writer(
        str(p),
        {
            "data": arr,
            "axes": out_axes,
            "metadata": {"General": {"title": title}, "Signal": {"signal_type": signal_type}},
            "original_metadata": {},
            "attributes": {"_lazy": False},
            "tmp_parameters": {},
            "learning_results": {},
            "models": {},
            "package_info": {"name": "matchar", "version": __version__},
        },
        show_progressbar=False,
    )
    return p
