"""NumPy references of the spectral kernels and synthetic spectrum images with known phases."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

EPS = np.finfo(np.float32).eps


def reference_kl_step(X, W, H, pixel_mask=None, channel_mask=None, update_H=True):
    """One multiplicative KL update (W, then H with the new W) in float64 NumPy.

    Masks are 'included' booleans; returns (loss of the input state, W_new, H_new).
    """
    X = np.asarray(X, dtype=np.float64)
    W = np.asarray(W, dtype=np.float64)
    H = np.asarray(H, dtype=np.float64)
    N, C = X.shape
    pm = np.ones(N, bool) if pixel_mask is None else np.asarray(pixel_mask, bool)
    cm = np.ones(C, bool) if channel_mask is None else np.asarray(channel_mask, bool)
    WH = W @ H
    inc = pm[:, None] & cm[None, :]
    nz = (X > 0) & inc
    loss = np.sum(X[nz] * np.log(X[nz] / np.maximum(WH[nz], EPS))) - X[inc].sum() + WH[inc].sum()
    R = np.where((X > 0) & cm[None, :], X / np.maximum(WH, EPS), 0.0)
    hsum = H[:, cm].sum(1)
    W = W * (R @ H.T) / np.where(hsum == 0, EPS, hsum)
    if not update_H:
        return loss, W, None
    WH = W @ H
    R = np.where((X > 0) & pm[:, None], X / np.maximum(WH, EPS), 0.0)
    wsum = W[pm].sum(0)
    H = H * (W.T @ R) / np.where(wsum == 0, EPS, wsum)[:, None]
    H[H < np.finfo(np.float64).eps] = 0
    return loss, W, H


def reference_hals_step(X, W, H, sweeps=1):
    """One HALS iteration (columns of W in order, then rows of H), float64 NumPy; with
    sweeps > 1 each half repeats its sweep that many times with the other factor fixed."""
    X = np.asarray(X, dtype=np.float64)
    W = np.array(W, dtype=np.float64)
    H = np.array(H, dtype=np.float64)
    HHt, XHt = H @ H.T, X @ H.T
    for _ in range(sweeps):
        for k in range(W.shape[1]):
            if HHt[k, k] != 0:
                W[:, k] = np.maximum(W[:, k] - (W @ HHt[:, k] - XHt[:, k]) / HHt[k, k], 0)
    WtW, XtW = W.T @ W, X.T @ W
    for _ in range(sweeps):
        for k in range(H.shape[0]):
            if WtW[k, k] != 0:
                H[k] = np.maximum(H[k] - (WtW[k] @ H - XtW[:, k]) / WtW[k, k], 0)
    return 0.5 * np.sum((X - W @ H) ** 2), W, H


def reference_deviance(X, W, H):
    X = np.asarray(X, dtype=np.float64)
    WH = np.asarray(W, np.float64) @ np.asarray(H, np.float64)
    term = np.where(X > 0, X * np.log(np.where(X > 0, X, 1) / np.maximum(WH, EPS)), 0.0)
    return 2 * np.sum(term - X + WH, axis=1)


def spectral_angles(found, truth):
    """Angles (degrees) between true spectra and their best-matching found components."""
    F = found / np.linalg.norm(found, axis=1, keepdims=True)
    T = truth / np.linalg.norm(truth, axis=1, keepdims=True)
    cos = np.clip(T @ F.T, -1, 1)
    r, c = linear_sum_assignment(-cos)
    return np.degrees(np.arccos(cos[r, c])), c


def phase_cube(seed=0, side=48, n_channels=256, counts=200.0):
    """A (side, side, C) uint16 Poisson cube of 4 phases (two Gaussian lines each on a
    bremsstrahlung-like background) in smooth regions with pure cores. Returns
    (cube, spectra (4, C) summing to 1, abundances (side, side, 4))."""
    rng = np.random.default_rng(seed)
    E = np.linspace(0, 10, n_channels)
    lines = [(1.5, 4.0), (2.5, 6.3), (3.3, 7.5), (5.0, 8.6)]
    S = np.array(
        [
            0.1 * np.exp(-E / 3) + sum(np.exp(-0.5 * ((E - p) / 0.12) ** 2) for p in pk)
            for pk in lines
        ]
    )
    S /= S.sum(1, keepdims=True)
    yy, xx = np.mgrid[0:side, 0:side] / side
    centers = rng.random((4, 2))
    d2 = np.stack([(yy - cy) ** 2 + (xx - cx) ** 2 for cy, cx in centers], -1)
    A = np.exp(-(d2 - d2.min(-1, keepdims=True)) / 0.003)
    A /= A.sum(-1, keepdims=True)
    cube = rng.poisson(counts * A @ S).astype(np.uint16)
    return cube, S, A
