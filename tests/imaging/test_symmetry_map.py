"""matchar.imaging.symmetry_map against a scipy.ndimage.map_coordinates reference."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import map_coordinates

import matchar as mc


def reference_symmetry_map(image, patch, stride, transforms):
    """Direct: gather the disc, bilinear-interpolate its transformed copy, np.corrcoef."""
    c = np.asarray(image, dtype=np.float64)
    c = c - c.mean()
    dy, dx = np.mgrid[-patch : patch + 1, -patch : patch + 1]
    disc = dy**2 + dx**2 <= patch**2
    dy, dx = dy[disc].astype(float), dx[disc].astype(float)
    m = patch + 1
    H, W = c.shape
    ys = np.arange(m, H - m, stride)
    xs = np.arange(m, W - m, stride)
    out = np.empty((len(ys), len(xs), len(transforms)))
    for i, py in enumerate(ys):
        for j, px in enumerate(xs):
            a = c[py + dy.astype(int), px + dx.astype(int)]
            for t, M in enumerate(transforms):
                ty = M[0, 0] * dy + M[0, 1] * dx
                tx = M[1, 0] * dy + M[1, 1] * dx
                b = map_coordinates(c, [py + ty, px + tx], order=1)
                out[i, j, t] = np.corrcoef(a, b)[0, 1]
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("shape", "patch", "stride"), [((41, 53), 5, 3), ((30, 31), 3, 1)])
def test_matches_map_coordinates_reference(dtype, shape, patch, stride):
    rng = np.random.default_rng(patch)
    image = rng.random(shape).astype(dtype)
    maps, names = mc.imaging.symmetry_map(image, patch, stride)
    transforms, names_ref = mc.imaging.symmetry_transforms()
    assert names == names_ref and len(names) == 12
    assert maps.dtype == np.float32
    ref = reference_symmetry_map(image, patch, stride, transforms)
    assert maps.shape == ref.shape
    np.testing.assert_allclose(maps, ref, atol=2e-6)


def test_symmetric_pattern_and_layouts():
    # 4-fold and with mirrors at 0/45/90/135 degrees about pixels 1 + 8k
    y, x = np.mgrid[:66, :66] - 1.0
    image = np.cos(2 * np.pi * x / 8) + np.cos(2 * np.pi * y / 8)
    maps, names = mc.imaging.symmetry_map(image, patch=8, stride=8)
    by = dict(zip(names, np.moveaxis(maps, -1, 0)))
    for exact in ("rot2", "rot4", "mirror0", "mirror45", "mirror90", "mirror135"):
        np.testing.assert_allclose(by[exact], 1.0, atol=1e-5)
    assert by["rot3"].max() < 0.9  # a square lattice has no 3-fold axis
    sliced, _ = mc.imaging.symmetry_map(np.asfortranarray(image)[::1, ::1], 8, 8)
    np.testing.assert_array_equal(sliced, maps)
    big = np.random.default_rng(1).random((80, 90))
    a, _ = mc.imaging.symmetry_map(big[::2, 1::2], 4, 2)
    b, _ = mc.imaging.symmetry_map(np.ascontiguousarray(big[::2, 1::2]), 4, 2)
    np.testing.assert_array_equal(a, b)


def test_uint16_and_flat_regions():
    rng = np.random.default_rng(2)
    image = (30000 + 100 * rng.random((40, 40))).astype(np.uint16)
    maps, _ = mc.imaging.symmetry_map(image, 4, 2)
    ref = reference_symmetry_map(image, 4, 2, mc.imaging.symmetry_transforms()[0])
    np.testing.assert_allclose(maps, ref, atol=2e-6)
    image = rng.random((40, 40))
    image[:, :20] = 5.0
    maps, _ = mc.imaging.symmetry_map(image, 3, 1)
    assert np.isfinite(maps).all() and np.all(maps[:, :8] == 0.0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(image=np.ones(40)), "image must be a 2-D array"),
        (dict(image=np.ones((40, 40, 3))), "RGB"),
        (dict(image=np.ones((40, 40))), "constant"),
        (dict(image=np.ones((8, 40))), "too small"),
        (dict(patch=0), "patch"),
        (dict(stride=0), "stride"),
        (dict(folds=(1,)), "folds"),
        (dict(folds=(), mirror_angles_deg=()), "at least one"),
        (dict(mirror_angles_deg=(float("nan"),)), "mirror_angles_deg"),
    ],
)
def test_bad_input(kwargs, match):
    args = dict(image=np.random.default_rng(0).random((40, 40)), patch=4)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        mc.imaging.symmetry_map(**args)


def test_nan_pixel_and_memory_error():
    image = np.random.default_rng(0).random((40, 40))
    image[5, 5] = np.nan
    with pytest.raises(ValueError, match=r"image.*NaN"):
        mc.imaging.symmetry_map(image, 4)
    huge = np.broadcast_to(np.float32(1.0), (2**21, 2**21))
    with pytest.raises(MemoryError, match="symmetry_map output"):
        mc.imaging.symmetry_map(huge, 4)
