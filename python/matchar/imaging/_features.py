"""Window preprocessing shared by the crystal classifier's training and inference."""

from __future__ import annotations

import numpy as np
import scipy.fft
import scipy.ndimage
import scipy.sparse

#: The classifier's pixel scale (Å per pixel) and window side (pixels).
MODEL_PIXEL_SIZE = 0.25
MODEL_WINDOW = 64


def _hann2d(n: int) -> np.ndarray:
    h = np.hanning(n + 2)[1:-1]
    return np.outer(h, h).astype(np.float32)


_HANN = _hann2d(MODEL_WINDOW)


def _check_windows(windows: np.ndarray) -> np.ndarray:
    w = np.asarray(windows, dtype=np.float32)
    if w.ndim != 3 or w.shape[1:] != (MODEL_WINDOW, MODEL_WINDOW):
        raise ValueError(
            f"windows must have shape (N, {MODEL_WINDOW}, {MODEL_WINDOW}), got {w.shape}"
        )
    return w


def real_features(windows: np.ndarray, workers: int = 1) -> np.ndarray:
    """The windows themselves (real space), each standardized to mean 0 and standard
    deviation 1: the input of the real-space network of the input comparison
    (``scripts/train_crystal_classifier.py --arch real``).

    Parameters
    ----------
    windows : numpy.ndarray, shape (N, 64, 64), float32 or float64
        Windows on the model's pixel scale (:data:`MODEL_PIXEL_SIZE`).
    workers : int
        Unused (the signature of the other feature functions).

    Returns
    -------
    numpy.ndarray, shape (N, 1, 64, 64), float32

    Examples
    --------
    >>> real_features(np.random.default_rng(0).random((2, 64, 64))).shape
    (2, 1, 64, 64)
    """
    x = _check_windows(windows).copy()
    x -= x.mean(axis=(1, 2), keepdims=True)
    x /= x.std(axis=(1, 2), keepdims=True) + np.float32(1e-6)
    return x[:, None, :, :]


def fft_features(windows: np.ndarray, workers: int = 1) -> np.ndarray:
    """Log-magnitude FFT of standardized, Hann-tapered windows.

    Parameters
    ----------
    windows : numpy.ndarray, shape (N, 64, 64), float32 or float64
        Windows on the model's pixel scale (:data:`MODEL_PIXEL_SIZE`).
    workers : int
        Threads for the FFT.

    Returns
    -------
    numpy.ndarray, shape (N, 1, 64, 64), float32
        ``log1p(|FFT|)`` with the zero frequency at the centre, each window standardized
        to mean 0 and standard deviation 1.

    Examples
    --------
    >>> fft_features(np.random.default_rng(0).random((2, 64, 64))).shape
    (2, 1, 64, 64)
    """
    w = _check_windows(windows)
    x = w - w.mean(axis=(1, 2), keepdims=True)
    x /= x.std(axis=(1, 2), keepdims=True) + np.float32(1e-6)
    x *= _HANN
    f = np.abs(scipy.fft.fft2(x, axes=(1, 2), workers=workers)).astype(np.float32)
    f = np.log1p(f)
    f = scipy.fft.fftshift(f, axes=(1, 2))
    f -= f.mean(axis=(1, 2), keepdims=True)
    f /= f.std(axis=(1, 2), keepdims=True) + np.float32(1e-6)
    return f[:, None, :, :]


#: Polar sampling of the centred log-FFT: radii (FFT pixels) and angles over [0, 180°)
#: (the power spectrum is centrosymmetric). An in-plane rotation of the window is a
#: cyclic shift along the angle axis.
POLAR_RADII = np.linspace(1.5, 27.0, 24)
POLAR_ANGLES = np.arange(60) * (np.pi / 60)


def _polar_matrix() -> tuple[np.ndarray, np.ndarray]:
    """Bilinear gather: flat indices (R*A, 4) into the 64 x 64 centred map and their
    weights (R*A, 4)."""
    c = MODEL_WINDOW // 2
    r, t = np.meshgrid(POLAR_RADII, POLAR_ANGLES, indexing="ij")
    y = c - r * np.sin(t)  # rows grow downwards; angle measured from +x towards -y... see below
    x = c + r * np.cos(t)
    y0, x0 = np.floor(y).astype(np.int64), np.floor(x).astype(np.int64)
    fy, fx = y - y0, x - x0
    idx = np.stack(
        [
            y0 * MODEL_WINDOW + x0,
            y0 * MODEL_WINDOW + x0 + 1,
            (y0 + 1) * MODEL_WINDOW + x0,
            (y0 + 1) * MODEL_WINDOW + x0 + 1,
        ],
        -1,
    )
    w = np.stack([(1 - fy) * (1 - fx), (1 - fy) * fx, fy * (1 - fx), fy * fx], -1)
    return idx.reshape(-1, 4), w.reshape(-1, 4).astype(np.float32)


_POLAR_IDX, _POLAR_W = _polar_matrix()


def _polar_rfft_matrix() -> scipy.sparse.csr_matrix:
    """The bilinear gather of :func:`_polar_matrix` as a sparse (R*A, 64*33) matrix on
    the half spectrum of ``rfft2``: the centred bin (row, col) is frequency
    (ky, kx) = (row - 32, col - 32), and |F(ky, kx)| = |F(-ky, -kx)| for a real window,
    so a bin with kx < 0 is read at (-ky, -kx)."""
    c, half = MODEL_WINDOW // 2, MODEL_WINDOW // 2 + 1
    y, x = np.divmod(_POLAR_IDX.ravel(), MODEL_WINDOW)
    ky, kx = y - c, x - c
    flip = kx < 0
    ky, kx = np.where(flip, -ky, ky), np.where(flip, -kx, kx)
    cols = (ky % MODEL_WINDOW) * half + kx
    rows = np.repeat(np.arange(len(_POLAR_IDX)), _POLAR_IDX.shape[1])
    m = scipy.sparse.csr_matrix(
        (_POLAR_W.ravel(), (rows, cols)), shape=(len(_POLAR_IDX), MODEL_WINDOW * half)
    )
    m.sum_duplicates()
    return m


_POLAR_RFFT = _polar_rfft_matrix()


def polar_features(windows: np.ndarray, workers: int = 1) -> np.ndarray:
    """:func:`fft_features` resampled on a polar grid (radius x angle).

    Computed on the half spectrum of a real FFT (the polar angles span 180°, and the
    magnitude of a real window's spectrum is centrosymmetric), with ``log(1 + |F|)``
    and without :func:`fft_features`' standardization of the full map: the polar samples
    are bilinear (weights summing to 1) and standardized themselves, so that step
    cancels. The result equals the polar sampling of :func:`fft_features` to float32
    rounding (``tests/imaging/test_classifier.py`` checks it).

    Parameters
    ----------
    windows : numpy.ndarray, shape (N, 64, 64)
        Windows on the model's pixel scale.
    workers : int
        Threads for the FFT.

    Returns
    -------
    numpy.ndarray, shape (N, 1, 24, 60), float32
        Log-FFT magnitude at radii :data:`POLAR_RADII` (FFT pixels) and angles
        :data:`POLAR_ANGLES`, standardized per window.

    Examples
    --------
    >>> polar_features(np.random.default_rng(0).random((2, 64, 64))).shape
    (2, 1, 24, 60)
    """
    w = _check_windows(windows)
    n = len(w)
    x = w - w.mean(axis=(1, 2), keepdims=True)
    x *= _HANN / (x.std(axis=(1, 2), keepdims=True) + np.float32(1e-6))
    f = np.abs(scipy.fft.rfft2(x, axes=(1, 2), workers=workers))
    f += np.float32(1.0)
    np.log(f, out=f)  # log1p: NumPy's float32 log is vectorized, its log1p is not
    p = np.ascontiguousarray((_POLAR_RFFT @ f.reshape(n, _POLAR_RFFT.shape[1]).T).T, np.float32)
    p -= p.mean(axis=1, keepdims=True)
    p /= p.std(axis=1, keepdims=True) + np.float32(1e-6)
    return p.reshape(n, 1, len(POLAR_RADII), len(POLAR_ANGLES))


# -- CBED patterns ------------------------------------------------------------------------

#: Polar sampling of a CBED pattern around the direct beam: radii in 1/Å (g = 1/d) and
#: angles over [0, 180°) (the two halves of the circle averaged: the kinematic pattern
#: at the zone axis is centrosymmetric). An in-plane rotation is a cyclic shift in angle.
CBED_RADII = np.linspace(0.12, 1.9, 48)
CBED_ANGLES = np.arange(60) * (np.pi / 60)
#: Gaussian blur (1/Å) before the polar sampling: disks become blobs wider than the grid.
CBED_BLUR = 0.03
#: Intensity scale of the log compression log1p(I / CBED_LOG_SCALE) (units of the
#: incident beam).
CBED_LOG_SCALE = 0.003


def cbed_center(pattern: np.ndarray) -> tuple[float, float]:
    """Direct-beam position (x = column, y = row) of a CBED pattern, in pixels.

    The kinematic zone-axis pattern is centrosymmetric about the direct beam c, so the
    self-convolution of the disks peaks at 2c; the peak is refined with parabolas. The
    disks are taken as sqrt(max(I - m - 3 s, 0)), m the median of the pattern and s its
    robust noise (1.4826 x the median absolute deviation): a uniform background, and the
    noise on it, would otherwise add a self-convolution peaked at the pattern's centre
    that outweighs the disks' (a background of 0.005 of the incident beam put the
    estimate up to 5 pixels off, towards the centre of the frame).

    Parameters
    ----------
    pattern : numpy.ndarray, shape (H, W)
        Finite intensities.

    Returns
    -------
    (float, float)
        (x, y) in pixels.

    Examples
    --------
    >>> p = np.zeros((32, 40)); p[10:13, 20:23] = 1.0
    >>> cbed_center(p)
    (21.0, 11.0)
    """
    x = np.asarray(pattern, dtype=np.float64)
    med = float(np.median(x))
    noise = 1.4826 * float(np.median(np.abs(x - med)))
    x = np.sqrt(np.clip(x - (med + 3.0 * noise), 0.0, None))
    h, w = x.shape
    shape = (scipy.fft.next_fast_len(2 * h - 1), scipy.fft.next_fast_len(2 * w - 1))
    f = scipy.fft.rfft2(x, s=shape)
    conv = scipy.fft.irfft2(f * f, s=shape)[: 2 * h - 1, : 2 * w - 1]
    i, j = np.unravel_index(int(np.argmax(conv)), conv.shape)

    def refine(fm: float, f0: float, fp: float) -> float:
        d = fm - 2 * f0 + fp
        return 0.0 if d >= 0 else float(np.clip(0.5 * (fm - fp) / d, -0.5, 0.5))

    di = refine(conv[i - 1, j], conv[i, j], conv[i + 1, j]) if 0 < i < 2 * h - 2 else 0.0
    dj = refine(conv[i, j - 1], conv[i, j], conv[i, j + 1]) if 0 < j < 2 * w - 2 else 0.0
    return 0.5 * (float(j) + dj), 0.5 * (float(i) + di)


def cbed_features(
    patterns: np.ndarray, reciprocal_pixel_size, centers: np.ndarray | None = None
) -> np.ndarray:
    """Polar, log-compressed CBED patterns for the CBED classifier.

    Each pattern is blurred by a Gaussian of :data:`CBED_BLUR` (1/Å), compressed as
    ``log1p(I / CBED_LOG_SCALE)``, sampled (bilinear, 0 outside the pattern) at radii
    :data:`CBED_RADII` (1/Å) and 120 angles around the direct beam, the two halves of the
    circle averaged, and standardized.

    Parameters
    ----------
    patterns : numpy.ndarray, shape (N, H, W)
        Intensities in units of the incident beam (as from :func:`simulate_cbed`).
    reciprocal_pixel_size : float or numpy.ndarray, shape (N,)
        Calibration in 1/Å per pixel.
    centers : numpy.ndarray, shape (N, 2), or None
        Direct-beam positions (x, y) in pixels; None = :func:`cbed_center` of each.

    Returns
    -------
    numpy.ndarray, shape (N, 1, 48, 60), float32

    Examples
    --------
    >>> cbed_features(np.ones((2, 96, 96)), 0.04).shape
    (2, 1, 48, 60)
    """
    p = np.asarray(patterns)
    n = len(p)
    ps = np.broadcast_to(np.asarray(reciprocal_pixel_size, dtype=np.float64), (n,))
    t = np.arange(2 * len(CBED_ANGLES)) * (np.pi / len(CBED_ANGLES))
    cos_t, sin_t = np.cos(t), np.sin(t)
    out = np.empty((n, 1, len(CBED_RADII), len(CBED_ANGLES)), np.float32)
    for i in range(n):
        img = np.clip(np.asarray(p[i], dtype=np.float32), 0.0, None)
        cx, cy = cbed_center(img) if centers is None else centers[i]
        img = scipy.ndimage.gaussian_filter(img, CBED_BLUR / ps[i], truncate=3.0)
        img = np.log1p(img / np.float32(CBED_LOG_SCALE))
        r = CBED_RADII[:, None] / ps[i]
        coords = np.stack([cy + r * sin_t[None, :], cx + r * cos_t[None, :]])
        v = scipy.ndimage.map_coordinates(img, coords, order=1, mode="constant", cval=0.0)
        v = 0.5 * (v[:, : len(CBED_ANGLES)] + v[:, len(CBED_ANGLES) :])
        v -= v.mean()
        v /= v.std() + 1e-6
        out[i, 0] = v
    return out
