"""Local correlation maps, computed by the C++ core."""

from __future__ import annotations

import math

import numpy as np
import scipy.fft
from numpy.typing import ArrayLike
from scipy import ndimage

from .. import _core
from .._arrays import as_array
from .._validation import check_choice, check_int

#: Cost of the FFT path per unit of ``1.5 L² log2(L²)`` (three real 2-D FFTs of side L)
#: in box-sum multiply-adds, measured on the 2-core development machine (1024² uint16,
#: patch = window = 20, L = 81): one box-sum multiply-add took about 0.36 ns, one output
#: pixel of the FFT path about 0.3 ms (scipy.fft, 2 workers), so κ ≈ 6.5. The box-sum
#: loops are vectorised streams; the small batched FFTs are not.
_FFT_COST_FACTOR = 6.5


#: The largest |value| of an image that the double-precision kernels take as it is; an
#: image outside this range is scaled exactly by a power of two first (its squares and
#: sums would overflow to inf or underflow to 0; every descriptor here is scale invariant).
DOUBLE_SAFE_PEAK = (2.0**-200, 2.0**200)


#: The message for a constant image, whose correlations are undefined.
CONSTANT_IMAGE = "image is constant: the correlation of a flat image is undefined"


def finite_rescaled(
    img: np.ndarray,
    name: str = "image",
    safe: tuple[float, float] = DOUBLE_SAFE_PEAK,
    constant: str | None = None,
) -> np.ndarray:
    """Refuse NaN/inf; return ``img``, or a copy scaled by a power of two when its
    largest |value| lies outside ``safe`` (largest |value| then in [0.5, 1)).

    The scaling is exact (``numpy.ldexp``), so a scale-invariant result (correlations,
    lattice vectors, standardized windows) does not depend on the image's units: an
    image times 1e-300 or 1e300 gives what the image itself gives. A constant image is
    refused with the message ``constant`` when given, else returned as is.
    """
    if img.size == 0:
        return img
    lo, hi = float(img.min()), float(img.max())  # NaN propagates
    peak = max(abs(lo), abs(hi))
    if not math.isfinite(peak):
        raise ValueError(f"{name} contains NaN or infinite values")
    if constant is not None and lo == hi:
        raise ValueError(constant)
    if peak == 0.0 or safe[0] <= peak <= safe[1]:
        return img
    return np.ldexp(img, -math.frexp(peak)[1]).astype(img.dtype, copy=False)


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
    window = check_int(window, "window", low=1)
    n_shifts = check_int(n_shifts, "n_shifts", low=1)
    return _core.imaging.select_shifts(window, n_shifts)


def _fft_length(patch: int, window: int) -> int:
    return int(scipy.fft.next_fast_len(2 * (patch + window) + 1, real=True))


def lcm_cost(patch: int = 20, window: int = 20, n_shifts: int = 100, stride: int = 1) -> dict:
    """The cost model that ``local_correlation_map(method="auto")`` uses to pick a path.

    Both estimates are per output pixel, in units of one box-sum multiply-add:

    - ``"boxsum"``: ``S · stride · (min(2·stride, 2·patch + 1) + 1)``. For each shift
      the sliding column sums gain and lose ``stride`` rows per output row (or are
      rebuilt from ``2·patch + 1`` rows once ``2·stride`` exceeds that), plus one
      prefix sum along the row. It grows with ``stride²``: every image pixel is
      visited for every shift, whatever the stride.
    - ``"fft"``: ``κ · 3 · L² log2(L²) / 2 + S`` with ``L`` = the FFT length
      ``≥ 2 (patch + window) + 1``: two forward real FFTs (the neighbourhood and the
      region it is shifted over) and one inverse per output pixel give the correlation
      for *every* shift within ``±window`` at once, so it does not grow with
      ``stride`` and hardly with ``S``. ``κ`` = ``_FFT_COST_FACTOR``, measured.

    Parameters
    ----------
    patch, window, n_shifts, stride : int
        As in :func:`local_correlation_map` (pixels; ``n_shifts`` = number of shifts).

    Returns
    -------
    dict
        ``{"boxsum": float, "fft": float, "best": "boxsum" | "fft"}``.

    Example
    -------
    >>> import matchar as mc
    >>> mc.imaging.lcm_cost(20, 20, 100, stride=1)["best"]
    'boxsum'
    >>> mc.imaging.lcm_cost(20, 20, 840, stride=32)["best"]
    'fft'
    """
    patch = check_int(patch, "patch", low=1)
    window = check_int(window, "window", low=1)
    n_shifts = check_int(n_shifts, "n_shifts", low=1)
    stride = check_int(stride, "stride", low=1)
    side = 2 * patch + 1
    box = float(n_shifts * stride * (min(2 * stride, side) + 1))
    L2 = _fft_length(patch, window) ** 2
    fft = _FFT_COST_FACTOR * 1.5 * L2 * math.log2(L2) + n_shifts
    return {"boxsum": box, "fft": fft, "best": "fft" if fft < box else "boxsum"}


def _fft_map(
    img: np.ndarray, patch: int, window: int, shifts: np.ndarray, stride: int
) -> np.ndarray:
    """The local correlation maps with one small FFT cross-correlation per output pixel.

    For output pixel p, ``corr[t] = Σ_o P(o) R(o + t)`` with P the neighbourhood of p and
    R the ``(2m + 1)²`` region around it (``m = patch + window``), from
    ``irfft2(rfft2(R) · conj(rfft2(P)))`` of length L ≥ 2m + 1 (no wrap-around); the box
    sums of the centred image (float64 ``uniform_filter``) give the means and variances.
    Output pixels are processed in batches; Ctrl-C is seen between batches.
    """
    from .._threads import get_num_threads

    H, W = img.shape
    m, side = patch + window, 2 * patch + 1
    n = float(side * side)
    Ho = max(0, -(-(H - 2 * m) // stride))
    Wo = max(0, -(-(W - 2 * m) // stride))
    if Ho == 0 or Wo == 0:
        raise ValueError(
            f"image of shape ({H}, {W}) is too small: both sides must exceed "
            f"2 * (patch + window) = {2 * m}"
        )
    S = len(shifts)
    _core.check_allocation(Ho * Wo * S, 4, "local_correlation_map output")
    _core.check_allocation(H * W * 3, 8, "local_correlation_map centred image")
    c = img.astype(np.float64)
    if not np.isfinite(c).all():
        raise ValueError("image contains NaN or infinite values")
    c -= c.mean()
    mean_square = float(np.mean(c * c))
    if not mean_square > 0.0:
        raise ValueError(CONSTANT_IMAGE)
    s1 = ndimage.uniform_filter(c, side, mode="constant") * n
    var = ndimage.uniform_filter(c * c, side, mode="constant") * n - s1 * s1 / n
    a = s1 / math.sqrt(n)
    flat = 1e-12 * mean_square * n
    isd = np.zeros_like(var)
    ok = var > flat
    isd[ok] = 1.0 / np.sqrt(var[ok])
    del s1, var, ok

    L = _fft_length(patch, window)
    out = np.empty((Ho, Wo, S), dtype=np.float32)
    ys = m + stride * np.arange(Ho)
    xs = m + stride * np.arange(Wo)
    dy, dx = shifts[:, 0].astype(np.intp), shifts[:, 1].astype(np.intp)
    ty, tx = dy + window, dx + window
    regions = np.lib.stride_tricks.sliding_window_view(c, (2 * m + 1, 2 * m + 1))
    workers = max(1, get_num_threads())
    batch = max(1, (1 << 21) // (L * L))
    flat_out = out.reshape(Ho * Wo, S)
    for start in range(0, Ho * Wo, batch):
        idx = np.arange(start, min(start + batch, Ho * Wo))
        py, px = ys[idx // Wo], xs[idx % Wo]
        R = regions[py - m, px - m]
        FR = scipy.fft.rfft2(R, s=(L, L), workers=workers)
        FP = scipy.fft.rfft2(
            R[:, window : window + side, window : window + side], s=(L, L), workers=workers
        )
        FR *= np.conj(FP)
        corr = scipy.fft.irfft2(FR, s=(L, L), workers=workers)[:, ty, tx]
        qy, qx = py[:, None] + dy, px[:, None] + dx
        v = (corr - a[py, px][:, None] * a[qy, qx]) * (isd[py, px][:, None] * isd[qy, qx])
        np.clip(v, -1.0, 1.0, out=v)
        flat_out[idx] = v
    return out


def local_correlation_map(
    image: ArrayLike,
    patch: int = 20,
    window: int = 20,
    n_shifts: int = 100,
    stride: int = 1,
    *,
    shifts: ArrayLike | None = None,
    method: str = "auto",
) -> tuple[np.ndarray, np.ndarray]:
    """Local correlation maps: the local-periodicity descriptor of a STEM image.

    For each output pixel ``p`` and shift ``s``, the Pearson correlation between the
    ``(2 patch + 1)²`` neighbourhood centred at ``p`` and the one centred at ``p + s``
    (Wang et al., Microsc. Microanal. 27 (2021)). Inside a crystal the values are near 1
    for shifts that are lattice vectors and lower otherwise, so the vector of values over
    the shifts identifies the crystal and its orientation.

    Computed in C++ with sliding box sums in double precision on the mean-centred image:
    the cost is O(H W n_shifts), independent of ``patch`` (or, at large strides with
    many shifts, by small FFTs; see ``method``). OpenMP-parallel (see
    :func:`matchar.set_num_threads`), GIL released, interruptible with Ctrl-C.

    **Border:** the output covers only the pixels where both neighbourhoods lie inside
    the image for every shift within ``±window`` (no padding): output ``[i, j]`` belongs
    to image pixel ``(m + i·stride, m + j·stride)`` with ``m = patch + window``, and
    ``H' = ceil((H - 2m) / stride)``, ``W'`` likewise.

    A flat neighbourhood (variance below 1e-12 times the image variance) has
    correlation 0 with everything rather than NaN; values are clamped to ``[-1, 1]``.

    The maps do not depend on the image's scale: an image whose largest ``|value|`` is
    outside ``2**±200`` (its squares would overflow or underflow in double precision)
    is first scaled exactly by a power of two.

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
    method : {"auto", "boxsum", "fft"}, default "auto"
        ``"boxsum"``: the C++ sliding-sum kernel above, about ``2 H W`` multiply-adds per
        shift whatever the stride. ``"fft"``: per output pixel, one FFT
        cross-correlation of the neighbourhood with the region around it gives every
        shift within ``±window`` at once (scipy.fft, float64, batches of output pixels,
        :func:`matchar.get_num_threads` workers, Ctrl-C between batches); it only pays
        with many shifts at large strides (patch = window = 20: about 840 shifts at
        stride ≳ 25). ``"auto"`` picks the cheaper by :func:`lcm_cost`. Both give the
        same values to about 1e-7.

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
    patch = check_int(patch, "patch", low=1)
    window = check_int(window, "window", low=1)
    stride = check_int(stride, "stride", low=1)
    n_shifts = check_int(n_shifts, "n_shifts", low=1)
    check_choice(method, "method", ("auto", "boxsum", "fft"))
    img = as_image(image)
    H, W = img.shape
    m = patch + window
    if H <= 2 * m or W <= 2 * m:
        raise ValueError(
            f"image of shape ({H}, {W}) is too small for patch={patch}, window={window}: "
            f"both sides must exceed 2 * (patch + window) = {2 * m}"
        )
    if shifts is None:
        shift_arr = default_shifts(window, n_shifts)
    else:
        raw = np.asarray(shifts)
        if raw.ndim != 2 or raw.shape[1] != 2 or raw.shape[0] < 1:
            raise ValueError(f"shifts must have shape (n_shifts, 2), got {raw.shape}")
        if raw.dtype.kind not in "iuf" or (
            raw.dtype.kind == "f" and not np.array_equal(raw, np.round(raw))
        ):
            raise ValueError("shifts must be integers (pixels)")
        if np.abs(raw).max() > window:
            raise ValueError(f"every shift must lie within +-window={window}")
        shift_arr = np.ascontiguousarray(raw, dtype=np.int32)
    # The kernels' allocations are checked before the pass over the image below.
    n_out = -(-(H - 2 * m) // stride) * -(-(W - 2 * m) // stride) * len(shift_arr)
    _core.check_allocation(n_out, 4, "local_correlation_map output")
    _core.check_allocation(H * W, 8, "local_correlation_map centred image")
    img = finite_rescaled(img, constant=CONSTANT_IMAGE)
    if method == "auto":
        method = lcm_cost(patch, window, len(shift_arr), stride)["best"]
    if method == "fft":
        return _fft_map(img, patch, window, shift_arr, stride), shift_arr
    return _core.imaging.local_correlation_map(img, patch, window, shift_arr, stride), shift_arr
