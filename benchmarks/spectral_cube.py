"""Synthetic Poisson spectrum images for the spectral benchmarks (not stored anywhere)."""

from __future__ import annotations

import numpy as np


def _mixture(
    rng: np.random.Generator, n_pixels: int, n_channels: int, n_phases: int
) -> tuple[np.ndarray, np.ndarray]:
    """(abundances (N, K), Dirichlet; spectra (K, C), each summing to 1) drawn from rng."""
    E = np.linspace(0.2, 10.0, n_channels)
    S = np.empty((n_phases, n_channels))
    for k in range(n_phases):
        lines = rng.uniform(0.5, 9.5, size=3)
        S[k] = 0.2 * np.exp(-E / 3) + sum(np.exp(-0.5 * ((E - e) / 0.1) ** 2) for e in lines)
    S /= S.sum(1, keepdims=True)
    A = rng.dirichlet(np.full(n_phases, 0.5), size=n_pixels)
    return A, S


def poisson_cube(
    n_pixels: int, n_channels: int, n_phases: int = 4, counts: float = 1000.0, seed: int = 0
) -> np.ndarray:
    """(n_pixels, n_channels) uint16 counts: n_phases spectra (Gaussian lines on a
    bremsstrahlung-like background) mixed with Dirichlet abundances, ~counts per pixel."""
    rng = np.random.default_rng(seed)
    A, S = _mixture(rng, n_pixels, n_channels, n_phases)
    out = np.empty((n_pixels, n_channels), dtype=np.uint16)
    step = 4096
    for i in range(0, n_pixels, step):
        out[i : i + step] = rng.poisson(counts * A[i : i + step] @ S)
    return out


def poisson_cube_truth(
    n_pixels: int, n_channels: int, n_phases: int = 4, counts: float = 1000.0, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The expectation of :func:`poisson_cube` with the same arguments, as (maps (N, K) in
    counts, spectra (K, C) summing to 1): maps @ spectra is the Poisson mean."""
    A, S = _mixture(np.random.default_rng(seed), n_pixels, n_channels, n_phases)
    return counts * A, S


def weighted(X: np.ndarray) -> np.ndarray:
    """Keenan-Kotula weighted float64 copy X / sqrt(g h^T): what a scikit-learn user forms."""
    Xf = X.astype(np.float64)
    g, h = Xf.sum(1), Xf.sum(0) / Xf.sum()
    w = np.sqrt(np.outer(g, h))
    np.divide(Xf, w, out=Xf, where=w > 0)
    return Xf
