"""The microscope nuisance model of the classifier's training windows
(matchar.imaging._dataset.microscope_nuisance, WindowGenerator(nuisance=True)) and the
classifier's independence of absolute intensity."""

from __future__ import annotations

import numpy as np
import pytest

import matchar as mc
from matchar.imaging._dataset import (
    SIGMA3_TWIN_DEG,
    WindowGenerator,
    grain_mask,
    microscope_nuisance,
    overlap_crystals,
    stack_crystals,
)


def test_output_shape_inputs_untouched_and_reproducible():
    rng = np.random.default_rng(0)
    sig = rng.random((5, 96, 96)).astype(np.float32) + 0.5
    before = sig.copy()
    a = microscope_nuisance(sig, np.random.default_rng(1))
    b = microscope_nuisance(sig, np.random.default_rng(1))
    assert a.shape == (5, 64, 64) and a.dtype == np.float32
    assert np.all(np.isfinite(a))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(sig, before)


def test_shot_and_read_noise_only_statistics():
    """effects=0 leaves shot noise at ``dose`` (normal approximation above 64 e/px, Poisson
    below) and read noise U(0, 0.05) of the mean: on a flat signal the relative variance is
    1/dose + E[r^2] = 1/dose + 0.05^2/3."""
    flat = np.full((400, 96, 96), 2.0, np.float32)
    for dose in (20.0, 100.0):
        out = microscope_nuisance(
            flat, np.random.default_rng(2), dose=np.full(400, dose), effects=0.0
        )
        rel = out.var(axis=(1, 2)).mean() / out.mean() ** 2
        expected = 1 / dose + 0.05**2 / 3
        assert rel == pytest.approx(expected, rel=0.05)
        assert out.mean() == pytest.approx(2.0, rel=0.01)


def test_noiseless_without_effects_is_the_central_crop():
    rng = np.random.default_rng(3)
    sig = rng.random((3, 96, 96)).astype(np.float32) + 1.0
    out = microscope_nuisance(sig, np.random.default_rng(4), dose=np.zeros(3), effects=0.0)
    # only read noise (at most 5% of the mean per pixel, Gaussian) remains
    resid = out - sig[:, 16:80, 16:80]
    assert np.abs(resid).mean() < 0.05 * sig.mean()


def test_bad_effects():
    with pytest.raises(ValueError, match="effects"):
        microscope_nuisance(np.ones((1, 96, 96)), np.random.default_rng(0), effects=-1)


def test_generator_with_nuisance():
    g = WindowGenerator(5, nuisance=True)
    x, c, a, r = g.sample(16)
    assert x.shape == (16, 64, 64) and x.dtype == np.float32 and np.all(np.isfinite(x))
    assert c.shape == a.shape == r.shape == (16,)
    # the same seed gives the same windows
    y = WindowGenerator(5, nuisance=True).sample(16)[0]
    np.testing.assert_array_equal(x, y)


def test_overlap_keeps_the_first_crystal_and_its_mean():
    g = WindowGenerator(6)
    first = g.sample(24, dose=0.0, thermal=0.05)[0] + np.float32(0.1)
    second = g.sample(24, dose=0.0, thermal=0.05)[0] + np.float32(0.1)
    before = (first.copy(), second.copy())
    out = overlap_crystals(first, second, np.random.default_rng(1))
    again = overlap_crystals(first, second, np.random.default_rng(1))
    np.testing.assert_array_equal(out, again)
    np.testing.assert_array_equal(first, before[0])
    np.testing.assert_array_equal(second, before[1])
    assert out.shape == first.shape and out.dtype == np.float32 and np.all(np.isfinite(out))
    # the second crystal is scaled to the first's mean, so the mean is the first's
    np.testing.assert_allclose(out.mean(axis=(1, 2)), first.mean(axis=(1, 2)), rtol=1e-5)
    # the first crystal keeps at least 55% of the thickness: projected on the first
    # (centred), each window keeps a coefficient near 1 - w, w in [0.1, 0.45], up to
    # the second crystal's chance correlation with it
    f = first - first.mean(axis=(1, 2), keepdims=True)
    o = out - out.mean(axis=(1, 2), keepdims=True)
    beta = (f * o).sum(axis=(1, 2)) / (f * f).sum(axis=(1, 2))
    assert np.all(beta > 0.4) and np.all(beta < 1.05)
    assert np.any(np.abs(out - first) > 0.05 * first.std())


def test_generator_overlap_keeps_labels_and_the_stream_without_it():
    x0, c0, a0, r0 = WindowGenerator(7, nuisance=True).sample(12)
    x1 = WindowGenerator(7, nuisance=True, overlap=0.0).sample(12)[0]
    np.testing.assert_array_equal(x0, x1)
    x2, c2, a2, r2 = WindowGenerator(7, nuisance=True, overlap=1.0).sample(12)
    for u, v in ((c0, c2), (a0, a2), (r0, r2)):
        np.testing.assert_array_equal(u, v)
    assert np.all(np.isfinite(x2)) and not np.array_equal(x0, x2)
    with pytest.raises(ValueError, match="overlap must be in"):
        WindowGenerator(0, nuisance=True, overlap=1.5)
    with pytest.raises(ValueError, match="overlap needs nuisance"):
        WindowGenerator(0, overlap=0.5)


def test_grain_mask_covers_a_minority_of_the_window():
    rng = np.random.default_rng(3)
    shares = []
    for _ in range(200):
        m = grain_mask(96, 64, rng)
        assert m.shape == (96, 96) and m.dtype == bool
        shares.append(m[16:80, 16:80].mean())
    shares = np.array(shares)
    # a boundary takes 10-45% of the central window (one pixel row of rounding); the
    # lamellae at most half, at least one 3 Å lamella
    assert shares.min() > 0.02 and shares.max() <= 0.5
    assert np.mean((shares > 0.09) & (shares < 0.46)) > 0.8


def test_sigma3_twin_angle():
    # the angle between the two edge-on {111} traces of an fcc [110] projection
    a, b = np.array([1, -1, 1]), np.array([1, -1, -1])
    angle = np.degrees(np.arccos(abs(a @ b) / (a @ a)))
    assert SIGMA3_TWIN_DEG == pytest.approx(angle, abs=1e-9)
    assert SIGMA3_TWIN_DEG == pytest.approx(70.5288, abs=1e-4)


def test_generator_grains_keep_labels_and_the_stream_without_them():
    x0, c0, a0, r0 = WindowGenerator(8, nuisance=True, overlap=0.5).sample(12)
    x1 = WindowGenerator(8, nuisance=True, overlap=0.5, grains=0.0).sample(12)[0]
    np.testing.assert_array_equal(x0, x1)
    x2, c2, a2, r2 = WindowGenerator(8, nuisance=True, overlap=0.5, grains=1.0).sample(12)
    for u, v in ((c0, c2), (a0, a2), (r0, r2)):
        np.testing.assert_array_equal(u, v)
    assert np.all(np.isfinite(x2)) and not np.array_equal(x0, x2)
    with pytest.raises(ValueError, match="grains must be in"):
        WindowGenerator(0, nuisance=True, grains=-0.1)
    with pytest.raises(ValueError, match="grains needs nuisance"):
        WindowGenerator(0, grains=0.5)


def test_stack_crystals_weights_by_thickness():
    rng = np.random.default_rng(4)
    first = rng.uniform(0.5, 2.0, (3, 17, 13)).astype(np.float32)
    second = rng.uniform(0.1, 5.0, (3, 17, 13)).astype(np.float32)[:, :, ::-1]  # non-contiguous
    before = (first.copy(), second.copy())
    w = np.array([0.0, 0.3, 1.0])
    out = stack_crystals(first, second, w)
    np.testing.assert_array_equal(first, before[0])
    np.testing.assert_array_equal(second, before[1])
    # reference: thickness-weighted sum, the second at the first's mean intensity
    for i in range(3):
        s2 = (
            second[i].astype(np.float64)
            * first[i].mean(dtype=np.float64)
            / second[i].mean(dtype=np.float64)
        )
        ref = (1 - w[i]) * first[i].astype(np.float64) + w[i] * s2
        np.testing.assert_allclose(out[i], ref, rtol=1e-5)
    assert out.dtype == np.float32


def test_generator_stacked_keeps_labels_and_the_stream_without_it():
    kw = dict(nuisance=True, overlap=0.5, grains=0.5)
    x0, c0, a0, r0 = WindowGenerator(9, **kw).sample(12)
    x1 = WindowGenerator(9, stacked=0.0, **kw).sample(12)[0]
    np.testing.assert_array_equal(x0, x1)
    x2, c2, a2, r2 = WindowGenerator(9, stacked=1.0, **kw).sample(12)
    for u, v in ((c0, c2), (a0, a2), (r0, r2)):
        np.testing.assert_array_equal(u, v)
    assert np.all(np.isfinite(x2)) and not np.array_equal(x0, x2)
    with pytest.raises(ValueError, match="stacked must be in"):
        WindowGenerator(0, nuisance=True, stacked=2.0)
    with pytest.raises(ValueError, match="stacked needs nuisance"):
        WindowGenerator(0, stacked=0.5)


def test_stacked_twin_adds_the_twin_orientation():
    # an fcc [110] window with its Σ3 twin on top: the power spectrum gains the twin's
    # {200} spots, rotated by 70.53° about the origin
    g = WindowGenerator(10, nuisance=True)
    fcc110 = mc.imaging._dataset.ZONE_AXES.index(("fcc", (1, 1, 0)))
    cls, a, rot = np.array([fcc110]), np.array([3.6]), np.array([10.0])
    first = g._render_clean(cls, a, rot, 64, np.random.default_rng(0))
    twin = g._render_clean(cls, a, rot + SIGMA3_TWIN_DEG, 64, np.random.default_rng(1))
    both = stack_crystals(first, twin, np.array([0.4]))

    def spots(img):
        f = np.abs(np.fft.fft2(img[0] - img[0].mean()))
        return f / f.max()

    sf, sb = spots(first), spots(both)
    gained = (sb > 0.2) & (sf < 0.05)
    assert gained.sum() >= 2  # the twin's reflections, absent from the matrix alone


def test_classifier_ignores_gain_and_offset():
    """Per-window standardization: a detector gain and offset change nothing."""
    img = mc.imaging.simulate_haadf(
        "bcc", (1, 1, 0), 3.2, rotation_deg=17.0, shape=(64, 64), pixel_size=0.25, dose=300, seed=1
    )
    clf = mc.imaging.CrystalClassifier.default()
    p1 = clf.predict_windows(img[None])["probs_mc"]
    p2 = clf.predict_windows((7.0 * img + 1000.0)[None])["probs_mc"]
    np.testing.assert_allclose(p1, p2, atol=2e-4)
