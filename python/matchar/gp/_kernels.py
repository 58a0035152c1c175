"""Polynomial kernels: the function evaluated by the C++ core and the kernel objects.

:func:`polynomial_kernel` (and :func:`prepared_kernel` for a fixed, prepared second
set), the callables :class:`PolynomialKernel` and :class:`MultiPolynomialKernel` that
:class:`~matchar.gp.SparseGPR` and the selections take, and the diagonal and single
columns of a kernel matrix that farthest-point sampling and the predictive variance use.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike

from .. import _core
from .._arrays import as_array, common_float_dtype
from .._threads import get_num_threads
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
        K = _core.gp.polynomial_kernel(X_, None, zeta_int, bool(normalize))
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
        K = _core.gp.polynomial_kernel(X_, Y_, zeta_int, bool(normalize))
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
#: Smallest row block of X and column panel of Y per GEMM call (packing amortised).
_BLAS_MIN_ROWS = 1024
_BLAS_MIN_COLS = 8192
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
    scales = _core.gp.kernel_row_scales  # both dispatch on the dtype (float32 / float64)
    epilogue = _core.gp.scale_and_power
    sx = scales(X, normalize, "X")
    sy = scales(Y, normalize, "Y") if sy is None else sy
    n, m, d = X.shape[0], Y.shape[0], X.shape[1]
    itemsize = X.dtype.itemsize
    _core.check_allocation(n * m, itemsize, "polynomial_kernel output")
    out = np.empty((n, m), dtype=X.dtype)
    # Every GEMM call packs its panel of Y and its rows of X again, so a call must reuse
    # each packed panel many times: at least _BLAS_MIN_ROWS rows of X (with 39 rows, as
    # a pure multiply-add budget gave for 6000 x 9000 sparse features, packing made the
    # product 5x slower) and column panels of at least _BLAS_MIN_COLS rows of Y; the
    # budget only splits larger blocks, so that Ctrl-C is seen between calls.
    rows = min(_BLAS_BLOCK_BYTES // (m * itemsize), _BLAS_BLOCK_FLOPS // max(1, m * d))
    rows = max(rows, _BLAS_MIN_ROWS)
    if not _blas_readable(X):
        rows = min(rows, max(1, _BLAS_COPY_BYTES // (d * itemsize)))
    rows = max(1, min(n, rows))
    cols = max(_BLAS_MIN_COLS, _BLAS_BLOCK_FLOPS // max(1, rows * d))
    cols = m if cols >= m else cols
    # A Y that BLAS cannot read would be copied by every GEMM call: copy it once.
    Yt = (Y if _blas_readable(Y) else np.ascontiguousarray(Y)).T
    with _blas_threads(get_num_threads()):
        for i0 in range(0, n, rows):
            i1 = min(n, i0 + rows)
            blk = out[i0:i1]
            if cols == m:
                np.matmul(X[i0:i1], Yt, out=blk)
            else:
                for j0 in range(0, m, cols):
                    j1 = min(m, j0 + cols)
                    np.matmul(X[i0:i1], Yt[:, j0:j1], out=blk[:, j0:j1])
            epilogue(blk, sx[i0:i1], sy, zeta, _EPILOGUE_THREADS)
    return out


def row_scales(Y: np.ndarray, normalize: bool = True) -> np.ndarray:
    """Row scales of Y (m, d) as the kernel uses them: ``1/|y|`` (0 for zero rows) with
    ``normalize``, else 1. Rejects NaN/inf."""
    return _core.gp.kernel_row_scales(Y, normalize, "Y")


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
        K = _core.gp.polynomial_kernel(X_, Y, zeta, normalize)
    return K if normalize else _check_range(K, X_, Y, zeta)


class PolynomialKernel:
    """The normalised polynomial kernel ``k(x, y) = (x̂ · ŷ) ** zeta`` as a callable.

    Parameters
    ----------
    zeta : int, default 2
        Integer exponent ``>= 1``.
    normalize : bool, default True
        Normalise feature vectors to unit length first.

    Example
    -------
    >>> import numpy as np, matchar as mc
    >>> k = mc.gp.PolynomialKernel(zeta=2)
    >>> k(np.eye(2)).tolist()
    [[1.0, 0.0], [0.0, 1.0]]
    """

    def __init__(self, zeta: int = 2, normalize: bool = True) -> None:
        self.zeta = check_int(zeta, "zeta", low=1)
        self.normalize = bool(normalize)

    def __call__(self, X: np.ndarray, Y: np.ndarray | None = None) -> np.ndarray:
        """Kernel matrix (n, m) between the rows of X (n, d) and Y (m, d); Y=None: K(X, X)."""
        return polynomial_kernel(X, Y, zeta=self.zeta, normalize=self.normalize)

    def prepare(self, Y: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Y (m, d) made ready for repeated :meth:`cross` calls: a C-contiguous copy and
        its row scales (for a GP's fixed sparse points)."""
        Yc = np.ascontiguousarray(as_array(Y, "Y", ndim=2))
        return [(Yc, row_scales(Yc, self.normalize))]

    def cross(self, X: np.ndarray, prepared: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        """``self(X, Y)`` (n, m) for a Y made ready by :meth:`prepare`."""
        (Yc, sy) = prepared[0]
        return prepared_kernel(X, Yc, sy, self.zeta, self.normalize)

    def diag(self, X: np.ndarray) -> np.ndarray:
        """``k(x_i, x_i)`` for every row of X (n, d): 1, or 0 for all-zero rows."""
        if not self.normalize:
            with np.errstate(over="ignore"):
                out = np.einsum("ij,ij->i", X, X, dtype=np.float64) ** self.zeta
            if not np.isfinite(out).all():
                raise ValueError(
                    f"PolynomialKernel(zeta={self.zeta}, normalize=False) overflows float64 "
                    "on these rows: use normalize=True or divide X by a constant"
                )
            return out
        return (np.abs(X).sum(axis=1) > 0).astype(np.float64)

    def __repr__(self) -> str:
        return f"PolynomialKernel(zeta={self.zeta}, normalize={self.normalize})"


class MultiPolynomialKernel:
    """A weighted sum of polynomial kernels over column blocks (e.g. SOAP at several cutoffs).

    ``k(x, y) = Σ_b w_b (x̂_b · ŷ_b) ** zeta``, where ``x_b`` is the block of columns
    ``[offsets[b], offsets[b+1])`` of the concatenated feature vector, normalised on its
    own. Each block is evaluated by the C++ kernel on a strided view, without a copy.

    Parameters
    ----------
    block_sizes : sequence of int
        Number of features of each block, in column order; they must add up to d.
    weights : sequence of float, optional
        Non-negative block weights (default: equal weights summing to 1).
    zeta : int, default 2

    Example
    -------
    >>> import numpy as np, matchar as mc
    >>> k = mc.gp.MultiPolynomialKernel([2, 3], weights=[0.25, 0.75])
    >>> round(float(k(np.ones((1, 5)))[0, 0]), 12)
    1.0
    """

    def __init__(self, block_sizes, weights=None, zeta: int = 2) -> None:
        try:
            sizes = list(block_sizes)
        except TypeError:
            raise ValueError(
                f"block_sizes must be a sequence of positive integers, got {block_sizes!r}"
            ) from None
        self.block_sizes = [check_int(b, "block_sizes", low=1) for b in sizes]
        if not self.block_sizes:
            raise ValueError(f"block_sizes must be positive integers, got {block_sizes!r}")
        n = len(self.block_sizes)
        w = np.full(n, 1.0 / n) if weights is None else np.asarray(weights, dtype=np.float64)
        if w.shape != (n,) or not np.isfinite(w).all() or (w < 0).any():
            raise ValueError(f"weights must be {n} finite non-negative numbers, got {weights!r}")
        self.weights = w
        self.zeta = check_int(zeta, "zeta", low=1)
        self._offsets = np.concatenate([[0], np.cumsum(self.block_sizes)])

    def _check(self, X: np.ndarray, name: str) -> None:
        if X.shape[1] != self._offsets[-1]:
            raise ValueError(
                f"{name} has {X.shape[1]} features, but the blocks add up to {self._offsets[-1]}"
            )

    def __call__(self, X: np.ndarray, Y: np.ndarray | None = None) -> np.ndarray:
        """Kernel matrix (n, m) between the rows of X (n, d) and Y (m, d); Y=None: K(X, X)."""
        X = as_array(X, "X", ndim=2)
        self._check(X, "X")
        if Y is not None:
            Y = as_array(Y, "Y", ndim=2)
            self._check(Y, "Y")
        return self._weighted_sum(
            lambda b, cols: polynomial_kernel(
                X[:, cols], None if Y is None else Y[:, cols], zeta=self.zeta
            )
        )

    def _weighted_sum(self, block: Callable[[int, slice], np.ndarray]) -> np.ndarray:
        """Σ_b w_b block(b, columns of b), accumulated in the first block's array."""
        K = None
        for b, w in enumerate(self.weights):
            Kb = block(b, slice(self._offsets[b], self._offsets[b + 1]))
            Kb *= w  # in place: no output-sized temporary
            if K is None:
                K = Kb
            else:
                K += Kb
        return K

    def prepare(self, Y: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Y (m, d) made ready for repeated :meth:`cross` calls: every column block as a
        C-contiguous copy with its row scales (for a GP's fixed sparse points, so that a
        prediction reads each block with one GEMM and no strided copy or norm pass)."""
        Y = as_array(Y, "Y", ndim=2)
        self._check(Y, "Y")
        out = []
        for b in range(len(self.weights)):
            Yb = np.ascontiguousarray(Y[:, self._offsets[b] : self._offsets[b + 1]])
            out.append((Yb, row_scales(Yb, True)))
        return out

    def cross(self, X: np.ndarray, prepared: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        """``self(X, Y)`` (n, m) for a Y made ready by :meth:`prepare`."""
        X = as_array(X, "X", ndim=2)
        self._check(X, "X")
        return self._weighted_sum(
            lambda b, cols: prepared_kernel(X[:, cols], *prepared[b], self.zeta, True)
        )

    def diag(self, X: np.ndarray) -> np.ndarray:
        """``k(x_i, x_i)`` for every row of X (n, d): the weights of the non-zero blocks."""
        X = as_array(X, "X", ndim=2)
        self._check(X, "X")
        out = np.zeros(len(X))
        for b, w in enumerate(self.weights):
            block = X[:, self._offsets[b] : self._offsets[b + 1]]
            out += w * (np.abs(block).sum(axis=1) > 0)
        return out

    def __repr__(self) -> str:
        return (
            f"MultiPolynomialKernel({self.block_sizes}, weights={self.weights.tolist()}, "
            f"zeta={self.zeta})"
        )


def _kernel_diag(kernel: Callable, X: np.ndarray) -> np.ndarray:
    if hasattr(kernel, "diag"):
        return np.asarray(kernel.diag(X), dtype=np.float64)
    return np.array([float(kernel(X[i : i + 1], X[i : i + 1])[0, 0]) for i in range(len(X))])


def _kernel_blocks(kernel: Callable) -> list[tuple[float, slice, bool]] | None:
    """``(weight, feature columns, normalize)`` of each polynomial block of ``kernel``
    (its power is ``kernel.zeta``), or None for any other kernel."""
    if isinstance(kernel, PolynomialKernel):
        return [(1.0, slice(None), bool(kernel.normalize))]
    if isinstance(kernel, MultiPolynomialKernel):
        o = kernel._offsets
        return [(float(w), slice(o[b], o[b + 1]), True) for b, w in enumerate(kernel.weights)]
    return None


def _kernel_column(kernel: Callable, X: np.ndarray) -> Callable[[int], np.ndarray]:
    """``s -> k(X, X[s])`` (n,), float64. Polynomial kernels normalise X once and use a
    matrix-vector product per call; other kernels are called as they are."""
    parts = _kernel_blocks(kernel)
    if parts is None:
        return lambda s: np.asarray(kernel(X, X[s : s + 1]), dtype=np.float64)[:, 0]
    blocks = [X[:, cols] for _, cols, _ in parts]
    weights = np.array([w for w, _, _ in parts])
    normalize = parts[0][2]
    if normalize:
        unit = []
        for B in blocks:
            # row norms scaled by each row's largest |x|: no overflow for rows near 1e300
            big = np.max(np.abs(B), axis=1, keepdims=True)
            big = np.where(big > 0, big, 1.0)
            norm = big * np.linalg.norm(B / big, axis=1, keepdims=True)
            unit.append(np.divide(B, norm, out=np.zeros(B.shape, B.dtype), where=norm > 0))
        blocks = unit
    zeta = kernel.zeta

    def column(s: int) -> np.ndarray:
        k = np.zeros(len(X))
        for w, B in zip(weights, blocks):
            k += w * (B @ B[s]).astype(np.float64) ** zeta
        return k

    return column


def _check_kernel(kernel: object) -> Callable:
    """``kernel`` itself when callable; else a TypeError naming what it is."""
    if not callable(kernel):
        raise TypeError(
            "kernel must be a callable kernel(A, B) -> (len(A), len(B)) array (e.g. "
            f"matchar.gp.PolynomialKernel()), got {type(kernel).__name__} {kernel!r:.60}"
        )
    return kernel
