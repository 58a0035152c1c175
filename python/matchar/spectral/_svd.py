"""Randomized SVD of a weighted, centred spectrum image computed in pixel blocks.

The matrix ``A = diag(r) X diag(c) - 1 mean^T`` is never formed: every pass over X goes
through the C++ kernels, which weight each block of pixels as it is read. A subspace
iteration on ``A^T A`` (one pass per power iteration: each block's ``A V`` stays in cache
for ``A^T (A V)``) is followed by a Rayleigh-Ritz step that reuses the last pass.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.linalg
from sklearn.utils import check_random_state
from threadpoolctl import threadpool_limits

from .. import _core


def gram_apply(
    X: np.ndarray,
    r: np.ndarray | None,
    c: np.ndarray | None,
    V: np.ndarray,
    mean: np.ndarray | None,
    dtype: np.dtype,
) -> np.ndarray:
    """``A^T A V`` (float64, C x L) in one blocked pass over X."""
    Vd = np.ascontiguousarray(V, dtype=np.dtype(dtype))
    offset = None if mean is None else np.ascontiguousarray(mean @ V, dtype=np.float64)
    Z, s = _core.spectral.weighted_gram_apply(X, r, c, Vd, offset)
    if mean is not None:
        Z -= np.outer(mean, s)
    return Z


def randomized_svd(
    X: np.ndarray,
    n_components: int,
    *,
    r: np.ndarray | None = None,
    c: np.ndarray | None = None,
    mean: np.ndarray | None = None,
    n_oversamples: int = 10,
    n_iter: int = 4,
    random_state: Any = None,
    dtype: Any = np.float64,
) -> tuple[np.ndarray, np.ndarray]:
    """Leading singular values (k,) and right singular vectors (k, C) of the implicit A.

    ``n_iter`` passes of subspace iteration on A^T A plus one Rayleigh-Ritz pass; the
    extra memory is O(C x (k + n_oversamples)) plus the kernels' per-thread blocks.
    """
    return randomized_svd_gram(
        lambda V: gram_apply(X, r, c, V, mean, dtype),
        X.shape,
        n_components,
        n_oversamples=n_oversamples,
        n_iter=n_iter,
        random_state=random_state,
    )


def _finite(G: np.ndarray) -> np.ndarray:
    """G itself, or a ValueError when the blocked products overflowed (values of X so
    large that squares of them exceed the float range of the products)."""
    if not np.isfinite(G).all():
        raise ValueError(
            "X is too large: the products X^T X V of the randomized SVD overflow (inf/NaN). "
            "Divide X by a constant (the components are the same) or compute in float64 "
            "(dtype='float64')"
        )
    return G


def randomized_svd_gram(
    gram: Callable[[np.ndarray], np.ndarray],
    shape: tuple[int, int],
    n_components: int,
    *,
    n_oversamples: int = 10,
    n_iter: int = 4,
    random_state: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`randomized_svd` given only ``gram(V) = A^T A V`` (C x L, float64).

    The passes may run anywhere (e.g. summed over dask chunks); the random start and the
    small dense steps are the same as for an in-memory A.
    """
    N, C = shape
    L = min(n_components + n_oversamples, N, C)
    rng = check_random_state(random_state)
    # The C x L orthonormalisations are tiny: a multithreaded BLAS only fights the
    # OpenMP threads of the passes (measured: 160 ms instead of < 1 ms per QR).
    with threadpool_limits(1, user_api="blas"):
        V = scipy.linalg.qr(rng.standard_normal((C, L)), mode="economic")[0]
    for _ in range(n_iter):
        G = _finite(gram(V))
        with threadpool_limits(1, user_api="blas"):
            V = scipy.linalg.qr(G, mode="economic")[0]
    G = _finite(gram(V))
    M = V.T @ G  # (A V)^T (A V): its eigenvalues are the squared singular values
    M = 0.5 * (M + M.T)
    evals, U = np.linalg.eigh(M)
    order = np.argsort(evals)[::-1][:n_components]
    S = np.sqrt(np.maximum(evals[order], 0.0))
    Vt = (V @ U[:, order]).T
    # scikit-learn's sign convention: the largest |entry| of each component is positive.
    idx = np.argmax(np.abs(Vt), axis=1)
    Vt *= np.sign(Vt[np.arange(Vt.shape[0]), idx])[:, None]
    return S, Vt
