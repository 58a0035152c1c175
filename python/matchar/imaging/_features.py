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
