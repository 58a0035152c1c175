"""matchar.gp.polynomial_kernel against its NumPy reference."""

from __future__ import annotations

import numpy as np
import pytest

import matchar as mc
from matchar import _core


def reference_polynomial_kernel(X, Y, zeta=2, normalize=True):
    """The NumPy chain the C++ kernel fuses, in float64."""
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    if normalize:
        nx = np.linalg.norm(X, axis=1, keepdims=True)
        ny = np.linalg.norm(Y, axis=1, keepdims=True)
        X = np.divide(X, nx, out=np.zeros_like(X), where=nx > 0)
        Y = np.divide(Y, ny, out=np.zeros_like(Y), where=ny > 0)
    return (X @ Y.T) ** zeta


def features(rng, n, d, dtype):
    # Non-negative and correlated, like SOAP power spectra: kernel values are O(1).
    basis = rng.random((8, d))
    return (rng.random((n, 8)) @ basis + 0.1 * rng.random((n, d))).astype(dtype)


TOL = {np.float32: dict(rtol=1e-5, atol=0), np.float64: dict(rtol=1e-12, atol=0)}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("zeta", [1, 2, 3, 4])
@pytest.mark.parametrize(
    # the last two cross the kernel's block edges (256 rows of X, 2048 rows/features of Y)
    "shape",
    [(1, 1, 1), (7, 5, 3), (131, 257, 33), (300, 520, 1500), (259, 2101, 2050)],
)
def test_matches_reference(dtype, zeta, shape):
    rng = np.random.default_rng(sum(shape) + zeta)
    n, m, d = shape
    X, Y = features(rng, n, d, dtype), features(rng, m, d, dtype)
    K = mc.gp.polynomial_kernel(X, Y, zeta=zeta)
    assert K.dtype == dtype
    assert K.shape == (n, m)
    np.testing.assert_allclose(K, reference_polynomial_kernel(X, Y, zeta), **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layouts_fortran_and_sliced(dtype):
    rng = np.random.default_rng(1)
    X = features(rng, 90, 70, dtype)
    Y = features(rng, 60, 70, dtype)
    ref = reference_polynomial_kernel(X, Y, 2)
    np.testing.assert_allclose(
        mc.gp.polynomial_kernel(np.asfortranarray(X), np.asfortranarray(Y)), ref, **TOL[dtype]
    )
    big = features(rng, 200, 150, dtype)
    Xs, Ys = big[::2, ::3], big[1::3, ::3][:, :50]
    Ys = big[1::3, ::3]
    np.testing.assert_allclose(
        mc.gp.polynomial_kernel(Xs, Ys), reference_polynomial_kernel(Xs, Ys), **TOL[dtype]
    )
    Xt = features(rng, 70, 90, dtype).T  # transposed view: Fortran-ordered
    np.testing.assert_allclose(
        mc.gp.polynomial_kernel(Xt, Y), reference_polynomial_kernel(Xt, Y), **TOL[dtype]
    )


def test_float32_is_not_upcast_and_inputs_untouched():
    rng = np.random.default_rng(2)
    X = features(rng, 40, 30, np.float32)
    X_before = X.copy()
    K = mc.gp.polynomial_kernel(X, X[:10])
    assert K.dtype == np.float32
    np.testing.assert_array_equal(X, X_before)


def test_mixed_precision_promotes_to_float64():
    rng = np.random.default_rng(3)
    X = features(rng, 10, 5, np.float32)
    Y = features(rng, 8, 5, np.float64)
    K = mc.gp.polynomial_kernel(X, Y)
    assert K.dtype == np.float64
    np.testing.assert_allclose(K, reference_polynomial_kernel(X, Y), rtol=1e-12)


def test_integer_input_and_lists():
    K = mc.gp.polynomial_kernel([[1, 0], [1, 1]], [[2, 0]], zeta=2)
    np.testing.assert_allclose(K, [[1.0], [0.5]], rtol=1e-14)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 5, 257, 600, 2100])
def test_gram_matrix_uses_symmetry_and_matches_reference(dtype, n):
    rng = np.random.default_rng(n)
    d = 2050 if n == 2100 else 37
    X = features(rng, n, d, dtype)
    ref = reference_polynomial_kernel(X, X, 3)
    for K in (mc.gp.polynomial_kernel(X, zeta=3), mc.gp.polynomial_kernel(X, X, zeta=3)):
        assert K.dtype == dtype
        np.testing.assert_allclose(K, ref, **TOL[dtype])
        np.testing.assert_array_equal(K, K.T)  # mirrored, hence exactly symmetric
    Xf = np.asfortranarray(X)[::-1]  # reversed Fortran view
    np.testing.assert_allclose(mc.gp.polynomial_kernel(Xf, zeta=3), ref[::-1, ::-1], **TOL[dtype])


def test_gram_matrix_default_and_diagonal():
    rng = np.random.default_rng(4)
    X = features(rng, 50, 20, np.float64)
    K = mc.gp.polynomial_kernel(X)
    np.testing.assert_allclose(np.diag(K), 1.0, rtol=1e-13)
    np.testing.assert_allclose(K, K.T, rtol=1e-13)


def test_unnormalized_and_signed_values():
    rng = np.random.default_rng(5)
    X = rng.standard_normal((33, 17))
    Y = rng.standard_normal((21, 17))
    for zeta in (1, 2, 3):
        np.testing.assert_allclose(
            mc.gp.polynomial_kernel(X, Y, zeta=zeta, normalize=False),
            reference_polynomial_kernel(X, Y, zeta, normalize=False),
            rtol=1e-12,
            atol=1e-12,
        )


def test_zero_rows_give_zero_not_nan():
    X = np.array([[0.0, 0.0, 0.0], [1.0, 2.0, 2.0]])
    K = mc.gp.polynomial_kernel(X, X)
    assert np.isfinite(K).all()
    np.testing.assert_allclose(K, [[0.0, 0.0], [0.0, 1.0]], atol=1e-15)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("which", ["X", "Y"])
def test_non_finite_raises_naming_argument(bad, which):
    X = np.ones((4, 3))
    Y = np.ones((5, 3))
    (X if which == "X" else Y)[2, 1] = bad
    with pytest.raises(ValueError, match=rf"\b{which}\b.*NaN or infinite"):
        mc.gp.polynomial_kernel(X, Y)


@pytest.mark.parametrize(
    ("X", "Y", "match"),
    [
        (np.ones(3), np.ones((2, 3)), r"X must be a 2-D array"),
        (np.ones((2, 3)), np.ones((2, 3, 1)), r"Y must be a 2-D array"),
        (np.ones((2, 3)), np.ones((2, 4)), r"same number of features"),
        (np.ones((0, 3)), np.ones((2, 3)), r"X is empty"),
        (np.ones((2, 3)), np.ones((2, 0)), r"Y is empty"),
        (np.ones((2, 3), dtype=complex), np.ones((2, 3)), r"X must hold real numbers"),
        (np.array([["a", "b"]]), np.ones((2, 2)), r"X must hold real numbers"),
    ],
)
def test_bad_input(X, Y, match):
    with pytest.raises(ValueError, match=match):
        mc.gp.polynomial_kernel(X, Y)


@pytest.mark.parametrize("zeta", [0, -1, 1.5, "2"])
def test_bad_zeta(zeta):
    with pytest.raises(ValueError, match="zeta"):
        mc.gp.polynomial_kernel(np.ones((2, 2)), np.ones((2, 2)), zeta=zeta)


def test_sparse_input_is_a_clear_type_error():
    sp = pytest.importorskip("scipy.sparse")
    with pytest.raises(TypeError, match="X must be a dense array"):
        mc.gp.polynomial_kernel(sp.csr_matrix(np.ones((2, 2))), np.ones((2, 2)))


def test_huge_output_raises_memory_error_before_allocating():
    # A (2^31, 2^31) float64 result is ~37 exabytes; broadcast views cost nothing.
    X = np.broadcast_to(np.ones((1, 2)), (2**31, 2))
    with pytest.raises(MemoryError, match="polynomial_kernel output"):
        mc.gp.polynomial_kernel(X, X)


# ----------------------------------------------------------------------------------------
# The BLAS route of rectangular kernels (NumPy's GEMM + the C++ row scales and epilogue)
# ----------------------------------------------------------------------------------------


@pytest.fixture
def blas_route(monkeypatch):
    import matchar.gp._kernels as kern

    monkeypatch.setattr(kern, "_BLAS_MIN_WORK", 0)
    monkeypatch.setattr(kern, "_BLAS_BLOCK_BYTES", 4096)  # several blocks even when small
    return kern


def _numpy_kernel(X, Y, zeta, normalize):
    X = np.asarray(X, np.float64)
    Y = np.asarray(Y, np.float64)
    if normalize:
        nx = np.linalg.norm(X, axis=1, keepdims=True)
        ny = np.linalg.norm(Y, axis=1, keepdims=True)
        X = np.divide(X, nx, out=np.zeros_like(X), where=nx > 0)
        Y = np.divide(Y, ny, out=np.zeros_like(Y), where=ny > 0)
    return (X @ Y.T) ** zeta


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("zeta", [1, 2, 3])
@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("layout", ["C", "F", "sliced"])
def test_blas_route_matches_numpy_and_the_fused_kernel(blas_route, dtype, zeta, normalize, layout):
    rng = np.random.default_rng(zeta)
    X = rng.standard_normal((37, 23)).astype(dtype)
    Y = rng.standard_normal((29, 23)).astype(dtype)
    X[5] = 0.0  # a zero row: kernel 0, not NaN
    if layout == "F":
        X, Y = np.asfortranarray(X), np.asfortranarray(Y)
    elif layout == "sliced":
        X = np.repeat(X, 2, axis=1)[:, ::2]
        Y = np.repeat(Y, 2, axis=0)[::2]
    X_before = X.copy()
    K = mc.gp.polynomial_kernel(X, Y, zeta=zeta, normalize=normalize)
    assert K.dtype == dtype and K.shape == (37, 29) and K.flags.c_contiguous
    tol = dict(rtol=2e-4, atol=2e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(K, _numpy_kernel(X, Y, zeta, normalize), **tol)
    fused = _core.gp.polynomial_kernel(X, Y, zeta, normalize)  # the fused C++ kernel
    np.testing.assert_allclose(K, fused, **tol)
    assert np.all(K[5] == 0)
    np.testing.assert_array_equal(X, X_before)


@pytest.mark.parametrize("which", ["X", "Y"])
def test_blas_route_rejects_non_finite_naming_argument(blas_route, which):
    X = np.ones((8, 5))
    Y = np.ones((6, 5))
    (X if which == "X" else Y)[2, 3] = np.nan
    with pytest.raises(ValueError, match=rf"\b{which}\b.*NaN or infinite"):
        mc.gp.polynomial_kernel(X, Y)
    Z = np.full((4, 5), 1e200)
    with pytest.raises(ValueError, match="overflows"):
        mc.gp.polynomial_kernel(Z, Y[:, :5] * 0 + 1)


def test_blas_route_is_taken_for_large_products(monkeypatch):
    import matchar.gp._kernels as kern

    calls = []
    monkeypatch.setattr(kern, "_blas_kernel", lambda *a: calls.append(a) or np.zeros((1, 1)))
    rng = np.random.default_rng(0)
    mc.gp.polynomial_kernel(rng.random((300, 300)), rng.random((300, 300)))  # 2.7e7 >= 2**24
    mc.gp.polynomial_kernel(rng.random((10, 30)), rng.random((10, 30)))
    assert len(calls) == 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["C", "F", "row-sliced", "col-sliced", "transposed"])
@pytest.mark.parametrize("shape", [(1, 1), (7, 3), (1030, 37), (600, 700)])
def test_row_scales_match_numpy_in_every_layout(dtype, layout, shape):
    # the vectorised norm pass: rows along contiguous rows, columns in 512-row panels for
    # Fortran order (1030 rows cross two panel edges), strided otherwise; 600 x 700 is
    # above the size where it goes parallel
    from matchar.gp._kernels import row_scales

    rng = np.random.default_rng(shape[0])
    A = rng.standard_normal((2 * shape[0], 2 * shape[1])).astype(dtype)
    X = {
        "C": np.ascontiguousarray(A[: shape[0], : shape[1]]),
        "F": np.asfortranarray(A[: shape[0], : shape[1]]),
        "row-sliced": A[::2, : shape[1]],
        "col-sliced": A[: shape[0], ::2],
        "transposed": np.ascontiguousarray(A[: shape[0], : shape[1]].T).T,
    }[layout]
    X[0] = 0.0
    s = row_scales(X)
    ref = np.linalg.norm(X.astype(np.float64), axis=1)
    ref = np.divide(1.0, ref, out=np.zeros_like(ref), where=ref > 0)
    assert s.dtype == dtype and s[0] == 0
    np.testing.assert_allclose(s, ref, rtol=1e-6 if dtype == np.float32 else 1e-14)
    np.testing.assert_array_equal(row_scales(X, normalize=False), np.ones(shape[0], dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["col-sliced X", "col-sliced Y", "column block"])
def test_blas_route_layouts_blas_cannot_read(blas_route, monkeypatch, dtype, layout):
    # X that BLAS cannot read is multiplied in blocks of at most _BLAS_COPY_BYTES (NumPy
    # copies each); such a Y is copied once; a column block of a wider matrix (as the
    # multi-block kernel passes) is read in place
    monkeypatch.setattr(blas_route, "_BLAS_BLOCK_BYTES", 1 << 20)
    monkeypatch.setattr(blas_route, "_BLAS_COPY_BYTES", 3 * 31 * np.dtype(dtype).itemsize)
    rng = np.random.default_rng(3)
    X = rng.random((53, 62)).astype(dtype)
    Y = rng.random((41, 62)).astype(dtype)
    if layout == "col-sliced X":
        X = X[:, ::2]
        Y = Y[:, :31]
    elif layout == "col-sliced Y":
        X = X[:, :31]
        Y = Y[:, ::2]
    else:
        X = X[:, 20:51]
        Y = Y[:, 20:51]
    K = mc.gp.polynomial_kernel(X, Y, zeta=3)
    tol = dict(rtol=2e-4, atol=2e-6) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(K, _numpy_kernel(X, Y, 3, True), **tol)


def test_blas_route_allocates_only_the_output(blas_route, monkeypatch):
    # no normalised or contiguous copy of X or Y: traced NumPy allocations during the
    # call stay at the output plus the row scales (X is 8 x the output here)
    import tracemalloc

    monkeypatch.setattr(blas_route, "_BLAS_BLOCK_BYTES", 1 << 28)
    rng = np.random.default_rng(4)
    A = rng.random((2000, 1600))
    X = A[:, 100:1500]  # a column block: rows not contiguous with each other
    Y = rng.random((175, 1400))
    out_bytes = 2000 * 175 * 8
    tracemalloc.start()
    try:
        K = mc.gp.polynomial_kernel(X, Y)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert K.nbytes == out_bytes
    assert peak < out_bytes + 100_000, (peak, out_bytes)
    np.testing.assert_allclose(K, _numpy_kernel(X, Y, 2, True), rtol=1e-10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_multi_block_kernel_through_the_blas_route(blas_route, dtype):
    # the weighted sum over SOAP blocks, each block a column slice read in place by the
    # BLAS route, summed in place; also through prepare/cross (a GP's sparse points)
    rng = np.random.default_rng(5)
    X = rng.random((47, 31)).astype(dtype)
    Y = rng.random((23, 31)).astype(dtype)
    k = mc.gp.MultiPolynomialKernel([13, 18], weights=[0.4, 0.6], zeta=2)
    ref = 0.4 * _numpy_kernel(X[:, :13], Y[:, :13], 2, True) + 0.6 * _numpy_kernel(
        X[:, 13:], Y[:, 13:], 2, True
    )
    tol = dict(rtol=2e-5, atol=0) if dtype == np.float32 else dict(rtol=1e-12, atol=0)
    K = k(X, Y)
    assert K.dtype == dtype
    np.testing.assert_allclose(K, ref, **tol)
    np.testing.assert_allclose(k.cross(X, k.prepare(Y)), ref, **tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_blas_route_in_row_blocks_and_column_panels(dtype, monkeypatch):
    # Large products go to BLAS in row blocks and column panels (Ctrl-C is seen between
    # calls); every split gives the reference kernel, also for strided inputs.
    from matchar.gp import _kernels

    rng = np.random.default_rng(3)
    X = rng.random((53, 40)).astype(dtype)[:, ::2]  # strided rows
    Y = rng.random((71, 20)).astype(dtype)
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    Yn = Y / np.linalg.norm(Y, axis=1, keepdims=True)
    ref = (Xn.astype(np.float64) @ Yn.astype(np.float64).T) ** 3
    monkeypatch.setattr(_kernels, "_BLAS_MIN_WORK", 1)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for rows, cols, flops in ((1, 1, 1), (8, 16, 1), (1024, 8192, 2 << 30)):
        monkeypatch.setattr(_kernels, "_BLAS_MIN_ROWS", rows)
        monkeypatch.setattr(_kernels, "_BLAS_MIN_COLS", cols)
        monkeypatch.setattr(_kernels, "_BLAS_BLOCK_FLOPS", flops)
        K = mc.gp.polynomial_kernel(X, Y, zeta=3)
        assert K.dtype == dtype
        np.testing.assert_allclose(K, ref, rtol=tol, atol=tol)
