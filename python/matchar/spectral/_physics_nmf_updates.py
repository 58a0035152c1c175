"""The update steps of :class:`PhysicsNMF` in NumPy: the Laplacian and log penalties on
the maps, the terms of the maps' majorising surrogate (whose per-pixel minimiser the C++
pass ``_core.spectral.physics_kl_pass``, ``cpp/src/spectral/physics.cpp``, computes), the
multiplicative W step with its simplex multiplier, and the stopping test."""

from __future__ import annotations

from typing import Any

import numpy as np


def neighbour_sums(A: np.ndarray, nav_shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(sum of the 4 (2-D) or 2 (1-D) image neighbours of each pixel, neighbour count).

    A is (N, K) with N = prod(nav_shape); returns float64 (N, K) and (N, 1).
    """
    if len(nav_shape) == 2:
        h, w = nav_shape
        a = A.reshape(h, w, -1).astype(np.float64)
        s = np.zeros_like(a)
        d = np.zeros((h, w, 1))
        s[1:] += a[:-1]
        s[:-1] += a[1:]
        s[:, 1:] += a[:, :-1]
        s[:, :-1] += a[:, 1:]
        d[1:] += 1
        d[:-1] += 1
        d[:, 1:] += 1
        d[:, :-1] += 1
        return s.reshape(A.shape), d.reshape(-1, 1)
    a = A.astype(np.float64)
    s = np.zeros_like(a)
    d = np.zeros((a.shape[0], 1))
    s[1:] += a[:-1]
    s[:-1] += a[1:]
    d[1:] += 1
    d[:-1] += 1
    return s, d


def laplacian_penalty(A: np.ndarray, nav_shape: tuple[int, ...]) -> float:
    """0.5 * sum_k A_k^T L A_k = 0.5 * sum over neighbour pairs (edges) of (a_i - a_j)^2."""
    if len(nav_shape) == 2:
        a = A.reshape(*nav_shape, -1).astype(np.float64)
        return 0.5 * float(((a[1:] - a[:-1]) ** 2).sum() + ((a[:, 1:] - a[:, :-1]) ** 2).sum())
    a = A.astype(np.float64)
    return 0.5 * float(((a[1:] - a[:-1]) ** 2).sum())


def surrogate_terms(
    A: np.ndarray,
    s: np.ndarray,
    nav_shape: tuple[int, ...],
    smoothness: float,
    sparsity: float,
    epsilon: float,
) -> tuple[np.ndarray, float]:
    """(beta (N, K) float64, q) of the maps surrogate at the current maps A (N, K).

    Per pixel the new maps minimise ``sum_k q/2 a_k^2 + beta_ik a_k - p_ik log a_k``
    (+ the simplex), where p is the KL (Jensen) numerator computed in the pass, and

    - ``beta = s_k`` (the component sums: the KL term),
    - ``+ sparsity / (A_ik + epsilon)`` (tangent of the concave log penalty),
    - ``- smoothness * ((sigma - deg_i) A_ik + sum_{j ~ i} A_jk)``, ``q = smoothness *
      sigma``: the Laplacian penalty ``a^T L a`` majorised with ``L <= sigma I``
      (sigma = 8 on the 4-neighbour grid, 4 on a chain: twice the largest degree).
    """
    beta = np.empty(A.shape, dtype=np.float64)
    beta[:] = s[None, :]
    q = 0.0
    if sparsity > 0:
        beta += sparsity / (A.astype(np.float64) + epsilon)
    if smoothness > 0:
        nb, deg = neighbour_sums(A, nav_shape)
        sigma = 8.0 if len(nav_shape) == 2 else 4.0
        beta -= smoothness * ((sigma - deg) * A + nb)
        q = smoothness * sigma
    return beta, q


def w_step(
    W: np.ndarray,
    G: np.ndarray,
    numerator: np.ndarray,
    colsum: np.ndarray,
    n_elements: int,
    simplex: bool,
    n_bisect: int = 60,
) -> np.ndarray:
    """Multiplicative KL update of the phase matrix W (E, K) from the pass statistics.

    ``components = (G W)^T`` so ``dKL/dW = G^T (1 colsum^T - numerator^T)``; the update is
    ``W <- W * (G^T numerator^T) / (G^T 1 colsum^T + nu)`` with ``nu_k`` (on the element
    rows only) such that each column's element part sums to 1 when ``simplex``.
    ``G`` must have the excluded channels' rows zeroed.
    """
    top = W * (G.T @ numerator.T)
    den = np.outer(G.sum(axis=0), colsum)
    den = np.where(den > 0, den, 1e-300)
    if not simplex:
        return top / den
    new = top / den
    # A phase whose element rows get no counts (no pixel of it holds any) has no simplex
    # solution: its element weights stay 0, i.e. a zero composition.
    live = (top[:n_elements] > 0).any(axis=0)
    if not live.all():
        out = new.copy()
        out[:n_elements, ~live] = 0.0
        if live.any():
            sub = w_step(W[:, live], G, numerator[live], colsum[live], n_elements, True, n_bisect)
            out[:, live] = sub
        return out
    t, d = top[:n_elements], den[:n_elements]
    # sum_e t_e / (d_e + nu) = 1: decreasing in nu > -min d.
    lo = np.max(t - d, axis=0)  # each term <= 1 there  => sum >= max term ... >= 1
    hi = np.max(n_elements * t - d, axis=0)
    dmin = d.min(axis=0)
    # strictly above -min d even where d is so small (a map of a few counts) that
    # -dmin + 1e-300 rounds to -dmin and t / (d + nu) would divide by zero
    lo = np.maximum(lo, -dmin + np.maximum(1e-300, 1e-12 * np.abs(dmin)))
    hi = np.maximum(hi, lo)

    def ratio(nu: np.ndarray) -> np.ndarray:
        den_nu = d + nu
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            r = np.where(t > 0, t / np.where(den_nu > 0, den_nu, 1e-300), 0.0)
        return np.where(np.isfinite(r), r, 1e300)

    for _ in range(n_bisect):
        mid = 0.5 * (lo + hi)
        tot = ratio(mid).sum(axis=0)
        big = tot > 1.0
        lo = np.where(big, mid, lo)
        hi = np.where(big, hi, mid)
    el = ratio(0.5 * (lo + hi))
    tot = el.sum(axis=0)
    new[:n_elements] = el / np.where(tot > 0, tot, 1.0)
    return new


def _stalled(hist: list[float], tol: float) -> bool:
    """The relative decrease of the objective between its last two evaluations < tol."""
    if tol <= 0 or len(hist) < 2:
        return False
    prev, cur = hist[-2], hist[-1]
    return abs(prev) > 0 and (prev - cur) / abs(prev) < tol


def da_log_sum(A: Any, eps: float) -> float:
    """sum log(A + eps) of a dask array, in float64."""
    import dask.array as da

    return float(da.log(A.astype(np.float64) + eps).sum().compute())
