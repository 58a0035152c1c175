"""Property tests of matchar.imaging.denoise: any parameter value gives a clear error or a
finite, non-negative result, and never modifies the input."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from matchar.imaging import Segmentation, denoise  # noqa: E402

H = W = 96
_y, _x = np.mgrid[:H, :W].astype(np.float64)
IMAGE = (
    np.random.default_rng(0)
    .poisson(3.0 + 2.0 * np.cos(2 * np.pi * _x / 8) * np.cos(2 * np.pi * _y / 8))
    .astype(np.float64)
)

ODD_FLOATS = st.sampled_from(
    [math.nan, math.inf, -math.inf, 0.0, -0.0, -1.0, 1e-300, 1e-3, 0.5, 1.0, 7.3, 1e6, 1e308]
)
ODD_VALUES = st.one_of(ODD_FLOATS, st.sampled_from([None, "3", [1.0], True, 10**30]))


def _segmentation(vectors) -> Segmentation:
    return Segmentation(
        labels=np.zeros((H, W), dtype=np.int64),
        n_regions=1,
        boundaries=np.zeros((H, W), dtype=bool),
        lattice_vectors=[vectors],
        misorientation={},
        grid_labels=np.zeros((1, 1), dtype=np.int64),
    )


GOOD = [[8.0, 0.0], [0.0, 8.0]]


def _clear_or_finite(**kw) -> None:
    image = kw.pop("image", IMAGE)
    before = np.array(image, copy=True)
    vectors = kw.pop("vectors", GOOD)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)  # numpy overflow etc.
            result = denoise(image, _segmentation(vectors), **kw)
    except (ValueError, TypeError, RuntimeWarning) as err:
        assert str(err).strip(), f"{type(err).__name__} without a message"
        if isinstance(err, RuntimeWarning):
            assert "no lattice" in str(err), f"unexpected warning: {err}"
    else:
        assert np.isfinite(result.denoised).all() and result.denoised.min() >= 0
        assert np.isfinite(result.residual).all()
    np.testing.assert_array_equal(image, before)


@settings(max_examples=30, deadline=None)
@given(
    name=st.sampled_from(["cells", "strength", "gain", "boundary_width", "pixel_size"]),
    value=ODD_VALUES,
)
def test_any_parameter_value_is_clear_or_finite(name, value):
    _clear_or_finite(**{name: value})


@settings(max_examples=20, deadline=None)
@given(
    vectors=st.one_of(
        st.lists(st.lists(ODD_FLOATS, min_size=2, max_size=2), min_size=2, max_size=2),
        st.sampled_from([[[8, 0], [16, 0]], [[0.5, 0], [0, 0.5]], [[200, 0], [0, 8]]]),
    )
)
def test_any_lattice_vectors_are_clear_or_finite(vectors):
    _clear_or_finite(vectors=vectors)


@settings(max_examples=15, deadline=None)
@given(scale=ODD_FLOATS, offset=st.sampled_from([0.0, 1e3, 6e4]))
def test_any_intensity_scale_is_clear_or_finite(scale, offset):
    with np.errstate(all="ignore"):
        image = IMAGE * scale + offset
    _clear_or_finite(image=image)


@pytest.mark.parametrize("level", [0.5, 1e3, 6e4])
def test_flat_image_with_a_lattice_given_is_clear(level):
    """A flat image (a region with lattice vectors but no contrast) estimates a gain of 0:
    the error says no lattice, and does not divide by that gain (the case hypothesis found:
    scale 0, offset 1000)."""
    with pytest.raises(ValueError, match="no lattice found") as err:
        denoise(np.full((H, W), level), _segmentation(GOOD))
    assert "gain" not in str(err.value)
    with pytest.raises(ValueError, match="check the gain"):
        denoise(np.full((H, W), level), _segmentation(GOOD), gain=1e12)
