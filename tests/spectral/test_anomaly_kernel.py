"""The C++ residual window scan against its NumPy reference.

``_scan_scales`` sends dense arrays to ``_core.spectral.residual_window_scan``;
``_scan_scales_numpy`` is the blockwise NumPy scan that sparse input still uses. Both
compute, per pixel and per box of pixels, the channel window with the largest Poisson
likelihood ratio of an excess. Sums are formed in a different order (the kernel's running
box sums against SciPy's uniform filter times b^2, a dot product against BLAS), so counts
and expectations agree to a few float64 roundings of the box's total: rtol 1e-9.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import matchar as mc
from matchar.spectral import _anomaly
from matchar.spectral._input import as_spectrum_matrix


def _inputs(nav, C, K, dtype, seed):
    rng = np.random.default_rng(seed)
    maps = rng.random((*nav, K)) + 0.05
    spectra = rng.random((K, C)) * 6.0
    X = rng.poisson(maps @ spectra)
    if len(nav) == 2 and nav[0] > 6 and nav[1] > 6:
        X[3:6, 2:5, C // 3 : C // 3 + 4] += 9  # an inclusion no component has
    return X.astype(dtype), maps, spectra


def _both(X, maps, spectra, box, group=None, windows=(2, 6, 16), pm=None, cm=None):
    data = as_spectrum_matrix(X, "X")
    N, C = data.shape
    Wd = maps.reshape(N, -1).astype(np.float64)
    incl_c = np.ones(C, dtype=bool) if cm is None else ~cm
    incl_p = np.ones(N, dtype=bool) if pm is None else ~pm.reshape(-1)
    Hd = spectra.astype(np.float64) * incl_c
    g = group or -(-C // _anomaly.MAX_TEST_CHANNELS)
    Hb = np.add.reduceat(Hd, np.arange(0, C, g), axis=1) if g > 1 else Hd
    Cb = Hb.shape[1]
    win_b = tuple(sorted({min(Cb, max(1, round(w / g))) for w in windows}))
    args = (data, Wd, Hb, incl_c, incl_p, g, win_b, box)
    return _anomaly._scan_scales(*args), _anomaly._scan_scales_numpy(*args)


def _assert_same(got, ref):
    assert len(got) == len(ref)
    for (S, M, j, c), (S0, M0, j0, c0) in zip(got, ref):
        np.testing.assert_allclose(S, S0, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(M, M0, rtol=1e-9, atol=1e-12)
        np.testing.assert_array_equal(j, j0)
        np.testing.assert_array_equal(c, c0)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32, np.float32, np.float64])
@pytest.mark.parametrize("box", [1, 3, 5])
def test_grid_scan_matches_numpy(dtype, box):
    X, maps, spectra = _inputs((11, 9), 37, 3, dtype, seed=box)
    got, ref = _both(X, maps, spectra, box)
    assert len(got) == (2 if box > 1 else 1)
    _assert_same(got, ref)


@pytest.mark.parametrize("level", mc._core.build_info()["cpu_levels"])
def test_scan_at_every_cpu_level(level):
    # the scan's arithmetic is compiled per instruction-set level (runtime dispatch)
    if level not in mc._core.build_info()["cpu_levels_supported"]:
        pytest.skip(f"this CPU cannot run {level}")
    X, maps, spectra = _inputs((13, 10), 61, 3, np.float32, seed=21)
    mc._core._set_cpu_level(level)
    try:
        got, ref = _both(X, maps, spectra, box=3)
    finally:
        mc._core._set_cpu_level("")
    _assert_same(got, ref)


def test_pixel_list_and_binned_channels_match_numpy():
    # (N, C) input, and more channels than the test bins: groups of 3 summed channels
    X, maps, spectra = _inputs((301,), 1100, 4, np.float32, seed=7)
    got, ref = _both(X, maps, spectra, box=1)
    _assert_same(got, ref)


def test_masks_and_strided_input_match_numpy():
    rng = np.random.default_rng(3)
    X, maps, spectra = _inputs((10, 13), 40, 2, np.float64, seed=11)
    wide = np.zeros((10, 13, 80))
    wide[:, :, ::2] = X
    Xs = wide[:, :, ::2]  # a non-contiguous view
    assert not Xs.flags.c_contiguous
    pm = rng.random((10, 13)) < 0.2
    cm = rng.random(40) < 0.2
    before = Xs.copy()
    got, ref = _both(Xs, maps, spectra, box=3, pm=pm, cm=cm)
    _assert_same(got, ref)
    np.testing.assert_array_equal(Xs, before)


def test_single_row_and_column_images():
    for nav in [(1, 17), (17, 1), (2, 2)]:
        X, maps, spectra = _inputs(nav, 25, 2, np.float64, seed=sum(nav))
        got, ref = _both(X, maps, spectra, box=3)
        _assert_same(got, ref)


def test_residual_anomalies_same_through_kernel_and_numpy(monkeypatch):
    X, maps, spectra = _inputs((24, 26), 64, 2, np.uint16, seed=5)
    fast = mc.spectral.residual_anomalies(X, maps, spectra)
    monkeypatch.setattr(_anomaly, "_KERNEL_DTYPES", ())
    slow = mc.spectral.residual_anomalies(X, maps, spectra)
    np.testing.assert_allclose(fast.p_values, slow.p_values, rtol=1e-9, atol=1e-300)
    np.testing.assert_array_equal(fast.flags, slow.flags)
    assert [r.size for r in fast.regions] == [r.size for r in slow.regions]
    assert fast.flags[3:6, 2:5].all()  # the inclusion is found either way


@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("box", [1, 3])
def test_csr_scan_matches_numpy(index_dtype, box):
    X, maps, spectra = _inputs((9, 11), 1030, 2, np.float32, seed=box)  # groups of 3
    X[X < 3] = 0  # mostly zeros, as sparse EDX maps are
    csr = sp.csr_matrix(X.reshape(99, -1))
    csr.indices = csr.indices.astype(index_dtype)
    csr.indptr = csr.indptr.astype(index_dtype)
    rng = np.random.default_rng(box)
    cm = rng.random(1030) < 0.1
    got = _both(csr, maps.reshape(99, -1), spectra, box=1, cm=cm)
    _assert_same(*got)
    dense = mc.spectral.residual_anomalies(X, maps, spectra, box=box, channel_mask=cm)
    # the (N, C) CSR matrix has no image grid: compare at the pixel scale
    flat = mc.spectral.residual_anomalies(csr, maps.reshape(99, -1), spectra, channel_mask=cm)
    if box == 1:
        np.testing.assert_allclose(flat.p_values, dense.p_values.reshape(-1), rtol=1e-9)


def test_sparse_input_same_answer_as_dense():
    X, maps, spectra = _inputs((64,), 50, 2, np.float64, seed=9)
    dense = mc.spectral.residual_anomalies(X, maps, spectra, box=1)
    csr = mc.spectral.residual_anomalies(sp.csr_matrix(X), maps, spectra, box=1)
    np.testing.assert_allclose(dense.p_values, csr.p_values, rtol=1e-9, atol=1e-300)


def test_csr_kernel_rejects_bad_indices():
    W = np.ones((2, 1))
    Hb = np.ones((1, 4))
    scan = mc._core.spectral.residual_window_scan_csr
    data = np.ones(2)
    with pytest.raises(ValueError, match="indices out of range"):
        scan(data, np.array([0, 7]), np.array([0, 1, 2]), 4, W, Hb, None, None, 1, [2], 2, 1)
    with pytest.raises(ValueError, match="non-decreasing"):
        scan(data[:1], np.array([0]), np.array([0, 2, 1]), 4, W, Hb, None, None, 1, [2], 2, 1)


def test_kernel_rejects_inconsistent_arguments():
    X = np.ones((6, 10), dtype=np.float64)
    W = np.ones((6, 2))
    Hb = np.ones((2, 10))
    scan = mc._core.spectral.residual_window_scan
    with pytest.raises(ValueError, match="columns"):
        scan(X, W, np.ones((2, 4)), None, None, 1, [2], 6, 1, 1)
    with pytest.raises(ValueError, match="window"):
        scan(X, W, Hb, None, None, 1, [11], 6, 1, 1)
    with pytest.raises(ValueError, match="nav_rows"):
        scan(X, W, Hb, None, None, 1, [2], 4, 2, 1)
    with pytest.raises(ValueError, match="odd"):
        scan(X, W, Hb, None, None, 1, [2], 6, 1, 2)
