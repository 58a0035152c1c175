"""Bad input to the GP kernels, point selection and SparseGPR: a clear error naming the
argument, never inf/NaN, a pybind11 signature dump or a TypeError from deep inside."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import matchar as mc

X = np.random.default_rng(0).random((5, 3))
XX = np.random.default_rng(1).random((120, 5))
Y = XX @ np.arange(5.0)


@pytest.mark.parametrize("dtype, scale", [(np.float64, 1e200), (np.float32, 1e30)])
def test_unnormalised_kernel_refuses_overflow(dtype, scale):
    A = (X * scale).astype(dtype)
    with pytest.raises(ValueError, match=r"normalize=False overflows"):
        mc.gp.polynomial_kernel(A, zeta=3, normalize=False)
    with pytest.raises(ValueError, match=r"normalize=False overflows"):
        mc.gp.polynomial_kernel(A, A[:2], zeta=3, normalize=False)
    with pytest.raises(ValueError, match=r"normalize=False\) overflows"):
        mc.gp.PolynomialKernel(3, normalize=False).diag(A.astype(np.float64) * 1e100)


def test_unnormalised_kernel_near_the_limit_is_computed():
    A = X * 1e50  # (3e100)^3 < 1.8e308: no value overflows
    K = mc.gp.polynomial_kernel(A, zeta=3, normalize=False)
    np.testing.assert_allclose(K, (A @ A.T) ** 3, rtol=1e-12)
    # the largest zeta: (1 - rounding) ** (2**31 - 1) stays within 1e-6 of 1
    K = mc.gp.polynomial_kernel(X, zeta=2**31 - 1)
    np.testing.assert_allclose(K.diagonal(), 1.0, rtol=1e-6)


@pytest.mark.parametrize("zeta", [2**63, 2**31, 0, 2.5, np.nan, "2", True])
def test_zeta_outside_the_c_int_range_is_a_value_error(zeta):
    with pytest.raises(ValueError, match=r"zeta must be an integer in \[1, 2147483647\]"):
        mc.gp.polynomial_kernel(X, zeta=zeta)
    with pytest.raises(ValueError, match=r"zeta must be an integer"):
        mc.gp.PolynomialKernel(zeta=zeta)
    with pytest.raises(ValueError, match=r"zeta must be an integer"):
        mc.gp.MultiPolynomialKernel([1, 2], zeta=zeta)


def test_multi_kernel_block_sizes_are_integers():
    with pytest.raises(ValueError, match=r"block_sizes must be an integer"):
        mc.gp.MultiPolynomialKernel([2.5, 0.5])
    with pytest.raises(ValueError, match=r"block_sizes must be a sequence"):
        mc.gp.MultiPolynomialKernel(3)


def test_point_selection_refuses_nan_and_bad_counts():
    bad = X.copy()
    bad[1, 1] = np.nan
    with pytest.raises(ValueError, match=r"X contains NaN or infinite values"):
        mc.gp.farthest_point_sampling(bad, 2)
    with pytest.raises(ValueError, match=r"X contains NaN or infinite values"):
        mc.gp.cur_selection(bad, 2)
    with pytest.raises(ValueError, match=r"n_select must be an integer between 1 and"):
        mc.gp.farthest_point_sampling(X, 2.5)
    with pytest.raises(ValueError, match=r"n_select must be an integer between 1 and"):
        mc.gp.cur_selection(X, 2**40)
    with pytest.raises(ValueError, match=r"start must be an integer in \[0, 4\]"):
        mc.gp.farthest_point_sampling(X, 2, start=7)
    with pytest.raises(ValueError, match=r"start must be an integer in \[0, 4\]"):
        mc.gp.farthest_point_sampling(X, 2, start=-1)
    with pytest.raises(TypeError, match=r"kernel must be a callable"):
        mc.gp.farthest_point_sampling(X, 2, kernel="poly")


def test_sparse_gpr_refuses_complex_targets_with_an_error_not_a_warning():
    gpr = mc.gp.SparseGPR(n_sparse=30)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=r"y must hold real numbers, got dtype complex"):
            gpr.fit(XX, Y + 1j)
        gpr.fit(XX, Y)
        with pytest.raises(ValueError, match=r"y must hold real numbers"):
            gpr.calibrate(XX[:10], Y[:10] + 1j)
        with pytest.raises(ValueError, match=r"errors must hold real numbers"):
            gpr.calibrate_errors(np.ones(3) + 1j, np.ones(3))
        with pytest.raises(ValueError, match=r"y_val must hold real numbers"):
            gpr.tune_regularizer(XX[:80], Y[:80], XX[80:], Y[80:] + 1j)


def test_sparse_gpr_checks_the_kernel_at_fit():
    gpr = mc.gp.SparseGPR(kernel="polynomial", n_sparse=30)  # the constructor only stores
    with pytest.raises(TypeError, match=r"kernel must be a callable .* got str 'polynomial'"):
        gpr.fit(XX, Y)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(n_committee=2.5), r"n_committee must be an integer in \[0, 10000\]"),
        (dict(n_committee=10**12), r"n_committee must be an integer in \[0, 10000\]"),
        (dict(n_committee=1), r"n_committee must be 0 or >= 2"),
        (dict(n_sparse=2**63), r"n_sparse must be an integer between 1 and"),
        (dict(n_sparse=2.5), r"n_sparse must be an integer between 1 and"),
        (dict(n_sparse_committee=0.5), r"n_sparse_committee must be an integer"),
        (dict(regularizer=1e300), r"regularizer must be a finite number in \(0.0, 1e\+150\]"),
        (dict(regularizer=np.nan), r"regularizer must be"),
        (dict(subsample=np.nan), r"subsample must be a finite number in \(0.0, 1.0\]"),
    ],
)
def test_sparse_gpr_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        mc.gp.SparseGPR(**{"n_sparse": 30, **kwargs}).fit(XX, Y)


def test_sparse_gpr_integral_floats_are_used_as_integers():
    gpr = mc.gp.SparseGPR(n_sparse=30.0, n_committee=4.0, random_state=0).fit(XX, Y)
    assert gpr.committee_weights_.shape == (4, 30)
    mean, std = gpr.predict(XX[:3], return_std=True)
    assert np.isfinite(mean).all() and np.isfinite(std).all()


def test_sparse_gpr_not_fitted_and_compress_tolerance():
    with pytest.raises(mc.NotFittedError, match=r"SparseGPR is not fitted yet"):
        mc.gp.SparseGPR().predict(XX)
    with pytest.raises(mc.NotFittedError):
        mc.gp.SparseGPR().compress()
    gpr = mc.gp.SparseGPR(n_sparse=30).fit(XX, Y)
    with pytest.raises(ValueError, match=r"tol must be a finite number > 0"):
        gpr.compress(np.nan)


def test_farthest_point_sampling_on_rows_near_the_float64_limit():
    # Row norms of 1e300-sized rows overflowed (a RuntimeWarning, then a zero row): the
    # kernel is scale-free, so the selection is the one of the unscaled data.
    rng = np.random.default_rng(0)
    X = rng.random((30, 6)) + 0.05
    big = X.copy()
    big[[3, 7]] *= 1e300
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        picked = mc.gp.farthest_point_sampling(big, 10, start=0)
    np.testing.assert_array_equal(picked, mc.gp.farthest_point_sampling(X, 10, start=0))
