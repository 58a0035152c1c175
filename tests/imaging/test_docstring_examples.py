"""The examples in the imaging and datasets docstrings run and print what they claim."""

from __future__ import annotations

import doctest

import pytest

import matchar.datasets
import matchar.imaging._correlation
import matchar.imaging._lattice
import matchar.imaging._segment
import matchar.imaging._symmetry

MODULES = [
    matchar.datasets,
    matchar.imaging._correlation,
    matchar.imaging._lattice,
    matchar.imaging._segment,
    matchar.imaging._symmetry,
]


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_examples(module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0
