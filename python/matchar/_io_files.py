"""Reading files safely: format names from rosettasciio's registry, checks before a
reader runs, and one :class:`FileFormatError` naming the file for whatever a reader raises
on a bad file. Used by every loader of :mod:`matchar.io`."""

from __future__ import annotations

import errno
import functools
import importlib
import logging
import struct
import sys
import warnings
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


# Formats matchar reads without rosettasciio: extension -> the format's name in messages.
_FORMAT_NAMES = {
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".npy": "NumPy .npy",
}
# rosettasciio plugin names that read poorly in a sentence.
_PLUGIN_DISPLAY = {"HSPY": "HyperSpy"}


@functools.cache
def _rsciio_plugins() -> dict[str, dict[str, Any]]:
    """File extension (lower case, with the dot) -> rosettasciio plugin, from
    ``rsciio.IO_PLUGINS`` (its own registry); empty when rosettasciio is missing."""
    try:
        import rsciio
    except ImportError:
        return {}
    out: dict[str, dict[str, Any]] = {}
    for plugin in rsciio.IO_PLUGINS:
        for ext in plugin.get("file_extensions", []):
            out.setdefault("." + str(ext).lower(), plugin)
    return out


def _format_name(p: Path) -> str:
    ext = p.suffix.lower()
    plugin = _rsciio_plugins().get(ext)
    if plugin is not None and ext not in (".png", ".jpg", ".jpeg", ".npy"):
        return f"{_PLUGIN_DISPLAY.get(plugin['name'], plugin['name'])} {ext}"
    return _FORMAT_NAMES.get(ext, f"{ext} file")


def _rsciio_reader(p: Path, what: str) -> Callable[..., Any]:
    """rosettasciio's ``file_reader`` for ``p``'s extension (ImportError without
    rosettasciio, ValueError for an extension no plugin reads)."""
    try:
        import rsciio  # noqa: F401
    except ImportError as err:
        raise ImportError(
            f"{what} needs rosettasciio: pip install 'matchar[io]' (or pip install rosettasciio)"
        ) from err
    plugin = _rsciio_plugins().get(p.suffix.lower())
    if plugin is None:
        raise ValueError(
            f"{str(p)!r}: unsupported extension {p.suffix!r}; expected one that rosettasciio "
            f"reads, e.g. {sorted(SPECTRUM_IMAGE_EXTENSIONS)}"
        )
    try:
        return importlib.import_module(plugin["api"]).file_reader
    except ImportError as err:
        raise _missing_module(err, p, _format_name(p)) from err


# Modules the io extra installs (rosettasciio's readers of the EDX/EELS formats).
_IO_EXTRA_MODULES = {"rsciio", "h5py", "numba", "sparse", "tifffile", "imagecodecs"}


def _missing_module(err: ImportError, p: Path, fmt: str) -> ImportError:
    """An ImportError naming the module a reader needs and how to install it."""
    name = (err.name or "").split(".")[0]
    need = f"the module {err.name!r}" if err.name else _one_line(str(err))
    how = (
        "pip install 'matchar[io]'"
        if not name or name in _IO_EXTRA_MODULES
        else (f"pip install {name} (not in matchar[io])")
    )
    return ImportError(f"reading {str(p)!r} as {fmt} needs {need}: {how}")


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


class _LogAsWarning(logging.Handler):
    """RosettaSciIO's log records (which it prints to stdout, in colour) as Python
    warnings naming the file being read."""

    def __init__(self, p: Path) -> None:
        super().__init__(logging.WARNING)
        self.name_of_file = p.name

    def emit(self, record: logging.LogRecord) -> None:
        # point at the first caller outside logging, RosettaSciIO and matchar
        skip = tuple(
            str(Path(m.__file__).parent)
            for m in (logging, sys.modules.get("rsciio"), sys.modules.get("matchar"))
            if m is not None and getattr(m, "__file__", None)
        )
        level, frame = 1, sys._getframe(0)
        while frame is not None and frame.f_code.co_filename.startswith(skip):
            frame, level = frame.f_back, level + 1
        warnings.warn(
            f"{self.name_of_file}: {record.getMessage()} (RosettaSciIO)",
            UserWarning,
            stacklevel=level,
        )


@contextmanager
def _reading(p: Path, fmt: str) -> Iterator[None]:
    """Turn whatever a reader raises on a bad file into one FileFormatError naming it, and
    what RosettaSciIO logs while reading it into warnings.

    ImportError (a missing optional reader dependency), MemoryError, PermissionError and
    KeyboardInterrupt pass through."""
    logger = logging.getLogger("rsciio") if "rsciio" in sys.modules else None
    saved = None
    if logger is not None:
        saved = logger.handlers[:]
        logger.handlers = [_LogAsWarning(p)]
    try:
        yield
    except ImportError as err:
        raise _missing_module(err, p, fmt) from err
    except (FileFormatError, MemoryError, PermissionError, IsADirectoryError):
        raise
    except Exception as err:
        raise _cannot_read(p, fmt, _reason(err, p)) from err
    finally:
        if logger is not None:
            logger.handlers = saved


def _load_npy(p: Path) -> np.ndarray:
    fmt = _FORMAT_NAMES[".npy"]
    _check_readable_file(p, fmt)
    with open(p, "rb") as f:
        magic = f.read(6)
    if magic != b"\x93NUMPY" and not magic.startswith(b"PK\x03\x04"):
        raise _cannot_read(p, fmt, "no .npy header: not a file written by numpy.save")
    with _reading(p, fmt):
        try:
            arr = np.load(p, allow_pickle=False)
        except ValueError as err:
            if "allow_pickle" not in str(err):
                raise
            raise _cannot_read(
                p, fmt, "it holds Python objects (pickled data), which matchar does not load"
            ) from None
    if not isinstance(arr, np.ndarray):  # an .npz under a .npy name
        raise _cannot_read(p, fmt, "file holds several arrays (an .npz archive?)")
    return arr


#: Extensions of the spectrum-image formats documented and tested with matchar (any other
#: extension rosettasciio reads is tried too).
SPECTRUM_IMAGE_EXTENSIONS = (".bcf", ".spx", ".emd", ".hspy", ".dm3", ".dm4", ".pts", ".spd")
