"""Fixtures of the spectral tests."""

from __future__ import annotations

import pytest
from spectral_reference import phase_cube


@pytest.fixture(scope="module")
def phases():
    return phase_cube()
