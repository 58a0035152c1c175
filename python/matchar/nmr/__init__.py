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
from ._sites import Molecule, ReferenceMolecule, SiteMap, find_molecules, map_sites
from ._table import Peak, ShiftTable, SiteProblem, read_shift_table

__all__ = [
    "DEFAULT_SOAP",
    "CandidateMap",
    "Molecule",
    "NucleusTerms",
    "Peak",
    "ReferenceMolecule",
    "ShiftModel",
    "ShiftTable",
    "SiteMap",
    "SiteProblem",
    "StructurePosterior",
    "available_pretrained",
    "candidate_similarity",
    "find_molecules",
    "load_chemiscope",
    "map_sites",
    "rank_candidates",
    "read_shift_table",
    "shielding_to_shift",
    "shift_to_shielding",
    "structure_posterior",
]
