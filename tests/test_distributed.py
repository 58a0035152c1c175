"""matchar.distributed: SOAP / ShiftModel over frames and local correlation maps of large
images as dask tasks, on a 2-process LocalCluster, equal to the in-memory results."""

from __future__ import annotations

import numpy as np
import pytest

import matchar as mc

distributed = pytest.importorskip("distributed")
da = pytest.importorskip("dask.array")
ase_build = pytest.importorskip("ase.build")
mcd = pytest.importorskip("matchar.distributed")

SMALL_SOAP = {
    "cutoff": (2.5, 4.0),
    "max_radial": 3,
    "max_angular": 2,
    "atomic_width": 0.3,
    "smoothing": 0.5,
}


@pytest.fixture
def client(dask_client):
    """The session's 2-process LocalCluster (tests/conftest.py), current for this test."""
    with dask_client.as_current():
        yield dask_client


def frames(n=10, seed=0):
    out = []
    for k in range(n):
        mol = ase_build.molecule(["CH3OH", "CH3CH2OH", "H2O", "CH4"][k % 4])
        mol.rattle(0.05, seed=seed + k)
        out.append(mol)
    return out


def test_soap_features_over_batches(client):
    fr = frames(9)
    soap = mc.atoms.SOAP(cutoff=3.0, max_radial=3, max_angular=2, species=[1, 6, 8])
    ref = soap.compute(fr)
    got = mcd.soap_features(soap, fr, batch_size=4)
    assert isinstance(got, da.Array) and got.shape == ref.shape
    np.testing.assert_allclose(got.compute(), ref, rtol=1e-12, atol=1e-14)
    only_h = mcd.soap_features(soap, fr, centers=["H"], batch_size=2).compute()
    np.testing.assert_allclose(only_h, soap.compute(fr, ["H"]), rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match="batch_size"):
        mcd.soap_features(soap, fr, batch_size=0)


def test_shift_model_predictions_over_batches(client):
    fr = frames(12)
    rng = np.random.default_rng(0)
    values = [25.0 + rng.standard_normal(len(f)) for f in fr]
    model = mc.nmr.ShiftModel("H", soap=SMALL_SOAP, n_sparse=15, n_committee=2).fit(fr, values)
    mean, std = model.predict(fr, return_std=True)
    m2, s2 = mcd.predict_shieldings(model, fr, batch_size=5, return_std=True)
    # float32 descriptors: another batch size blocks the kernel products differently. The
    # std is the calibrated spread of the committee's predictions (~25 ppm each), a
    # difference: its rounding error is relative to the predictions, not to the spread.
    np.testing.assert_allclose(m2, mean, rtol=1e-5)
    np.testing.assert_allclose(s2, std, rtol=1e-4, atol=1e-5 * np.abs(mean).max())
    np.testing.assert_allclose(mcd.predict_shieldings(model, fr, batch_size=3), mean, rtol=1e-5)


def test_local_correlation_map_with_map_overlap(client):
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:150, 0:137]
    img = np.sin(yy / 2.0) * np.cos(xx / 3.0) + 0.3 * rng.standard_normal((150, 137))
    ref, shifts = mc.imaging.local_correlation_map(img, patch=4, window=5, n_shifts=16)
    maps, s = mcd.local_correlation_map(img, patch=4, window=5, n_shifts=16, chunks=(40, 50))
    np.testing.assert_array_equal(s, shifts)
    assert maps.shape == ref.shape
    np.testing.assert_allclose(maps.compute(), ref, atol=2e-5)
    # a dask image whose chunks are smaller than the halo is rechunked
    small = da.from_array(img, chunks=(10, 137))
    np.testing.assert_allclose(
        mcd.local_correlation_map(small, patch=4, window=5, shifts=shifts)[0].compute(),
        ref,
        atol=2e-5,
    )
    with pytest.raises(ValueError, match="exceed"):
        mcd.local_correlation_map(img[:15], patch=4, window=5, n_shifts=16)


SEG = dict(patch=8, window=8, n_shifts=40, stride=4)


@pytest.fixture(scope="module")
def two_grain_image():
    # Odd sides: the grid and the pixel blocks do not divide evenly.
    return mc.datasets.bicrystal(25.0, shape=(203, 189), spacing=6, dose=200, seed=3)


def test_segment_labels_equal_in_memory(client, two_grain_image):
    """~4 s quiet (11 s at load 8): the silhouette choice of k runs in memory and here."""
    img, truth = two_grain_image
    kw = dict(SEG, max_regions=3)  # the number of regions is chosen (silhouette)
    ref_seg = mc.imaging.Segmenter(None, **kw)
    ref = ref_seg.fit_predict(img)
    got = mcd.segment(da.from_array(img, chunks=(70, 64)), None, chunks=48, **kw)
    assert got.n_regions == ref.n_regions == 2
    labels = got.labels.compute()
    assert labels.shape == img.shape and labels.dtype == np.int64
    assert got.labels.numblocks[0] > 1 and got.labels.numblocks[1] > 1
    # Same label order (by size) and the same labels at every pixel.
    np.testing.assert_array_equal(labels, ref.labels)
    np.testing.assert_array_equal(got.grid_labels.compute(), ref.grid_labels)
    assert np.mean(labels == truth) > 0.9 or np.mean(labels != truth) > 0.9
    # the fitted model segments in-memory frames like the in-memory segmenter
    other, _ = mc.datasets.bicrystal(25.0, shape=(203, 189), spacing=6, dose=200, seed=4)
    np.testing.assert_array_equal(
        got.segmenter.predict(other).labels, ref_seg.predict(other).labels
    )


def test_segment_on_a_subsample_and_bad_input(client, two_grain_image):
    img, _ = two_grain_image
    ref = mc.imaging.segment(img, 2, **SEG)
    got = mcd.segment(img, 2, chunks=60, fit_size=300, **SEG)  # grid of ~1,600 points
    labels = got.labels.compute()
    assert np.mean(labels == ref.labels) > 0.98
    with pytest.raises(NotImplementedError, match="symmetry"):
        mcd.segment(img, 2, symmetry=True, **SEG)
    with pytest.raises(ValueError, match="fit_size"):
        mcd.segment(img, 2, fit_size=1, **SEG)
    with pytest.raises(ValueError, match="exceed"):
        mcd.segment(img[:30], 2, **SEG)
    bad = img.astype(np.float64)
    bad[100, 100] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        mcd.segment(bad, 2, chunks=64, **SEG)
