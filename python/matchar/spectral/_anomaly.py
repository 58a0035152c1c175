"""Where a fitted decomposition leaves significant counts: per-pixel residual tests.

A decomposition with K components explains the phases that cover many pixels; a small
inclusion of an element found nowhere else (a few pixels, a percent of their counts) is
left in the residual. This module tests, for every pixel, whether its counts exceed the
model's expectation in some energy window by more than Poisson noise allows, and controls
the false discoveries over the pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike
from scipy import ndimage
from scipy.special import gammainc

from .._validation import check_float, check_int
from ._input import SpectrumMatrix, as_mask, as_spectrum_matrix

#: Channel-window widths (channels) scanned for excess counts: a peak of FWHM w channels
#: is caught best by a window of about w channels (EDX lines at 10 eV/channel: ~13).
DEFAULT_WINDOWS = (2, 6, 16)
#: Default false-discovery rate over the pixels.
DEFAULT_FDR = 0.01
#: Spectra with more channels are tested in groups of ceil(C / this) summed channels
#: (EDX lines span ~13 channels at 10 eV/channel): the test's cost stays bounded.
MAX_TEST_CHANNELS = 512
_BLOCK_ELEMENTS = 1 << 22  # pixels x channels per block: bounded temporaries


@dataclass
class AnomalyRegion:
    """One connected region of flagged pixels.

    Attributes
    ----------
    pixels : ndarray of int, shape (n, 2) or (n,)
        (row, column) of each pixel ((n,) indices for (N, C) input).
    p_value : float
        Smallest adjusted p-value of its pixels (see :func:`residual_anomalies`).
    residual_spectrum : ndarray, shape (C,), float64
        Counts minus the model's expectation, summed over the region's pixels: the extra
        peak the model does not explain (0 in excluded channels).
    peak_channel : int
        Centre channel of the window of the region's most significant test.
    excess_counts : float
        Counts above the model in that window, summed over the region's pixels.
    """

    pixels: np.ndarray
    p_value: float
    residual_spectrum: np.ndarray
    peak_channel: int
    excess_counts: float

    @property
    def size(self) -> int:
        """Number of pixels."""
        return int(self.pixels.shape[0])


@dataclass
class ResidualAnomalies:
    """Result of :func:`residual_anomalies`.

    Attributes
    ----------
    p_values : ndarray, shape nav_shape
        Per-pixel p-value of the excess-count test, adjusted for the windows and scales
        scanned in that pixel (Bonferroni); 1 for excluded pixels.
    flags : ndarray of bool, shape nav_shape
        Pixels rejected by the Benjamini-Hochberg procedure at level ``fdr`` over all
        included pixels, plus the whole box of each pixel rejected at the box scale.
    regions : list of AnomalyRegion
        Connected (8-neighbour) groups of flagged pixels, most significant first.
    fdr : float
    """

    p_values: np.ndarray
    flags: np.ndarray
    regions: list[AnomalyRegion]
    fdr: float


def _check_options(windows: Any, box: Any, fdr: Any, C: int) -> tuple[tuple[int, ...], int, float]:
    fdr = check_float(fdr, "fdr", low=0.0, high=1.0, low_open=True)
    box = check_int(box, "box", low=1)
    if box % 2 == 0:
        raise ValueError(f"box must be an odd number of pixels, got {box}")
    try:
        # a window wider than the spectrum is the whole spectrum
        ws = tuple(min(C, check_int(w, "windows", low=1, high=None)) for w in windows)
    except TypeError:
        raise ValueError(f"windows must be a sequence of channel counts, got {windows!r}") from None
    if not ws:
        raise ValueError("windows must hold at least one channel count")
    return tuple(sorted(set(ws))), box, fdr


def _binned_rows(X: Any, lo: int, hi: int, incl_c: np.ndarray, group: int) -> np.ndarray:
    """Rows lo:hi of X as float64 with excluded channels zeroed and ``group`` consecutive
    channels summed: (hi - lo, ceil(C / group))."""
    blk = X[lo:hi]
    C = blk.shape[1]
    if sp.issparse(blk):
        cols = np.arange(C)
        B = sp.csr_matrix(
            (incl_c.astype(np.float64), (cols, cols // group)), shape=(C, -(-C // group))
        )
        return np.asarray((blk @ B).toarray(), dtype=np.float64)
    blk = np.asarray(blk)
    if not incl_c.all():
        blk = np.where(incl_c, blk, 0)
    if group == 1:
        return blk.astype(np.float64)
    return np.add.reduceat(blk, np.arange(0, C, group), axis=1, dtype=np.float64)


def _window_scan(x: np.ndarray, mu: np.ndarray, windows: tuple[int, ...]):
    """Per row of x (counts) and mu (expectation): the largest Poisson likelihood-ratio
    statistic of an excess over all channel windows, and its (counts, expectation, window
    index, start channel)."""
    n, C = x.shape
    cx = np.zeros((n, C + 1))
    cm = np.zeros((n, C + 1))
    np.cumsum(x, axis=1, out=cx[:, 1:])
    np.cumsum(mu, axis=1, out=cm[:, 1:])
    best = np.full(n, -1.0)
    S_best, M_best = np.zeros(n), np.ones(n)
    w_best, c_best = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    rows = np.arange(n)
    for j, w in enumerate(windows):
        S = cx[:, w:] - cx[:, :-w]
        M = np.maximum(cm[:, w:] - cm[:, :-w], 1e-12)
        excess = S > M
        # G = 2 (S log(S/M) - (S - M)) where S > M (an excess), else 0
        G = np.zeros_like(S)
        Sx, Mx = S[excess], M[excess]
        G[excess] = 2.0 * (Sx * np.log(Sx / Mx) - (Sx - Mx))
        arg = np.argmax(G, axis=1)
        g = G[rows, arg]
        better = g > best
        best = np.where(better, g, best)
        S_best = np.where(better, S[rows, arg], S_best)
        M_best = np.where(better, M[rows, arg], M_best)
        w_best = np.where(better, j, w_best)
        c_best = np.where(better, arg, c_best)
    return best, S_best, M_best, w_best, c_best


#: dtypes the C++ scan reads in place
_KERNEL_DTYPES = (np.uint8, np.uint16, np.uint32, np.float32, np.float64)


def _scan_scales(data, Wd, Hb, incl_c, incl_p, group, win_b, box):
    """Per scale (pixel, then box when box > 1): the best window's (S, M, window index,
    start) per pixel. Dense arrays of the dtypes the C++ kernel reads, and CSR matrices
    (what the fits pass for sparse counts), go to ``_core.spectral.residual_window_scan``
    (``_csr``); other input to the NumPy scan :func:`_scan_scales_numpy` (the kernel's
    reference)."""
    from .. import _core

    X = data.X
    nav = data.nav_shape
    rows, cols = (nav[0], nav[1]) if box > 1 else (data.shape[0], 1)
    common = (
        np.ascontiguousarray(Wd, dtype=np.float64),
        np.ascontiguousarray(Hb, dtype=np.float64),
        None if incl_c.all() else np.asarray(incl_c, dtype=np.uint8),
        None if incl_p.all() else np.asarray(incl_p, dtype=np.uint8),
        int(group),
        [int(w) for w in win_b],
        int(rows),
        int(cols),
        int(box),
    )
    out = None
    if isinstance(X, np.ndarray) and X.ndim == 2 and X.dtype.type in _KERNEL_DTYPES:
        out = _core.spectral.residual_window_scan(X, *common)
    elif (
        sp.isspmatrix_csr(X)
        and X.dtype.type in (np.float32, np.float64)
        and X.indices.dtype.type in (np.int32, np.int64)
        and X.indptr.dtype == X.indices.dtype
    ):
        out = _core.spectral.residual_window_scan_csr(
            X.data, X.indices, X.indptr, X.shape[1], *common
        )
    if out is not None:
        return [out[:4], out[4:]] if box > 1 else [out[:4]]
    return _scan_scales_numpy(data, Wd, Hb, incl_c, incl_p, group, win_b, box)


def _scan_scales_numpy(data, Wd, Hb, incl_c, incl_p, group, win_b, box):
    """:func:`_scan_scales` in NumPy, in blocks of image rows (any input, sparse too)."""
    N = data.shape[0]
    Cb = Hb.shape[1]
    nav = data.nav_shape
    grid = box > 1
    boxes = (1, box) if grid else (1,)
    out = [
        (np.zeros(N), np.ones(N), np.zeros(N, dtype=np.int64), np.zeros(N, dtype=np.int64))
        for _ in boxes
    ]
    rows_w = nav[1] if grid else 1
    halo = box // 2 if grid else 0
    step = max(1, _BLOCK_ELEMENTS // (Cb * rows_w))  # image rows (or pixels) per block
    n_rows = nav[0] if grid else N
    for r0 in range(0, n_rows, step):
        r1 = min(n_rows, r0 + step)
        lo, hi = max(0, r0 - halo), min(n_rows, r1 + halo)
        p0, p1 = lo * rows_w, hi * rows_w
        x = _binned_rows(data.X, p0, p1, incl_c, group)
        mu = Wd[p0:p1] @ Hb
        keep = incl_p[p0:p1]
        x[~keep] = 0.0
        mu[~keep] = 0.0
        own = slice((r0 - lo) * rows_w, (r1 - lo) * rows_w)
        dst = slice(r0 * rows_w, r1 * rows_w)
        for b, (S_o, M_o, j_o, c_o) in zip(boxes, out):
            if b == 1:
                xs, ms = x[own], mu[own]
            else:  # b x b box sums centred on each pixel (zeros outside the image)
                shape = (hi - lo, rows_w, Cb)
                xs = ndimage.uniform_filter(x.reshape(shape), (b, b, 1), mode="constant")
                ms = ndimage.uniform_filter(mu.reshape(shape), (b, b, 1), mode="constant")
                xs = (xs * (b * b)).reshape(-1, Cb)[own]
                ms = (ms * (b * b)).reshape(-1, Cb)[own]
                np.maximum(xs, 0.0, out=xs)  # the filter's rounding can leave -1e-16
            _, S, M, j, start = _window_scan(xs, ms, win_b)
            S_o[dst], M_o[dst], j_o[dst], c_o[dst] = S, M, j, start
    return out


def _poisson_upper_tail(S: np.ndarray, M: np.ndarray) -> np.ndarray:
    """P(Poisson(M) >= S) for S > 0 (1 where S <= M: no excess). S may be non-integer
    (float data): the regularised incomplete gamma interpolates the tail."""
    p = np.ones_like(S)
    pos = S > M
    p[pos] = gammainc(S[pos], M[pos])
    return p


def benjamini_hochberg(p: np.ndarray, q: float) -> np.ndarray:
    """Boolean rejections of the Benjamini-Hochberg step-up procedure at level q."""
    m = p.size
    if m == 0:
        return np.zeros(0, dtype=bool)
    order = np.argsort(p, kind="stable")
    passed = p[order] <= q * np.arange(1, m + 1) / m
    out = np.zeros(m, dtype=bool)
    if passed.any():
        out[order[: int(np.nonzero(passed)[0][-1]) + 1]] = True
    return out


def anomalies_of_fit(
    data: SpectrumMatrix,
    W: np.ndarray,
    H: np.ndarray,
    pm: np.ndarray | None,
    cm: np.ndarray | None,
    *,
    windows: tuple[int, ...] = DEFAULT_WINDOWS,
    box: int = 3,
    fdr: float = 0.01,
) -> ResidualAnomalies:
    """:func:`residual_anomalies` on validated inputs (pm/cm: 1 = included, as the fits
    pass them; W (N, K), H (K, C))."""
    N, C = data.shape
    windows, box, fdr = _check_options(windows, box, fdr, C)
    incl_c = np.ones(C, dtype=bool) if cm is None else np.asarray(cm).astype(bool)
    incl_p = np.ones(N, dtype=bool) if pm is None else np.asarray(pm).astype(bool)
    Hd = np.asarray(H, dtype=np.float64) * incl_c  # excluded channels count for nothing
    Wd = np.asarray(W, dtype=np.float64)
    group = -(-C // MAX_TEST_CHANNELS)
    Cb = -(-C // group)
    Hb = np.add.reduceat(Hd, np.arange(0, C, group), axis=1) if group > 1 else Hd
    win_b = tuple(sorted({min(Cb, max(1, round(w / group))) for w in windows}))
    nav = data.nav_shape
    grid = len(nav) == 2 and box > 1
    boxes = (1, box) if grid else (1,)
    n_tests = len(boxes) * sum(Cb - w + 1 for w in win_b)
    scales = _scan_scales(data, Wd, Hb, incl_c, incl_p, group, win_b, box if grid else 1)
    logp = np.zeros(N)  # log of the unadjusted p-value of each pixel's best test
    best_w = np.zeros(N, dtype=np.int64)
    best_c = np.zeros(N, dtype=np.int64)  # first channel of the pixel's best window
    from_box = np.zeros(N, dtype=bool)  # the pixel's best test was its box sum
    for is_box, (S, M, j, start) in zip((False, True), scales):
        with np.errstate(divide="ignore"):
            lp = np.log(_poisson_upper_tail(S, M))
        better = lp < logp
        logp = np.where(better, lp, logp)
        best_w = np.where(better, j, best_w)
        from_box = np.where(better, is_box, from_box)
        best_c = np.where(better, start, best_c)
    p = np.minimum(1.0, np.exp(logp) * n_tests)
    p[~incl_p] = 1.0
    flags = np.zeros(N, dtype=bool)
    flags[incl_p] = benjamini_hochberg(p[incl_p], fdr)
    if grid and (flags & from_box).any():
        # a box-scale rejection says the box holds the excess: flag the whole box
        grown = ndimage.binary_dilation(
            (flags & from_box).reshape(nav), structure=np.ones((box, box), dtype=bool)
        )
        flags |= grown.reshape(-1) & incl_p
    regions = _regions(data, Wd, Hd, incl_c, flags, p, best_w, best_c * group, win_b, group)
    return ResidualAnomalies(p.reshape(nav), flags.reshape(nav), regions, fdr)


def _regions(data, Wd, Hd, incl_c, flags, p, best_w, best_c, win_b, group):
    """Connected flagged regions; best_c in channels, win_b in groups of channels."""
    nav = data.nav_shape
    if not flags.any():
        return []
    if len(nav) == 2:
        labels, n = ndimage.label(flags.reshape(nav), structure=np.ones((3, 3), dtype=int))
    else:
        labels, n = ndimage.label(flags)
    labels = labels.reshape(-1)
    out = []
    for lab in range(1, n + 1):
        idx = np.nonzero(labels == lab)[0]
        resid = np.zeros(Hd.shape[1])
        for s in range(0, idx.size, 4096):
            part = idx[s : s + 4096]
            blk = data.X[part]
            x = blk.toarray() if sp.issparse(blk) else np.asarray(blk, dtype=np.float64)
            resid += (x * incl_c - Wd[part] @ Hd).sum(axis=0)
        k = int(idx[np.argmin(p[idx])])
        w, start = win_b[int(best_w[k])] * group, int(best_c[k])
        pixels = np.stack(np.unravel_index(idx, nav), axis=1) if len(nav) == 2 else idx
        out.append(
            AnomalyRegion(
                pixels=pixels,
                p_value=float(p[idx].min()),
                residual_spectrum=resid,
                peak_channel=min(start + w // 2, resid.shape[0] - 1),
                excess_counts=float(resid[start : start + w].sum()),
            )
        )
    out.sort(key=lambda r: (r.p_value, -r.excess_counts))
    return out


def residual_anomalies(
    X: ArrayLike,
    maps: ArrayLike,
    components: ArrayLike,
    *,
    fdr: float = 0.01,
    windows: tuple[int, ...] = DEFAULT_WINDOWS,
    box: int = 3,
    pixel_mask: ArrayLike | None = None,
    channel_mask: ArrayLike | None = None,
) -> ResidualAnomalies:
    """Pixels whose counts exceed a fitted model by more than Poisson noise allows.

    For each pixel and each channel window of ``windows`` channels, the counts S in the
    window are compared with the model's expectation M (``maps @ components``) by the
    Poisson likelihood-ratio statistic ``G = 2 (S log(S/M) - (S - M))`` (one-sided: only
    excesses). The window with the largest G is scored by its exact Poisson tail
    ``P(Poisson(M) >= S)``, multiplied by the number of windows tested in the pixel
    (Bonferroni). This is done on the pixel's own spectrum and on the sum over the
    ``box`` x ``box`` pixels centred on it (for (H, W, C) input), which gains a factor of
    about ``box`` in signal-to-noise for an inclusion of that size; the pixel keeps the
    smaller adjusted p-value. The Benjamini-Hochberg procedure at level ``fdr`` over the
    included pixels then flags pixels (a pixel rejected at the box scale flags its whole
    box, where the excess was found); 8-connected flagged pixels form regions, each
    with its summed residual spectrum. The null hypothesis is "the model is the true
    expectation": a model fitted to the same data absorbs a little of the noise, which
    makes the test conservative; a model that misses a phase (K too small) flags it.
    The box scale can spread a flag up to ``box // 2`` pixels beyond an inclusion.

    Parameters
    ----------
    X : array_like, shape (N, C) or (H, W, C), or scipy.sparse (N, C)
        Counts (the data the model was fitted to).
    maps : array_like, shape (N, K) or (H, W, K)
        Non-negative abundances.
    components : array_like, shape (K, C)
        Component spectra (counts per unit abundance).
    fdr : float in (0, 1], default 0.01
        Expected fraction of false discoveries among the flagged pixels.
    windows : sequence of int, default (2, 6, 16)
        Channel-window widths scanned (each >= 1; wider than C means C). Spectra of
        more than 512 channels are tested in groups of ``g = ceil(C / 512)`` summed
        channels, the windows rounded to multiples of g.
    box : odd int, default 3
        Side of the pixel box of the second scale (1: single pixels only).
    pixel_mask, channel_mask : bool arrays, shape (N,)/(H, W) and (C,), optional
        True = excluded (never flagged / not counted).

    Returns
    -------
    ResidualAnomalies
        ``p_values`` and ``flags`` in the navigation shape, ``regions`` (list of
        :class:`AnomalyRegion`, most significant first).

    Raises
    ------
    ValueError
        Bad counts, shapes that do not match, bad options.

    Example
    -------
    >>> import numpy as np, matchar as mc
    >>> rng = np.random.default_rng(0)
    >>> maps = rng.random((24, 24, 2)); spectra = rng.random((2, 64)) * 20
    >>> X = rng.poisson(maps @ spectra)
    >>> X[10:13, 10:13, 40:43] += 6                   # an inclusion no phase has
    >>> res = mc.spectral.residual_anomalies(X, maps, spectra)
    >>> [tuple(int(v) for v in r.pixels.mean(0)) for r in res.regions]
    [(11, 11)]
    """
    data = as_spectrum_matrix(X, "X")
    N, C = data.shape
    A = np.asarray(maps, dtype=np.float64)
    H = np.asarray(components, dtype=np.float64)
    if H.ndim != 2 or H.shape[1] != C:
        raise ValueError(f"components must have shape (K, {C}), got {H.shape}")
    K = H.shape[0]
    if A.shape not in ((N, K), (*data.nav_shape, K)):
        raise ValueError(f"maps must have shape {(*data.nav_shape, K)} or {(N, K)}, got {A.shape}")
    A = A.reshape(N, K)
    for name, a in (("maps", A), ("components", H)):
        if not np.isfinite(a).all() or (a < 0).any():
            raise ValueError(f"{name} must be finite and non-negative")
    pm = as_mask(pixel_mask, "pixel_mask", data.nav_shape, N)
    cm = as_mask(channel_mask, "channel_mask", (C,), C)
    return anomalies_of_fit(data, A, H, pm, cm, windows=windows, box=box, fdr=fdr)
