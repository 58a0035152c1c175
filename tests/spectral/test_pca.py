"""matchar.spectral.PCA against scikit-learn's PCA of the explicitly weighted matrix."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
from sklearn.decomposition import PCA as SkPCA
from spectral_reference import phase_cube

import matchar as mc
from matchar import _core


def keenan_kotula(X):
    """The weighted matrix X / sqrt(g h^T), g = counts per pixel, h = spectrum / total."""
    X = np.asarray(X, dtype=np.float64)
    g, h = X.sum(1), X.sum(0) / X.sum()
    w = np.sqrt(np.outer(g, h))
    return np.divide(X, w, out=np.zeros_like(X), where=w > 0)


@pytest.fixture(scope="module")
def cube():
    return phase_cube(seed=2, side=40, n_channels=200)[0]


@pytest.mark.parametrize("x_dtype", [np.uint16, np.float32, np.float64])
def test_subspace_matches_sklearn_on_weighted_matrix(cube, x_dtype):
    X = cube.reshape(-1, cube.shape[-1]).astype(x_dtype)
    ref = SkPCA(3, svd_solver="full").fit(keenan_kotula(X))
    pca = mc.spectral.PCA(3, random_state=0).fit(X)
    angles = np.degrees(scipy.linalg.subspace_angles(pca.components_.T, ref.components_.T))
    assert angles.max() < 1.0, angles
    np.testing.assert_allclose(
        pca.explained_variance_ratio_, ref.explained_variance_ratio_, rtol=1e-3
    )
    np.testing.assert_allclose(pca.mean_, ref.mean_, rtol=1e-5, atol=1e-8)
    # Same sign convention: scores agree up to the subspace error.
    scores = pca.transform(X)
    ref_scores = ref.transform(keenan_kotula(X))
    assert np.abs(scores - ref_scores).max() < 1e-2 * np.abs(ref_scores).max()


def test_unweighted_uncentred_matches_numpy_svd(cube):
    X = cube.reshape(-1, cube.shape[-1]).astype(np.float64)[::3]  # strided rows
    pca = mc.spectral.PCA(4, poisson=False, center=False, random_state=1).fit(X)
    _, s, vt = np.linalg.svd(X, full_matrices=False)
    np.testing.assert_allclose(pca.singular_values_, s[:4], rtol=1e-6)
    angles = np.degrees(scipy.linalg.subspace_angles(pca.components_.T, vt[:4].T))
    assert angles.max() < 0.1


def test_cube_shapes_and_denoising(cube):
    pca = mc.spectral.PCA(3, random_state=0)
    scores = pca.fit_transform(cube)
    assert scores.shape == (*cube.shape[:2], 3)
    assert pca.image_.shape == cube.shape[:2]
    denoised = pca.inverse_transform(scores)
    assert denoised.shape == cube.shape
    # The rank-3 reconstruction is closer to the noiseless cube than the data are.
    _, S, A = phase_cube(seed=2, side=40, n_channels=200)
    truth = 200.0 * A @ S
    assert np.mean((denoised - truth) ** 2) < 0.5 * np.mean((cube - truth) ** 2)
    with pytest.raises(ValueError, match="image must have one entry per pixel"):
        pca.inverse_transform(scores[:5])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_blocked_products_match_numpy(dtype):
    rng = np.random.default_rng(0)
    X = rng.poisson(3.0, (517, 83)).astype(np.uint16)
    r, c = rng.random(517), rng.random(83)
    V = rng.standard_normal((83, 7)).astype(dtype)
    off = rng.standard_normal(7)
    A = r[:, None] * X * c[None, :]
    tol = dict(rtol=2e-4, atol=1e-3) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)
    Y = _core.spectral.weighted_project(X, r, c, V, off)
    np.testing.assert_allclose(Y, A @ V - off, **tol)
    Z, s = _core.spectral.weighted_gram_apply(X[:, ::1].T.copy().T, r, c, V, off)
    np.testing.assert_allclose(Z, A.T @ (A @ V - off), **tol)
    np.testing.assert_allclose(s, (A @ V - off).sum(0), **tol)
    rows, cols, sq = _core.spectral.weighted_sums(X[::2], r[::2].copy(), c)
    A2 = A[::2]
    np.testing.assert_allclose(rows, A2.sum(1), rtol=1e-12)
    np.testing.assert_allclose(cols, A2.sum(0), rtol=1e-12)
    assert sq == pytest.approx((A2**2).sum(), rel=1e-12)


def test_zero_pixels_and_channels_have_zero_weight_not_nan(cube):
    X = cube.reshape(-1, cube.shape[-1]).copy()
    X[:10] = 0
    X[:, :5] = 0
    pca = mc.spectral.PCA(3, random_state=0)
    scores = pca.fit_transform(X)
    assert np.isfinite(scores).all() and np.isfinite(pca.components_).all()
    assert np.isfinite(pca.inverse_transform(scores)).all()


def test_bad_input():
    with pytest.raises(ValueError, match="n_components"):
        mc.spectral.PCA(11).fit(np.ones((20, 10)))
    with pytest.raises(ValueError, match="negative"):
        mc.spectral.PCA(2).fit(-np.ones((20, 10)))
    with pytest.raises(ValueError, match="NaN"):
        mc.spectral.PCA(2).fit(np.full((20, 10), np.nan))
    with pytest.raises(ValueError, match="2-D"):
        mc.spectral.PCA(2).fit(np.ones(10))
    with pytest.raises(TypeError, match="sparse"):
        import scipy.sparse as sp

        mc.spectral.PCA(2).fit(sp.random(20, 10, format="csr"))
