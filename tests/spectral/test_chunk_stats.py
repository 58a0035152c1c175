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
