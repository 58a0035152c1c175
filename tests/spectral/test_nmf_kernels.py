"""The C++ NMF iterations and deviance against their NumPy references (conftest.py)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from spectral_reference import reference_deviance, reference_hals_step, reference_kl_step

from matchar import _core

TOL = {np.float32: dict(rtol=2e-4, atol=1e-6), np.float64: dict(rtol=1e-10, atol=1e-12)}


def problem(rng, N, C, K, rate=3.0):
    W = rng.random((N, K)) + 0.05
    H = rng.random((K, C)) + 0.05
    X = rng.poisson(rate * (rng.random((N, K)) @ rng.random((K, C))))
    return X, W, H


def close(a, b, dtype):
    np.testing.assert_allclose(a, b, **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_dtype", [np.uint8, np.uint16, np.uint32, np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 1, 1), (7, 5, 3), (301, 77, 4), (1030, 129, 6)])
def test_kl_step_matches_reference(dtype, x_dtype, shape):
    rng = np.random.default_rng(sum(shape))
    X, W, H = problem(rng, *shape)
    Xd = X.astype(x_dtype)
    W, H = W.astype(dtype), H.astype(dtype)
    loss, Wn, Hn = _core.spectral.nmf_update("kl", Xd, W, H)
    ref_loss, Wr, Hr = reference_kl_step(X, W, H)
    assert Wn.dtype == dtype and Hn.dtype == dtype
    close(Wn, Wr, dtype)
    close(Hn, Hr, dtype)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-5 if dtype == np.float32 else 1e-11)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kl_step_non_contiguous_inputs(dtype):
    rng = np.random.default_rng(3)
    X, W, H = problem(rng, 2 * 211, 3 * 53, 5)
    Xs = X.astype(np.float32 if dtype == np.float32 else np.float64)[::2, ::3]  # strided view
    Wf = np.asfortranarray(W[::2].astype(dtype))
    Ht = np.ascontiguousarray(H[:, ::3].T.astype(dtype)).T  # transposed view
    _, Wn, Hn = _core.spectral.nmf_update("kl", Xs, Wf, Ht)
    _, Wr, Hr = reference_kl_step(Xs, Wf, Ht)
    close(Wn, Wr, dtype)
    close(Hn, Hr, dtype)
    Xu = X.astype(np.uint16).T.copy().T  # Fortran-ordered counts
    _, Wn2, Hn2 = _core.spectral.nmf_update("kl", Xu, W.astype(dtype), H.astype(dtype))
    _, Wr2, Hr2 = reference_kl_step(X, W.astype(dtype), H.astype(dtype))
    close(Wn2, Wr2, dtype)
    close(Hn2, Hr2, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kl_step_masks_and_w_only(dtype):
    rng = np.random.default_rng(4)
    X, W, H = problem(rng, 97, 41, 3)
    W, H = W.astype(dtype), H.astype(dtype)
    pm = rng.random(97) > 0.2
    cm = rng.random(41) > 0.3
    loss, Wn, Hn = _core.spectral.nmf_update(
        "kl", X.astype(np.uint16), W, H, pm.astype(np.uint8), cm.astype(np.uint8)
    )
    ref_loss, Wr, Hr = reference_kl_step(X, W, H, pm, cm)
    close(Wn, Wr, dtype)
    close(Hn, Hr, dtype)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-5)
    loss, Wn, Hn = _core.spectral.nmf_update("kl", X.astype(dtype), W, H, update_H=False)
    assert Hn is None
    close(Wn, reference_kl_step(X, W, H, update_H=False)[1], dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_kl_step_csr(dtype, index_dtype):
    rng = np.random.default_rng(5)
    X, W, H = problem(rng, 203, 67, 4, rate=0.3)  # mostly zeros
    W, H = W.astype(dtype), H.astype(dtype)
    Xs = sp.csr_matrix(X.astype(dtype))
    pm = (rng.random(203) > 0.1).astype(np.uint8)
    loss, Wn, Hn = _core.spectral.nmf_update_csr(
        "kl",
        Xs.data,
        Xs.indices.astype(index_dtype),
        Xs.indptr.astype(index_dtype),
        67,
        W,
        H,
        pm,
        None,
    )
    ref_loss, Wr, Hr = reference_kl_step(X, W, H, pm.astype(bool))
    close(Wn, Wr, dtype)
    close(Hn, Hr, dtype)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(7, 5, 3), (131, 77, 4), (66, 40, 11)])
def test_hals_inner_sweeps_match_reference(dtype, shape):
    # sweeps > 1: the W rows and H columns swept several times within one pass over X;
    # K = 11 takes the general row path, K <= 8 the register-blocked one.
    rng = np.random.default_rng(sum(shape) + 7)
    X, W, H = problem(rng, *shape)
    W, H = W.astype(dtype), H.astype(dtype)
    ref_loss, Wr, Hr = reference_hals_step(X, W, H, sweeps=3)
    _, W1, _ = reference_hals_step(X, W, H, sweeps=1)
    assert not np.allclose(W1, Wr, rtol=1e-3)  # the extra sweeps change the result
    tol = dict(rtol=2e-3, atol=2e-4) if dtype == np.float32 else TOL[dtype]
    Xs = X.astype(np.float32 if dtype == np.float32 else np.float64)[:, ::-1][:, ::-1]
    loss, Wn, Hn = _core.spectral.nmf_update("frobenius", Xs, W, H, sweeps=3)
    np.testing.assert_allclose(Wn, Wr, **tol)
    np.testing.assert_allclose(Hn, Hr, **tol)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-3 if dtype == np.float32 else 1e-8)
    C = sp.csr_matrix(X.astype(np.float64))
    _, Wc, Hc = _core.spectral.nmf_update_csr(
        "frobenius", C.data, C.indices, C.indptr, X.shape[1], W, H, sweeps=3
    )
    np.testing.assert_allclose(Wc, Wr, **tol)
    np.testing.assert_allclose(Hc, Hr, **tol)
    with pytest.raises(ValueError, match="sweeps"):
        _core.spectral.nmf_update("frobenius", Xs, W, H, sweeps=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_dtype", [np.uint16, np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 1, 1), (9, 4, 2), (517, 93, 5)])
def test_hals_step_matches_reference(dtype, x_dtype, shape):
    rng = np.random.default_rng(sum(shape) + 1)
    X, W, H = problem(rng, *shape)
    W, H = W.astype(dtype), H.astype(dtype)
    loss, Wn, Hn = _core.spectral.nmf_update("frobenius", X.astype(x_dtype)[:, ::1], W, H)
    ref_loss, Wr, Hr = reference_hals_step(X, W, H)
    tol = dict(rtol=2e-3, atol=2e-4) if dtype == np.float32 else TOL[dtype]
    np.testing.assert_allclose(Wn, Wr, **tol)
    np.testing.assert_allclose(Hn, Hr, **tol)
    np.testing.assert_allclose(
        loss, ref_loss, rtol=1e-3 if dtype == np.float32 else 1e-8, atol=1e-6
    )
    Xs = sp.csr_matrix(X.astype(np.float64))
    _, Wn2, Hn2 = _core.spectral.nmf_update_csr(
        "frobenius", Xs.data, Xs.indices, Xs.indptr, X.shape[1], W, H
    )
    np.testing.assert_allclose(Wn2, Wr, **tol)
    np.testing.assert_allclose(Hn2, Hr, **tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_poisson_deviance(dtype):
    rng = np.random.default_rng(6)
    X, W, H = problem(rng, 131, 57, 3, rate=1.0)
    W, H = W.astype(dtype), H.astype(dtype)
    ref = reference_deviance(X, W, H)
    np.testing.assert_allclose(
        _core.spectral.poisson_deviance(X.astype(np.uint8), W, H), ref, rtol=1e-5
    )
    Xs = sp.csr_matrix(X.astype(np.float32))
    np.testing.assert_allclose(
        _core.spectral.poisson_deviance_csr(Xs.data, Xs.indices, Xs.indptr, 57, W, H),
        ref,
        rtol=1e-5,
    )
    # The KL loss of a state is half its total deviance.
    loss = _core.spectral.nmf_update("kl", X.astype(np.float64), W, H)[0]
    np.testing.assert_allclose(loss, 0.5 * ref.sum(), rtol=1e-5)


def test_zero_pixels_and_channels_give_no_nan():
    rng = np.random.default_rng(7)
    X, W, H = problem(rng, 50, 30, 3)
    X[5] = 0
    X[:, 7] = 0
    for loss in ("kl", "frobenius"):
        value, Wn, Hn = _core.spectral.nmf_update(loss, X.astype(np.uint16), W, H)
        assert np.isfinite(value) and np.isfinite(Wn).all() and np.isfinite(Hn).all()
    value, Wn, Hn = _core.spectral.nmf_update("kl", np.zeros((4, 3)), W[:4], H[:, :3])
    assert value == pytest.approx((W[:4] @ H[:, :3]).sum(), rel=1e-12)  # D(0 || WH) = sum WH
    assert np.isfinite(Wn).all() and np.isfinite(Hn).all()
    np.testing.assert_array_equal(Wn, 0.0)


def test_deterministic_for_fixed_threads():
    rng = np.random.default_rng(8)
    X, W, H = problem(rng, 3000, 200, 4)
    X = X.astype(np.uint16)
    a = _core.spectral.nmf_update("kl", X, W, H)
    b = _core.spectral.nmf_update("kl", X, W, H)
    assert a[0] == b[0]
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(a[2], b[2])


def test_kernel_shape_and_dtype_errors():
    X = np.ones((5, 4))
    W = np.ones((5, 2))
    H = np.ones((2, 4))
    with pytest.raises(ValueError, match="shapes do not match"):
        _core.spectral.nmf_update("kl", X, W[:4], H)
    with pytest.raises(ValueError, match="X must have dtype"):
        _core.spectral.nmf_update("kl", X.astype(np.int16), W, H)
    with pytest.raises(ValueError, match="loss must be"):
        _core.spectral.nmf_update("l1", X, W, H)
    with pytest.raises(ValueError, match="pixel mask"):
        _core.spectral.nmf_update("kl", X, W, H, np.ones(3, np.uint8))


def reference_kl_stats(X, W, H, pixel_mask=None):
    """Maps updated given H, then sum_i w_i (x_i / w_i H) and sum_i w_i over included pixels."""
    X = np.asarray(X, dtype=np.float64)
    _, Wn, _ = reference_kl_step(X, W, H, pixel_mask=pixel_mask, update_H=False)
    pm = np.ones(len(X), bool) if pixel_mask is None else np.asarray(pixel_mask, bool)
    R = np.where((X > 0) & pm[:, None], X / np.maximum(Wn @ H, np.finfo(np.float32).eps), 0.0)
    return Wn, Wn.T @ R, Wn[pm].sum(0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("shape", [(1, 1, 1), (7, 5, 3), (301, 77, 4), (203, 65, 11)])
def test_kl_stats_match_reference_and_reduce_over_chunks(dtype, sparse, shape):
    """nmf_kl_stats: per-chunk statistics whose sum over chunks gives nmf_update's H."""
    rng = np.random.default_rng(7 + sum(shape))
    X, W, H = problem(rng, *shape)
    W, H = W.astype(dtype), H.astype(dtype)
    pm = (rng.random(shape[0]) > 0.2).astype(np.uint8)

    def stats(Xc, Wc, pmc):
        if sparse:
            S = sp.csr_matrix(Xc.astype(np.float64))
            return _core.spectral.nmf_kl_stats_csr(
                S.data, S.indices, S.indptr, Xc.shape[1], Wc, H, pixel_mask=pmc
            )
        # uint16 counts read through strides (a non-contiguous view)
        Xs = np.asfortranarray(Xc.astype(np.uint16))
        return _core.spectral.nmf_kl_stats(Xs, Wc, H, pixel_mask=pmc)

    _, Wn, num, colsum = stats(X, W, pm)
    Wr, num_r, colsum_r = reference_kl_stats(X, W, H, pixel_mask=pm)
    assert Wn.dtype == dtype and num.dtype == np.float64 and num.shape == H.shape
    close(Wn, Wr, dtype)
    np.testing.assert_allclose(num, num_r, rtol=2e-4 if dtype == np.float32 else 1e-10, atol=1e-8)
    np.testing.assert_allclose(colsum, colsum_r, rtol=2e-5 if dtype == np.float32 else 1e-12)

    # Summed over two chunks of pixels: the H update and the loss of one whole pass.
    if shape[0] < 2:
        return
    cut = shape[0] // 2
    parts = [
        stats(X[s], np.ascontiguousarray(W[s]), pm[s]) for s in (slice(0, cut), slice(cut, None))
    ]
    num2 = sum(p[2] for p in parts)
    colsum2 = sum(p[3] for p in parts)
    full_loss, W_full, H_full = _core.spectral.nmf_update(
        "kl", X.astype(np.float64), W, H, pixel_mask=pm
    )
    H_chunks = H * (num2 / np.where(colsum2 == 0, np.finfo(np.float32).eps, colsum2)[:, None])
    H_chunks[H_chunks < np.finfo(np.float64).eps] = 0
    close(np.vstack([p[1] for p in parts]), W_full, dtype)
    close(H_chunks, H_full, dtype)
    np.testing.assert_allclose(
        sum(p[0] for p in parts), full_loss, rtol=1e-5 if dtype == np.float32 else 1e-10
    )


def test_kl_stats_reject_bad_shapes():
    rng = np.random.default_rng(0)
    X, W, H = problem(rng, 10, 6, 2)
    with pytest.raises(ValueError):
        _core.spectral.nmf_kl_stats(X.astype(np.float64), W[:5], H)
    with pytest.raises(ValueError):
        _core.spectral.nmf_kl_stats(X.astype(np.float64), W, H[:, :4])
