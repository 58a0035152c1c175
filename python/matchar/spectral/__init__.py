"""Hyperspectral (EELS/EDX) decomposition: Poisson NMF and Poisson-weighted PCA.

Spectrum images are (N, C) or (H, W, C) arrays of counts (uint8/16/32 and float32 are
read in place, ``np.memmap`` included) or ``scipy.sparse`` matrices (NMF).
``PhysicsNMF`` constrains the components to a physical model (``EDXModel``: X-ray lines
from xraylib; ``ReferenceModel``: EELS references). See ``docs/spectral.md`` and
``docs/spectral_physics.md``.
"""

from __future__ import annotations

from ._anomaly import AnomalyRegion, ResidualAnomalies, residual_anomalies
from ._detector import RefinedEDXModel, refine_detector
from ._edx import EDXModel, edx_metadata, take_off_angle
from ._nmf import NMF
from ._pca import PCA
from ._physics_nmf import PhysicsNMF
from ._reference import ReferenceModel

__all__ = [
    "NMF",
    "PCA",
    "AnomalyRegion",
    "EDXModel",
    "PhysicsNMF",
    "ReferenceModel",
    "RefinedEDXModel",
    "ResidualAnomalies",
    "edx_metadata",
    "refine_detector",
    "residual_anomalies",
    "take_off_angle",
]
