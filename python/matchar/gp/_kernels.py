"""Kernel functions evaluated by the C++ core."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from .. import _core
from .._arrays import as_array, common_float_dtype
from .._validation import check_int


def polynomial_kernel(
    X: ArrayLike, Y: ArrayLike | None = None, zeta: int = 2, normalize: bool = True
) -> np.ndarray:
    """Polynomial (normalised dot-product) kernel, the SOAP kernel of ShiftML.

    ``K[i, j] = ((X[i] / |X[i]|) · (Y[j] / |Y[j]|)) ** zeta``, or ``(X[i] · Y[j]) ** zeta``
    with ``normalize=False``.

    Rectangular kernels of more than 2**24 multiply-adds: NumPy's BLAS GEMM writes the
    product straight into the output (a few large row blocks) and C++ applies the row
    norms (one vectorised pass over X and Y) and the power. Smaller and Gram kernels:
    fused and blocked in C++ (rows normalised while blocks are packed, Eigen's GEMM,
    power in cache). Either way the only large allocation is the (n, m) result.
    OpenMP/BLAS-parallel with matchar's thread count (see :func:`matchar.set_num_threads`),
    GIL released, interruptible with Ctrl-C between blocks.

    Parameters
    ----------
    X : array_like, shape (n, d)
        Feature vectors (e.g. SOAP power spectra), float32 or float64; any memory
        layout (C, Fortran, sliced) is read without a copy. Integers become float64.
    Y : array_like, shape (m, d), optional
        Second set of feature vectors. ``None`` (or ``X`` itself) gives the Gram matrix
        ``K(X, X)``, computed with its symmetry in half the time.
    zeta : int, default 2
        Integer exponent ``>= 1``.
    normalize : bool, default True
        Normalise every row to unit length first. Rows of zero norm are treated as
        zero vectors: their kernel values are 0, not NaN.

    Returns
    -------
    K : numpy.ndarray, shape (n, m)
        float32 when both inputs are float32 (no upcast copy), float64 otherwise.

    Raises
    ------
    ValueError
        If an input holds NaN/inf, is not 2-D, is empty, the feature dimensions differ,
        ``zeta`` is not an integer in ``[1, 2**31 - 1]``, or, with ``normalize=False``, a
        value ``(X[i] · Y[j]) ** zeta`` exceeds the range of the output dtype.
    MemoryError
        If the (n, m) result cannot fit in this machine's memory (raised before
        allocating).

    Example
    -------
    >>> import numpy as np, matchar as mc
    >>> X = np.random.default_rng(0).random((5, 3))
    >>> K = mc.gp.polynomial_kernel(X, X, zeta=2)
    >>> K.shape, bool(np.allclose(np.diag(K), 1.0))
    ((5, 5), True)
    """
    zeta_int = check_int(zeta, "zeta", low=1)
    X_ = as_array(X, "X", ndim=2)
    if Y is None or Y is X:
        # The Gram matrix: symmetric, so the core computes half of it and mirrors.
        K = _kernel_fn(X_.dtype)(X_, None, zeta_int, bool(normalize))
        return K if normalize else _check_range(K, X_, X_, zeta_int)
    Y_ = as_array(Y, "Y", ndim=2)
    if X_.shape[1] != Y_.shape[1]:
        raise ValueError(
            f"X and Y must have the same number of features, got X with {X_.shape[1]} "
            f"and Y with {Y_.shape[1]}"
        )
    dtype = common_float_dtype(X_, Y_)
    X_ = X_.astype(dtype, copy=False)
    Y_ = Y_.astype(dtype, copy=False)
    n, m, d = X_.shape[0], Y_.shape[0], X_.shape[1]
    if n * m * d >= _BLAS_MIN_WORK and n > 0 and m > 0 and d > 0:
        K = _blas_kernel(X_, Y_, zeta_int, bool(normalize))
    else:
        K = _kernel_fn(dtype)(X_, Y_, zeta_int, bool(normalize))
    return K if normalize else _check_range(K, X_, Y_, zeta_int)


def _log_max_abs(A: np.ndarray) -> float:
    """log max|A| (-inf for an all-zero A); two reductions, no temporary."""
    m = max(abs(float(A.max())), abs(float(A.min())))
    return math.log(m) if m > 0 else -math.inf


def _check_range(K: np.ndarray, X: np.ndarray, Y: np.ndarray, zeta: int) -> np.ndarray:
    """K, or a ValueError where an unnormalised kernel overflowed its dtype.

    ``|x · y| <= d max|X| max|Y|``: when that bound to the power zeta fits the dtype no
    value can overflow and K is not scanned; otherwise it is.
    """
    if K.size == 0:
        return K
    log_bound = zeta * (math.log(X.shape[1]) + _log_max_abs(X) + _log_max_abs(Y))
    if log_bound < math.log(float(np.finfo(K.dtype).max)) or np.isfinite(K).all():
        return K
    raise ValueError(
        f"polynomial_kernel with normalize=False overflows {K.dtype}: some "
        f"(X[i] . Y[j]) ** {zeta} exceed {float(np.finfo(K.dtype).max):.3g}. Use "
        "normalize=True, a smaller zeta, "
        + ("float64 input, " if K.dtype == np.float32 else "")
        + "or divide X and Y by a constant"
    )


#: Rectangular kernels with at least this many multiply-adds take the BLAS route.
_BLAS_MIN_WORK = 1 << 24
#: Output bytes per GEMM call in the BLAS route. Every call costs a repacking of Y and a
#: wake-up of the BLAS threads, so blocks are large (a few calls even at 100000 x 2000);
#: they only bound the time between Ctrl-C checks.
_BLAS_BLOCK_BYTES = 1 << 28
#: Multiply-adds per GEMM call (~0.05-0.1 s on 2 cores): Python sees Ctrl-C only between
#: calls, and one 256 MB block of a 2000-feature product took seconds.
_BLAS_BLOCK_FLOPS = 2 << 30
#: Bytes of X per GEMM call when X's layout is not one BLAS can read (NumPy then copies
#: the block): bounds that scratch.
_BLAS_COPY_BYTES = 1 << 25
#: Threads of the scale-and-power epilogue (0: matchar's setting). 1 was tried, since the
#: pass runs while the BLAS threads still spin for work; on a shared 2-core machine 0
#: was as fast or faster (benchmarks/kernel_rounds_gp.py with this constant patched).
_EPILOGUE_THREADS = 0
_controller = None


def _blas_threads(n: int):
    """A context limiting NumPy's BLAS pool to n threads (matchar's thread setting)."""
    global _controller
    if _controller is None:
        from threadpoolctl import ThreadpoolController

        _controller = ThreadpoolController()
    return _controller.limit(limits=n, user_api="blas")


def _blas_readable(a: np.ndarray) -> bool:
    """Whether BLAS reads the 2-D array a in place (NumPy's matmul copies it otherwise):
    one unit stride and the other a whole number of elements at least the row length."""
    size = a.itemsize
    s0, s1 = a.strides
    n0, n1 = a.shape
    return (s1 == size and s0 % size == 0 and s0 >= n1 * size) or (
        s0 == size and s1 % size == 0 and s1 >= n0 * size
    )


def _blas_kernel(
    X: np.ndarray, Y: np.ndarray, zeta: int, normalize: bool, sy: np.ndarray | None = None
) -> np.ndarray:
    """K = (sx sy^T * (X @ Y^T)) ** zeta with the product by NumPy's BLAS GEMM, written
    in a few large row blocks straight into the output; the row scales (one vectorised
    pass over X and Y, which also rejects NaN/inf) and the scale-and-power epilogue run
    in C++. No normalised copies of X or Y are made. ``sy``: Y's row scales when they
    are already known (a prepared, fixed Y such as a GP's sparse points)."""
    from .. import get_num_threads

    f32 = X.dtype == np.float32
    scales = _core.gp.kernel_row_scales_f32 if f32 else _core.gp.kernel_row_scales_f64
    epilogue = _core.gp.scale_and_power_f32 if f32 else _core.gp.scale_and_power_f64
    sx = scales(X, normalize, "X")
    sy = scales(Y, normalize, "Y") if sy is None else sy
    n, m, d = X.shape[0], Y.shape[0], X.shape[1]
    itemsize = X.dtype.itemsize
    _core.check_allocation(n * m, itemsize, "polynomial_kernel output")
    out = np.empty((n, m), dtype=X.dtype)
    rows = min(_BLAS_BLOCK_BYTES // (m * itemsize), _BLAS_BLOCK_FLOPS // max(1, m * d))
    if not _blas_readable(X):
        rows = min(rows, _BLAS_COPY_BYTES // (d * itemsize))
    rows = max(1, min(n, rows))
    # A Y that BLAS cannot read would be copied by every GEMM call: copy it once.
    Yt = (Y if _blas_readable(Y) else np.ascontiguousarray(Y)).T
    with _blas_threads(get_num_threads()):
        for i0 in range(0, n, rows):
            i1 = min(n, i0 + rows)
            blk = out[i0:i1]
            np.matmul(X[i0:i1], Yt, out=blk)
            epilogue(blk, sx[i0:i1], sy, zeta, _EPILOGUE_THREADS)
    return out


def _kernel_fn(dtype: np.dtype):
    return _core.gp.polynomial_kernel_f32 if dtype == np.float32 else _core.gp.polynomial_kernel_f64


def row_scales(Y: np.ndarray, normalize: bool = True) -> np.ndarray:
    """Row scales of Y (m, d) as the kernel uses them: ``1/|y|`` (0 for zero rows) with
    ``normalize``, else 1. Rejects NaN/inf."""
    f = _core.gp.kernel_row_scales_f32 if Y.dtype == np.float32 else _core.gp.kernel_row_scales_f64
    return f(Y, normalize, "Y")


def prepared_kernel(
    X: np.ndarray, Y: np.ndarray, sy: np.ndarray, zeta: int, normalize: bool
) -> np.ndarray:
    """:func:`polynomial_kernel` ``(X, Y)`` for a fixed, C-contiguous Y whose row scales
    ``sy`` (from :func:`row_scales`) are known: no pass over Y besides the product. X is
    read in place (e.g. a column block of a wider feature matrix)."""
    X_ = as_array(X, "X", ndim=2)
    if X_.shape[1] != Y.shape[1]:
        raise ValueError(
            f"X and Y must have the same number of features, got X with {X_.shape[1]} "
            f"and Y with {Y.shape[1]}"
        )
    X_ = X_.astype(Y.dtype, copy=False)
    n, m, d = X_.shape[0], Y.shape[0], X_.shape[1]
    if n * m * d >= _BLAS_MIN_WORK and n > 0 and m > 0 and d > 0:
        K = _blas_kernel(X_, Y, zeta, normalize, sy=sy)
    else:
        K = _kernel_fn(Y.dtype)(X_, Y, zeta, normalize)
    return K if normalize else _check_range(K, X_, Y, zeta)
