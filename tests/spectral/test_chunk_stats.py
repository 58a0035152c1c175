"""nmf_frobenius_stats (the per-chunk statistics of Frobenius NMF) against NumPy."""

from __future__ import annotations

import numpy as np
import pytest

from matchar import _core


@pytest.mark.parametrize("wdtype", [np.float32, np.float64])
@pytest.mark.parametrize("xdtype", [np.uint16, np.float32, np.float64])
def test_frobenius_stats_matches_numpy(wdtype, xdtype):
    rng = np.random.default_rng(0)
    X = rng.poisson(3.0, (301, 37)).astype(xdtype)
    Wfull = rng.random((301, 10)).astype(wdtype)
    W = Wfull[:, ::3]  # non-contiguous factor, K = 4
    Xf = np.asfortranarray(X)  # Fortran-ordered counts
    pm = (rng.random(301) > 0.1).astype(np.uint8)
    cm = (rng.random(37) > 0.2).astype(np.uint8)
    sumsq, XtW, WtW = _core.spectral.nmf_frobenius_stats(Xf, W, pm, cm)
    Xd, Wd = X.astype(np.float64), W.astype(np.float64) * pm[:, None]
    tol = 1e-5 if np.float32 in (wdtype, xdtype) else 1e-12
    np.testing.assert_allclose(XtW, Xd.T @ Wd, rtol=tol)
    np.testing.assert_allclose(WtW, Wd.T @ Wd, rtol=tol)
    inc = pm.astype(bool)[:, None] & cm.astype(bool)[None, :]
    assert sumsq == pytest.approx(float((Xd**2)[inc].sum()), rel=1e-12)
    # No masks: everything included; inputs unchanged.
    X0, W0 = X.copy(), W.copy()
    s2, A2, B2 = _core.spectral.nmf_frobenius_stats(X, W)
    np.testing.assert_allclose(B2, W.astype(np.float64).T @ W.astype(np.float64), rtol=tol)
    np.testing.assert_allclose(A2, Xd.T @ W.astype(np.float64), rtol=tol)
    assert s2 == pytest.approx(float((Xd**2).sum()), rel=1e-12)
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(W, W0)


def test_frobenius_stats_bad_input():
    X = np.ones((5, 4), np.float64)
    with pytest.raises(ValueError, match="W must have shape"):
        _core.spectral.nmf_frobenius_stats(X, np.ones((6, 2)))
    with pytest.raises(ValueError, match="dtype"):
        _core.spectral.nmf_frobenius_stats(X.astype(np.int8), np.ones((5, 2)))
    with pytest.raises(ValueError, match="pixel mask"):
        _core.spectral.nmf_frobenius_stats(X, np.ones((5, 2)), np.ones(4, np.uint8))


def _hals_stats_reference(X, W, H, pm, cm, sweeps, wdtype):
    """NumPy: HALS sweeps of every row of W given H (excluded channels do not drive W),
    then the statistics of the H sweep over the included pixels."""
    Xd = X.astype(np.float64)
    Hm = H.astype(np.float64) * cm[None, :]
    G, XH = Hm @ Hm.T, Xd @ Hm.T
    Wn = W.astype(np.float64).copy()
    for i in range(Wn.shape[0]):
        w = Wn[i]
        for _ in range(sweeps):
            for k in range(len(w)):
                if G[k, k] != 0:
                    w[k] = max(w[k] - (G[k] @ w - XH[i, k]) / G[k, k], 0.0)
    Wn = Wn.astype(wdtype)
    Wi = Wn.astype(np.float64) * pm[:, None]
    inc = pm.astype(bool)[:, None] & cm.astype(bool)[None, :]
    return float((Xd**2)[inc].sum()), Wn, Wi.T @ Xd, Wi.T @ Wi


@pytest.mark.parametrize("sweeps", [1, 3])
@pytest.mark.parametrize("wdtype", [np.float32, np.float64])
@pytest.mark.parametrize("xdtype", [np.uint16, np.float32, np.float64])
def test_hals_stats_matches_numpy(sweeps, wdtype, xdtype):
    rng = np.random.default_rng(1)
    X = rng.poisson(3.0, (203, 41)).astype(xdtype)
    W = rng.random((203, 10)).astype(wdtype)[:, ::2]  # non-contiguous, K = 5
    H = np.asfortranarray(rng.random((5, 41)).astype(wdtype))
    pm = (rng.random(203) > 0.1).astype(np.uint8)
    cm = (rng.random(41) > 0.2).astype(np.uint8)
    X0, W0, H0 = X.copy(), W.copy(), H.copy()
    sumsq, Wn, WtX, WtW = _core.spectral.nmf_hals_stats(np.asfortranarray(X), W, H, pm, cm, sweeps)
    ref = _hals_stats_reference(X, W, H, pm, cm, sweeps, wdtype)
    tol = 2e-4 if np.float32 in (wdtype, xdtype) else 1e-10
    assert Wn.dtype == wdtype
    np.testing.assert_allclose(Wn, ref[1], rtol=tol, atol=tol)
    np.testing.assert_allclose(WtX, ref[2], rtol=tol)
    np.testing.assert_allclose(WtW, ref[3], rtol=tol)
    assert sumsq == pytest.approx(ref[0], rel=1e-12)
    # Summed over two blocks of pixels, the statistics are those of the whole.
    a = _core.spectral.nmf_hals_stats(X[:100], W[:100], H, pm[:100], cm, sweeps)
    b = _core.spectral.nmf_hals_stats(X[100:], W[100:], H, pm[100:], cm, sweeps)
    np.testing.assert_allclose(a[2] + b[2], WtX, rtol=tol)
    np.testing.assert_allclose(a[3] + b[3], WtW, rtol=tol)
    for arr, arr0 in ((X, X0), (W, W0), (H, H0)):
        np.testing.assert_array_equal(arr, arr0)
    with pytest.raises(ValueError, match="sweeps"):
        _core.spectral.nmf_hals_stats(X, W, H, None, None, 0)
    with pytest.raises(ValueError, match="shapes do not match"):
        _core.spectral.nmf_hals_stats(X, W, H[:, :5])
