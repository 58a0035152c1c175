"""The compiled kernels bound once for float32 and float64 dispatch on a dtype, and reject
any other with a TypeError that names the argument and the accepted dtypes."""

from __future__ import annotations

import numpy as np
import pytest

from matchar import _core
from matchar.imaging._cbed import cbed_motif, cbed_params
from matchar.imaging._simulate import haadf_params, projected_cell

BAD_DTYPES = [np.int64, np.complex128, np.float16, np.bool_]
_CELL = projected_cell("fcc", (1, 0, 0))
_MOTIF = cbed_motif("fcc", (1, 0, 0), 4, 29)  # reflections, atoms, volume
_IMAGE = np.random.default_rng(0).random((16, 16))


def _soap():
    return _core.atoms.Soap(3.0, 2, 1, 0.5, 0.5, 1.0, False, 1, False, np.zeros((0, 0), bool))


def _frames():
    return (
        np.zeros((1, 3)),
        np.zeros(1, np.int32),
        np.array([0, 1], np.int64),
        np.eye(3)[None] * 10.0,
        np.zeros((1, 3), bool),
        np.zeros((1, 2), np.int64),
    )


# kernel name -> (call with arrays of the given dtype or that output dtype, argument named)
KERNELS = {
    "kernel_row_scales": (
        lambda dt: _core.gp.kernel_row_scales(np.ones((2, 3), dt), True, "X"),
        "X",
    ),
    "scale_and_power": (
        lambda dt: _core.gp.scale_and_power(np.ones((2, 3), dt), np.ones(2, dt), np.ones(3, dt), 2),
        "block",
    ),
    "polynomial_kernel": (
        lambda dt: _core.gp.polynomial_kernel(np.ones((2, 3), dt), None, 2, True),
        "X",
    ),
    "local_correlation_map": (
        lambda dt: _core.imaging.local_correlation_map(
            _IMAGE.astype(dt), 1, 1, _core.imaging.select_shifts(1, 2), 1
        ),
        "image",
    ),
    "symmetry_map": (
        lambda dt: _core.imaging.symmetry_map(_IMAGE.astype(dt), 1, np.eye(2)[None], 1),
        "image",
    ),
    "render_haadf": (
        lambda dt: _core.imaging.render_haadf(
            _CELL.columns,
            np.array([0, len(_CELL.columns)], np.int64),
            np.zeros(1, np.int64),
            haadf_params(_CELL, 4.0, 0.0, 0.2)[None],
            4,
            4,
            0,
            dt,
        ),
        "dtype",
    ),
    "render_cbed": (
        lambda dt: _core.imaging.render_cbed(
            _MOTIF[0],
            np.array([0, len(_MOTIF[0])], np.int64),
            _MOTIF[1],
            np.array([0, len(_MOTIF[1])], np.int64),
            np.array([_MOTIF[2]]),
            np.zeros(1, np.int64),
            cbed_params(3.6, 0.0, 0.05, (2.0, 2.0))[None],
            4,
            4,
            0,
            dt,
        ),
        "dtype",
    ),
    "power_spectrum": (
        lambda dt: _soap().power_spectrum(*_frames(), True, dt),
        "dtype",
    ),
    "assignment_log_evidence": (
        lambda dt: _core.nmr.assignment_log_evidence(
            np.ones((1, 2), dt),
            np.ones((1, 2), dt),
            np.zeros(2),
            np.ones(2),
            np.array([2], np.int64),
            _core.nmr.OffsetSpec(),
            _core.nmr.AssignmentMethod.Quadrature,
            _core.nmr.QuadratureOptions(),
        ),
        "mean",
    ),
}


@pytest.mark.parametrize("name", sorted(KERNELS))
@pytest.mark.parametrize("dtype", BAD_DTYPES, ids=lambda d: np.dtype(d).name)
def test_wrong_dtype_is_a_type_error(name, dtype):
    call, arg = KERNELS[name]
    with pytest.raises(TypeError, match=f"{arg} must have dtype float32 or float64, got"):
        call(dtype)


@pytest.mark.parametrize("name", sorted(KERNELS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_dtypes_reach_the_kernel(name, dtype):
    call, _ = KERNELS[name]
    out = call(dtype)
    if name == "scale_and_power":
        assert out is None  # in place
    elif name == "assignment_log_evidence":
        assert out[0].dtype == np.float64 and np.isfinite(out[0]).all()
    else:  # the maps are float32 at either input dtype
        assert out.dtype == (np.float32 if name.endswith("map") else dtype)


@pytest.mark.parametrize("name", ["render_haadf", "render_cbed", "power_spectrum"])
@pytest.mark.parametrize("dtype", ["int64", "complex128", None, "no such dtype", 3])
def test_dtype_argument_is_checked(name, dtype):
    call, _ = KERNELS[name]
    with pytest.raises(TypeError, match="dtype must"):
        call(dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64", np.dtype(np.float32)])
def test_dtype_argument_by_name_or_dtype(dtype):
    call, _ = KERNELS["render_haadf"]
    assert call(dtype).dtype == np.dtype(dtype)


def test_second_array_must_match_the_first():
    # scale_and_power writes the block in place: nothing is converted
    block = np.ones((2, 3), np.float32)
    with pytest.raises(TypeError, match=r"row_scale must have the dtype of block \(float32\)"):
        _core.gp.scale_and_power(block, np.ones(2), np.ones(3, np.float32), 2)
    with pytest.raises(ValueError, match="Y must have dtype float32"):
        _core.gp.polynomial_kernel(block, np.ones((2, 3)), 2, True)


@pytest.mark.parametrize("factory", ["StreamingPCA", "OnlineNMF"])
@pytest.mark.parametrize("dtype", ["float32", np.float32, np.dtype("float64"), "float64"])
def test_streaming_factories_pick_the_class_of_the_dtype(factory, dtype):
    """_core.spectral.StreamingPCA/OnlineNMF(..., dtype=) return the estimator of that
    factor dtype (the per-dtype classes are what they build)."""
    make = getattr(_core.spectral, factory)
    obj = make(16, 2, dtype=dtype)
    bits = np.dtype(dtype).itemsize * 8
    assert type(obj) is getattr(_core.spectral, f"{factory}_float{bits}")
    assert obj.n_channels == 16 and obj.n_samples_seen == 0
    X = np.random.default_rng(0).poisson(3.0, (40, 16)).astype(np.uint16)
    obj.partial_fit(X)
    assert obj.n_samples_seen == 40
    with pytest.raises(TypeError, match=r"dtype.*float32 or float64.*int64"):
        make(16, 2, dtype="int64")
    with pytest.raises(TypeError, match="dtype"):
        make(16, 2, dtype=None)
    with pytest.raises(ValueError):
        make(16, 17, dtype=dtype)  # more components than channels
