"""Initialisations of :class:`PhysicsNMF` (``init="kmeans"`` and ``"vertex"``): spectra
summed over pixel bins, their element fractions by Poisson regression on G, and W's
starting columns from clusters or vertices of those fractions."""

from __future__ import annotations

import numpy as np

from ._input import SpectrumMatrix


def _binned_spectra(data: SpectrumMatrix, pm, b: int = 4):
    """(bin label per pixel (N,), summed spectra (n_bins, C) float64, pixel totals (N,))."""
    import scipy.sparse as sparse

    N, C = data.shape
    nav = data.nav_shape
    idx = np.arange(N)
    if len(nav) == 2:
        w = nav[1]
        r, c = np.divmod(idx, w)
        labels = (r // b) * ((w + b - 1) // b) + c // b
    else:
        labels = idx // (b * b)
    n_bins = int(labels.max()) + 1
    weights = np.ones(N) if pm is None else pm.astype(np.float64)
    S = sparse.csr_matrix((weights, (labels, idx)), shape=(n_bins, N))
    X = data.X
    if data.sparse:
        binned = np.asarray((S @ X).todense(), dtype=np.float64)
        totals = np.asarray(X.sum(axis=1)).reshape(-1)
    else:
        binned = np.zeros((n_bins, C))
        totals = np.empty(N)
        step = max(1, (1 << 22) // max(C, 1))
        for i in range(0, N, step):
            chunk = np.asarray(X[i : i + step], dtype=np.float32)
            binned += S[:, i : i + step] @ chunk
            totals[i : i + step] = chunk.sum(axis=1, dtype=np.float64)
    return labels, binned, totals


def _vertex_init(data, Gm, K, n_el, pm, rng):
    """(maps, W, totals) from the K purest bins (successive projections on element
    fractions, Gillis & Vavasis 2014), or None. Suits continuous mixtures."""
    labels, binned, totals = _binned_spectra(data, pm)
    counts = binned.sum(axis=1)
    ok = counts >= 0.5 * np.median(counts[counts > 0]) if (counts > 0).any() else counts > 0
    if ok.sum() < 2 * K:
        return None
    Y = binned[ok]
    coef = _poisson_regression_rows(Y, Gm)
    el = coef[:, :n_el]
    frac = el / np.maximum(el.sum(axis=1, keepdims=True), 1e-300)
    R = frac.copy()
    picks = []
    for _ in range(K):
        j = int(np.argmax((R * R).sum(axis=1)))
        picks.append(j)
        u = R[j] / max(np.linalg.norm(R[j]), 1e-300)
        R -= np.outer(R @ u, u)
    W = np.empty((Gm.shape[1], K))
    for k, j in enumerate(picks):
        # the vertex bin and its 2 nearest neighbours in fraction space (less noise)
        near = np.argsort(((frac - frac[j]) ** 2).sum(axis=1))[:3]
        W[:, k] = _poisson_regression(Y[near].sum(axis=0), Gm, rng)
    # memberships: non-negative least squares of each bin's fractions on the vertices
    from scipy.optimize import nnls

    V = np.stack([frac[j] for j in picks], axis=1)
    coef_all = _poisson_regression_rows(binned, Gm)[:, :n_el]
    fr_all = coef_all / np.maximum(coef_all.sum(axis=1, keepdims=True), 1e-300)
    memb = np.array([nnls(V, f)[0] for f in fr_all]) + 0.02
    memb /= memb.sum(axis=1, keepdims=True)
    frac_maps = memb[labels]
    return frac_maps, W, totals


def _kmeans_init(data, Gm, K, n_el, pm, rng):
    """(maps (N, K) summing to 1, W (E, K), pixel totals (N,)) from k-means on the element
    fractions of binned spectra, or None."""
    from sklearn.cluster import KMeans

    labels, binned, totals = _binned_spectra(data, pm)
    counts = binned.sum(axis=1)
    ok = counts > 0
    if ok.sum() < 2 * K:
        return None
    coef = _poisson_regression_rows(binned[ok], Gm)
    el = coef[:, :n_el]
    frac = el / np.maximum(el.sum(axis=1, keepdims=True), 1e-300)
    km = KMeans(K, n_init=4, random_state=int(rng.integers(2**31)))
    assign = km.fit_predict(frac, sample_weight=counts[ok])
    if len(np.unique(assign)) < K:
        return None
    W = np.empty((Gm.shape[1], K))
    for k in range(K):
        W[:, k] = _poisson_regression(binned[ok][assign == k].sum(axis=0), Gm, rng)
    bin_cluster = np.full(binned.shape[0], -1)
    bin_cluster[np.flatnonzero(ok)] = assign
    member = bin_cluster[labels]
    frac_maps = np.full((labels.size, K), 0.1 / K)
    has = member >= 0
    frac_maps[np.flatnonzero(has), member[has]] += 0.9
    frac_maps /= frac_maps.sum(axis=1, keepdims=True)
    return frac_maps, W, totals


def _poisson_regression_rows(Y: np.ndarray, G: np.ndarray, n_iter: int = 60) -> np.ndarray:
    """Row-wise non-negative Poisson regression Y (B, C) ~ coef (B, E) G^T (an init)."""
    used = G.sum(axis=1) > 0
    Y, G = Y[:, used], G[used]
    col = np.maximum(G.sum(axis=0), 1e-300)
    coef = np.maximum(Y.sum(axis=1, keepdims=True), 1e-12) / G.shape[1] / col[None, :]
    for _ in range(n_iter):
        f = np.maximum(coef @ G.T, 1e-300)
        coef *= ((Y / f) @ G) / col[None, :]
    return coef


def _poisson_regression(y: np.ndarray, G: np.ndarray, rng, n_iter: int = 500) -> np.ndarray:
    """Non-negative c minimising KL(y || G c) by multiplicative updates (E,)."""
    col = G.sum(axis=0)
    c = np.where(col > 0, max(float(y.sum()), 1e-12) / G.shape[1] / np.maximum(col, 1e-300), 0.0)
    c *= 1.0 + 0.01 * rng.random(c.shape)
    for _ in range(n_iter):
        f = np.maximum(G @ c, 1e-300)
        c *= (G.T @ (y / f)) / np.maximum(col, 1e-300)
    return c
