"""NMR crystallography: Bayesian posteriors over candidate structures from chemical shifts.

Shielding prediction (``ShiftModel``) is not part of this subpackage yet; the posterior
takes plain arrays of predictions and their uncertainties.
"""

from __future__ import annotations

from ._posterior import NucleusTerms, StructurePosterior, structure_posterior

__all__ = ["NucleusTerms", "StructurePosterior", "structure_posterior"]
