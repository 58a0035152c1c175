"""Gaussian-process regression on descriptor vectors: kernels and sparse GPR."""

from __future__ import annotations

from ._kernels import polynomial_kernel
from ._sparse import (
    MultiPolynomialKernel,
    PolynomialKernel,
    SparseGPR,
    cur_selection,
    farthest_point_sampling,
)

__all__ = [
    "MultiPolynomialKernel",
    "PolynomialKernel",
    "SparseGPR",
    "cur_selection",
    "farthest_point_sampling",
    "polynomial_kernel",
]
