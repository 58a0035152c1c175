"""Dense NumPy references of the PhysicsNMF kernels (float64, everything materialised)."""

from __future__ import annotations

import numpy as np

EPS = 1.1920928955078125e-07  # the engine's floor of W H where a count is divided by it


def roots(p, beta, q):
    """Non-negative minimiser of q/2 a^2 + beta a - p log a, elementwise."""
    p = np.asarray(p, dtype=float)
    beta = np.asarray(beta, dtype=float)
    if q == 0:
        with np.errstate(divide="ignore", invalid="ignore"):
            a = np.where(p > 0, p / beta, 0.0)
        return np.where(np.isfinite(a) & (a > 0), a, 0.0)
    disc = np.sqrt(beta**2 + 4 * q * p)
    with np.errstate(divide="ignore", invalid="ignore"):
        pos = np.where(beta + disc > 0, 2 * p / (beta + disc), 0.0)
    return np.where(beta >= 0, pos, (disc - beta) / (2 * q))


def simplex_rows(p, beta, q, prev):
    """Per row, a = roots(p, beta + nu, q) with sum a = 1 (nu by a root finder)."""
    from scipy.optimize import brentq

    out = np.empty_like(p)
    for i in range(p.shape[0]):
        f = lambda nu, i=i: roots(p[i], beta[i] + nu, q).sum() - 1.0  # noqa: E731
        if not (p[i] > 0).any() and q == 0:
            out[i] = prev[i]
            continue
        lo, hi = -1.0, 1.0
        while f(lo) < 0:
            lo *= 2
        while f(hi) > 0:
            hi *= 2
        nu = brentq(f, lo, hi, xtol=1e-14, rtol=1e-14)
        a = roots(p[i], beta[i] + nu, q)
        out[i] = a / a.sum() if a.sum() > 0 else prev[i]
    return out


def physics_pass(X, A, H, beta, q, simplex, pixel_mask=None, channel_mask=None):
    """(loss of (A, H), A_new, numerator (K, C), colsum (K,)) of one surrogate KL pass.

    Masks are 'included' (True = in the fit), as the kernel takes them.
    """
    X = np.asarray(X, dtype=float)
    A = np.asarray(A, dtype=float)
    H = np.asarray(H, dtype=float)
    N, C = X.shape
    pm = np.ones(N, bool) if pixel_mask is None else np.asarray(pixel_mask, bool)
    cm = np.ones(C, bool) if channel_mask is None else np.asarray(channel_mask, bool)
    WH = np.maximum(A @ H, EPS)
    on = (X > 0) & cm[None, :]
    R = np.where(on, X / WH, 0.0)
    xlog = np.where(on, X * np.log(np.where(on, X, 1.0) / WH), 0.0)
    loss = (xlog - np.where(on, X, 0.0)).sum(axis=1)[pm].sum()
    loss += (A[pm].sum(axis=0) * H[:, cm].sum(axis=1)).sum()
    P = A * (R @ H.T)
    A_new = simplex_rows(P, beta, q, A) if simplex else roots(P, beta, q)
    WH2 = np.maximum(A_new @ H, EPS)
    R2 = np.where(X > 0, X / WH2, 0.0)
    num = A_new[pm].T @ R2[pm]
    colsum = A_new[pm].sum(axis=0)
    return loss, A_new, num, colsum


def laplacian_matrix(nav_shape):
    """Graph Laplacian of the 4-neighbour grid (or a chain), dense."""
    if len(nav_shape) == 1:
        n = nav_shape[0]
        Adj = np.zeros((n, n))
        i = np.arange(n - 1)
        Adj[i, i + 1] = Adj[i + 1, i] = 1
    else:
        h, w = nav_shape
        n = h * w
        Adj = np.zeros((n, n))
        for r in range(h):
            for c in range(w):
                j = r * w + c
                if c + 1 < w:
                    Adj[j, j + 1] = Adj[j + 1, j] = 1
                if r + 1 < h:
                    Adj[j, j + w] = Adj[j + w, j] = 1
    return np.diag(Adj.sum(1)) - Adj


def objective(X, A, H, L, smoothness, sparsity, eps):
    """KL(X || A H) + smoothness/2 tr(A^T L A) + sparsity sum log(A + eps), dense."""
    X = np.asarray(X, float)
    WH = np.maximum(A @ H, EPS)
    on = X > 0
    kl = np.where(on, X * np.log(np.where(on, X, 1) / WH) - X, 0).sum() + WH.sum()
    if smoothness > 0:
        kl += 0.5 * smoothness * np.trace(A.T @ L @ A)
    if sparsity > 0:
        kl += sparsity * np.log(A + eps).sum()
    return kl


def physics_nmf_iterations(X, A, W, G, nav_shape, n_iter, smoothness, sparsity, eps, simplex, n_el):
    """The whole PhysicsNMF iteration in dense NumPy (no masks): returns A, W, objectives."""
    L = laplacian_matrix(nav_shape) if smoothness > 0 else None
    sigma = 8.0 if len(nav_shape) == 2 else 4.0
    deg = np.diag(L)[:, None] if smoothness > 0 else None
    objs = []
    for _ in range(n_iter):
        H = (G @ W).T
        objs.append(objective(X, A, H, L, smoothness, sparsity, eps))
        s = H.sum(axis=1)
        beta = np.tile(s, (A.shape[0], 1))
        q = 0.0
        if sparsity > 0:
            beta = beta + sparsity / (A + eps)
        if smoothness > 0:
            nb = (np.diag(deg[:, 0]) - L) @ A
            beta = beta - smoothness * ((sigma - deg) * A + nb)
            q = smoothness * sigma
        _, A, num, colsum = physics_pass(X, A, H, beta, q, simplex == "H")
        top = W * (G.T @ num.T)
        den = np.outer(G.sum(0), colsum)
        if simplex == "W":
            from scipy.optimize import brentq

            new = top / den
            for k in range(W.shape[1]):
                t, d = top[:n_el, k], den[:n_el, k]
                nu = brentq(
                    lambda v, t=t, d=d: (t / (d + v)).sum() - 1,
                    (t - d).max(),
                    1e12,
                    xtol=1e-14,
                    rtol=1e-14,
                )
                new[:n_el, k] = t / (d + nu)
                new[:n_el, k] /= new[:n_el, k].sum()
            W = new
        else:
            W = top / den
    H = (G @ W).T
    objs.append(objective(X, A, H, L, smoothness, sparsity, eps))
    return A, W, np.array(objs)
