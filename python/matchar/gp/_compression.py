"""The low-rank form of a GP's mean for ζ = 2 polynomial kernels (``SparseGPR.compress``).

With ``k(x, y) = Σ_b w_b (x̂_b · ŷ_b)²`` a prediction is a quadratic form per column
block of x. These functions truncate its eigendecomposition and evaluate the truncated
forms, for the mean and for every committee member, with one GEMM per block.
"""

from __future__ import annotations

import numpy as np

from .. import _core
from .._threads import get_num_threads
from ._kernels import _blas_threads


def block_layout(kernel, n_features: int) -> tuple[np.ndarray, np.ndarray]:
    """(column offsets, weights) of the kernel's blocks: a :class:`MultiPolynomialKernel`'s
    own, or one block of all ``n_features`` columns with weight 1."""
    offsets = getattr(kernel, "_offsets", np.array([0, n_features]))
    return offsets, getattr(kernel, "weights", np.ones(1))


def low_rank_form(X_sparse, weights, n_points, tol, offsets, block_w, y_scale):
    """Eigen-truncated form of ``x -> Σ_b w_b x̂_bᵀ (Σ_j a_j ŷ_bj ŷ_bjᵀ) x̂_b`` over the
    first ``n_points`` rows ``ŷ_j`` of ``X_sparse`` (see ``SparseGPR.compress``): (bases,
    eigenvalues, bound over all inputs, largest error on the sparse points), errors in
    target units."""
    a = np.asarray(weights, dtype=np.float64)
    m = int(n_points)
    nb = len(block_w)
    bases, eigs, bound, sparse_err = [], [], 0.0, 0.0
    for b in range(nb):
        Y = np.asarray(X_sparse[:m, offsets[b] : offsets[b + 1]], dtype=np.float64)
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
        bases.append(np.ascontiguousarray(V[:, :r], dtype=X_sparse.dtype))
        eigs.append(lam[:r].copy())
        bound += scale * (np.abs(lam[r:]).max() if r < len(lam) else 0.0)
        sparse_err += scale * worst[r]
    return bases, eigs, bound, sparse_err


def inverse_block_norms(X: np.ndarray, offsets: np.ndarray) -> list[np.ndarray]:
    """``1 / |x_b|²`` per row and kernel block (1 for zero rows), float64. float32 rows
    are summed in float32 (a vectorised pass, ~1e-6 relative: far below the
    compression's tolerance) instead of being cast to float64 first (5x slower)."""
    out = []
    for b in range(len(offsets) - 1):
        Xb = X[:, offsets[b] : offsets[b + 1]]
        if Xb.dtype == np.float32:
            norms = np.einsum("ij,ij->i", Xb, Xb).astype(np.float64)
        else:
            norms = np.einsum("ij,ij->i", Xb, Xb, dtype=np.float64)
        out.append(1.0 / np.where(norms > 0, norms, 1.0))
    return out


def quadratic_form(
    X: np.ndarray,
    basis: list,
    eigenvalues: list,
    offsets: np.ndarray,
    block_w: np.ndarray,
    inv_norms: list[np.ndarray],
) -> np.ndarray:
    """``Σ_b w_b Σ_k λ_bk (v_bk · x̂_b)²`` per row (before ``y_scale_``)."""
    f = np.zeros(len(X))
    with _blas_threads(get_num_threads()):  # matchar's thread setting, as the kernels
        for b, (V, lam) in enumerate(zip(basis, eigenvalues)):
            if V.shape[1] == 0:
                continue
            Xb = np.asarray(X[:, offsets[b] : offsets[b + 1]], dtype=V.dtype)
            Z = Xb @ V  # (n, r): BLAS GEMM
            f += block_w[b] * (np.square(Z, dtype=np.float64) @ lam) * inv_norms[b]
    return f


def stack_committee(basis: list, eigenvalues: list, n_blocks: int) -> list:
    """Per block, the committee members' bases side by side, their eigenvalues and the
    column ranges of each member: the layout :func:`committee_quadratic_forms` reads."""
    stacked = []
    for b in range(n_blocks):
        bases = [member[b] for member in basis]
        eigs = [member[b] for member in eigenvalues]
        ends = np.cumsum([0] + [v.shape[1] for v in bases])
        stacked.append((np.ascontiguousarray(np.hstack(bases)), eigs, ends))
    return stacked


def committee_quadratic_forms(
    X: np.ndarray,
    stacked: list,
    n_members: int,
    offsets: np.ndarray,
    block_w: np.ndarray,
    inv_norms: list[np.ndarray],
) -> np.ndarray:
    """Every compressed committee member's quadratic form, (n_members, n), before
    ``y_scale_``: per block one GEMM with the members' bases side by side (``stacked``
    from :func:`stack_committee`)."""
    out = np.zeros((n_members, len(X)))
    with _blas_threads(get_num_threads()):
        for b, (V, eigs, ends) in enumerate(stacked):
            if V.shape[1] == 0:
                continue
            Xb = np.asarray(X[:, offsets[b] : offsets[b + 1]], dtype=V.dtype)
            Z2 = np.square(Xb @ V, dtype=np.float64)  # (n, Σ r_i): one GEMM
            inv = block_w[b] * inv_norms[b]
            for i, lam in enumerate(eigs):
                out[i] += (Z2[:, ends[i] : ends[i + 1]] @ lam) * inv
    return out
