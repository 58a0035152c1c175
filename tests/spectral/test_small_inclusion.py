"""A 3x3-pixel inclusion of a phase found nowhere else, at 1 % of the pixel counts: the
decompositions with K = the main phases flag it in their residual test by default, and
flag nothing on the same cube without it."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from spectral_reference import phase_cube

import matchar as mc

COUNTS = 2000.0  # mean counts per pixel of the main phases (1000: found in 2 of 10 cubes)
FRACTION = 0.01  # the inclusion adds 1 % of that
INCLUSION = (slice(20, 23), slice(30, 33))


def cubes(seed: int):
    """(clean, with inclusion, inclusion mask, the inclusion's spectrum): three phases of
    ``phase_cube`` as the main phases, its fourth phase (lines at 5.0 and 8.6 on the
    same background) only in a 3 x 3 inclusion, independent Poisson counts."""
    _, S, A = phase_cube(seed=seed, side=48, n_channels=256)
    A3 = A[..., :3] / A[..., :3].sum(-1, keepdims=True)
    rng = np.random.default_rng(100 + seed)
    clean = rng.poisson(COUNTS * A3 @ S[:3]).astype(np.uint16)
    extra = np.zeros(clean.shape)
    extra[INCLUSION] = FRACTION * COUNTS * S[3]
    mask = np.zeros(clean.shape[:2], dtype=bool)
    mask[INCLUSION] = True
    return clean, clean + rng.poisson(extra).astype(np.uint16), mask, S[3]


def check_flagged(est, mask, spectrum):
    flags = est.anomaly_map_
    assert flags[mask].all(), np.argwhere(flags)
    # the box scale may spread a flag by one pixel, never further
    near = ndimage.binary_dilation(mask, structure=np.ones((3, 3), dtype=bool))
    assert not (flags & ~near).any(), np.argwhere(flags & ~near)
    region = est.anomaly_regions_[0]
    assert len(est.anomaly_regions_) == 1 and region.p_value < 0.01
    # the extra peak sits at one of the inclusion's own lines, not the main phases'
    lines = np.nonzero(
        (spectrum > 0.05 * spectrum.max()) & (spectrum == ndimage.maximum_filter(spectrum, 9))
    )[0]
    assert np.abs(lines - region.peak_channel).min() <= 6, (lines, region.peak_channel)
    assert region.excess_counts > 0
    assert region.residual_spectrum.shape == spectrum.shape
    assert np.all(est.residual_pvalues_[mask].min() <= 0.01)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nmf_flags_a_small_inclusion_and_nothing_without_it(seed):
    clean, cube, mask, spectrum = cubes(seed)
    assert cube[mask].sum() - clean[mask].sum() <= FRACTION * 1.2 * clean[mask].sum()
    est = mc.spectral.NMF(3, random_state=0).fit(cube)
    check_flagged(est, mask, spectrum)
    ref = mc.spectral.NMF(3, random_state=0).fit(clean)
    assert not ref.anomaly_map_.any() and ref.anomaly_regions_ == []
    assert ref.residual_pvalues_.shape == mask.shape
    assert ((ref.residual_pvalues_ >= 0) & (ref.residual_pvalues_ <= 1)).all()


def test_physics_nmf_flags_an_element_missing_from_its_model():
    """PhysicsNMF on Fe-Cr-Ni steel with SiO2 and TiO2 particles; a 3 x 3 Cu inclusion at
    1 % of the counts (Cu is not in the model)."""
    axis = (0.0, 0.02, 1000)
    elements = ["Fe", "Cr", "Ni", "Si", "Ti", "O"]
    model = mc.spectral.EDXModel(elements, axis)
    cu = mc.spectral.EDXModel(["Cu"], axis).G[:, 0]
    comp = np.array(
        [[0.70, 0.20, 0.10, 0, 0, 0], [0, 0, 0, 1 / 3, 0, 2 / 3], [0, 0, 0, 0, 1 / 3, 2 / 3]]
    )
    E = model.G.shape[1]
    W = np.zeros((E, 3))
    W[:6] = comp.T
    W[6:] = 0.2
    spectra = (model.G @ W).T
    spectra /= spectra.sum(1, keepdims=True)
    yy, xx = np.mgrid[:40, :40]
    p1 = 1 / (1 + np.exp(np.hypot(xx - 12, yy - 14) - 8))
    p2 = 1 / (1 + np.exp(np.hypot(xx - 29, yy - 26) - 8))
    maps = np.stack([1 - np.maximum(p1, p2), p1, p2], -1)
    rng = np.random.default_rng(0)
    lam = COUNTS * maps @ spectra
    mask = np.zeros((40, 40), dtype=bool)
    mask[30:33, 8:11] = True  # in the matrix, away from the particles
    lam_inc = lam.copy()
    lam_inc[mask] += FRACTION * COUNTS * cu / cu.sum()
    cube = rng.poisson(lam_inc).astype(np.uint16)
    est = mc.spectral.PhysicsNMF(model, 3, random_state=0).fit(cube)
    check_flagged(est, mask, cu)
    clean = np.random.default_rng(0).poisson(lam).astype(np.uint16)
    ref = mc.spectral.PhysicsNMF(model, 3, random_state=0).fit(clean)
    assert not ref.anomaly_map_.any(), np.argwhere(ref.anomaly_map_)


def test_residual_anomalies_against_the_true_model():
    """With the true expectation as the model: the planted excess is found, and on pure
    Poisson noise nothing is flagged (the false-discovery control of the test itself)."""
    rng = np.random.default_rng(3)
    maps = rng.random((32, 32, 2))
    spectra = rng.random((2, 80)) * 20
    lam = maps @ spectra
    X = rng.poisson(lam)
    res = mc.spectral.residual_anomalies(X, maps, spectra)
    assert not res.flags.any() and res.regions == []
    X2 = X.copy()
    X2[5:8, 20:23, 50:53] += 5  # 15 extra counts per pixel on ~10 per channel
    res = mc.spectral.residual_anomalies(X2, maps, spectra)
    truth = np.zeros((32, 32), dtype=bool)
    truth[5:8, 20:23] = True
    assert res.flags[truth].all()
    assert not (res.flags & ~ndimage.binary_dilation(truth, np.ones((3, 3), bool))).any()
    assert 49 <= res.regions[0].peak_channel <= 53
    # single-pixel scale only, on (N, C) input, with an excluded channel range
    flat = mc.spectral.residual_anomalies(X2.reshape(-1, 80), maps.reshape(-1, 2), spectra, box=1)
    assert flat.flags.shape == (1024,)
    before = (X2.copy(), maps.copy(), spectra.copy())
    masked = mc.spectral.residual_anomalies(
        X2, maps, spectra, channel_mask=np.arange(80) >= 45, pixel_mask=None
    )
    assert not masked.flags.any()  # the excess lies in the excluded channels
    for a, b in zip((X2, maps, spectra), before):
        np.testing.assert_array_equal(a, b)  # inputs untouched
    hidden = np.zeros((32, 32), dtype=bool)
    hidden[4:9, 19:24] = True  # excluded pixels are never flagged
    assert not mc.spectral.residual_anomalies(X2, maps, spectra, pixel_mask=hidden).flags.any()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(fdr=0.0), "fdr"),
        (dict(fdr=1.5), "fdr"),
        (dict(box=2), "odd"),
        (dict(box=0), "box"),
        (dict(windows=()), "windows"),
        (dict(windows=(0,)), "windows"),
        (dict(windows=3), "windows"),
    ],
)
def test_residual_anomalies_bad_options(kwargs, match):
    X = np.ones((4, 4, 10))
    with pytest.raises(ValueError, match=match):
        mc.spectral.residual_anomalies(X, np.ones((4, 4, 1)), np.ones((1, 10)), **kwargs)


def test_residual_anomalies_bad_shapes_and_values():
    X = np.ones((4, 4, 10))
    with pytest.raises(ValueError, match="components"):
        mc.spectral.residual_anomalies(X, np.ones((4, 4, 1)), np.ones((1, 9)))
    with pytest.raises(ValueError, match="maps"):
        mc.spectral.residual_anomalies(X, np.ones((4, 5, 1)), np.ones((1, 10)))
    with pytest.raises(ValueError, match="non-negative"):
        mc.spectral.residual_anomalies(X, -np.ones((4, 4, 1)), np.ones((1, 10)))
    with pytest.raises(ValueError, match="negative"):
        mc.spectral.residual_anomalies(-X, np.ones((4, 4, 1)), np.ones((1, 10)))
    with pytest.raises(ValueError, match="anomaly_fdr"):
        mc.spectral.NMF(1, anomaly_fdr=2.0).fit(X)


def test_anomaly_test_can_be_switched_off():
    X = np.random.default_rng(0).poisson(5.0, (8, 8, 20))
    est = mc.spectral.NMF(2, random_state=0, max_iter=20, anomaly_fdr=None).fit(X)
    assert est.anomaly_map_ is None and est.residual_pvalues_ is None
    est = mc.spectral.NMF(2, random_state=0, max_iter=20, compute_residual_map=False).fit(X)
    assert est.anomaly_map_ is None
