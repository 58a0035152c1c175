"""NMR crystallography: shielding prediction (SOAP + sparse GPR) and Bayesian posteriors
over candidate structures from chemical shifts."""

from __future__ import annotations

from ._pipeline import CandidateMap, candidate_similarity, rank_candidates
from ._posterior import NucleusTerms, StructurePosterior, structure_posterior
from ._shift_model import (
    DEFAULT_REGULARIZER,
    DEFAULT_SOAP,
    DEFAULT_SPARSE_COMMITTEE,
    FULL_GP_LIMIT,
    ShiftModel,
    available_pretrained,
    load_chemiscope,
    shielding_to_shift,
    shift_to_shielding,
)
from ._sites import Molecule, ReferenceMolecule, SiteMap, find_molecules, map_sites
from ._table import Peak, ShiftTable, SiteProblem, read_shift_table
from ._trajectory import (
    FRAME_SOAP,
    FrameSelection,
    Trajectory,
    TrajectoryShifts,
    frame_descriptors,
    predict_trajectory,
    select_frames,
)

__all__ = [
    "DEFAULT_REGULARIZER",
    "DEFAULT_SOAP",
    "DEFAULT_SPARSE_COMMITTEE",
    "FRAME_SOAP",
    "FULL_GP_LIMIT",
    "CandidateMap",
    "FrameSelection",
    "Molecule",
    "NucleusTerms",
    "Peak",
    "ReferenceMolecule",
    "ShiftModel",
    "ShiftTable",
    "SiteMap",
    "SiteProblem",
    "StructurePosterior",
    "Trajectory",
    "TrajectoryShifts",
    "available_pretrained",
    "candidate_similarity",
    "find_molecules",
    "frame_descriptors",
    "load_chemiscope",
    "map_sites",
    "predict_trajectory",
    "rank_candidates",
    "read_shift_table",
    "select_frames",
    "shielding_to_shift",
    "shift_to_shielding",
    "structure_posterior",
]
