"""Window preprocessing shared by the crystal classifier's training and inference."""

from __future__ import annotations

import numpy as np
import scipy.fft

#: The classifier's pixel scale (Å per pixel) and window side (pixels).
MODEL_PIXEL_SIZE = 0.25
MODEL_WINDOW = 64


def _hann2d(n: int) -> np.ndarray:
    h = np.hanning(n + 2)[1:-1]
    return np.outer(h, h).astype(np.float32)


_HANN = _hann2d(MODEL_WINDOW)


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
    w = np.asarray(windows, dtype=np.float32)
    if w.ndim != 3 or w.shape[1:] != (MODEL_WINDOW, MODEL_WINDOW):
        raise ValueError(f"windows must have shape (N, {MODEL_WINDOW}, {MODEL_WINDOW}), "
                         f"got {w.shape}")
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
    """Bilinear gather: flat indices (R*A, 4) into the 64 x 64 map and their weights."""
    c = MODEL_WINDOW // 2
    r, t = np.meshgrid(POLAR_RADII, POLAR_ANGLES, indexing="ij")
    y = c - r * np.sin(t)  # rows grow downwards; angle measured from +x towards -y... see below
    x = c + r * np.cos(t)
    y0, x0 = np.floor(y).astype(np.int64), np.floor(x).astype(np.int64)
    fy, fx = y - y0, x - x0
    idx = np.stack([y0 * MODEL_WINDOW + x0, y0 * MODEL_WINDOW + x0 + 1,
                    (y0 + 1) * MODEL_WINDOW + x0, (y0 + 1) * MODEL_WINDOW + x0 + 1], -1)
    w = np.stack([(1 - fy) * (1 - fx), (1 - fy) * fx, fy * (1 - fx), fy * fx], -1)
    return idx.reshape(-1, 4), w.reshape(-1, 4).astype(np.float32)


_POLAR_IDX, _POLAR_W = _polar_matrix()


def polar_features(windows: np.ndarray, workers: int = 1) -> np.ndarray:
    """:func:`fft_features` resampled on a polar grid (radius x angle).

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
    f = fft_features(windows, workers)[:, 0].reshape(len(windows), -1)
    p = np.einsum("nkj,kj->nk", f[:, _POLAR_IDX], _POLAR_W, optimize=True)
    p -= p.mean(axis=1, keepdims=True)
    p /= p.std(axis=1, keepdims=True) + np.float32(1e-6)
    return p.reshape(len(windows), 1, len(POLAR_RADII), len(POLAR_ANGLES)).astype(np.float32)
