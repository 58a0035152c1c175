"""Shared test fixtures: where the shared data lives, and spawn-only multiprocessing."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import pytest

# libgomp hangs a child forked after an OpenMP parallel region: tests that need
# processes use the "spawn" start method (see docs/threads.md).
multiprocessing.set_start_method("spawn", force=True)

SHARED_DATA = Path(
    os.environ.get(
        "MATCHAR_SHARED_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
    )
).resolve()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path to ../shared/data; tests that need it skip cleanly when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA
