"""The tasks of the dask path (``_dask.py``): top-level functions that travel to the workers
by pickle and run matchar's C++ passes on one chunk each (``_core.spectral``:
``nmf_kl_stats``, ``nmf_hals_stats``, ``physics_kl_pass``, the weighted sums and products
of the PCA), each chunk validated once; and the reductions of their statistics."""

from __future__ import annotations

import threading
import weakref

import numpy as np

from .. import _core
from .._threads import task_threads
from ._input import as_spectrum_matrix

_EPS = float(np.finfo(np.float32).eps)
_TINY = float(np.finfo(np.float64).eps)


class DaskFailure(RuntimeError):
    """The dask computation of an iteration failed (e.g. a worker was lost)."""


def _unpair(a):
    """A factor piece or the components as a task received them: the array itself, or
    the first item of the (array, statistics) result of the task that made it (the next
    iteration's tasks take those results whole, with no getter task in between)."""
    return a[0] if isinstance(a, tuple) else a


def _al(a):
    """Arrays unpickled from a message may be unaligned: the kernels need aligned ones."""
    return None if a is None else np.require(_unpair(a), requirements=["A", "C"])


# Chunks already validated in this worker, keyed by the id of the chunk object, each with
# its aligned copy when the chunk itself is misaligned (None: the chunk is used as it is).
# An entry is dropped when its chunk object is freed (weakref callback): an iterative fit
# over a persisted cube validates (and aligns) every chunk once, not on every iteration.
_CHECKED: dict[int, tuple[weakref.ref, np.ndarray | None]] = {}
_CHECKED_LOCK = threading.Lock()


def _chunk_matrix(x: np.ndarray) -> np.ndarray:
    """Validate one chunk like in-memory input (NaN/inf/negative -> ValueError).

    A chunk deserialised from a message (e.g. a cube scattered from the client, then
    persisted) can sit at an odd address while C-contiguous; the kernels need aligned
    data, and ``np.ascontiguousarray`` does not fix that: such a chunk is copied. Copying
    or scanning 10^7-10^8 values on every iteration would cost as much as the pass itself,
    so both happen once per chunk object: dask chunks are immutable.
    """
    if not isinstance(x, np.ndarray):
        return as_spectrum_matrix(x, "X (a dask chunk)", allow_sparse=False).X
    key = id(x)
    with _CHECKED_LOCK:
        hit = _CHECKED.get(key)
    if hit is not None and hit[0]() is x:
        return x if hit[1] is None else hit[1]
    src = x if x.flags.aligned else np.require(x, requirements=["A", "C"])
    X = as_spectrum_matrix(src, "X (a dask chunk)", allow_sparse=False).X
    if X is not x and np.may_share_memory(X, x):
        return X  # a view would keep the chunk alive from the cache: not cached
    try:
        ref = weakref.ref(x, lambda _r, k=key: _CHECKED.pop(k, None))
    except TypeError:  # pragma: no cover - ndarrays support weak references
        return X
    with _CHECKED_LOCK:
        _CHECKED[key] = (ref, None if X is x else X)
    return X


@task_threads
def _task_sums(x, r, c):
    X = _chunk_matrix(x)
    rows, cols, sumsq = _core.spectral.weighted_sums(X, _al(r), _al(c))
    return rows, cols, sumsq, X.shape[0]


@task_threads
def _task_gram(x, r, c, V, offset):
    X = _chunk_matrix(x)
    Z, s = _core.spectral.weighted_gram_apply(X, _al(r), _al(c), _al(V), _al(offset))
    return Z, s, X.shape[0]


@task_threads
def _task_project(x, r, c, V, offset):
    return _core.spectral.weighted_project(_chunk_matrix(x), _al(r), _al(c), _al(V), _al(offset))


def _components(H, prev):
    """The components a chunk task works with: an array, the (H, loss) result of a
    reduction task, or the list of the previous iteration's (maps, (statistics, H))
    results of every chunk, reduced here (each task of the iteration computes the same
    H, summing the chunks in the same order)."""
    if isinstance(H, list):
        return _reduce_pairs(prev, *H)[0]
    return _al(H)


@task_threads
def _task_kl(x, W, H, prev, pm, cm, with_loss):
    """One chunk's KL pass: (W_new, ((loss, numerator, colsum, rows), H used))."""
    X = _chunk_matrix(x)
    H = _components(H, prev)
    value, W_new, num, colsum = _core.spectral.nmf_kl_stats(
        X, _al(W), H, _al(pm), _al(cm), with_loss
    )
    return W_new, ((float(value), num, colsum, X.shape[0]), H)


@task_threads
def _task_frobenius(x, W, H, prev, pm, cm, sweeps):
    """One chunk's HALS pass: (W_new, ((sum x², WᵀX, WᵀW, rows), H used))."""
    X = _chunk_matrix(x)
    H = _components(H, prev)
    sumsq, W_new, WtX, WtW = _core.spectral.nmf_hals_stats(X, _al(W), H, _al(pm), _al(cm), sweeps)
    return W_new, ((float(sumsq), WtX, WtW, X.shape[0]), H)


def _gather_rows(lo, hi, starts, *parts):
    """Rows [lo, hi) of a factor from the consecutive pieces ``parts`` starting at
    ``starts`` (global row indices)."""
    out = [
        np.asarray(_unpair(p))[max(lo - s0, 0) : max(min(hi - s0, len(_unpair(p))), 0)]
        for s0, p in zip(starts, parts)
    ]
    return np.concatenate(out, axis=0)


def _grid_neighbours(A, prev, nxt, start, nav_shape):
    """Neighbour sums (n, K) float64 and counts (n, 1) of the chunk rows [start, start+n)
    of the flattened pixel grid, with the rows just before (``prev``) and after (``nxt``)
    the chunk — the same sums as PhysicsNMF's in-memory ``neighbour_sums``."""
    n = A.shape[0]
    ext = np.concatenate([prev, A, nxt], axis=0).astype(np.float64)
    e0 = start - len(prev)
    N = int(np.prod(nav_shape))
    w = nav_shape[1] if len(nav_shape) == 2 else N
    g = np.arange(start, start + n)
    s = np.zeros((n, A.shape[1]))
    d = np.zeros((n, 1))
    steps = [(-1, (g % w) > 0), (1, (g % w) < w - 1)]
    if len(nav_shape) == 2:
        steps += [(-w, g - w >= 0), (w, g + w < N)]
    for step, ok in steps:  # order as neighbour_sums: up, down, left, right
        s[ok] += ext[g[ok] + step - e0]
        d[ok] += 1
    return s, d


def _grid_penalty(A, nxt, start, nav_shape):
    """0.5 Σ (a_i - a_j)² over the grid edges from the chunk's pixels to the right and
    downwards (each edge counted once across chunks)."""
    n = A.shape[0]
    ext = np.concatenate([A, nxt], axis=0).astype(np.float64)
    N = int(np.prod(nav_shape))
    w = nav_shape[1] if len(nav_shape) == 2 else N
    g = np.arange(start, start + n)
    total = 0.0
    steps = [(1, ((g % w) < w - 1) & (g + 1 < N))]
    if len(nav_shape) == 2:
        steps.append((w, g + w < N))
    for step, ok in steps:
        i = g[ok] - start
        total += float(((ext[i] - ext[i + step]) ** 2).sum())
    return 0.5 * total


@task_threads
def _task_physics(x, A, H, s, sparsity, eps, simplex_h, pm, cm, with_loss, lap=None):
    """PhysicsNMF's pass over one chunk: the maps update (with the surrogates of the
    sparsity and Laplacian penalties and the per-pixel simplex when asked) and the KL
    statistics of the components, plus the chunk's penalties of the input maps.
    ``lap``: (smoothness, rows before, rows after, first row, nav_shape) or None."""
    X = _chunk_matrix(x)
    A, H = _al(A), _al(H)
    lappen = 0.0
    if s is None:
        value, A_new, num, colsum = _core.spectral.nmf_kl_stats(
            X, A, H, _al(pm), _al(cm), with_loss
        )
    else:  # surrogate_terms of PhysicsNMF, chunk by chunk
        beta = np.empty(A.shape, dtype=np.float64)
        beta[:] = s[None, :]
        q = 0.0
        if sparsity > 0:
            beta += sparsity / (A.astype(np.float64) + eps)
        if lap is not None:
            smoothness, prev, nxt, start, nav_shape = lap
            nb, deg = _grid_neighbours(A, prev, nxt, start, nav_shape)
            sigma = 8.0 if len(nav_shape) == 2 else 4.0
            beta -= smoothness * ((sigma - deg) * A + nb)
            q = smoothness * sigma
            if with_loss:
                lappen = _grid_penalty(A, nxt, start, nav_shape)
        value, A_new, num, colsum = _core.spectral.physics_kl_pass(
            X, A, H, beta, q, simplex_h, _al(pm), _al(cm), with_loss
        )
    logpen = 0.0
    if with_loss and sparsity > 0:
        logpen = float(np.log(A.astype(np.float64) + eps).sum())
    return A_new, (float(value), logpen, num, colsum, X.shape[0], lappen)


def _task_penalty(A, nxt, start, nav_shape):
    return _grid_penalty(np.asarray(_unpair(A)), nxt, start, nav_shape)


@task_threads
def _task_w_only(x, W, H, loss, with_loss):
    X = _chunk_matrix(x)
    if loss == "kl":  # the loss of the input state, as nmf_update's
        value, W_new, _, _ = _core.spectral.nmf_kl_stats(X, _al(W), _al(H), None, None, with_loss)
    else:  # the loss of (W_new, H)
        value, W_new, _ = _core.spectral.nmf_update(
            loss, X, _al(W), _al(H), None, None, False, True
        )
    return W_new, (float(value), X.shape[0])


class ChunkActor:
    """One worker's chunks of a dask fit, kept on that worker for the fit (a
    ``dask.distributed`` actor; see ``_dask.ChunkActors``): the PCA's sums and Gram
    passes, and an NMF's maps between iterations.

    Each :meth:`step` runs the C++ pass over the chunks with the components sent by the
    client and returns their statistics; the maps stay here, in the state after the last
    step and the one before it (a client interrupted between sending a step and reading
    its result still asks for the maps that go with its components).
    ``index``: the global chunk numbers of ``chunks``."""

    def __init__(self, index, *chunks) -> None:
        self.index = [int(i) for i in index]
        self.X = [_chunk_matrix(x) for x in chunks]
        self.W: list = []
        self.previous: list | None = None
        self.pm: list = [None] * len(self.X)
        self.cm = None
        self.version = -1

    @task_threads
    def sums(self, r, c) -> list:
        """[(chunk number, (row sums, column sums, sum of squares, rows))] of
        diag(r) X diag(c), ``r`` given per chunk here (or None)."""
        r = r or [None] * len(self.X)
        c = _al(c)
        return [
            (j, (*_core.spectral.weighted_sums(X, _al(rr), c), X.shape[0]))
            for j, X, rr in zip(self.index, self.X, r)
        ]

    @task_threads
    def gram(self, r, c, V, offset) -> list:
        """[(chunk number, (A^T A V, column sums of A V, rows))] as ``_task_gram``."""
        r = r or [None] * len(self.X)
        c, V, offset = _al(c), _al(V), _al(offset)
        return [
            (j, (*_core.spectral.weighted_gram_apply(X, _al(rr), c, V, offset), X.shape[0]))
            for j, X, rr in zip(self.index, self.X, r)
        ]

    def set_maps(self, maps: list, pm: list, cm) -> bool:
        """Start an NMF: the maps (N_chunk, K) and pixel-mask slices of the chunks here."""
        if len(maps) != len(self.X):
            raise DaskFailure(f"{len(maps)} maps for {len(self.X)} chunks on a worker")
        self.W = [_al(w) for w in maps]
        self.pm = [_al(p) for p in (pm or [None] * len(self.X))]
        self.cm = _al(cm)
        self.previous = None
        self.version = 0
        return True

    @task_threads
    def step(self, loss: str, H, version: int, with_loss: bool, sweeps: int) -> list:
        """One NMF pass over every chunk: [(chunk number, statistics)] as the chunk tasks'
        (KL: loss, numerator, column sums, rows; Frobenius: sum x², WᵀX, WᵀW, rows)."""
        if version != self.version:
            raise DaskFailure(
                f"the maps on a worker are at iteration {self.version}, not {version}"
            )
        H = _al(H)
        new, out = [], []
        for i, X in enumerate(self.X):
            if loss == "kl":
                value, W_new, num, colsum = _core.spectral.nmf_kl_stats(
                    X, self.W[i], H, self.pm[i], self.cm, with_loss
                )
                stats = (float(value), num, colsum, X.shape[0])
            else:
                sumsq, W_new, WtX, WtW = _core.spectral.nmf_hals_stats(
                    X, self.W[i], H, self.pm[i], self.cm, int(sweeps)
                )
                stats = (float(sumsq), WtX, WtW, X.shape[0])
            new.append(W_new)
            out.append((self.index[i], stats))
        self.previous, self.W = self.W, new  # only once every chunk is done
        self.version += 1
        return out

    def maps(self, i: int, version: int) -> np.ndarray:
        """The maps of the i-th chunk held here after step ``version``."""
        if version == self.version:
            return self.W[i]
        if version == self.version - 1 and self.previous is not None:
            return self.previous[i]
        raise DaskFailure(f"the maps of iteration {version} are no longer on the worker")

    @task_threads
    def deviance(self, H, version: int) -> list:
        """[(chunk number, per-pixel Poisson deviance)] of the maps after step ``version``."""
        H = _al(H)
        return [
            (j, _core.spectral.poisson_deviance(X, self.maps(i, version), H, self.pm[i], self.cm))
            for i, (j, X) in enumerate(zip(self.index, self.X))
        ]


def _local_actor(key: str) -> ChunkActor:
    from distributed import get_worker

    return get_worker().state.actors[key]


def _actor_maps(key: str, i: int, version: int) -> np.ndarray:
    """A task, run on the worker of the actor ``key`` while that actor is idle, that copies
    the i-th chunk's maps out of it into the worker's memory (no transfer)."""
    return _local_actor(key).maps(i, version)


def _actor_set_maps(key: str, pm: list, cm, *maps) -> bool:
    """A task, run on the worker of the idle actor ``key``, that hands it maps held by the
    cluster (``maps``: futures, resolved by dask; local ones are not copied)."""
    return _local_actor(key).set_maps([_unpair(w) for w in maps], pm, cm)


def _check_total(counts, n_total: int, what: str) -> None:
    got = int(sum(counts))
    if got != n_total:
        raise DaskFailure(
            f"{what}: the chunks covered {got} pixels instead of {n_total}; refusing to "
            "return a result computed from part of the data"
        )


def _reduce(spec, *results):
    """(H_new, loss) from every chunk's (statistics, H used) of one iteration.
    ``spec``: ("kl", N, None, 1) or ("frobenius", N, channel mask, sweeps)."""
    stats, H = [r[0] for r in results], results[0][1]
    if spec[0] == "kl":
        return _reduce_kl(H, spec[1], *stats)
    return _reduce_frobenius(H, spec[2], spec[3], spec[1], *stats)


def _reduce_pairs(spec, *pairs):
    """:func:`_reduce` of the chunk tasks' whole (maps, (statistics, H)) results."""
    return _reduce(spec, *[p[1] for p in pairs])


def _reduce_kl(H, n_total, *stats):
    """The KL components update from the chunks' statistics: (H_new, loss)."""
    _check_total([s[3] for s in stats], n_total, "an NMF iteration")
    H = _al(H)
    num = np.sum([s[1] for s in stats], axis=0)
    colsum = np.sum([s[2] for s in stats], axis=0)
    den = np.where(colsum == 0, _EPS, colsum)
    # As kl_update: the quotient rounded to the factor dtype, then the product.
    H_new = H * (num / den[:, None]).astype(H.dtype)
    H_new[H_new < _TINY] = 0
    return H_new, float(sum(s[0] for s in stats))


def _reduce_frobenius(H, cm, sweeps, n_total, *stats):
    """``sweeps`` HALS sweeps of the columns of H from the chunks' statistics (as
    hals_update's H half): (H_new, the loss of (W_new, H_new))."""
    _check_total([s[3] for s in stats], n_total, "an NMF iteration")
    H = _al(H)
    sumsq = sum(s[0] for s in stats)
    WtX = np.sum([s[1] for s in stats], axis=0)  # K x C
    WtW = np.sum([s[2] for s in stats], axis=0)  # K x K
    Hd = H.astype(np.float64)
    for _ in range(sweeps):
        for k in range(Hd.shape[0]):  # coordinate k of every column at once
            if WtW[k, k] != 0:
                Hd[k] = np.maximum(Hd[k] - (WtW[k] @ Hd - WtX[k]) / WtW[k, k], 0.0)
    H_new = Hd.astype(H.dtype)
    Hc = H_new.astype(np.float64)
    if cm is not None:
        Hc = Hc[:, cm.astype(bool)]
        WtX = WtX[:, cm.astype(bool)]
    cross = float(np.sum(Hc * WtX))
    quad = float(np.sum(WtW * (Hc @ Hc.T)))
    return H_new, max(0.5 * (sumsq - 2.0 * cross + quad), 0.0)


def _task_sum_values(n_total, *stats):
    _check_total([s[1] for s in stats], n_total, "a map update")
    return float(sum(s[0] for s in stats))


@task_threads
def _task_deviance(x, W, H, pm, cm):
    return _core.spectral.poisson_deviance(_chunk_matrix(x), _al(W), _al(H), _al(pm), _al(cm))


@task_threads
def _task_nndsvd_norms(x, Vt, S):
    U = _core.spectral.weighted_project(
        _chunk_matrix(x), None, None, _al(np.ascontiguousarray(Vt.T))
    )
    U = U.astype(np.float64) / np.where(S > 0, S, 1.0)
    pos, neg = np.maximum(U, 0), np.minimum(U, 0)
    return U, ((pos**2).sum(0), (neg**2).sum(0))


def _task_nndsvd_w(U, S, Vt, xpn, xnn, avg, fill, dtype):
    k = U.shape[1]
    W = np.zeros((U.shape[0], k))
    W[:, 0] = np.sqrt(S[0]) * np.abs(U[:, 0])
    for j in range(1, k):
        x, y = U[:, j], Vt[j]
        yp, yn = np.maximum(y, 0), np.abs(np.minimum(y, 0))
        ypn, ynn = np.linalg.norm(yp), np.linalg.norm(yn)
        mp, mn = xpn[j] * ypn, xnn[j] * ynn
        if mp > mn:
            u, sigma = np.maximum(x, 0) / xpn[j], mp
        else:
            u, sigma = np.abs(np.minimum(x, 0)) / max(xnn[j], 1e-300), mn
        W[:, j] = np.sqrt(S[j] * sigma) * u
    W[W < 1e-6] = 0
    if fill:
        W[W == 0] = avg
    return W.astype(dtype)


def _first(t):
    return t[0]


def _second(t):
    return t[1]
