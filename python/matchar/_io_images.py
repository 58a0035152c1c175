"""Loading 2-D images (with their pixel size) and atomic structures; part of
:mod:`matchar.io`, which re-exports :func:`load_image` and :func:`load_structures`."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import numpy as np

from ._io_files import (
    _cannot_read,
    _check_readable_file,
    _format_name,
    _load_npy,
    _reading,
    _rsciio_plugins,
    _rsciio_reader,
)
from ._optional import require

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
    FileNotFoundError, IsADirectoryError
        If ``path`` does not exist or is a directory.
    FileFormatError
        (a :class:`ValueError`) If the file is empty, truncated, corrupt or not in the
        format its extension names; the message names the file and the format.
    ValueError
        Unsupported extension, no 2-D dataset in the file.
    ImportError
        rosettasciio missing for a microscope format.

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
    if not p.exists():
        raise FileNotFoundError(errno.ENOENT, "no such file", str(p))
    ext = p.suffix.lower()
    fmt = _format_name(p)
    if ext == ".npy":
        return _check_2d(_load_npy(p), p), None, {}
    if ext in (".png", ".jpg", ".jpeg"):
        import matplotlib.image

        _check_readable_file(p, fmt)
        with _reading(p, fmt):
            img = np.asarray(matplotlib.image.imread(p))
        if img.ndim == 3 and img.shape[-1] in (3, 4):
            img = img[..., :3].mean(axis=-1)
        return _check_2d(img, p), None, {}
    if ext not in _rsciio_plugins() and _rsciio_plugins():
        raise ValueError(
            f"{str(p)!r}: unsupported image format {ext!r}; expected .npy, .png, .jpg or a "
            "format rosettasciio reads (.tif, .dm3/.dm4, .emd, .hspy, ...)"
        )
    _check_readable_file(p, fmt)
    reader = _rsciio_reader(p, f"reading {ext} images")
    with _reading(p, fmt):
        items = reader(str(p))
    items = items if isinstance(items, list) else [items]
    for item in items:
        data = np.asarray(item["data"])
        if data.ndim != 2:
            continue
        axes = item.get("axes", [])
        return data, _pixel_size(axes), {"axes": axes, "metadata": item.get("metadata", {})}
    raise ValueError(f"{str(p)!r} ({fmt}) holds no 2-D image")


def _check_2d(img: np.ndarray, p: Path) -> np.ndarray:
    if img.ndim != 2:
        raise ValueError(f"{str(p)!r}: expected a 2-D image, got shape {img.shape}")
    return img


def load_structures(path: str | Path, *, format: str | None = None) -> list[Any]:
    """Read every structure (frame) in a file through ASE (``.xyz``, ``.extxyz``, ``.cif``,
    ``.pdb``, ... anything :func:`ase.io.read` reads).

    Parameters
    ----------
    path : str or pathlib.Path
    format : str, optional
        ASE's name of the format; default: guessed from the extension and contents.

    Returns
    -------
    list of ase.Atoms
        At least one frame, each with at least one atom and finite positions.

    Raises
    ------
    FileNotFoundError, IsADirectoryError
        If ``path`` does not exist or is a directory.
    FileFormatError
        (a :class:`ValueError`) If the file is empty, not in a format ASE reads, corrupt,
        truncated, holds no structure or non-finite positions; the message names the file.

    Example
    -------
    >>> import ase.build, ase.io, matchar as mc, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "mols.xyz")
    >>> ase.io.write(path, [ase.build.molecule("H2O"), ase.build.molecule("CH4")])
    >>> [len(a) for a in mc.io.load_structures(path)]
    [3, 5]
    """
    ase_io = require("ase.io", "nmr", "load_structures")

    p = Path(path)
    fmt = f"a structure file (ASE format {format!r})" if format else "a structure file"
    ext = p.suffix.lower()
    if not format and ext:
        fmt = f"a structure file ({ext})"
    _check_readable_file(p, fmt)
    with _reading(p, fmt):
        frames = ase_io.read(os.fspath(p), ":", format=format)
    frames = frames if isinstance(frames, list) else [frames]
    if not frames:
        raise _cannot_read(p, fmt, "file holds no structure")
    for i, atoms in enumerate(frames):
        if len(atoms) == 0:
            raise _cannot_read(p, fmt, f"frame {i} has no atoms")
        if not np.isfinite(atoms.positions).all():
            raise _cannot_read(p, fmt, f"frame {i} has non-finite (NaN or inf) positions")
    return frames


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
