"""Lattice constant measured from the FFT peaks of HAADF images and windows.

Once a (prototype, zone axis) class is chosen, its projected 2-D cell
(:func:`matchar.imaging.projected_cell`) predicts where the reciprocal-lattice peaks of
the power spectrum lie: at ``exp(i rotation) g / a`` for each reflection ``g`` of the cell
(units of 1/a; x along image columns, y along rows, as in
:func:`matchar.imaging.simulate_haadf`). Starting from the network's lattice constant and
rotation, every predicted peak is looked up in a small neighbourhood of the power
spectrum, located to a fraction of a frequency bin (log-parabolic interpolation: the
Hann window's main lobe is close to a Gaussian), and the complex scale ``z = exp(i
rotation) / a`` is fitted to the peaks found by linear least squares, ``k ≈ z g``.
Everything runs vectorised over a stack of spectra, one class, lattice constant and
rotation per spectrum.

A peak counts when its power exceeds :data:`PEAK_SIGNIFICANCE` times the background at
its radius (the geometric mean of the power over its annulus, robust to the few peaks an
annulus holds). For shot noise the power is exponentially distributed, so noise alone
passes that threshold with probability about 1e-6 per frequency bin.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import scipy.fft
import scipy.ndimage

from ._simulate import projected_cell

#: A reflection counts as found when its power is this many times the background.
PEAK_SIGNIFICANCE = 25.0
#: The whole image shows a lattice when its strongest peak (away from the zero frequency)
#: is this many times the background; white noise stays below ~30 up to 4096 x 4096.
LATTICE_SIGNIFICANCE = 60.0
#: Reflections weaker than this fraction of the strongest (|F|^2 of the projected
#: columns) are not used; nor are those beyond this |g| (units of 1/a).
_MIN_STRUCTURE_FACTOR = 0.1
_MAX_G = 6.0
#: Frequencies beyond this (1/Å) are not used: the probe damps them.
MAX_FREQUENCY = 1.2
#: Frequencies closer than this many bins to zero are not used (the Hann window's
#: leakage of the mean and of slow intensity variations).
_MIN_BINS = 3.0
#: A fit counts when at least this fraction of the predicted reflections in range (and at
#: least two) are found.
MIN_FOUND_FRACTION = 0.6
#: ... and the found peaks' RMS distance (frequency bins) from where the fitted lattice
#: puts them must stay under this.
MAX_RESIDUAL_BINS = 0.6
#: Reflections closer than this (frequency bins) overlap under the Hann window's main
#: lobe (4 bins wide): such a class is not refined at that lattice constant.
MIN_SEPARATION_BINS = 3.5
#: The strongest-peak search stops at this frequency (1/Å): beyond it the probe has
#: damped any lattice, and only rendering or detector artefacts remain.
_MAX_PEAK_FREQUENCY = 2.5


@functools.lru_cache(maxsize=8)
def reflection_table(
    classes: tuple[tuple[str, tuple[int, ...]], ...],
) -> tuple[np.ndarray, np.ndarray]:
    """Reciprocal-lattice vectors of each class's projected cell, one of each ±g pair.

    Parameters
    ----------
    classes : tuple of (prototype, zone axis)

    Returns
    -------
    g : numpy.ndarray, shape (C, M), complex128
        ``gx + i gy`` in units of 1/a, sorted by |g| within a class, padded with NaN.
    separation : numpy.ndarray, shape (C,), float64
        Smallest distance (1/a) between two reflections of the class, the weak ones
        (down to 1% of the strongest) and the zero frequency included: peaks closer
        than about 3 frequency bins overlap and cannot be located apart.
    """
    rows, seps = [], []
    hk = np.array([(h, k) for h in range(-8, 9) for k in range(0, 9) if k > 0 or h > 0])
    for proto, zone in classes:
        cell = projected_cell(proto, zone)
        b = np.linalg.inv(np.stack([cell.a1, cell.a2])).T  # rows b1, b2: a_i . b_j = δ_ij
        g = hk @ b
        f = np.exp(2j * np.pi * (hk @ cell.columns[:, :2].T)) @ cell.columns[:, 2]
        strength = np.abs(f) ** 2
        norm = np.hypot(g[:, 0], g[:, 1])
        keep = (strength >= _MIN_STRUCTURE_FACTOR * strength.max()) & (norm <= _MAX_G)
        order = np.argsort(norm[keep], kind="stable")
        rows.append((g[keep, 0] + 1j * g[keep, 1])[order])
        seen = g[strength >= 0.01 * strength.max()]
        seen = np.concatenate([seen, -seen, np.zeros((1, 2))])
        d = np.linalg.norm(seen[:, None] - seen[None], axis=-1)
        seps.append(float(d[d > 1e-9].min()))
    m = max(len(r) for r in rows)
    out = np.full((len(rows), m), np.nan + 0j)
    for c, r in enumerate(rows):
        out[c, : len(r)] = r
    return out, np.array(seps)


def power_spectra(x: np.ndarray, workers: int = 1, taper: bool = True) -> np.ndarray:
    """Power spectra of mean-subtracted, Hann-tapered images (half plane, rfft layout).

    Parameters
    ----------
    x : numpy.ndarray, shape (N, H, W)
    workers : int
        FFT threads.
    taper : bool
        False for windows already standardized and tapered.

    Returns
    -------
    numpy.ndarray, shape (N, H, W // 2 + 1), float32
    """
    x = np.asarray(x, dtype=np.float32)
    if taper:  # no scaling: peaks are judged against the background, a ratio
        x = x - x.mean(axis=(1, 2), keepdims=True)
        hy = np.hanning(x.shape[1] + 2)[1:-1].astype(np.float32)
        hx = np.hanning(x.shape[2] + 2)[1:-1].astype(np.float32)
        x *= hy[:, None] * hx[None, :]
    f = scipy.fft.rfft2(x, axes=(1, 2), workers=workers)
    p = np.square(f.real) + np.square(f.imag)
    return p.astype(np.float32, copy=False)


def _radius_bins(h: int, w: int) -> np.ndarray:
    """Integer radius (in bins of the larger side) of each rfft bin, shape (h, w//2+1)."""
    fy = np.fft.fftfreq(h)[:, None] * max(h, w)
    fx = np.fft.rfftfreq(w)[None, :] * max(h, w)
    return np.rint(np.hypot(fy, fx)).astype(np.int64)


def log_background(p: np.ndarray) -> np.ndarray:
    """Mean log power per integer radius: (N, n_radii)."""
    n, h, wr = p.shape
    w = 2 * (wr - 1)
    r = _radius_bins(h, w).ravel()
    nr = int(r.max()) + 1
    lp = np.log(p.reshape(n, -1) + np.float32(1e-30))
    if n == 1:
        s = np.bincount(r, weights=lp[0], minlength=nr)[None]
    else:
        onehot = np.zeros((r.size, nr), np.float32)
        onehot[np.arange(r.size), r] = 1.0
        s = lp @ onehot
    return s / np.maximum(np.bincount(r, minlength=nr), 1)


def _gather(p: np.ndarray, row: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """p[row, y, x] on the full plane of frequencies (x < 0 read from the mirror bin)."""
    n, h, wr = p.shape
    neg = x < 0
    yy = np.where(neg, -y, y) % h
    xx = np.minimum(np.abs(x), wr - 1)
    return p.reshape(n, -1)[row, yy * wr + xx]


def refine_lattice(
    p: np.ndarray,
    shape: tuple[int, int],
    pixel_size: float,
    g: np.ndarray,
    separation: np.ndarray,
    a0: np.ndarray,
    rotation: np.ndarray,
    log_bg: np.ndarray | None = None,
    field: float | None = None,
    return_misfit: bool = False,
) -> tuple[np.ndarray, ...]:
    """Lattice constants fitted to the FFT peaks of a stack of power spectra.

    Parameters
    ----------
    p : numpy.ndarray, shape (N, H, W // 2 + 1), float32
        Power spectra from :func:`power_spectra`.
    shape : (int, int)
        (H, W) of the images.
    pixel_size : float
        Å per pixel of the images.
    g : numpy.ndarray, shape (N, M), complex
        Reflections of each spectrum's class (rows of :func:`reflection_table`).
    separation : numpy.ndarray, shape (N,)
        Smallest reflection separation (1/a) of each spectrum's class
        (:func:`reflection_table`): spectra where it spans fewer than
        :data:`MIN_SEPARATION_BINS` bins at ``a0`` are not refined.
    a0 : numpy.ndarray, shape (N,)
        Starting lattice constants, Å.
    rotation : numpy.ndarray, shape (N,)
        Starting in-plane rotations, degrees.
    log_bg : numpy.ndarray, shape (N, n_radii), optional
        :func:`log_background` of ``p`` (computed when not given).
    field : float, optional
        Side (Å) of the data inside zero-padded windows (their peaks are broader);
        default: the images' larger side.
    return_misfit : bool
        Also return ``misfit``.

    Returns
    -------
    a : numpy.ndarray, shape (N,), float64
        Fitted lattice constants in Å; ``a0`` where fewer than two reflections, or under
        :data:`MIN_FOUND_FRACTION` of those in range, were found, where the fit moved
        more than 15% away from ``a0``, or where the peaks overlap.
    n_peaks : numpy.ndarray, shape (N,), int64
        Reflections found in the last pass (0: not refined).
    misfit : numpy.ndarray, shape (N,), bool
        (``return_misfit``) Spectra where enough peaks were found but they sit off the
        class's lattice (RMS over :data:`MAX_RESIDUAL_BINS` bins): the class does not
        fit the image.
    """
    n = p.shape[0]
    H, W = shape
    if n == 0:
        return np.zeros(0), np.zeros(0, np.int64)
    if log_bg is None:
        log_bg = log_background(p)
    thresh = np.log(PEAK_SIGNIFICANCE)
    sx, sy = W * pixel_size, H * pixel_size  # bins per 1/Å along x and y
    side = max(H, W) * pixel_size
    k_max = min(MAX_FREQUENCY, 0.9 * 0.5 / pixel_size)
    k_min = _MIN_BINS / min(sx, sy)
    a0 = np.asarray(a0, dtype=np.float64)
    z0 = np.exp(1j * np.radians(np.asarray(rotation, dtype=np.float64))) / a0
    z = z0.copy()
    gabs = np.abs(g)
    gmin = np.nanmin(np.where(np.isnan(gabs), np.inf, gabs), axis=1, keepdims=True)
    found = np.zeros(n, np.int64)
    misfit = np.zeros(n, bool)
    extent = side if field is None else min(side, float(field))
    resolved = np.asarray(separation) * extent / a0 >= MIN_SEPARATION_BINS
    d = np.arange(-16, 17)
    for it in range(3):
        k = z[:, None] * g
        kabs = np.abs(k)
        use = np.isfinite(kabs) & (kabs >= k_min) & (kabs <= k_max) & resolved[:, None]
        if it == 0:  # the lowest orders first: the network's error grows with |g|
            use &= gabs <= 1.6 * gmin
        row, col = np.nonzero(use)  # only the reflections in range: (L,) pairs
        if len(row) == 0:
            found[:] = 0
            break
        k, gu = k[row, col], g[row, col]
        # search half-width: the first pass allows ~7% scale or ~4° rotation error
        rmax = float(np.abs(k).max()) * side
        half = int(np.clip(math.ceil((0.07 if it == 0 else 0.015) * rmax) + 1, 2, 16))
        dd = d[16 - half : 17 + half]
        dy, dx = (v.ravel() for v in np.meshgrid(dd, dd, indexing="ij"))
        cy = np.rint(k.imag * sy).astype(np.int64)
        cx = np.rint(k.real * sx).astype(np.int64)
        vals = _gather(p, row[:, None], cy[:, None] + dy, cx[:, None] + dx)  # (L, P)
        best = vals.argmax(axis=-1)
        py, px = cy + dy[best], cx + dx[best]
        ln0 = np.log(vals[np.arange(len(row)), best] + 1e-30)

        def offset(lm: np.ndarray, lp: np.ndarray, ln0: np.ndarray = ln0) -> np.ndarray:
            den = lm - 2 * ln0 + lp
            with np.errstate(divide="ignore", invalid="ignore"):
                o = np.where(den < 0, 0.5 * (lm - lp) / den, 0.0)
            return np.clip(o, -0.5, 0.5)

        def log_at(y: np.ndarray, x: np.ndarray, row: np.ndarray = row) -> np.ndarray:
            return np.log(_gather(p, row, y, x) + 1e-30)

        ox = offset(log_at(py, px - 1), log_at(py, px + 1))
        oy = offset(log_at(py - 1, px), log_at(py + 1, px))
        r = np.minimum(np.rint(np.hypot(py / sy, px / sx) * side), log_bg.shape[1] - 1)
        ok = (ln0 - log_bg[row, r.astype(np.int64)]) >= thresh
        km = (px + ox) / sx + 1j * (py + oy) / sy
        prod = np.where(ok, np.conj(gu) * km, 0.0)
        num = np.bincount(row, prod.real, n) + 1j * np.bincount(row, prod.imag, n)
        den = np.bincount(row, np.where(ok, np.abs(gu) ** 2, 0.0), n)
        cnt = np.bincount(row, ok, n).astype(np.int64)
        with np.errstate(divide="ignore", invalid="ignore"):
            zn = num / den
        # A class that does not fit the image (a look-alike forced by a prior) leaves
        # most of its predicted peaks unfound; the right class finds nearly all of them
        # even at 1 electron per pixel.
        enough = cnt >= np.maximum(2, MIN_FOUND_FRACTION * np.bincount(row, minlength=n))
        # ... and the peaks it finds sit off the places its fitted lattice predicts: a
        # pseudo-match (fcc [110]'s near-hexagonal peaks read as bcc [111]) leaves
        # residuals of a bin or more where the right class's are a fraction of a bin
        miss = km - np.where(np.isfinite(zn), zn, 0.0)[row] * gu
        res_bins = np.hypot(miss.real * sx, miss.imag * sy)
        with np.errstate(divide="ignore", invalid="ignore"):
            rms = np.sqrt(np.bincount(row, np.where(ok, res_bins**2, 0.0), n) / cnt)
        fits = ~(rms > MAX_RESIDUAL_BINS) if it == 2 else np.ones(n, bool)
        misfit = enough & ~fits
        good = enough & fits & np.isfinite(zn) & (np.abs(np.abs(zn) / np.abs(z0) - 1) < 0.15)
        z = np.where(good, zn, z)
        found = np.where(good, cnt, 0)  # the last pass, over all orders, decides
    a = np.where(found >= 2, 1.0 / np.abs(z), a0)
    return (a, found, misfit) if return_misfit else (a, found)


def first_order_peak(
    p: np.ndarray, shape: tuple[int, int], pixel_size: float
) -> tuple[float, float]:
    """The lattice's first-order spacing (Å) seen in one power spectrum, and the strongest
    peak's power over the background at its radius.

    The first order is the lowest frequency among the strong peaks (local maxima over
    :data:`LATTICE_SIGNIFICANCE` and over 5% of the strongest's ratio), between 3 bins
    and 0.9 Nyquist or 2.5 1/Å; it is given to the nearest frequency bin.

    Parameters
    ----------
    p : numpy.ndarray, shape (1, H, W // 2 + 1)
        From :func:`power_spectra`.
    shape : (int, int)
        (H, W) of the image.
    pixel_size : float
        Å per pixel.

    Returns
    -------
    (float, float)
        Spacing in Å (that of the strongest peak when none is significant) and the
        strongest peak-to-background ratio.
    """
    fy, fx, ratio, strong = _strong_peaks(p, shape, pixel_size)
    k = np.hypot(fy, fx)
    best = float(ratio.max())
    kk = k[strong] if strong.any() else k[ratio == best]
    return float(1.0 / kk.min()), float(np.exp(best))


def _strong_peaks(p: np.ndarray, shape: tuple[int, int], pixel_size: float):
    """Frequencies fy, fx (1/Å, broadcast to the spectrum's shape), the log ratio of the
    power over the background at each radius, and the mask of the strong peaks of
    :func:`first_order_peak`."""
    H, W = shape
    lb = log_background(p)[0]
    r = _radius_bins(H, W)
    fy = np.broadcast_to(np.fft.fftfreq(H)[:, None] / pixel_size, p.shape[1:])
    fx = np.broadcast_to(np.fft.rfftfreq(W)[None, :] / pixel_size, p.shape[1:])
    k = np.hypot(fy, fx)
    k_max = min(_MAX_PEAK_FREQUENCY, 0.9 * 0.5 / pixel_size)
    use = (k >= _MIN_BINS / (min(H, W) * pixel_size)) & (k <= k_max)
    ratio = np.where(use, np.log(p[0] + 1e-30) - lb[r], -np.inf)
    best = float(ratio.max())
    peak = ratio >= scipy.ndimage.maximum_filter(ratio, size=3, mode="wrap")  # not a flank
    strong = peak & (ratio >= max(math.log(LATTICE_SIGNIFICANCE), best + math.log(0.05)))
    return fy, fx, ratio, strong


def peak_directions_spread(p: np.ndarray, shape: tuple[int, int], pixel_size: float) -> float:
    """The largest angle (degrees, 0-90) between the directions of two strong peaks of one
    power spectrum (those of :func:`first_order_peak`): about 0 for fringes of one
    direction (a 1-D pattern: stripes, a line grating), at least 60 for any 2-D lattice."""
    fy, fx, ratio, strong = _strong_peaks(p, shape, pixel_size)
    ratio = ratio[strong]
    keep = np.argsort(-ratio, kind="stable")[:200]  # the strongest: a bounded n**2 below
    theta = np.degrees(np.arctan2(fy[strong][keep], fx[strong][keep])) % 180.0
    if len(theta) < 2:  # one peak (with its Friedel mate): a single direction
        return 0.0
    d = np.abs(theta[:, None] - theta[None, :])
    return float(np.minimum(d, 180.0 - d).max())


@functools.lru_cache(maxsize=8)
def plausible_spacings(
    classes: tuple[tuple[str, tuple[int, ...]], ...], a_range: tuple[float, float]
) -> tuple[float, float]:
    """Range (Å) of the first-order lattice spacings (1 / |g| of each class's lowest-order
    strong reflection) over the classes and lattice constants in ``a_range``."""
    g = np.abs(reflection_table(classes)[0])
    first = np.nanmin(g, axis=1)
    return float(a_range[0] / first.max()), float(a_range[1] / first.min())
