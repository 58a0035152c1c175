"""Selection of a GP's sparse points among the training rows: farthest-point and CUR."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike
from sklearn.utils.extmath import randomized_svd

from .._validation import check_int
from ._inputs import _finite_rows
from ._kernels import PolynomialKernel, _check_kernel, _kernel_column, _kernel_diag


def _n_select(n_select: object, n: int) -> int:
    try:
        return check_int(n_select, "n_select", low=1, high=n)
    except ValueError:
        raise ValueError(
            f"n_select must be an integer between 1 and the number of rows ({n}), got {n_select!r}"
        ) from None


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
    return _greedy_farthest(diag, _kernel_column(kernel, X_), n_select, start)


def _greedy_farthest(
    diag: np.ndarray, column: Callable[[int], np.ndarray], n_select: int, start: int
) -> np.ndarray:
    """The greedy loop of :func:`farthest_point_sampling` from the kernel's diagonal (n,)
    and its columns ``column(s) -> k(X, X[s])`` (n,): from features, or read from a
    kernel matrix that is already computed (a full GP's)."""
    n = len(diag)
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
