"""Synthetic Poisson spectrum images for the spectral benchmarks (not stored anywhere).

The generators are ``matchar bench``'s (``matchar._bench``): both time the same data.
"""

from __future__ import annotations

import numpy as np

from matchar._bench import poisson_cube, poisson_cube_truth

__all__ = ["poisson_cube", "poisson_cube_truth", "weighted"]


def weighted(X: np.ndarray) -> np.ndarray:
    """Keenan-Kotula weighted float64 copy X / sqrt(g h^T): what a scikit-learn user forms."""
    Xf = X.astype(np.float64)
    g, h = Xf.sum(1), Xf.sum(0) / Xf.sum()
    w = np.sqrt(np.outer(g, h))
    np.divide(Xf, w, out=Xf, where=w > 0)
    return Xf
