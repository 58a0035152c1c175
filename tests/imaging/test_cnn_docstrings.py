"""The examples in the simulator and classifier docstrings run and print what they claim."""

from __future__ import annotations

import doctest

import pytest

import matchar.imaging._cbed
import matchar.imaging._classifier
import matchar.imaging._dataset
import matchar.imaging._features
import matchar.imaging._simulate

MODULES = [
    matchar.imaging._cbed,
    matchar.imaging._classifier,
    matchar.imaging._dataset,
    matchar.imaging._features,
    matchar.imaging._simulate,
]


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_examples(module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0
