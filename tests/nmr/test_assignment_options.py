"""The assignment kernel's option struct and enums as bound in matchar._core.nmr."""

from __future__ import annotations

import math

import numpy as np
import pytest

from matchar import _core

nmr = _core.nmr


def _problem():
    rng = np.random.default_rng(3)
    mean = rng.normal(size=(3, 4))
    var = np.full((3, 4), 0.2)
    y = rng.normal(size=4)
    return mean, var, y, np.full(4, 0.1), np.array([3, 1], np.int64)


def test_defaults_are_the_cpp_ones_and_fields_are_named():
    o = nmr.QuadratureOptions()
    assert (o.step_factor, o.tail_nats, o.exact_group_size) == (0.7, 45.0, 8)
    assert (o.max_bp_iterations, o.bp_tolerance, o.n_samples, o.seed) == (300, 1e-10, 2000, 0)
    assert (o.band, o.band_tolerance, o.max_band) == (0, 1e-3, 7)
    o.band = 3
    o.seed = 2**64 - 1
    assert o.band == 3 and o.seed == 2**64 - 1
    assert "band=3" in repr(o)
    assert nmr.QuadratureOptions(n_samples=10, bp_tolerance=1e-6).n_samples == 10
    with pytest.raises(TypeError):
        nmr.QuadratureOptions(0.7)  # keywords only
    s = nmr.OffsetSpec()
    assert s.mode == nmr.OffsetMode.Marginal and s.value == 0.0 and math.isinf(s.prior_std)
    s = nmr.OffsetSpec(mode=nmr.OffsetMode.Fixed, value=1.5)
    assert s.mode == nmr.OffsetMode.Fixed and s.value == 1.5
    assert "OffsetMode.Fixed" in repr(s)


def test_enums():
    assert [m.name for m in nmr.AssignmentMethod.__members__.values()] == [
        "Enumerate",
        "Quadrature",
        "Bethe",
        "Sampling",
        "Banded",
    ]
    assert list(nmr.OffsetMode.__members__) == ["Marginal", "Profile", "Fixed"]
    mean, var, y, ve, g = _problem()
    opts = nmr.QuadratureOptions()
    with pytest.raises(TypeError):  # a bare integer is not a method
        nmr.assignment_log_evidence(mean, var, y, ve, g, nmr.OffsetSpec(), 1, opts)
    with pytest.raises(ValueError, match="not an AssignmentMethod"):
        nmr.assignment_log_evidence(
            mean, var, y, ve, g, nmr.OffsetSpec(), nmr.AssignmentMethod(9), opts
        )
    with pytest.raises(ValueError, match="not an OffsetMode"):
        nmr.assignment_log_evidence(
            mean,
            var,
            y,
            ve,
            g,
            nmr.OffsetSpec(mode=nmr.OffsetMode(5)),
            nmr.AssignmentMethod.Quadrature,
            opts,
        )


def test_methods_agree_on_a_small_problem():
    mean, var, y, ve, g = _problem()
    off = nmr.OffsetSpec(prior_mean=0.2, prior_std=2.0)
    opts = nmr.QuadratureOptions()
    exact = nmr.assignment_log_evidence(
        mean, var, y, ve, g, off, nmr.AssignmentMethod.Enumerate, opts
    )[0]
    for method in (nmr.AssignmentMethod.Quadrature, nmr.AssignmentMethod.Banded):
        got = nmr.assignment_log_evidence(mean, var, y, ve, g, off, method, opts, details=True)
        np.testing.assert_allclose(got[0], exact, rtol=1e-8)
        assert got[1].shape == (3, 3 * 3 + 1)
