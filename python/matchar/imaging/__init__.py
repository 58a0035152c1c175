"""STEM image segmentation: local correlation maps, clustering, lattice analysis."""

from __future__ import annotations

from ._correlation import default_shifts, local_correlation_map

__all__ = ["default_shifts", "local_correlation_map"]
