"""SOAP hyperparameters outside the range where the features are finite and computable:
a clear error naming the parameter, never NaN/inf features or a confusing core error."""

from __future__ import annotations

import ase.build
import numpy as np
import pytest

import matchar as mc

FRAMES = [ase.build.molecule("H2O")]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(atomic_width=1e-300), r"atomic_width must be >= cutoff / 1000 = 0.005 Å"),
        (dict(atomic_width=1e-5), r"atomic_width must be >= cutoff / 1000"),
        (dict(cutoff=(3.0, 50.0), atomic_width=0.03), r"atomic_width must be >= cutoff / 1000"),
        (dict(atomic_width=0.0), r"atomic_width \(Å\) must be a finite number > 0"),
        (dict(atomic_width=np.nan), r"atomic_width \(Å\) must be"),
        (dict(center_weight=1e300), r"center_weight must be a finite number in \[-1e\+100"),
        (dict(center_weight=-np.inf), r"center_weight must be"),
        (dict(max_radial=22), r"max_radial must be an integer in \[1, 21\]"),
        (dict(max_radial=24), r"max_radial must be an integer in \[1, 21\]"),
        (dict(max_radial=2**63), r"max_radial must be an integer in \[1, 21\]"),
        (dict(max_angular=2.5), r"max_angular must be an integer in \[0, 20\]"),
        (dict(cutoff=1e300), r"cutoff \(Å\) must be a finite number in \[0.001, 100000.0\]"),
        (dict(cutoff=(3.0, np.nan)), r"cutoff \(Å\) must be"),
        (dict(smoothing=-1.0), r"smoothing \(Å\) must be"),
    ],
)
def test_soap_refuses_parameters_with_non_finite_features(kwargs, match):
    with pytest.raises(ValueError, match=match):
        mc.atoms.SOAP(**kwargs)


def test_soap_at_the_edges_of_the_ranges_is_finite():
    for kwargs in (
        dict(max_radial=21, max_angular=2),
        dict(atomic_width=0.005, max_radial=4, max_angular=2),
        dict(center_weight=1e100, max_radial=4, max_angular=2),
        dict(center_weight=-1e100, max_radial=4, max_angular=2),
        dict(cutoff=1e5, atomic_width=100.0, smoothing=0.0, max_radial=21, max_angular=2),
        dict(cutoff=1e-3, atomic_width=1e-3, smoothing=0.0, max_radial=21, max_angular=2),
    ):
        X = mc.atoms.SOAP(species=[1, 8], **kwargs).compute(FRAMES)
        assert np.isfinite(X).all(), kwargs


def test_soap_chunk_size_is_an_integer():
    soap = mc.atoms.SOAP(max_radial=2, max_angular=1, species=[1, 8])
    with pytest.raises(ValueError, match=r"chunk_size must be an integer >= 1"):
        soap.compute(FRAMES, chunk_size=0.5)
    assert soap.compute(FRAMES, chunk_size=1.0).shape[0] == 3
