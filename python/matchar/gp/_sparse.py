"""Sparse Gaussian-process regression (projected process / DTC) on descriptor kernels."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import scipy.linalg
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.exceptions import DataConversionWarning
from sklearn.utils.extmath import randomized_svd

from .. import _core
from .._arrays import as_array
from .._threads import serialized
from .._validation import check_fitted, check_float, check_int
from ._kernels import _blas_threads, polynomial_kernel, prepared_kernel, row_scales

# Rows of X per block when forming K_NM^T K_NM: bounds memory to block x n_sparse.
_BLOCK_ROWS = 8192
#: Largest ``regularizer`` (σ): σ² stays a finite float64.
MAX_REGULARIZER = 1e150
#: Largest ``n_committee``: each member is a full solve of the sparse problem.
MAX_COMMITTEE = 10_000
# OpenBLAS (0.3.31, as in the NumPy and SciPy wheels) crashes with 2 threads in DSYRK,
# and so in DPOTRF, on matrices of order >= ~16,000 (measured on a 2-core Haswell;
# OpenBLAS issues #2562, #2821). Above this order K_MN^T K_NM is accumulated by GEMM
# panels and Cholesky factors are computed blockwise (n_sparse of 20,000 must not
# take the interpreter down).
_LARGE_ORDER = 8192


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


def _kernel_column(kernel: Callable, X: np.ndarray) -> Callable[[int], np.ndarray]:
    """``s -> k(X, X[s])`` (n,), float64. Polynomial kernels normalise X once and use a
    matrix-vector product per call; other kernels are called as they are."""
    if isinstance(kernel, PolynomialKernel):
        blocks, weights = [X], np.ones(1)
        normalize = kernel.normalize
    elif isinstance(kernel, MultiPolynomialKernel):
        o = kernel._offsets
        blocks = [X[:, o[b] : o[b + 1]] for b in range(len(kernel.block_sizes))]
        weights, normalize = kernel.weights, True
    else:
        return lambda s: np.asarray(kernel(X, X[s : s + 1]), dtype=np.float64)[:, 0]
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


def _feature_rows(X: ArrayLike, name: str) -> np.ndarray:
    """A 2-D float array of ``X`` (no copy when possible), as :func:`as_array` gives it.

    The messages of the failures scikit-learn's ``check_array`` also reports use its
    words ("Reshape your data", "0 feature(s)", "Complex data not supported"), so that
    code written against scikit-learn recognises them; object arrays of numbers are read
    as float64, as scikit-learn does.
    """
    if X is None:
        raise ValueError(f"{name} must be a 2-D array (samples, features), got None")
    arr = np.asarray(X) if not (hasattr(X, "tocsr") and hasattr(X, "nnz")) else X
    if isinstance(arr, np.ndarray):
        if arr.ndim == 1:
            raise ValueError(
                f"{name} must be a 2-D array (samples, features), got an array of shape "
                f"{arr.shape}. Reshape your data: X.reshape(-1, 1) for one feature, "
                "X.reshape(1, -1) for one sample"
            )
        if arr.ndim == 2 and arr.size == 0:
            what = "0 feature(s)" if arr.shape[1] == 0 else "0 sample(s)"
            raise ValueError(
                f"{name} is empty: {what} (shape={arr.shape}) while a minimum of 1 is required."
            )
        if arr.dtype.kind == "c":
            raise ValueError(
                f"{name} must hold real numbers, got dtype {arr.dtype}: Complex data not supported"
            )
        if arr.dtype == object:
            try:
                arr = arr.astype(np.float64)
            except (TypeError, ValueError) as err:
                raise type(err)(f"{name} must hold real numbers; {err}") from err
    return as_array(arr, name, ndim=2)


def _finite_rows(X: ArrayLike, name: str) -> np.ndarray:
    """A 2-D float array of ``X`` (no copy when possible); ValueError for NaN/inf."""
    X_ = _feature_rows(X, name)
    step = max(1, (1 << 22) // max(X_.shape[1], 1))  # bounded temporaries
    if not all(np.isfinite(X_[i : i + step]).all() for i in range(0, len(X_), step)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return X_


def _targets(y: ArrayLike, name: str) -> np.ndarray:
    """``y`` as float64; a ValueError (not a ComplexWarning and a lost imaginary part) for
    complex, object or string values."""
    arr = np.asarray(y)
    if arr.dtype == object:  # numbers in an object array are read, as scikit-learn does
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{name} must hold real numbers, got dtype object ({err})") from None
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    return arr.astype(np.float64, copy=False)


def _n_select(n_select: object, n: int) -> int:
    try:
        return check_int(n_select, "n_select", low=1, high=n)
    except ValueError:
        raise ValueError(
            f"n_select must be an integer between 1 and the number of rows ({n}), got {n_select!r}"
        ) from None


def _check_kernel(kernel: object) -> Callable:
    """``kernel`` itself when callable; else a TypeError naming what it is."""
    if not callable(kernel):
        raise TypeError(
            "kernel must be a callable kernel(A, B) -> (len(A), len(B)) array (e.g. "
            f"matchar.gp.PolynomialKernel()), got {type(kernel).__name__} {kernel!r:.60}"
        )
    return kernel


def farthest_point_sampling(
    X: ArrayLike, n_select: int, kernel: Callable | None = None, start: int = 0
) -> np.ndarray:
    """Greedy farthest-point selection of ``n_select`` rows in the kernel-induced metric.

    ``d(x, y)^2 = k(x, x) + k(y, y) - 2 k(x, y)``; each step adds the row farthest from
    every row selected so far.

    Parameters
    ----------
    X : array_like, shape (n, d)
        Feature vectors (finite).
    n_select : int
        Number of rows to select, ``1 <= n_select <= n``.
    kernel : callable, optional
        ``kernel(A, B) -> (len(A), len(B))``; default ``PolynomialKernel(zeta=2)``.
    start : int, default 0
        Index of the first selected row, ``0 <= start < n``.

    Returns
    -------
    numpy.ndarray, shape (n_select,), int64
        Indices into the rows of X, in selection order.

    Example
    -------
    >>> import numpy as np, matchar as mc
    >>> X = np.array([[1.0, 0.0], [0.99, 0.1], [0.0, 1.0]])
    >>> mc.gp.farthest_point_sampling(X, 2).tolist()
    [0, 2]
    """
    X_ = _finite_rows(X, "X")
    n = X_.shape[0]
    n_select = _n_select(n_select, n)
    start = check_int(start, "start", low=0, high=n - 1)
    kernel = PolynomialKernel() if kernel is None else _check_kernel(kernel)
    diag = _kernel_diag(kernel, X_)
    if not np.isfinite(diag).all():
        raise ValueError("kernel(x, x) is not finite for some rows of X")
    column = _kernel_column(kernel, X_)
    selected = [start]
    dist = np.full(n, np.inf)
    for _ in range(n_select - 1):
        s = selected[-1]
        k = column(s)
        if not np.isfinite(k).all():
            raise ValueError(f"kernel(X, X[{s}]) is not finite")
        dist = np.minimum(dist, diag + diag[s] - 2.0 * k)
        dist[selected] = -np.inf
        selected.append(int(np.argmax(dist)))
    return np.asarray(selected, dtype=np.int64)


def cur_selection(X: ArrayLike, n_select: int, random_state: int | None = 0) -> np.ndarray:
    """Deterministic CUR row selection: the rows of highest statistical leverage.

    Leverage scores come from the leading ``min(n_select, d)`` left singular vectors of X
    (randomized SVD); the ``n_select`` rows with the largest scores are returned.

    Parameters
    ----------
    X : array_like, shape (n, d)
    n_select : int
    random_state : int, optional
        Seed of the randomized SVD.

    Returns
    -------
    numpy.ndarray, shape (n_select,), int64
        Row indices, highest leverage first.
    """
    X_ = _finite_rows(X, "X")
    n, d = X_.shape
    n_select = _n_select(n_select, n)
    k = max(1, min(n_select, d, n) - 1) if min(n, d) > 1 else 1
    U, _, _ = randomized_svd(np.asarray(X_, dtype=np.float64), k, random_state=random_state)
    leverage = np.einsum("ij,ij->i", U, U)
    return np.argsort(-leverage, kind="stable")[:n_select].astype(np.int64)


def _add_gram(out: np.ndarray, K: np.ndarray) -> None:
    """``out += K.T @ K`` (m, m) for K (n, m); by GEMM column panels when m is large."""
    m = K.shape[1]
    if m <= _LARGE_ORDER:
        out += K.T @ K
        return
    for j in range(0, m, _LARGE_ORDER):
        stop = min(m, j + _LARGE_ORDER)
        out[:, j:stop] += K.T @ K[:, j:stop]


def _cholesky_in_place(B: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor of B (n, n), overwriting B; blockwise when n is large.

    Blockwise (right-looking, block order ``_LARGE_ORDER``): LAPACK's potrf only sees
    diagonal blocks, the panel is a triangular solve and the trailing update GEMMs on
    the lower block columns, so no SYRK of order above the block size is called.
    """
    n = len(B)
    if n <= _LARGE_ORDER:
        return scipy.linalg.cholesky(B, lower=True, overwrite_a=True)
    b = _LARGE_ORDER
    for k in range(0, n, b):
        e = min(n, k + b)
        B[k:e, k:e] = scipy.linalg.cholesky(B[k:e, k:e], lower=True, check_finite=False)
        if e == n:
            break
        B[k:e, e:] = 0.0
        B[e:, k:e] = scipy.linalg.solve_triangular(
            B[k:e, k:e], B[e:, k:e].T, lower=True, check_finite=False
        ).T
        for j in range(e, n, b):
            stop = min(n, j + b)
            B[j:, j:stop] -= B[j:, k:e] @ B[j:stop, k:e].T
    return B


def _cholesky(A: np.ndarray, what: str) -> np.ndarray:
    """Lower Cholesky factor of a symmetric PSD matrix, adding jitter until it succeeds."""
    scale = max(float(np.trace(A)) / len(A), np.finfo(np.float64).tiny)
    jitter = 0.0
    for _ in range(12):
        B = np.array(A, dtype=np.float64, order="C")
        B[np.diag_indices_from(B)] += jitter
        try:
            return _cholesky_in_place(B)
        except np.linalg.LinAlgError:
            jitter = 1e-12 * scale if jitter == 0.0 else jitter * 10.0
    raise np.linalg.LinAlgError(f"{what} is not positive definite even with jitter {jitter:g}")


_COVERAGE_1 = 0.6826894921370859  # P(|z| <= 1), P(|z| <= 2) for a standard normal z
_COVERAGE_2 = 0.9544997361036416


# Half-widths of the coverage bands that "band" calibration centres the errors in:
# 0.683 ± 0.05 within 1σ and 0.954 ± 0.03 within 2σ.
_BAND_HALF_WIDTHS = (0.05, 0.03)


def _coverage_calibration(
    err: np.ndarray,
    sigma: np.ndarray,
    n_beta: int = 201,
    units: tuple[float, float] | None = None,
):
    """(α, β) of ``σ' = sqrt(α² σ² + β²)`` whose 1σ' and 2σ' coverages of ``|err|`` are
    closest to the Gaussian values (minimax), each deviation measured in ``units``: by
    default the binomial spreads ``sqrt(p (1 - p))``, or a pair of band half-widths.

    For a given β, ``|e| <= k σ'`` holds exactly when ``α² >= (e²/k² - β²) / σ²``, so each
    coverage is a step function of α² with steps at those thresholds: every step is tried.
    """
    err2 = np.square(err)
    sigma2 = np.square(np.maximum(sigma, np.finfo(np.float64).tiny))
    n = len(err2)
    if units is None:
        units = (np.sqrt(_COVERAGE_1 * (1 - _COVERAGE_1)), np.sqrt(_COVERAGE_2 * (1 - _COVERAGE_2)))
    w1, w2 = units
    best = (np.inf, 1.0, 0.0)
    for beta in np.linspace(0.0, float(np.sqrt(np.mean(err2))), n_beta):
        t1 = np.sort((err2 - beta**2) / sigma2)  # alpha² thresholds for 1σ'
        t2 = np.sort((err2 / 4.0 - beta**2) / sigma2)  # and for 2σ'
        cand = np.unique(np.concatenate([t1, t2, [0.0]]).clip(min=0.0))
        c1 = np.searchsorted(t1, cand, side="right") / n
        c2 = np.searchsorted(t2, cand, side="right") / n
        dev = np.maximum(np.abs(c1 - _COVERAGE_1) / w1, np.abs(c2 - _COVERAGE_2) / w2)
        i = int(np.argmin(dev))
        if dev[i] < best[0] - 1e-12:
            best = (float(dev[i]), float(np.sqrt(cand[i])), float(beta))
    alpha = best[1] if best[1] > 0 else float(np.finfo(np.float64).eps)
    return alpha, best[2]


_CALIBRATION_METHODS = ("musil", "ml", "affine", "coverage", "band")


def _check_calibration_method(method: str) -> None:
    if method not in _CALIBRATION_METHODS:
        raise ValueError(
            f"method must be one of {', '.join(map(repr, _CALIBRATION_METHODS))}, got {method!r}"
        )


class SparseGPR(RegressorMixin, BaseEstimator):
    """Sparse GP regression (projected process) with calibrated committee uncertainty.

    With ``M`` sparse (active) points selected from the training set, the weights solve
    ``(σ² K_MM + K_MN K_NM) w = K_MN (y - ȳ)`` by Cholesky factorisation (jitter added
    only if needed, no explicit inverse), where σ is ``regularizer``; ``K_MN K_NM`` is
    accumulated over blocks of training rows, so memory is O(block · M + M²).

    Uncertainty:

    - ``n_committee=0`` (default): the projected-process predictive variance of a
      target, ``k(x,x) - q(x,x) + σ² k_M(x)ᵀ (σ² K_MM + K_MN K_NM)⁻¹ k_M(x) + σ²``;
    - ``n_committee >= 2``: a committee of models fitted on random subsamples
      (fraction ``subsample``) of the training rows sharing the sparse set; the variance
      is ``α² σ²_committee`` (+ β² with the affine calibration), fitted by
      :meth:`calibrate` on validation data (Musil et al., JCTC 15, 906 (2019)). The mean
      always comes from the model fitted on every row, which is more accurate than the
      committee mean.

    Parameters
    ----------
    kernel : callable, default PolynomialKernel(zeta=2)
        ``kernel(A, B) -> (len(A), len(B))`` array; optional ``.diag(A)``. A kernel that
        is not callable raises TypeError at fit.
    n_sparse : int, default 1000
        Number of sparse points (capped by nothing: must be <= number of training rows).
    selection : {"fps", "cur", "random"} or array of int, default "fps"
        How sparse points are chosen from the training rows, or the row indices
        themselves (``n_sparse`` is then ignored).
    regularizer : float, default 1e-3
        σ, the noise standard deviation in target units, in (0, 1e150].
    n_committee : int, default 0
        0 for the GP variance, or the number of committee members (2 to 10000).
    subsample : float, default 0.5
        Fraction of training rows each committee member sees, in (0, 1].
    random_state : int, optional
        Seed for random selection and committee subsamples.
    normalize_y : bool, default False
        Fit on targets divided by their standard deviation (the GP's prior signal
        variance then is the targets' variance): ``regularizer`` becomes the noise
        relative to the target spread, the same for targets in ppm or in %.
    n_sparse_committee : int, optional
        Committee members use only the first this many sparse points (the selection is
        ordered: FPS's first ones are the FPS of that many points, random selection is in
        random order); default: all. Lets the mean use many more sparse points — with
        ``n_sparse`` equal to the number of rows, the full GP — at no cost to the spread.

    Attributes
    ----------
    sparse_indices_ : (M,) int
        Training rows used as sparse points.
    X_sparse_ : (M, d)
    weights_ : (M,)
        Weights of the model fitted on every training row (it gives the mean).
    y_mean_ : float
    n_committee_sparse_ : int
        m_c, the sparse points the committee uses (the first ones).
    committee_weights_ : (n_committee, m_c)
    committee_y_mean_ : (n_committee,)
        Committee members (only with ``n_committee >= 2``; they give the spread).
    alpha_, beta_ : float
        Calibration ``σ' = sqrt(α² σ² + β²)`` (1 and 0 until :meth:`calibrate`).

    Example
    -------
    >>> import numpy as np, matchar as mc
    >>> rng = np.random.default_rng(0)
    >>> X = rng.random((200, 5)); y = X @ np.arange(5.0)
    >>> gpr = mc.gp.SparseGPR(n_sparse=50, regularizer=1e-2).fit(X, y)
    >>> mean, std = gpr.predict(X[:3], return_std=True)
    >>> mean.shape, std.shape
    ((3,), (3,))
    """

    def __init__(
        self,
        kernel: Callable | None = None,
        n_sparse: int = 1000,
        selection: str = "fps",
        regularizer: float = 1e-3,
        n_committee: int = 0,
        subsample: float = 0.5,
        random_state: int | None = None,
        normalize_y: bool = False,
        n_sparse_committee: int | None = None,
    ) -> None:
        self.kernel = kernel
        self.n_sparse = n_sparse
        self.selection = selection
        self.regularizer = regularizer
        self.n_committee = n_committee
        self.subsample = subsample
        self.random_state = random_state
        self.normalize_y = normalize_y
        self.n_sparse_committee = n_sparse_committee

    def _descriptor_kernel(self) -> bool:
        """The kernel is the normalised polynomial one (the default), made for descriptors."""
        kernel = self._kernel()
        return isinstance(kernel, PolynomialKernel) and kernel.normalize

    def __sklearn_tags__(self):  # scikit-learn >= 1.6
        tags = super().__sklearn_tags__()
        # The normalised polynomial kernel sees only the direction of a feature vector and
        # is even in it (a SOAP power spectrum's similarity): it cannot fit targets that
        # depend on the length or the sign of x, such as scikit-learn's linear test data.
        tags.regressor_tags.poor_score = self._descriptor_kernel()
        return tags

    def _more_tags(self) -> dict:  # scikit-learn < 1.6
        return {"poor_score": self._descriptor_kernel()}

    # -- helpers -------------------------------------------------------------------------
    def _kernel(self) -> Callable:
        return PolynomialKernel() if self.kernel is None else self.kernel

    def _check_params(self, n: int) -> None:
        if self.kernel is not None:
            _check_kernel(self.kernel)
        if not isinstance(self.selection, str):
            idx = np.asarray(self.selection)
            if idx.ndim != 1 or idx.dtype.kind not in "iu" or len(np.unique(idx)) != len(idx):
                raise ValueError("selection must be 'fps', 'cur', 'random' or distinct row indices")
            if len(idx) == 0 or idx.min() < 0 or idx.max() >= n:
                raise ValueError(f"selection indices must lie in [0, {n}) and not be empty")
        elif self.selection not in ("fps", "cur", "random"):
            raise ValueError(f"selection must be 'fps', 'cur' or 'random', got {self.selection!r}")
        if isinstance(self.selection, str):
            try:
                check_int(self.n_sparse, "n_sparse", low=1, high=n)
            except ValueError:
                raise ValueError(
                    f"n_sparse must be an integer between 1 and the number of training rows "
                    f"(n_samples={n}), got {self.n_sparse!r}"
                ) from None
        # sigma^2 must stay a finite float64
        check_float(self.regularizer, "regularizer", low=0.0, high=MAX_REGULARIZER, low_open=True)
        nc = check_int(self.n_committee, "n_committee", low=0, high=MAX_COMMITTEE)
        if nc == 1:
            raise ValueError(f"n_committee must be 0 or >= 2, got {self.n_committee!r}")
        check_int(self.n_sparse_committee, "n_sparse_committee", low=1, allow_none=True)
        check_float(self.subsample, "subsample", low=0.0, high=1.0, low_open=True)
        _core.check_allocation((1 + nc) * n, 1, "SparseGPR: the committee's row masks")

    def _committee_size(self, m: int) -> int:
        """How many of the ``m`` sparse points (the first ones) the committee uses."""
        return m if self.n_sparse_committee is None else min(int(self.n_sparse_committee), m)

    def _select(self, X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Sparse rows, most informative first (so that a prefix serves the committee)."""
        if not isinstance(self.selection, str):
            return np.asarray(self.selection, dtype=np.int64)
        if self.selection == "random":  # in random order: every prefix is a random subset
            return rng.choice(len(X), int(self.n_sparse), replace=False).astype(np.int64)
        if self.selection == "cur":
            return cur_selection(X, self.n_sparse, random_state=int(rng.integers(2**31)))
        mc = self._committee_size(int(self.n_sparse))
        if self.n_sparse == len(X) and mc < self.n_sparse:
            # Every row is a sparse point: only the committee's prefix needs the FPS order
            # (a greedy FPS of n_sparse rows starts with the FPS of its first mc rows).
            head = farthest_point_sampling(X, mc, self._kernel(), start=0)
            return np.concatenate([head, np.setdiff1d(np.arange(len(X)), head)])
        return farthest_point_sampling(X, self.n_sparse, self._kernel(), start=0)

    # -- fitting -------------------------------------------------------------------------
    @serialized
    def fit(self, X: ArrayLike, y: ArrayLike) -> SparseGPR:
        """Select sparse points and solve for the weights.

        Parameters
        ----------
        X : array_like, shape (n, d)
            Training features.
        y : array_like, shape (n,)
            Targets (e.g. shieldings in ppm); finite.

        Returns
        -------
        self
        """
        X_ = _feature_rows(X, "X")
        if y is None:
            raise ValueError("SparseGPR requires y to be passed, but the target y is None")
        y_ = _targets(y, "y")
        if y_.ndim == 2 and y_.shape[1] == 1:  # scikit-learn's rule for a column vector
            warnings.warn(
                "A column-vector y was passed when a 1d array was expected. Please change "
                "the shape of y to (n_samples,), for example using ravel().",
                DataConversionWarning,
                stacklevel=3,
            )
            y_ = y_[:, 0]
        if y_.ndim != 1 or len(y_) != len(X_):
            raise ValueError(
                f"y must be a 1-D array with one value per row of X ({len(X_)}), "
                f"got shape {y_.shape}"
            )
        if not np.isfinite(y_).all():
            raise ValueError("y contains NaN or infinite values")
        X_ = _finite_rows(X_, "X")
        n = len(X_)
        self._check_params(n)
        n_committee = int(self.n_committee)  # validated: an integer, maybe given as 4.0
        rng = np.random.default_rng(self.random_state)
        kernel = self._kernel()

        idx = self._select(X_, rng)
        Xm = np.ascontiguousarray(X_[idx])
        m = len(idx)
        mc = self._committee_size(m)
        # Every training row a sparse point: the projected process is the full GP, solved
        # as (K + σ² I) w = y - ȳ (the same weights as (σ² K + K²) w = K (y - ȳ), without
        # squaring the condition number or the K² product).
        exact = m == n
        _core.check_allocation((3 if exact else 5) * m * m, 8, "SparseGPR.fit")
        Kmm = np.asarray(kernel(Xm), dtype=np.float64)
        Kmm += Kmm.T
        Kmm *= 0.5

        # Model 0 sees every row (it gives the mean); committee members see subsamples
        # and use the first ``mc`` sparse points.
        n_models = 1 + n_committee
        masks = np.ones((n_models, n), dtype=bool)
        if n_committee:
            n_sub = max(1, round(self.subsample * n))
            masks[1:] = False
            for k in range(1, n_models):
                masks[k, rng.choice(n, n_sub, replace=False)] = True
        y_scale = float(np.std(y_)) if self.normalize_y else 1.0
        y_scale = y_scale if y_scale > 0 else 1.0
        y_ = y_ / y_scale
        y_mean = np.array([y_[mask].mean() for mask in masks])

        # Accumulate K_MN K_NM and K_MN (y - ȳ) per model over blocks of rows (with
        # ``exact``, K_NM is K_MM with its rows in sparse order: no kernel to evaluate).
        sizes = [m] + [mc] * n_committee
        KtK = [None if exact and k == 0 else np.zeros((sizes[k],) * 2) for k in range(n_models)]
        Kty = [np.zeros(size) for size in sizes]
        rows = range(0, m if exact else n, _BLOCK_ROWS)
        for start in rows:
            stop = min(m if exact else n, start + _BLOCK_ROWS)
            if exact:
                Knm, r = Kmm[start:stop], idx[start:stop]
            else:
                Knm = np.asarray(kernel(X_[start:stop], Xm), dtype=np.float64)
                r = np.arange(start, stop)
            for k in range(n_models):
                mk = masks[k, r]
                Kb = Knm if mk.all() else Knm[mk]
                Kb = Kb[:, : sizes[k]]
                if KtK[k] is not None:
                    _add_gram(KtK[k], Kb)
                Kty[k] += Kb.T @ (y_[r][mk] - y_mean[k])

        sigma2 = float(self.regularizer) ** 2
        weights = []
        for k in range(n_models):
            if KtK[k] is None:  # exact: (K + σ² I) w = y - ȳ, σ² added to K_MM's diagonal
                diag = np.diag_indices_from(Kmm)  # for the factorisation only (no M² copy)
                Kmm[diag] += sigma2
                L = _cholesky(Kmm, "K + sigma^2 I")
                Kmm[diag] -= sigma2
                rhs = y_[idx] - y_mean[0]
            else:
                A = KtK[k]
                A += sigma2 * Kmm[: sizes[k], : sizes[k]]
                A += A.T
                A *= 0.5
                KtK[k] = None
                L = _cholesky(A, "sigma^2 K_MM + K_MN K_NM")
                del A
                rhs = Kty[k]
            weights.append(scipy.linalg.cho_solve((L, True), rhs))
            if k == 0 and not n_committee:  # the GP variance needs the factors
                self.L_a_ = L
                self.L_mm_ = None if exact else _cholesky(Kmm, "K_MM")
            del L
        for name in ("L_a_", "L_mm_") if n_committee else ():
            self.__dict__.pop(name, None)

        for name in (
            "mean_basis_",
            "mean_eigenvalues_",
            "mean_error_bound_",
            "mean_error_sparse_",
            "committee_basis_",
            "committee_eigenvalues_",
            "committee_error_sparse_",
            "_committee_stacked",
        ):
            self.__dict__.pop(name, None)  # a refit invalidates an earlier compress()
        self.sparse_indices_ = idx
        self.X_sparse_ = Xm
        self.n_features_in_ = X_.shape[1]
        self.weights_ = weights[0]
        self.y_mean_ = float(y_mean[0])
        self.y_scale_ = y_scale
        self.n_committee_sparse_ = mc
        if n_committee:
            self.committee_weights_ = np.array(weights[1:])
            self.committee_y_mean_ = y_mean[1:]
        self.alpha_, self.beta_ = 1.0, 0.0
        self.__dict__.pop("_sparse_prepared", None)
        if hasattr(kernel, "prepare") and hasattr(kernel, "cross"):
            # prepared here, not at the first prediction: predict leaves the state as is
            for size in {m, mc}:
                self._prepared_sparse(kernel, size)
        return self

    # -- prediction ----------------------------------------------------------------------
    @serialized
    def tune_regularizer(
        self,
        X: ArrayLike,
        y: ArrayLike,
        X_val: ArrayLike,
        y_val: ArrayLike,
        grid: Sequence[float] | None = None,
    ) -> SparseGPR:
        """Choose ``regularizer`` on validation data, then fit with it.

        The sparse points, ``K_MM``, ``K_MN K_NM``, ``K_MN y`` and the validation kernel
        are computed once; each candidate σ only costs one m × m Cholesky solve, so a
        scan of many values costs little more than one fit. The value with the lowest
        validation RMSE of the mean prediction is kept (ties: the larger σ).

        Parameters
        ----------
        X, y : array_like, shapes (n, d) and (n,)
            Training data.
        X_val, y_val : array_like, shapes (n_val, d) and (n_val,)
            Validation data (e.g. held-out structures), not used for the fit.
        grid : sequence of float, optional
            Candidate σ, in the units of ``regularizer`` (target units, or relative to
            the targets' spread with ``normalize_y``); default 12 values log-spaced over
            1e-3 … 3 (times the standard deviation of ``y`` without ``normalize_y``).

        Returns
        -------
        self
            Fitted with the chosen ``regularizer``; ``regularizer_scores_`` maps every σ
            tried to its validation RMSE.

        Example
        -------
        >>> import numpy as np, matchar as mc
        >>> rng = np.random.default_rng(0)
        >>> X = rng.random((200, 6)); y = X @ rng.random(6)
        >>> gpr = mc.gp.SparseGPR(mc.gp.PolynomialKernel(2), n_sparse=50)
        >>> gpr = gpr.tune_regularizer(X[:150], y[:150], X[150:], y[150:])
        >>> gpr.regularizer in gpr.regularizer_scores_
        True
        """
        X_ = as_array(X, "X", ndim=2)
        Xv = as_array(X_val, "X_val", ndim=2)
        y_ = _targets(y, "y")
        yv = _targets(y_val, "y_val")
        if y_.shape != (len(X_),) or yv.shape != (len(Xv),):
            raise ValueError("y and y_val must be 1-D with one value per row of X and X_val")
        if Xv.shape[1] != X_.shape[1]:
            raise ValueError(
                f"X_val has {Xv.shape[1]} features, X has {X_.shape[1]}: they must match"
            )
        for arr, name in ((X_, "X"), (Xv, "X_val"), (y_, "y"), (yv, "y_val")):
            if not np.isfinite(arr).all():
                raise ValueError(f"{name} contains NaN or infinite values")
        if len(yv) == 0:
            raise ValueError("X_val is empty")
        scale = 1.0 if self.normalize_y else (float(np.std(y_)) or 1.0)
        values = (
            np.geomspace(1e-3, 3.0, 12) * scale
            if grid is None
            else np.asarray(list(grid), dtype=np.float64)
        )
        if values.ndim != 1 or len(values) == 0 or not np.all(np.isfinite(values) & (values > 0)):
            raise ValueError("grid must be a non-empty sequence of positive, finite numbers")
        self._check_params(len(X_))
        kernel = self._kernel()
        idx = self._select(X_, np.random.default_rng(self.random_state))
        Xm = np.ascontiguousarray(X_[idx])
        Kmm = np.asarray(kernel(Xm), dtype=np.float64)
        Kmm = 0.5 * (Kmm + Kmm.T)
        y_scale = float(np.std(y_)) if self.normalize_y else 1.0
        y_scale = y_scale if y_scale > 0 else 1.0
        yn = y_ / y_scale
        y_mean = float(yn.mean())
        m = len(idx)
        KtK = np.zeros((m, m))
        Kty = np.zeros(m)
        for start in range(0, len(X_), _BLOCK_ROWS):
            stop = min(len(X_), start + _BLOCK_ROWS)
            Knm = np.asarray(kernel(X_[start:stop], Xm), dtype=np.float64)
            _add_gram(KtK, Knm)
            Kty += Knm.T @ (yn[start:stop] - y_mean)
        Kvm = np.asarray(kernel(Xv, Xm), dtype=np.float64)
        scores: dict[float, float] = {}
        for sigma in values:
            A = sigma**2 * Kmm + KtK  # as in fit: σ in the (normalised) target units
            L = _cholesky(0.5 * (A + A.T), "sigma^2 K_MM + K_MN K_NM")
            w = scipy.linalg.cho_solve((L, True), Kty)
            pred = (Kvm @ w + y_mean) * y_scale
            scores[float(sigma)] = float(np.sqrt(np.mean((pred - yv) ** 2)))
        best = min(scores, key=lambda s: (scores[s], -s))
        self.regularizer = best
        self.fit(X_, y_)
        self.regularizer_scores_ = scores
        return self

    def _n_committee_sparse(self) -> int:
        return int(self.__dict__.get("n_committee_sparse_", len(self.X_sparse_)))

    def _sparse_kernel(self, X: np.ndarray, n: int | None = None) -> np.ndarray:
        """k(X, X_sparse_[:n]) (len(X), n; all M sparse points for None). Kernels with
        ``prepare``/``cross`` get the sparse points prepared once (contiguous blocks and
        row scales, cached until they change), so repeated small predictions cost one
        GEMM each."""
        kernel = self._kernel()
        Y = self.X_sparse_ if n is None or n >= len(self.X_sparse_) else self.X_sparse_[:n]
        if not (hasattr(kernel, "prepare") and hasattr(kernel, "cross")):
            return kernel(X, Y)
        return kernel.cross(X, self._prepared_sparse(kernel, len(Y)))

    def _prepared_sparse(self, kernel, n: int):
        """``kernel.prepare`` of the first ``n`` sparse points, cached until they change."""
        # self.kernel, not the kernel built from it: the default is built anew at each call
        owner = None if self.kernel is None else id(self.kernel)
        key = (owner, id(self.X_sparse_), self.X_sparse_.shape, self.X_sparse_.dtype)
        cache = self.__dict__.get("_sparse_prepared")
        if cache is None or cache[0] != key:
            cache = (key, {})
            self.__dict__["_sparse_prepared"] = cache
        if n not in cache[1]:
            cache[1][n] = kernel.prepare(self.X_sparse_[:n])
        return cache[1][n]

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state.pop("_sparse_prepared", None)  # a cache, rebuilt on the first prediction
        state.pop("_committee_stacked", None)
        return state

    @serialized
    def compress(self, tol: float | None = None, committee: bool = False) -> SparseGPR:
        """Low-rank form of the mean prediction for the ζ = 2 polynomial kernels.

        With ``k(x, y) = Σ_b w_b (x̂_b · ŷ_b)²`` the mean is a quadratic form per block,
        ``f(x) = Σ_b w_b x̂_bᵀ A_b x̂_b + ȳ`` with ``A_b = Σ_j a_j ŷ_bj ŷ_bjᵀ`` (``a``: the
        fitted weights). Keeping the eigenpairs of ``A_b`` with the largest ``|λ|``,
        ``f(x) ≈ Σ_b w_b Σ_{k≤r_b} λ_bk (v_bk · x̂_b)²`` costs ``Σ_b 2 r_b d_b`` per row
        instead of ``Σ_b 2 M d_b``. The ranks are the smallest for which the error on
        every sparse point — the most diverse environments of the training set, by
        construction — stays ≤ ``tol`` (target units, after ``y_scale_``); recorded as
        ``mean_error_sparse_``. ``mean_error_bound_`` is the worst case over *all*
        inputs, ``Σ_b w_b max_{k>r_b} |λ_bk|`` (``|x̂_b| = 1``), usually far larger than
        the errors seen. The basis is stored in the sparse points' dtype, so a float32
        model adds float32 rounding, as its exact kernel path does.

        After this, :meth:`predict` computes the mean this way. With ``committee=True``
        every committee member's prediction (a quadratic form over the committee's sparse
        points) is compressed the same way, so the standard deviation costs no kernel
        evaluation either: each member's ranks keep its prediction within
        ``tol / (2 α sqrt(n / (n − 1)))`` on the sparse points (α the calibration factor,
        n the committee size), which keeps the calibrated std within ``tol`` there
        (``committee_error_sparse_``, the largest member error; not saved by
        ``ShiftModel.save``). :meth:`fit` discards the compression. One symmetric
        eigendecomposition per block (and member) of size ``min(d_b, M)`` (about a minute
        for d_b = 4480 on 2 cores).

        Parameters
        ----------
        tol : float, optional
            Bound on the absolute error of the mean (and with ``committee`` of the std),
            in target units (default: ``1e-3 · y_scale_``, a thousandth of the training
            targets' spread with ``normalize_y``).
        committee : bool, default False
            Also compress the committee members (needs ``n_committee >= 2``). A model
            whose exact mean weights are not stored (a compressed model loaded from a
            file) keeps its compressed mean and compresses only the committee.

        Returns
        -------
        self
            With ``mean_basis_`` (list of arrays (d_b, r_b), the sparse points' dtype),
            ``mean_eigenvalues_`` (list of float64 arrays (r_b,)),
            ``mean_error_sparse_`` and ``mean_error_bound_`` (floats, target units).

        Raises
        ------
        ValueError
            If the kernel is not a normalised ζ = 2 ``PolynomialKernel`` or
            ``MultiPolynomialKernel``, or ``tol`` is not positive.

        Example
        -------
        >>> import numpy as np, matchar as mc
        >>> rng = np.random.default_rng(0)
        >>> X = rng.random((200, 30)); y = X[:, 0] - X[:, 1]
        >>> gpr = mc.gp.SparseGPR(n_sparse=50, regularizer=1e-2).fit(X, y)
        >>> exact = gpr.predict(X[:5])
        >>> gpr = gpr.compress(1e-4)
        >>> bool(np.abs(gpr.predict(X[:5]) - exact).max() <= gpr.mean_error_bound_ + 1e-12)
        True
        """
        check_fitted(self, "X_sparse_")
        exact_mean = self.weights_ is not None and len(self.weights_) == len(self.X_sparse_)
        if not exact_mean and not (committee and self.__dict__.get("mean_basis_") is not None):
            raise ValueError(
                "this SparseGPR keeps only its committee's sparse points (a compressed model "
                "loaded from a file): the exact mean it would compress from is not stored"
            )
        if committee and not self.n_committee:
            raise ValueError("compress(committee=True) needs a committee (n_committee >= 2)")
        kernel = self._kernel()
        if isinstance(kernel, MultiPolynomialKernel):
            offsets, block_w = kernel._offsets, kernel.weights
        elif isinstance(kernel, PolynomialKernel) and kernel.normalize:
            offsets, block_w = np.array([0, self.n_features_in_]), np.ones(1)
        else:
            raise ValueError(
                "compress() needs a normalised PolynomialKernel or a MultiPolynomialKernel, "
                f"got {kernel!r}"
            )
        if getattr(kernel, "zeta", None) != 2:
            raise ValueError(f"compress() needs zeta = 2, got {getattr(kernel, 'zeta', None)!r}")
        y_scale = float(getattr(self, "y_scale_", 1.0))
        tol = 1e-3 * y_scale if tol is None else check_float(tol, "tol", low=0.0, low_open=True)
        if exact_mean:
            bases, eigs, bound, sparse_err = self._low_rank(
                self.weights_, len(self.X_sparse_), tol, offsets, block_w, y_scale
            )
            self.mean_basis_ = bases
            self.mean_eigenvalues_ = eigs
            self.mean_error_bound_ = float(bound)
            self.mean_error_sparse_ = float(sparse_err)
        if committee:
            n_c = len(self.committee_weights_)
            alpha = float(getattr(self, "alpha_", 1.0))
            member_tol = tol / (2.0 * max(alpha, 1e-12) * math.sqrt(n_c / (n_c - 1)))
            c_bases, c_eigs, worst = [], [], 0.0
            for w in self.committee_weights_:
                bases, eigs, _, err = self._low_rank(
                    w, self._n_committee_sparse(), member_tol, offsets, block_w, y_scale
                )
                c_bases.append(bases)
                c_eigs.append(eigs)
                worst = max(worst, err)
            self.committee_basis_ = c_bases
            self.committee_eigenvalues_ = c_eigs
            self.committee_error_sparse_ = float(worst)
        return self

    def _low_rank(self, weights, n_points, tol, offsets, block_w, y_scale):
        """Eigen-truncated form of ``x -> Σ_b w_b x̂_bᵀ (Σ_j a_j ŷ_bj ŷ_bjᵀ) x̂_b`` over the
        first ``n_points`` sparse points (see :meth:`compress`): (bases, eigenvalues, bound
        over all inputs, largest error on the sparse points), errors in target units."""
        a = np.asarray(weights, dtype=np.float64)
        m = int(n_points)
        nb = len(block_w)
        bases, eigs, bound, sparse_err = [], [], 0.0, 0.0
        for b in range(nb):
            Y = np.asarray(self.X_sparse_[:m, offsets[b] : offsets[b + 1]], dtype=np.float64)
            d = Y.shape[1]
            norms = np.linalg.norm(Y, axis=1)
            Y = Y / np.where(norms > 0, norms, 1.0)[:, None]
            _core.check_allocation(min(d, m) ** 2, 8, "compress() eigenproblem")
            if d <= m:
                lam, V = np.linalg.eigh((Y.T * a) @ Y)
                Z = Y @ V  # the sparse points in the eigenbasis
            else:  # A = Yᵀ D Y = Q (R D Rᵀ) Qᵀ with Yᵀ = Q R: an m × m problem
                Q, R = np.linalg.qr(Y.T)
                lam, U = np.linalg.eigh((R * a) @ R.T)
                V = Q @ U
                Z = R.T @ U
            order = np.argsort(-np.abs(lam), kind="stable")
            lam, V, Z = lam[order], V[:, order], Z[:, order]
            scale = block_w[b] * y_scale
            budget = tol / nb
            # err[j, r] = |Σ_{k>=r} λ_k z_jk²|: the error on sparse point j with r pairs kept
            contrib = Z * Z * lam
            err = np.abs(np.cumsum(contrib[:, ::-1], axis=1)[:, ::-1])
            worst = np.append(err.max(axis=0), 0.0)
            ok = np.flatnonzero(scale * worst > budget)
            r = 0 if len(ok) == 0 else int(ok[-1]) + 1
            bases.append(np.ascontiguousarray(V[:, :r], dtype=self.X_sparse_.dtype))
            eigs.append(lam[:r].copy())
            bound += scale * (np.abs(lam[r:]).max() if r < len(lam) else 0.0)
            sparse_err += scale * worst[r]
        return bases, eigs, bound, sparse_err

    def _compressed_mean(
        self, X_: np.ndarray, inv_norms: list[np.ndarray] | None = None
    ) -> np.ndarray:
        """Mean in target units from the compressed form (see :meth:`compress`)."""
        f = self._quadratic(X_, self.mean_basis_, self.mean_eigenvalues_, inv_norms)
        return (f + self.y_mean_) * getattr(self, "y_scale_", 1.0)

    def _inverse_block_norms(self, X_: np.ndarray) -> list[np.ndarray]:
        """``1 / |x_b|²`` per row and kernel block (1 for zero rows), float64. float32 rows
        are summed in float32 (a vectorised pass, ~1e-6 relative: far below the
        compression's tolerance) instead of being cast to float64 first (5x slower)."""
        kernel = self._kernel()
        offsets = getattr(kernel, "_offsets", np.array([0, self.n_features_in_]))
        out = []
        for b in range(len(offsets) - 1):
            Xb = X_[:, offsets[b] : offsets[b + 1]]
            if Xb.dtype == np.float32:
                norms = np.einsum("ij,ij->i", Xb, Xb).astype(np.float64)
            else:
                norms = np.einsum("ij,ij->i", Xb, Xb, dtype=np.float64)
            out.append(1.0 / np.where(norms > 0, norms, 1.0))
        return out

    def _committee_quadratics(
        self, X_: np.ndarray, inv_norms: list[np.ndarray] | None = None
    ) -> np.ndarray:
        """Every compressed committee member's quadratic form, (n_committee, n), before
        ``y_scale_``: per block one GEMM with the members' bases side by side."""
        kernel = self._kernel()
        offsets = getattr(kernel, "_offsets", np.array([0, self.n_features_in_]))
        block_w = getattr(kernel, "weights", np.ones(1))
        cache = self.__dict__.get("_committee_stacked")
        if cache is None or cache[0] is not self.committee_basis_:
            stacked = []
            for b in range(len(block_w)):
                bases = [member[b] for member in self.committee_basis_]
                eigs = [member[b] for member in self.committee_eigenvalues_]
                ends = np.cumsum([0] + [v.shape[1] for v in bases])
                stacked.append((np.ascontiguousarray(np.hstack(bases)), eigs, ends))
            cache = (self.committee_basis_, stacked)
            self.__dict__["_committee_stacked"] = cache
        from .. import get_num_threads

        out = np.zeros((len(self.committee_basis_), len(X_)))
        inv_norms = self._inverse_block_norms(X_) if inv_norms is None else inv_norms
        with _blas_threads(get_num_threads()):
            for b, (V, eigs, ends) in enumerate(cache[1]):
                if V.shape[1] == 0:
                    continue
                Xb = np.asarray(X_[:, offsets[b] : offsets[b + 1]], dtype=V.dtype)
                Z2 = np.square(Xb @ V, dtype=np.float64)  # (n, Σ r_i): one GEMM
                inv = block_w[b] * inv_norms[b]
                for i, lam in enumerate(eigs):
                    out[i] += (Z2[:, ends[i] : ends[i + 1]] @ lam) * inv
        return out

    def _quadratic(
        self,
        X_: np.ndarray,
        basis: list,
        eigenvalues: list,
        inv_norms: list[np.ndarray] | None = None,
    ) -> np.ndarray:
        """``Σ_b w_b Σ_k λ_bk (v_bk · x̂_b)²`` per row (before ``y_scale_``)."""
        kernel = self._kernel()
        offsets = getattr(kernel, "_offsets", np.array([0, self.n_features_in_]))
        block_w = getattr(kernel, "weights", np.ones(1))
        from .. import get_num_threads

        f = np.zeros(len(X_))
        inv_norms = self._inverse_block_norms(X_) if inv_norms is None else inv_norms
        with _blas_threads(get_num_threads()):  # matchar's thread setting, as the kernels
            for b, (V, lam) in enumerate(zip(basis, eigenvalues)):
                if V.shape[1] == 0:
                    continue
                Xb = np.asarray(X_[:, offsets[b] : offsets[b + 1]], dtype=V.dtype)
                Z = Xb @ V  # (n, r): BLAS GEMM
                f += block_w[b] * (np.square(Z, dtype=np.float64) @ lam) * inv_norms[b]
        return f

    def _check_X(self, X: ArrayLike) -> np.ndarray:
        check_fitted(self, "X_sparse_")
        X_ = _feature_rows(X, "X")
        if X_.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X_.shape[1]} features, but SparseGPR is expecting "
                f"{self.n_features_in_} features as input (it was fitted with that many)"
            )
        return X_

    def _committee_predictions(self, X_: np.ndarray) -> np.ndarray:
        """(n_committee, n) predictions of every member."""
        out = np.empty((len(self.committee_weights_), len(X_)))
        for start in range(0, len(X_), _BLOCK_ROWS):
            stop = min(len(X_), start + _BLOCK_ROWS)
            Kxm = self._sparse_kernel(X_[start:stop], self._n_committee_sparse())
            Kxm = np.asarray(Kxm, dtype=np.float64)
            out[:, start:stop] = self.committee_weights_ @ Kxm.T + self.committee_y_mean_[:, None]
        return out * getattr(self, "y_scale_", 1.0)

    @serialized
    def predict(
        self, X: ArrayLike, return_std: bool = False
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Predict targets, and optionally their standard deviation.

        Parameters
        ----------
        X : array_like, shape (n, d)
        return_std : bool, default False

        Returns
        -------
        mean : numpy.ndarray, shape (n,)
        std : numpy.ndarray, shape (n,)
            Only with ``return_std=True``, in target units: the predictive standard
            deviation of a target value, ``α · sqrt(var_f + σ²)`` for the GP variance, or
            ``sqrt(α² σ²_committee + β²)`` for a committee.

        After :meth:`compress`, the mean comes from the low-rank form (within
        ``mean_error_bound_`` of the exact mean) and costs no kernel evaluation.
        """
        X_ = self._check_X(X)
        committee = bool(self.n_committee) and return_std
        mean = np.empty(len(X_))
        var = np.empty(len(X_)) if return_std else None
        kernel = self._kernel()
        sigma2 = float(self.regularizer) ** 2
        compressed = self.__dict__.get("mean_basis_") is not None
        fast_committee = committee and self.__dict__.get("committee_basis_") is not None
        # With a compressed mean a committee needs only its own sparse points' kernel.
        n_kernel = self._n_committee_sparse() if compressed and committee else None
        need_kernel = not compressed or (return_std and not fast_committee)
        starts = range(0, len(X_), _BLOCK_ROWS) if need_kernel else ()
        from .. import get_num_threads

        # every BLAS call below on matchar's thread setting, as the kernels
        with _blas_threads(get_num_threads()):
            for start in starts:  # the kernel against the sparse points, unless not needed
                stop = min(len(X_), start + _BLOCK_ROWS)
                Kxm = self._sparse_kernel(X_[start:stop], n_kernel)
                Kxm = np.asarray(Kxm, dtype=np.float64)
                if not compressed:
                    mean[start:stop] = Kxm @ self.weights_ + self.y_mean_
                if committee and not fast_committee:
                    Kc = Kxm[:, : self._n_committee_sparse()]
                    preds = self.committee_weights_ @ Kc.T + self.committee_y_mean_[:, None]
                    var[start:stop] = preds.var(axis=0, ddof=1)
                elif var is not None and not committee:
                    s = scipy.linalg.solve_triangular(self.L_a_, Kxm.T, lower=True)
                    kxx = _kernel_diag(kernel, X_[start:stop])
                    if self.L_mm_ is None:  # every training row a sparse point: the full GP
                        var[start:stop] = kxx - np.sum(s * s, axis=0) + sigma2
                    else:
                        q = scipy.linalg.solve_triangular(self.L_mm_, Kxm.T, lower=True)
                        var[start:stop] = (
                            kxx - np.sum(q * q, axis=0) + sigma2 * np.sum(s * s, axis=0) + sigma2
                        )
        inv_norms = self._inverse_block_norms(X_) if compressed or fast_committee else None
        if fast_committee:
            preds = self._committee_quadratics(X_, inv_norms) + self.committee_y_mean_[:, None]
            var = preds.var(axis=0, ddof=1)
        scale = getattr(self, "y_scale_", 1.0)
        mean *= scale
        if compressed:
            mean = self._compressed_mean(X_, inv_norms)
        if var is None:
            return mean
        return mean, self._calibrated(scale * np.sqrt(np.clip(var, 0.0, None)))

    def _calibrated(self, std: np.ndarray) -> np.ndarray:
        beta = getattr(self, "beta_", 0.0)
        return np.sqrt((self.alpha_ * std) ** 2 + beta**2)

    @serialized
    def calibrate(self, X: ArrayLike, y: ArrayLike, method: str = "musil") -> SparseGPR:
        """Fit the calibration of the predicted uncertainty on validation data.

        Methods (Δ: error of the mean prediction, σ: uncalibrated predicted std):

        - ``"musil"`` (committees; Musil et al., JCTC 15, 906 (2019)):
          ``α² = -1/n_c + (n_c-3)/(n_c-1) · mean(Δ²/σ²)``; for the GP variance the same
          as ``"ml"``;
        - ``"ml"``: the maximum-likelihood scale, ``α² = mean(Δ²/σ²)``;
        - ``"affine"``: ``σ'² = α² σ² + β²`` with (α, β) maximising the Gaussian
          likelihood — a floor β for errors the model's spread does not see, which makes
          heavy-tailed errors better calibrated at both 1σ and 2σ.
        - ``"coverage"``: the same form, with (α, β) making the fractions of errors within
          1σ' and 2σ' as close as possible to the Gaussian 0.683 and 0.954: the largest of
          the two deviations, each in units of its binomial spread ``sqrt(p (1 - p))``, is
          minimised (over a grid of β in [0, rms error] and, per β, every α at which a
          coverage changes). Where errors are heavy-tailed the likelihood fit trades the
          1σ coverage for the tails; this one asks for what "σ" is read as.
        - ``"band"``: as ``"coverage"``, with each deviation in units of the half-width of
          the band it is accepted in, 0.683 ± 0.05 within 1σ' and 0.954 ± 0.03 within
          2σ': the largest fraction of a band used is minimised, i.e. the smaller margin
          to the bands is maximised. With heavy-tailed errors no σ' of this form hits both
          Gaussian coverages; ``"coverage"`` then weights the 2σ deviation 2.2× the 1σ one
          (their binomial spreads), ``"band"`` 1.7× (the bands' widths).

        Parameters
        ----------
        X : array_like, shape (n_val, d)
        y : array_like, shape (n_val,)
        method : {"musil", "ml", "affine", "coverage", "band"}, default "musil"

        Returns
        -------
        self
        """
        _check_calibration_method(method)
        X_ = self._check_X(X)
        y_ = _targets(y, "y")
        if y_.shape != (len(X_),) or not np.isfinite(y_).all():
            raise ValueError("y must be finite, with one value per row of X")
        self.alpha_, self.beta_ = 1.0, 0.0
        mean, std = self.predict(X_, return_std=True)
        return self.calibrate_errors(mean - y_, std, method)

    @serialized
    def calibrate_errors(
        self, errors: ArrayLike, std: ArrayLike, method: str = "musil"
    ) -> SparseGPR:
        """Fit the calibration from errors and *uncalibrated* standard deviations measured
        elsewhere, e.g. pooled over the folds of a cross-validation (each fold's model
        predicting the rows it did not see).

        Parameters
        ----------
        errors : array_like, shape (n,)
            Prediction minus truth, target units.
        std : array_like, shape (n,)
            Uncalibrated predicted standard deviations (α = 1, β = 0), target units.
        method : {"musil", "ml", "affine", "coverage", "band"}, default "musil"
            As for :meth:`calibrate`.

        Returns
        -------
        self
        """
        _check_calibration_method(method)
        err = _targets(errors, "errors")
        sd = _targets(std, "std")
        if err.ndim != 1 or sd.shape != err.shape or len(err) == 0:
            raise ValueError("errors and std must be non-empty 1-D arrays of the same length")
        if not (np.isfinite(err).all() and np.isfinite(sd).all()) or (sd < 0).any():
            raise ValueError("errors and std must be finite, std >= 0")
        var = np.maximum(sd**2, np.finfo(np.float64).tiny)
        err2 = err**2
        ratio = float(np.mean(err2 / var))
        eps = np.finfo(np.float64).eps
        self.alpha_, self.beta_ = 1.0, 0.0
        if method == "musil" and self.n_committee:
            nc = self.n_committee
            self.alpha_ = float(np.sqrt(max(-1.0 / nc + (nc - 3.0) / (nc - 1.0) * ratio, eps)))
        elif method in ("musil", "ml"):
            self.alpha_ = float(np.sqrt(max(ratio, eps)))
        elif method in ("coverage", "band"):
            units = _BAND_HALF_WIDTHS if method == "band" else None
            self.alpha_, self.beta_ = _coverage_calibration(
                np.sqrt(err2), np.sqrt(var), units=units
            )
        else:
            import scipy.optimize

            def nll(p: np.ndarray) -> float:
                v = np.exp(2 * p[0]) * var + np.exp(2 * p[1])
                return float(np.sum(np.log(v) + err2 / v))

            p0 = np.array(
                [0.5 * np.log(max(ratio, eps)), np.log(np.sqrt(np.mean(err2)) / 10 + eps)]
            )
            p = scipy.optimize.minimize(nll, p0, method="Nelder-Mead").x
            self.alpha_, self.beta_ = float(np.exp(p[0])), float(np.exp(p[1]))
        return self
