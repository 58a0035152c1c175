"""NMR crystallography: shielding prediction (SOAP + sparse GPR) and Bayesian posteriors
over candidate structures from chemical shifts."""

from __future__ import annotations

from ._pipeline import CandidateMap, candidate_similarity, rank_candidates
from ._posterior import NucleusTerms, StructurePosterior, structure_posterior
from ._shift_model import (
    DEFAULT_SOAP,
    ShiftModel,
    available_pretrained,
    load_chemiscope,
    shielding_to_shift,
    shift_to_shielding,
)

__all__ = [
    "DEFAULT_SOAP",
    "CandidateMap",
    "NucleusTerms",
    "ShiftModel",
    "StructurePosterior",
    "available_pretrained",
    "candidate_similarity",
    "load_chemiscope",
    "rank_candidates",
    "shielding_to_shift",
    "shift_to_shielding",
    "structure_posterior",
]
