"""STEM imaging: segmentation (local correlation maps, clustering, lattice analysis),
HAADF simulation and crystal identification (CNN with uncertainty maps)."""

from __future__ import annotations

from ._cbed import electron_wavelength, simulate_cbed
from ._classifier import CrystalClassifier, CrystalMap, CrystalPrediction, classify_map
from ._correlation import default_shifts, lcm_cost, local_correlation_map
from ._denoise import DenoiseResult, denoise
from ._lattice import lattice_vectors, misorientation_deg
from ._segment import Segmentation, Segmenter, segment
from ._simulate import ZONE_AXES, projected_cell, simulate_haadf
from ._symmetry import symmetry_map, symmetry_transforms

__all__ = [
    "ZONE_AXES",
    "CrystalClassifier",
    "CrystalMap",
    "CrystalPrediction",
    "DenoiseResult",
    "Segmentation",
    "Segmenter",
    "classify_map",
    "default_shifts",
    "denoise",
    "electron_wavelength",
    "lattice_vectors",
    "lcm_cost",
    "local_correlation_map",
    "misorientation_deg",
    "projected_cell",
    "segment",
    "simulate_cbed",
    "simulate_haadf",
    "symmetry_map",
    "symmetry_transforms",
]
