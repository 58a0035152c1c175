"""Gaussian-process regression on descriptor vectors: kernels (and, soon, sparse GPR)."""

from __future__ import annotations

from ._kernels import polynomial_kernel

__all__ = ["polynomial_kernel"]
