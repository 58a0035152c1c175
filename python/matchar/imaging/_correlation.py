"""Local correlation maps, computed by the C++ core."""

from __future__ import annotations

import operator
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from .. import _core
from .._arrays import as_array


def _int_arg(value: Any, name: str, minimum: int) -> int:
    try:
        out = operator.index(value)
    except TypeError:
        if isinstance(value, (float, np.floating)) and float(value).is_integer():
            out = int(value)
        else:
            raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}") from None
    if out < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return out


def as_image(image: ArrayLike, name: str = "image") -> np.ndarray:
    """Validate a 2-D image for the kernels: float32/float64 view, or an exact float copy.

    Integer images of up to 16 bits (HAADF detectors write uint16) become float32, which
    holds them exactly; wider integers become float64. RGB(A) images of shape (H, W, 3|4)
    are refused with a clear message (convert them to intensity first).
    """
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        raise ValueError(
            f"{name} looks like an RGB(A) image of shape {arr.shape}; pass a 2-D intensity "
            f"image, e.g. {name}.mean(axis=-1)"
        )
    dtype = np.float32 if arr.dtype.kind in "biu" and arr.dtype.itemsize <= 2 else None
    return as_array(arr, name, ndim=2, dtype=dtype)


def default_shifts(window: int = 20, n_shifts: int = 100) -> np.ndarray:
    """The shifts :func:`local_correlation_map` uses unless told otherwise.

    The integer grid of step ``g`` inside the square ``[-window, window]²``, upper
    half-plane only (``dy > 0``, or ``dy == 0`` and ``dx > 0``; the map for ``-s`` at
    pixel ``p`` is the map for ``s`` at ``p - s``), where ``g`` is the largest step whose
    half-plane grid still holds ``n_shifts`` points, so the shifts spread over the whole
    window. The ``n_shifts`` shortest of these, ties broken by the angle
    ``atan2(dy, dx)``: deterministic and platform independent.

    Parameters
    ----------
    window : int, default 20
        Largest ``|dy|`` and ``|dx|``, in pixels.
    n_shifts : int, default 100
        Number of shifts, ``1 <= n_shifts <= ((2 window + 1)² - 1) / 2``.

    Returns
    -------
    shifts : numpy.ndarray, shape (n_shifts, 2), int32
        Rows ``(dy, dx)`` in pixels, shortest first.

    Example
    -------
    >>> import matchar as mc
    >>> mc.imaging.default_shifts(window=2, n_shifts=4).tolist()  # step 2 suffices
    [[0, 2], [2, 0], [2, 2], [2, -2]]
    >>> mc.imaging.default_shifts(window=2, n_shifts=5).tolist()  # step 1 needed
    [[0, 1], [1, 0], [1, 1], [1, -1], [0, 2]]
    """
    window = _int_arg(window, "window", 1)
    n_shifts = _int_arg(n_shifts, "n_shifts", 1)
    return _core.imaging.select_shifts(window, n_shifts)


def local_correlation_map(
    image: ArrayLike,
    patch: int = 20,
    window: int = 20,
    n_shifts: int = 100,
    stride: int = 1,
    *,
    shifts: ArrayLike | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Local correlation maps: the local-periodicity descriptor of a STEM image.

    For each output pixel ``p`` and shift ``s``, the Pearson correlation between the
    ``(2 patch + 1)²`` neighbourhood centred at ``p`` and the one centred at ``p + s``
    (Wang et al., Microsc. Microanal. 27 (2021)). Inside a crystal the values are near 1
    for shifts that are lattice vectors and lower otherwise, so the vector of values over
    the shifts identifies the crystal and its orientation.

    Computed in C++ with sliding box sums in double precision on the mean-centred image:
    the cost is O(H W n_shifts), independent of ``patch``. OpenMP-parallel (see
    :func:`matchar.set_num_threads`), GIL released, interruptible with Ctrl-C.

    **Border:** the output covers only the pixels where both neighbourhoods lie inside
    the image for every shift within ``±window`` (no padding): output ``[i, j]`` belongs
    to image pixel ``(m + i·stride, m + j·stride)`` with ``m = patch + window``, and
    ``H' = ceil((H - 2m) / stride)``, ``W'`` likewise.

    A flat neighbourhood (variance below 1e-12 times the image variance) has
    correlation 0 with everything rather than NaN; values are clamped to ``[-1, 1]``.

    Parameters
    ----------
    image : array_like, shape (H, W)
        Intensity image: float32/float64 (any layout, read without a copy) or integers
        (uint16 HAADF data are converted to float32 exactly). Both sides must exceed
        ``2 (patch + window)``.
    patch : int, default 20
        Half-width of the neighbourhood, in pixels (the neighbourhood is
        ``(2 patch + 1)²`` pixels).
    window : int, default 20
        Largest ``|dy|`` and ``|dx|`` of a shift, in pixels.
    n_shifts : int, default 100
        Number of shifts, chosen by :func:`default_shifts` (ignored when ``shifts`` is
        given).
    stride : int, default 1
        Step between output pixels, in pixels.
    shifts : array_like of int, shape (S, 2), optional
        Explicit shifts ``(dy, dx)``, each within ``±window``.

    Returns
    -------
    maps : numpy.ndarray, shape (H', W', S), float32
        Correlation coefficients in ``[-1, 1]``.
    shifts : numpy.ndarray, shape (S, 2), int32
        The shifts ``(dy, dx)`` in pixels, in the order of the last axis of ``maps``.

    Raises
    ------
    ValueError
        Non-2-D, RGB, empty, NaN/inf or constant image, an image smaller than
        ``2 (patch + window) + 1`` on a side, non-positive ``patch``/``window``/
        ``stride``/``n_shifts``, or a shift outside ``±window``.
    MemoryError
        If the output cannot fit in this machine's memory (raised before allocating).

    Example
    -------
    >>> import numpy as np, matchar as mc
    >>> y, x = np.mgrid[:96, :96]
    >>> image = np.cos(2 * np.pi * x / 8) + np.cos(2 * np.pi * y / 8)
    >>> maps, shifts = mc.imaging.local_correlation_map(image, patch=8, window=8, n_shifts=40)
    >>> maps.shape, shifts.shape
    ((64, 64, 40), (40, 2))
    >>> k = shifts.tolist().index([0, 8])  # a lattice vector: perfect correlation
    >>> bool(np.allclose(maps[..., k], 1.0, atol=1e-5))
    True
    """
    patch = _int_arg(patch, "patch", 1)
    window = _int_arg(window, "window", 1)
    stride = _int_arg(stride, "stride", 1)
    img = as_image(image)
    if shifts is None:
        shift_arr = default_shifts(window, n_shifts)
    else:
        raw = np.asarray(shifts)
        if raw.ndim != 2 or raw.shape[1] != 2 or raw.shape[0] < 1:
            raise ValueError(f"shifts must have shape (n_shifts, 2), got {raw.shape}")
        if raw.dtype.kind not in "iu" and not np.array_equal(raw, np.round(raw)):
            raise ValueError("shifts must be integers (pixels)")
        if np.abs(raw).max() > window:
            raise ValueError(f"every shift must lie within +-window={window}")
        shift_arr = np.ascontiguousarray(raw, dtype=np.int32)
    fn = (
        _core.imaging.local_correlation_map_f32
        if img.dtype == np.float32
        else _core.imaging.local_correlation_map_f64
    )
    return fn(img, patch, window, shift_arr, stride), shift_arr
