"""STEM image segmentation: local correlation maps, clustering, lattice analysis."""

from __future__ import annotations

from ._correlation import default_shifts, local_correlation_map
from ._lattice import lattice_vectors, misorientation_deg
from ._segment import Segmentation, Segmenter, segment
from ._symmetry import symmetry_map, symmetry_transforms

__all__ = [
    "Segmentation",
    "Segmenter",
    "default_shifts",
    "lattice_vectors",
    "local_correlation_map",
    "misorientation_deg",
    "segment",
    "symmetry_map",
    "symmetry_transforms",
]
