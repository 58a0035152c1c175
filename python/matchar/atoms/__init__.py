"""Atomistic descriptors: SOAP power spectra of ``ase.Atoms`` frames (C++ core)."""

from __future__ import annotations

from ._soap import SOAP

__all__ = ["SOAP"]
