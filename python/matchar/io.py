"""Reading microscope files through rosettasciio: spectrum images (EDX/EELS) with their
signals and metadata, 2-D images with their pixel size, atomic structures through ase.

The spectrum-image readers are here; :func:`load_image` and :func:`load_structures`
live in ``_io_images.py`` and the checks and error messages every loader shares in
``_io_files.py``.
"""

from __future__ import annotations

import errno
import math
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ._io_files import (  # noqa: F401  (re-exported: one import path for users and tests)
    _FORMAT_NAMES,
    _IO_EXTRA_MODULES,
    _PLUGIN_DISPLAY,
    _PRECHECKS,
    SPECTRUM_IMAGE_EXTENSIONS,
    FileFormatError,
    _cannot_read,
    _check_bcf,
    _check_pts,
    _check_readable_file,
    _format_name,
    _load_npy,
    _missing_module,
    _one_line,
    _read_head,
    _reading,
    _reason,
    _rsciio_plugins,
    _rsciio_reader,
)
from ._io_images import _TO_ANGSTROM, _check_2d, _pixel_size, load_image, load_structures  # noqa: F401

__all__ = [
    "SPECTRUM_IMAGE_EXTENSIONS",
    "FileFormatError",
    "list_signals",
    "load_image",
    "load_spectrum_image",
    "load_structures",
    "save_hspy",
]

# documented and raised as matchar.io.<name>
for _name in ("FileFormatError", "load_image", "load_structures"):
    globals()[_name].__module__ = __name__
del _name


def _signal_axis(item: dict[str, Any]) -> int | None:
    """Index of the only signal (non-navigation) axis of a 2-D+ dataset, else None."""
    axes = item.get("axes", [])
    signal = [i for i, a in enumerate(axes) if not a.get("navigate", True)]
    return signal[0] if np.ndim(item["data"]) >= 2 and len(signal) == 1 else None


def _kind(item: dict[str, Any]) -> str:
    axes = item.get("axes", [])
    n_sig = sum(1 for a in axes if not a.get("navigate", True))
    if _signal_axis(item) is not None:
        return "spectrum image"
    if np.ndim(item["data"]) == 1:
        return "spectrum"
    if np.ndim(item["data"]) == 2 and n_sig in (0, 2):  # Bruker images: no navigate flags
        return "image"
    return f"{np.ndim(item['data'])}-D dataset"


def _technique(item: dict[str, Any]) -> str | None:
    """ "EDS" or "EELS" from a dataset's signal type (or its title), else None."""
    md = item.get("metadata", {}) or {}
    st = str(md.get("Signal", {}).get("signal_type") or "").upper()
    title = str(md.get("General", {}).get("title") or "").upper()
    if st.startswith("EDS") or st.startswith("EDX"):
        return "EDS"
    if st.startswith("EELS"):
        return "EELS"
    if not st and re.search(r"\b(EDS|EDX)\b", title):
        return "EDS"
    if not st and re.search(r"\bEELS\b", title):
        return "EELS"
    return None


def _describe_items(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for i, item in enumerate(items):
        md = item.get("metadata", {}) or {}
        out.append(
            {
                "index": i,
                "title": str(md.get("General", {}).get("title") or ""),
                "signal_type": str(md.get("Signal", {}).get("signal_type") or ""),
                "technique": _technique(item),
                "kind": _kind(item),
                "shape": tuple(int(n) for n in np.shape(item["data"])),
            }
        )
    return out


def _signals_text(signals: list[dict[str, Any]]) -> str:
    return "; ".join(
        f"[{s['index']}] {s['title'] or '(untitled)'} "
        f"({s['signal_type'] or s['kind']}, {s['kind']}, shape {s['shape']})"
        for s in signals
    )


def _read_items(p: Path, lazy: bool) -> list[dict[str, Any]]:
    fmt = _format_name(p)
    _check_readable_file(p, fmt)
    reader = _rsciio_reader(p, "load_spectrum_image")
    if p.suffix.lower() in _PRECHECKS:
        _PRECHECKS[p.suffix.lower()](p, fmt)
    with _reading(p, fmt):
        items = reader(str(p), lazy=lazy)
    items = items if isinstance(items, list) else [items]
    if not items or all(math.prod(np.shape(item.get("data", []))) == 0 for item in items):
        # readers of text/XML formats return empty datasets for garbage
        raise _cannot_read(p, fmt, "file holds no data (empty, corrupt or another format)")
    return items


def list_signals(path: str | Path) -> list[dict[str, Any]]:
    """The datasets (signals) of a microscope file, e.g. a Velox .emd with EDS and EELS
    spectrum images, or a Bruker .bcf with an EDX map and SEM/EBSD images.

    The data are read lazily where the reader supports it.

    Parameters
    ----------
    path : str or pathlib.Path
        Any file rosettasciio reads (``pip install 'matchar[io]'``).

    Returns
    -------
    list of dict
        One per dataset, in the file's order: ``index`` (what
        ``load_spectrum_image(path, signal=index)`` takes), ``title``, ``signal_type``
        (e.g. "EDS_TEM", "EELS", "" when the file has none), ``technique`` ("EDS",
        "EELS" or None), ``kind`` ("spectrum image", "spectrum", "image", ...) and
        ``shape``.

    Raises
    ------
    FileNotFoundError, IsADirectoryError, FileFormatError, ImportError, ValueError
        As :func:`load_spectrum_image`.

    Example
    -------
    ``map.bcf`` stands for a microscope file of yours (none ships with matchar, so the
    example is not run):

    >>> [s["kind"] for s in mc.io.list_signals("map.bcf")]   # doctest: +SKIP
    ['image', 'spectrum image']
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(errno.ENOENT, "no such file", str(p))
    return _describe_items(_read_items(p, lazy=True))


def _warn_again(logged: list[warnings.WarningMessage]) -> None:
    """Issue warnings recorded while reading a file, where they first pointed."""
    for w in logged:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def _choose(p: Path, signals: list[dict[str, Any]], signal: Any) -> int:
    """Index of the spectrum image ``signal`` names (see load_spectrum_image)."""
    fmt = _format_name(p)
    cubes = [s for s in signals if s["kind"] == "spectrum image"]
    how = "choose one with signal=<index>, a title or 'EDS'/'EELS' (matchar decompose --signal ...)"
    if not cubes:
        raise ValueError(
            f"{str(p)!r} ({fmt}) holds no spectrum image (no dataset with one energy axis "
            f"and at least one navigation axis); its datasets: {_signals_text(signals)}"
        )
    if signal is None:
        eds = [s for s in cubes if s["technique"] == "EDS"]
        chosen = eds[0] if eds else cubes[0]
        if len(cubes) > 1:
            warnings.warn(
                f"{str(p)!r} holds {len(cubes)} spectrum images; read [{chosen['index']}] "
                f"{chosen['title'] or '(untitled)'} ({chosen['signal_type'] or 'no type'}). "
                f"Signals: {_signals_text(signals)}; {how}",
                UserWarning,
                stacklevel=3,
            )
        return int(chosen["index"])
    if isinstance(signal, (bool, np.bool_)) or not isinstance(signal, (int, np.integer, str)):
        raise ValueError(
            f"signal must be None, an int index or a str (title, 'EDS' or 'EELS'), got {signal!r}"
        )
    if isinstance(signal, (int, np.integer)):
        i = int(signal)
        if not -len(signals) <= i < len(signals):
            raise ValueError(
                f"signal={i} is out of range: {str(p)!r} holds {len(signals)} datasets: "
                f"{_signals_text(signals)}"
            )
        s = signals[i]
        if s["kind"] != "spectrum image":
            raise ValueError(
                f"signal={i}: dataset [{s['index']}] {s['title'] or '(untitled)'} of "
                f"{str(p)!r} is {'an' if s['kind'][0] in 'aeiou' else 'a'} {s['kind']}, not a "
                f"spectrum image; spectrum images: "
                f"{_signals_text(cubes)}"
            )
        return int(s["index"])
    key = signal.strip()
    tech = {"EDS": "EDS", "EDX": "EDS", "EELS": "EELS"}.get(key.upper())
    if tech is not None:
        match = [s for s in cubes if s["technique"] == tech]
    else:
        match = [s for s in cubes if key.lower() in s["title"].lower()]
        exact = [s for s in match if s["title"].lower() == key.lower()]
        match = exact or match
    if not match:
        raise ValueError(
            f"signal={signal!r}: no spectrum image of {str(p)!r} matches; its spectrum "
            f"images: {_signals_text(cubes)}"
        )
    if len(match) > 1:
        warnings.warn(
            f"signal={signal!r} matches {len(match)} spectrum images of {str(p)!r}; read "
            f"the first, [{match[0]['index']}]: {_signals_text(match)}; choose one by index",
            UserWarning,
            stacklevel=3,
        )
    return int(match[0]["index"])


def _get_path(tree: Any, dotted: str) -> Any:
    for key in dotted.split("."):
        if not isinstance(tree, dict) or key not in tree:
            return None
        tree = tree[key]
    return tree


def _set_path(tree: dict[str, Any], dotted: str, value: Any) -> None:
    *head, last = dotted.split(".")
    for key in head:
        node = tree.get(key)
        if not isinstance(node, dict):
            node = tree[key] = {}
        tree = node
    tree[last] = value


class _TreeLike(dict):
    """A dict whose ``keys()`` is a list, like HyperSpy's DictionaryTreeBrowser: the
    readers' mapping functions are written for it (``d[d.keys()[0]]``)."""

    def keys(self) -> list[Any]:  # type: ignore[override]
        return list(super().keys())

    @classmethod
    def of(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return cls({k: cls.of(v) for k, v in value.items()})
        return value


def _mapped_metadata(item: dict[str, Any]) -> dict[str, Any]:
    """The reader's metadata completed by its ``mapping`` from the original metadata,
    as HyperSpy does on loading (Velox .emd: beam energy, elements, detector angles)."""
    import copy

    meta = copy.deepcopy(item.get("metadata", {}) or {})
    original = item.get("original_metadata", {}) or {}
    for source, target in (item.get("mapping") or {}).items():
        value = _get_path(original, source)
        if value is None:
            continue
        dest, convert = target if isinstance(target, tuple) else (target, None)
        try:
            value = convert(_TreeLike.of(value)) if convert is not None else value
        except Exception:  # a field the reader cannot convert: left out, as HyperSpy does
            continue
        if value is not None:
            _set_path(meta, dest, value)
    _velox_detector_angles(meta, original)
    return meta


def _velox_detector_angles(meta: dict[str, Any], original: dict[str, Any]) -> None:
    """Velox keeps each EDS detector's elevation (radians) under ``Detectors``; their
    common value becomes ``Detector.EDS.elevation_angle`` (degrees) when the mapping gave
    none. (Azimuths differ per segment of a SuperX detector: none is set.)"""
    dets = original.get("Detectors")
    instrument = meta.get("Acquisition_instrument") or {}
    if not isinstance(dets, dict) or len(instrument) != 1:
        return
    elevations = set()
    for det in dets.values():
        if isinstance(det, dict) and det.get("DetectorType") == "AnalyticalDetector":
            try:
                elevations.add(round(math.degrees(float(det["ElevationAngle"])), 6))
            except (KeyError, TypeError, ValueError):
                pass
    (name,) = instrument
    eds = _get_path(instrument, f"{name}.Detector.EDS")
    if len(elevations) == 1 and (eds is None or "elevation_angle" not in eds):
        path = f"Acquisition_instrument.{name}.Detector.EDS.elevation_angle"
        _set_path(meta, path, elevations.pop())


def load_spectrum_image(
    path: str | Path, signal: int | str | None = None, *, lazy: bool = False
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Load a spectrum image and its energy axis from a microscope file (.bcf, .emd, .hspy,
    .dm3/.dm4, .pts, ... anything rosettasciio reads).

    The chosen dataset (one signal axis, the energy, and at least one navigation axis) is
    returned with the energy axis last, in the file's own dtype (raw counts stay
    integers, which :class:`matchar.spectral.NMF` reads in place), and its energy axis in
    the file's own unit (keV for most EDX files, eV for EELS).

    Parameters
    ----------
    path : str or pathlib.Path
        The file. Requires the optional dependency ``rosettasciio``
        (``pip install 'matchar[io]'``); which reader runs comes from rosettasciio's
        plugin registry (``rsciio.IO_PLUGINS``) by the file's extension.
    signal : int or str, optional
        Which spectrum image of a file with several (:func:`list_signals` lists them):
        the dataset's index, ``"EDS"``/``"EDX"`` or ``"EELS"`` (by signal type), or a
        title (case-insensitive; an exact title first, else a substring). Default: the
        EDX/EDS spectrum image if there is one, else the first spectrum image; when the
        file holds several spectrum images a :class:`UserWarning` lists them and says
        how to choose.
    lazy : bool, default False
        Ask the reader for a lazy (dask) array where it supports it.

    Returns
    -------
    cube : ndarray, shape (H, W, C) or (N, C)
        Counts per energy channel.
    energy_axis : ndarray, shape (C,), float64
        Channel energies ``offset + scale * i`` in the file's unit
        (``metadata["energy_unit"]``).
    metadata : dict
        ``energy_offset``, ``energy_scale`` (file unit), ``energy_size`` (C),
        ``energy_unit`` (e.g. "keV", "eV"; also under the older key ``energy_units``),
        ``signal_type``,
        ``technique`` ("EDS", "EELS" or None), ``signal_index``, ``signal_title``,
        ``signals`` (:func:`list_signals` of the file), ``navigation_axes``
        ``[{name, size, scale, offset, units}, ...]``, ``metadata`` (the reader's
        HyperSpy-style metadata, completed from the original metadata as HyperSpy does
        on loading: beam energy, elements, detector angles) and ``original_metadata``.

    Raises
    ------
    ImportError
        If rosettasciio (or a module its reader needs, e.g. numba for .pts) is missing.
    FileNotFoundError
        If ``path`` does not exist.
    IsADirectoryError
        If ``path`` is a directory.
    FileFormatError
        (a :class:`ValueError`) If the file is empty, truncated, corrupt or not in the
        format its extension names; the message names the file and the format.
    ValueError
        If the extension is not one rosettasciio reads, the file holds no spectrum
        image, or ``signal`` names none (the message lists the file's datasets).

    Example
    -------
    ``map.bcf`` and ``si.emd`` stand for microscope files of yours (none ships with
    matchar, so the example is not run):

    >>> import matchar as mc                                    # doctest: +SKIP
    >>> cube, energy, meta = mc.io.load_spectrum_image("map.bcf")  # doctest: +SKIP
    >>> cube.shape, energy[:2], meta["energy_unit"]             # doctest: +SKIP
    ((64, 64, 2048), array([-0.4754, -0.4654]), 'keV')
    >>> eels, ev, meta = mc.io.load_spectrum_image("si.emd", signal="EELS")  # doctest: +SKIP
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(errno.ENOENT, "no such file", str(p))
    with warnings.catch_warnings(record=True) as logged:
        warnings.simplefilter("always")
        items = _read_items(p, lazy)
    signals = _describe_items(items)
    said = [w for w in logged if str(w.message).endswith("(RosettaSciIO)")]
    try:
        index = _choose(p, signals, signal)
    except ValueError as err:
        if said and "holds no spectrum image" in str(err):
            # what the reader said is why: one message, not a warning and then an error
            why = " ".join(str(w.message).split(": ", 1)[-1] for w in said)
            head, _, datasets = str(err).partition("; its datasets: ")
            raise ValueError(f"{head}. The reader says: {why} Its datasets: {datasets}") from None
        _warn_again(logged)
        raise
    _warn_again(logged)
    item = items[index]
    axes = item["axes"]
    signal_index = _signal_axis(item)
    data = item["data"]
    if signal_index != len(axes) - 1:
        data = np.moveaxis(data, signal_index, -1)
    energy = axes[signal_index]
    offset = float(energy.get("offset", 0.0) or 0.0)
    scale = float(energy.get("scale", 1.0) or 1.0)
    size = int(energy.get("size", np.shape(data)[-1]))
    meta = _mapped_metadata(item)
    unit = energy.get("units")
    unit = str(unit).strip() if unit not in (None, "") else None
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
            "energy_size": size,
            "energy_unit": unit,
            "energy_units": unit,
            "signal_type": meta.get("Signal", {}).get("signal_type"),
            "technique": signals[index]["technique"],
            "signal_index": index,
            "signal_title": signals[index]["title"],
            "signals": signals,
            "navigation_axes": nav,
            "metadata": meta,
            "original_metadata": item.get("original_metadata", {}),
        },
    )


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
    data : ndarray, shape ``(*navigation, *signal)``
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
