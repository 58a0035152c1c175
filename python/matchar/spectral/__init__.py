"""Hyperspectral (EELS/EDX) decomposition: Poisson NMF and Poisson-weighted PCA.

Spectrum images are (N, C) or (H, W, C) arrays of counts (uint8/16/32 and float32 are
read in place, ``np.memmap`` included) or ``scipy.sparse`` matrices (NMF). See
``docs/spectral.md``.
"""

from __future__ import annotations

from ._nmf import NMF
from ._pca import PCA

__all__ = ["NMF", "PCA"]
