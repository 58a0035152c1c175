"""Gram products and Cholesky factors of the sparse GP problem.

Both go blockwise above ``_LARGE_ORDER``, so that no BLAS call of the order at which
OpenBLAS's threaded DSYRK crashes is made.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.linalg

# OpenBLAS (0.3.31, as in the NumPy and SciPy wheels) crashes with 2 threads in DSYRK,
# and so in DPOTRF, on matrices of order >= ~16,000 (measured on a 2-core Haswell;
# OpenBLAS issues #2562, #2821). Above this order K_MN^T K_NM is accumulated by GEMM
# panels and Cholesky factors are computed blockwise (n_sparse of 20,000 must not
# take the interpreter down).
_LARGE_ORDER = 8192
#: Rows per panel of the blockwise factorisation (its temporaries: rows x block order).
_PANEL_ROWS = 2048


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
    r = _PANEL_ROWS  # rows per triangular solve and GEMM: bounded temporaries
    for k in range(0, n, b):
        e = min(n, k + b)
        B[k:e, k:e] = scipy.linalg.cholesky(B[k:e, k:e], lower=True, check_finite=False)
        if e == n:
            break
        B[k:e, e:] = 0.0
        Lkk = B[k:e, k:e]
        for i in range(e, n, r):
            B[i : i + r, k:e] = scipy.linalg.solve_triangular(
                Lkk, B[i : i + r, k:e].T, lower=True, check_finite=False
            ).T
        for j in range(e, n, b):
            stop = min(n, j + b)
            for i in range(j, n, r):
                B[i : i + r, j:stop] -= B[i : i + r, k:e] @ B[j:stop, k:e].T
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


#: Bytes of one float32 row panel of the kernel in :func:`_full_kernel`.
_PANEL_BYTES = 1 << 27


def _full_kernel(kernel: Callable, X: np.ndarray) -> np.ndarray:
    """``kernel(X, X)`` (n, n) as a symmetric float64 matrix, filled by row panels.

    Each panel ``kernel(X[a:b], X[:b])`` covers the lower triangle up to its own
    diagonal block (which is symmetrised) and is mirrored into the upper triangle, so
    every pair is computed once. Polynomial kernels are added block by block straight
    into the matrix: besides it, only one float32 panel of one block is held (no
    float64 panel, no kernel-sized temporary).
    """
    from ._kernels import _kernel_blocks, polynomial_kernel

    n = len(X)
    K = np.empty((n, n))
    blocks = _kernel_blocks(kernel)
    rows = max(1, min(n, _PANEL_BYTES // (4 * max(n, 1))))
    for a in range(0, n, rows):
        b = min(n, a + rows)
        out = K[a:b, :b]
        if blocks is None:
            out[...] = kernel(X[a:b], X[:b])
        else:
            for j, (w, cols, normalize) in enumerate(blocks):
                P = polynomial_kernel(
                    X[a:b, cols], X[:b, cols], zeta=kernel.zeta, normalize=normalize
                )
                P *= w
                if j == 0:
                    out[...] = P
                else:
                    out += P
                del P
        K[:a, a:b] = K[a:b, :a].T
        D = K[a:b, a:b]
        K[a:b, a:b] = 0.5 * (D + D.T)
    return K
