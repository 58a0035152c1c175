"""NMR crystallography: shielding prediction from SOAP with sparse GPR."""

from __future__ import annotations

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
    "ShiftModel",
    "available_pretrained",
    "load_chemiscope",
    "shielding_to_shift",
    "shift_to_shielding",
]
