"""Reading spectrum images (EDX/EELS) from microscope files through rosettasciio."""

from __future__ import annotations

import errno
import importlib
import os
import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np


class FileFormatError(ValueError):
    """A file exists but cannot be read in the format its extension names: it is empty,
    truncated, corrupt or of another format.

    The message names the file and the format it was read as, e.g. ``cannot read
    'map.bcf' as Bruker .bcf: file is truncated (166028 of 332056 bytes)``. A subclass of
    :class:`ValueError`, so ``except ValueError`` catches it too.
    """


# File extension -> the format's name in error messages.
_FORMAT_NAMES = {
    ".bcf": "Bruker .bcf",
    ".spx": "Bruker .spx",
    ".emd": "EMD .emd",
    ".hspy": "HyperSpy .hspy",
    ".dm3": "Gatan DigitalMicrograph .dm3",
    ".dm4": "Gatan DigitalMicrograph .dm4",
    ".pts": "JEOL .pts",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".npy": "NumPy .npy",
}


def _format_name(p: Path) -> str:
    ext = p.suffix.lower()
    return _FORMAT_NAMES.get(ext, f"{ext} file")


def _cannot_read(p: Path, fmt: str, reason: str) -> FileFormatError:
    return FileFormatError(f"cannot read {str(p)!r} as {fmt}: {reason}")


def _check_readable_file(p: Path, fmt: str) -> None:
    """FileNotFoundError, IsADirectoryError or FileFormatError (empty) naming ``p``."""
    if p.is_dir():
        raise IsADirectoryError(
            errno.EISDIR, f"expected a file to read as {fmt}, got a directory", str(p)
        )
    if not p.exists():
        raise FileNotFoundError(errno.ENOENT, "no such file", str(p))
    if p.stat().st_size == 0:
        raise _cannot_read(p, fmt, "file is empty")


def _read_head(p: Path, n: int) -> bytes:
    with open(p, "rb") as fh:
        return fh.read(n)


def _check_bcf(p: Path, fmt: str) -> None:
    # A .bcf is an SFS container: a 0x118-byte header, then n_chunks chunks of chunk_size
    # bytes. rosettasciio's reader crashes the interpreter (or silently returns zeros) on a
    # truncated container, so the size is checked before it runs.
    head = _read_head(p, 0x14C)
    if not head.startswith(b"AAMVHFSS"):
        raise _cannot_read(p, fmt, "not a .bcf file (no SFS container signature)")
    if len(head) < 0x14C:
        raise _cannot_read(p, fmt, f"file is truncated ({len(head)} bytes, header incomplete)")
    (chunk_size,) = struct.unpack("<I", head[0x128:0x12C])
    _, _, n_chunks = struct.unpack("<III", head[0x140:0x14C])
    expected = 0x118 + chunk_size * n_chunks
    size = p.stat().st_size
    if chunk_size <= 0x20 or size < expected:
        raise _cannot_read(p, fmt, f"file is truncated ({size} of {expected} bytes)")


def _check_pts(p: Path, fmt: str) -> None:
    # JEOL .pts: magic 304, then the offset and length of the event stream. The reader
    # returns nothing for a wrong magic and zeros past the end of a truncated stream.
    head = _read_head(p, 36)
    if len(head) < 36 or struct.unpack("<I", head[:4])[0] != 304:
        raise _cannot_read(p, fmt, "not a JEOL .pts file (no PTS signature)")
    data_pos, data_len = struct.unpack("<II", head[28:36])
    expected = data_pos + data_len
    size = p.stat().st_size
    if size < expected:
        raise _cannot_read(p, fmt, f"file is truncated ({size} of {expected} bytes)")


_PRECHECKS: dict[str, Callable[[Path, str], None]] = {".bcf": _check_bcf, ".pts": _check_pts}


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _reason(err: BaseException, p: Path) -> str:
    """Why a reader failed, in words: HDF5's own diagnosis where it has one."""
    msg = _one_line(str(err))
    if isinstance(err, OSError) and "truncated file" in msg:
        return "file is truncated"
    if isinstance(err, OSError) and "file signature not found" in msg:
        return f"not a {p.suffix.lower()} file (not HDF5)"
    if type(err).__name__ == "UnknownFileTypeError":  # ase.io
        return f"ASE does not know this format ({msg}); name the file .xyz, .extxyz, .cif, ..."
    detail = f"{type(err).__name__}: {msg}" if msg else type(err).__name__
    return f"file is truncated, corrupt or not a {p.suffix.lower()} file ({detail})"


@contextmanager
def _reading(p: Path, fmt: str) -> Iterator[None]:
    """Turn whatever a reader raises on a bad file into one FileFormatError naming it.

    ImportError (a missing optional reader dependency), MemoryError, PermissionError and
    KeyboardInterrupt pass through."""
    try:
        yield
    except ImportError as err:
        need = f"the module {err.name!r}" if err.name else _one_line(str(err))
        raise ImportError(
            f"reading {str(p)!r} as {fmt} needs {need}: pip install 'matchar[io]'"
        ) from err
    except (FileFormatError, MemoryError, PermissionError, IsADirectoryError):
        raise
    except Exception as err:
        raise _cannot_read(p, fmt, _reason(err, p)) from err


def _load_npy(p: Path) -> np.ndarray:
    fmt = _FORMAT_NAMES[".npy"]
    _check_readable_file(p, fmt)
    with _reading(p, fmt):
        arr = np.load(p, allow_pickle=False)
    if not isinstance(arr, np.ndarray):  # an .npz under a .npy name
        raise _cannot_read(p, fmt, "file holds several arrays (an .npz archive?)")
    return arr


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
    IsADirectoryError
        If ``path`` is a directory.
    FileFormatError
        (a :class:`ValueError`) If the file is empty, truncated, corrupt or not in the
        format its extension names; the message names the file and the format.
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
        raise FileNotFoundError(errno.ENOENT, "no such file", str(p))
    ext = p.suffix.lower()
    module = _READERS.get(ext)
    if module is None:
        raise ValueError(
            f"{str(p)!r}: unsupported extension {p.suffix!r}; expected one of {sorted(_READERS)}"
        )
    fmt = _format_name(p)
    _check_readable_file(p, fmt)
    try:
        reader = importlib.import_module(module).file_reader
    except ImportError as err:
        raise ImportError(
            "load_spectrum_image needs rosettasciio: pip install 'matchar[io]' "
            "(or pip install rosettasciio)"
        ) from err
    if ext in _PRECHECKS:
        _PRECHECKS[ext](p, fmt)
    with _reading(p, fmt):
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
    raise ValueError(
        f"{str(p)!r} ({fmt}) holds no spectrum image (no dataset with one energy axis and "
        "at least one navigation axis)"
    )


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
    module = _IMAGE_READERS.get(ext)
    if module is None:
        raise ValueError(
            f"{str(p)!r}: unsupported image format {ext!r}; expected .npy, .png, .jpg or one "
            f"of {sorted(_IMAGE_READERS)}"
        )
    _check_readable_file(p, fmt)
    try:
        reader = importlib.import_module(module).file_reader
    except ImportError as err:
        raise ImportError(
            f"reading {ext} files needs rosettasciio with its optional readers: "
            "pip install 'matchar[io]'"
        ) from err
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
    import ase.io

    p = Path(path)
    fmt = f"a structure file (ASE format {format!r})" if format else "a structure file"
    ext = p.suffix.lower()
    if not format and ext:
        fmt = f"a structure file ({ext})"
    _check_readable_file(p, fmt)
    with _reading(p, fmt):
        frames = ase.io.read(os.fspath(p), ":", format=format)
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
