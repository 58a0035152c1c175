"""Dask arrays as NMF / PCA input: C++ block updates inside dask tasks, statistics reduced.

A spectrum image held as a ``dask.array`` chunked over pixels is never gathered: every
iteration maps matchar's C++ pass over the chunks (one task per chunk, GIL released,
OpenMP inside) and the client reduces the small per-chunk statistics (K x C numerators,
K column sums, X^T W, W^T W, partial losses). The maps W stay on the workers, one
persisted piece per chunk. Works with the threaded scheduler and with ``dask.distributed``
(whatever client is the default when ``fit`` is called).

Guarantees: chunks that split the energy axis are rechunked to whole spectra (pixels
stay chunked); every reduction checks that the rows of all chunks add up to N, so a
chunk that is missing can never pass silently; a failure inside the cluster (a worker
lost beyond what the scheduler recovers) raises ``RuntimeError`` naming the iteration,
and the estimator keeps no partial result of that fit.
"""

from __future__ import annotations

import threading
import weakref
from collections import deque
from typing import Any

import numpy as np

from .. import _core
from .._threads import task_threads
from ._input import as_spectrum_matrix

_EPS = float(np.finfo(np.float32).eps)
# Iterations the client submits ahead of the last finished one (distributed scheduler).
_LOOKAHEAD = 3
# Up to this many chunks, and maps of at most _DIRECT_BYTES in all, every chunk task
# takes the previous iteration's results of all chunks (maps and K x C statistics) and
# reduces the components itself; beyond, one reduction task over the statistics.
_DIRECT_CHUNKS = 16
_DIRECT_BYTES = 32 * 2**20
_TINY = float(np.finfo(np.float64).eps)


def is_dask_input(X: Any) -> bool:
    """True for a ``dask.array.Array`` or a lazy HyperSpy signal (``s.data`` is dask)."""
    data = getattr(X, "data", None) if getattr(X, "_lazy", False) else X
    return type(data).__module__.split(".")[0] == "dask" and hasattr(data, "chunks")


def _lib():
    try:
        import dask
        import dask.array as da
    except ImportError as err:  # pragma: no cover - dask is an extra
        raise ImportError(
            "dask input needs dask: pip install 'matchar[dask]' (dask[array], distributed)"
        ) from err
    return dask, da


class DaskFailure(RuntimeError):
    """The dask computation of an iteration failed (e.g. a worker was lost)."""


def _compute(what: str, *objs):
    """dask.compute with failures of the cluster turned into a clear RuntimeError."""
    dask, _ = _lib()
    try:
        return dask.compute(*objs)
    except (ValueError, TypeError, MemoryError, KeyboardInterrupt, DaskFailure):
        raise  # bad data found inside a task: the caller's error, unchanged
    except Exception as err:
        raise DaskFailure(
            f"the dask computation failed during {what} ({type(err).__name__}: {err}); "
            "no partial result was kept. If a worker was lost, rerun the fit (the input "
            "is read again from its source)"
        ) from err


def _persist(what: str, *objs):
    dask, _ = _lib()
    try:
        return dask.persist(*objs)
    except (ValueError, TypeError, MemoryError, KeyboardInterrupt):
        raise
    except Exception as err:
        raise DaskFailure(
            f"the dask computation failed during {what} ({type(err).__name__}: {err}); "
            "no partial result was kept"
        ) from err


# -- tasks (top-level functions: they travel to the workers by pickle) ---------------------
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


class _Pending:
    """The components (index 0) or the loss (index 1) of an iteration still being
    computed. ``task``: what the next iteration's chunk tasks take as their H — the
    reduction task's (H_new, loss), or (``direct``) the list of every chunk's
    (statistics, H used), from which each task reduces H itself."""

    __slots__ = ("direct", "index", "spec", "task")

    def __init__(self, task, index: int, spec: tuple, direct: bool) -> None:
        self.task, self.index, self.spec, self.direct = task, index, spec, direct


def _is_dask_object(obj) -> bool:
    return hasattr(obj, "__dask_graph__")


def _futures_of(obj) -> list:
    try:
        from distributed import futures_of
    except ImportError:  # pragma: no cover - distributed is in the dask extra
        return []
    return futures_of(obj)


def _wait_futures(futures) -> None:
    from distributed import wait

    wait(futures)


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


# -- the chunked spectrum image ---------------------------------------------------------------
class ChunkedFactor:
    """An (N, K) factor held as one persisted dask piece per chunk of pixels (a piece is
    the array or, straight from an NMF iteration, the (array, statistics) pair)."""

    def __init__(self, pieces: list, rows: tuple[int, ...], k: int, dtype: np.dtype):
        self.pieces = pieces
        self.rows = rows
        self.shape = (int(sum(rows)), int(k))
        self.dtype = np.dtype(dtype)

    def to_dask(self):
        dask, da = _lib()
        get = dask.delayed(_unpair, pure=True)
        parts = [
            da.from_delayed(get(p), shape=(n, self.shape[1]), dtype=self.dtype)
            for p, n in zip(self.pieces, self.rows)
        ]
        return da.concatenate(parts, axis=0)

    def copy(self) -> ChunkedFactor:  # pieces are immutable results
        return ChunkedFactor(list(self.pieces), self.rows, self.shape[1], self.dtype)


#: Data embedded in a dask graph (``da.from_array`` of a NumPy array) beyond this many bytes
#: is persisted on a ``dask.distributed`` cluster before the iterations (see ``_resident``).
_EMBEDDED_BYTES = 2**20


def _embedded_bytes(arr) -> int:
    """Bytes of array data held in the graph itself (``da.from_array`` of an in-memory
    array), which every graph submitted to a distributed scheduler carries along."""
    total = 0
    for value in dict(arr.__dask_graph__()).values():
        value = getattr(value, "value", value)  # a DataNode of newer dask wraps the data
        if isinstance(value, np.ndarray):
            total += value.nbytes
    return total


def _resident(arr):
    """The cube as results on the workers when its data would otherwise travel with every
    iteration's graph.

    On a ``dask.distributed`` client, a graph that embeds in-memory data (``da.from_array``
    of a NumPy array or a memmap) ships the whole cube to the scheduler with every
    submitted iteration ("Sending large graph of size ..." each time; a 20-iteration fit of
    a 128 MB cube took 8.8x the in-memory time). Such a cube is scattered to the workers
    once, chunk by chunk, when it fits in half the cluster's memory, and released with the
    fit. Cubes read from files
    are left as they are (they are read again at every iteration; persist them yourself
    when the cluster can hold them), as is everything under the local schedulers."""
    try:
        from distributed import default_client
    except ImportError:
        return arr
    try:
        client = default_client()
    except ValueError:  # no client: a local scheduler
        return arr
    embedded = _embedded_bytes(arr)
    if embedded < _EMBEDDED_BYTES:
        return arr
    limits = [w.get("memory_limit") or 0 for w in client.scheduler_info()["workers"].values()]
    capacity = sum(limits) if limits and all(limits) else None
    if capacity is not None and arr.nbytes > capacity / 2:
        import warnings

        warnings.warn(
            f"the cube ({arr.nbytes / 2**20:.0f} MiB, held in this process) travels to the "
            f"workers with every iteration: it does not fit in half the cluster's memory "
            f"({capacity / 2**20:.0f} MiB); write it to a file dask reads chunk by chunk, "
            "or add workers",
            RuntimeWarning,
            stacklevel=4,
        )
        return arr
    # Scatter the chunks straight to the workers (persisting the graph would send the whole
    # cube through the scheduler once more); arr is 2-D with whole spectra per chunk here.
    _, da = _lib()
    import dask

    blocks = [arr.blocks[i, 0] for i in range(arr.numblocks[0])]
    local = [b.compute(scheduler="sync") for b in blocks]  # views of the in-memory data
    futures = client.scatter(local, hash=False)  # hashing would read the whole cube
    parts = [
        da.from_delayed(dask.delayed(f), shape=b.shape, dtype=arr.dtype)
        for f, b in zip(futures, blocks)
    ]
    # persisted: the iterations refer to the chunks on the workers by key, with no alias
    # task in between that a worker might run on (and copy the chunk to) at every iteration
    resident = client.persist(da.concatenate(parts, axis=0))
    _wait_futures(_futures_of(resident))
    return resident


class DaskSpectrumMatrix:
    """A dask spectrum image seen as (N, C), chunked over pixels only."""

    distributed = True
    sparse = False

    def __init__(self, X: Any, name: str = "X") -> None:
        dask, _ = _lib()
        arr = X.data if getattr(X, "_lazy", False) else X
        if arr.ndim not in (2, 3):
            raise ValueError(
                f"{name} must be a 2-D (pixels, channels) or 3-D (rows, columns, channels) "
                f"dask array, got shape {arr.shape}"
            )
        if any(s == 0 for s in arr.shape):
            raise ValueError(f"{name} is empty (shape {arr.shape})")
        if any(np.isnan(s) for s in arr.shape):
            raise ValueError(f"{name} has unknown chunk sizes; call X.compute_chunk_sizes()")
        dt = np.dtype(arr.dtype)
        if dt.kind not in "biuf":
            raise ValueError(f"{name} must hold real numbers, got dtype {dt}")
        self.nav_shape = tuple(int(s) for s in arr.shape[:-1])
        C = int(arr.shape[-1])
        # Whole spectra per chunk: a chunk that splits the energy axis is merged (rechunk).
        if len(arr.chunks[-1]) > 1:
            arr = arr.rechunk({arr.ndim - 1: -1})
        if arr.ndim == 3:
            arr = arr.reshape(-1, C)
        arr = _resident(arr)
        self.X = arr
        self.rows = tuple(int(n) for n in arr.chunks[0])
        self.pieces = list(arr.to_delayed().ravel())
        self.bounds = np.concatenate([[0], np.cumsum(self.rows)]).astype(np.int64)
        self.shape = (int(sum(self.rows)), C)
        self.item_dtype = dt
        self._dask = dask
        self._inflight: deque = deque()

    # dtype of the factors, as factor_dtype does for arrays
    def factor_dtype(self, dtype: Any) -> np.dtype:
        if dtype is not None:
            d = np.dtype(dtype)
            if d not in (np.dtype(np.float32), np.dtype(np.float64)):
                raise ValueError(f"dtype must be float32 or float64, got {d}")
            return d
        return np.dtype(np.float64) if self.item_dtype == np.float64 else np.dtype(np.float32)

    def _slices(self, v: np.ndarray | None) -> list:
        if v is None:
            return [None] * len(self.rows)
        return [np.ascontiguousarray(v[a:b]) for a, b in zip(self.bounds[:-1], self.bounds[1:])]

    def _check_rows(self, counts, what: str) -> None:
        _check_total(counts, self.shape[0], what)

    def _delayed(self, fn):
        return self._dask.delayed(fn, pure=True)

    # -- sums, Gram products ------------------------------------------------------------
    def weighted_sums(self, r=None, c=None):
        """(row sums (N,), column sums (C,), sum of squares) of diag(r) X diag(c)."""
        task = self._delayed(_task_sums)
        parts = _compute(
            "weighted sums", *[task(x, rr, c) for x, rr in zip(self.pieces, self._slices(r))]
        )
        self._check_rows([p[3] for p in parts], "weighted sums")
        rows = np.concatenate([p[0] for p in parts])
        cols = np.sum([p[1] for p in parts], axis=0)
        return rows, cols, float(sum(p[2] for p in parts))

    def gram(self, r, c, V, mean, dtype):
        """A^T A V over the chunks (A = diag(r) X diag(c) - 1 mean^T)."""
        Vd = np.ascontiguousarray(V, dtype=np.dtype(dtype))
        offset = None if mean is None else np.ascontiguousarray(mean @ V, dtype=np.float64)
        task = self._delayed(_task_gram)
        parts = _compute(
            "a Gram pass",
            *[task(x, rr, c, Vd, offset) for x, rr in zip(self.pieces, self._slices(r))],
        )
        self._check_rows([p[2] for p in parts], "a Gram pass")
        Z = np.sum([p[0] for p in parts], axis=0)
        if mean is not None:
            Z -= np.outer(mean, np.sum([p[1] for p in parts], axis=0))
        return Z

    def project(self, r, c, V, offset):
        """diag(r) X diag(c) V - offset per chunk, as a dask array (N, L)."""
        _, da = _lib()
        task = self._delayed(_task_project)
        V = np.ascontiguousarray(V)
        parts = [
            da.from_delayed(task(x, rr, c, V, offset), shape=(n, V.shape[1]), dtype=V.dtype)
            for x, rr, n in zip(self.pieces, self._slices(r), self.rows)
        ]
        return da.concatenate(parts, axis=0)

    def data_mean(self) -> float:
        rows, _, _ = self.weighted_sums()
        return float(rows.sum()) / (self.shape[0] * self.shape[1])

    # -- NMF --------------------------------------------------------------------------------
    def factor_from_array(self, W: np.ndarray) -> ChunkedFactor:
        W = np.asarray(W)
        pieces = [self._dask.delayed(np.ascontiguousarray(w)) for w in self._slices(W)]
        pieces = list(_persist("scattering the initial maps", *pieces))
        return ChunkedFactor(pieces, self.rows, W.shape[1], W.dtype)

    def constant_factor(self, k: int, value: float, dtype) -> ChunkedFactor:
        full = self._delayed(np.full)
        pieces = [full((n, k), value, dtype=dtype) for n in self.rows]
        return ChunkedFactor(list(_persist("initial maps", *pieces)), self.rows, k, dtype)

    def nndsvd(self, k: int, random_state, dtype, fill: bool):
        """NNDSVD(a) as in _nmf._nndsvd, with its products and norms over the chunks."""
        from ._svd import randomized_svd_gram

        S, Vt = randomized_svd_gram(
            lambda V: self.gram(None, None, V, None, np.float64),
            self.shape,
            k,
            random_state=random_state,
            n_iter=4,
        )
        task = self._delayed(_task_nndsvd_norms)
        pairs = list(_persist("NNDSVD init", *[task(x, Vt, S) for x in self.pieces]))
        norms = _compute("NNDSVD init", *[self._delayed(_second)(p) for p in pairs])
        xpn = np.sqrt(np.sum([n[0] for n in norms], axis=0))
        xnn = np.sqrt(np.sum([n[1] for n in norms], axis=0))
        avg = self.data_mean() if fill else 0.0
        wtask = self._delayed(_task_nndsvd_w)
        U = [self._delayed(_first)(p) for p in pairs]
        pieces = list(
            _persist("NNDSVD init", *[wtask(u, S, Vt, xpn, xnn, avg, fill, dtype) for u in U])
        )
        H = np.zeros((k, Vt.shape[1]))
        H[0] = np.sqrt(S[0]) * np.abs(Vt[0])
        for j in range(1, k):
            yp, yn = np.maximum(Vt[j], 0), np.abs(np.minimum(Vt[j], 0))
            ypn, ynn = np.linalg.norm(yp), np.linalg.norm(yn)
            mp, mn = xpn[j] * ypn, xnn[j] * ynn
            v, sigma = (yp / ypn, mp) if mp > mn else (yn / max(ynn, 1e-300), mn)
            H[j] = np.sqrt(S[j] * sigma) * v
        H[H < 1e-6] = 0
        if fill:
            H[H == 0] = avg
        return ChunkedFactor(pieces, self.rows, k, dtype), H.astype(dtype)

    def update(self, loss, W: ChunkedFactor, H, pm, cm, update_H, with_loss, sweeps=1):
        """One NMF iteration over the chunks: (loss, W_new, H_new or None).

        Nothing is waited for: the chunk passes are submitted as tasks returning (maps,
        (statistics, H used)), and the loss and the new H come back as :class:`_Pending`
        dask objects that the next iteration's tasks take as they are; :meth:`resolve`
        fetches them when the loop needs a value. With few chunks and small maps
        (``_DIRECT_CHUNKS``, ``_DIRECT_BYTES``) each task of the next iteration takes all
        chunks' results whole and reduces H itself (one scheduler hop per iteration);
        otherwise one reduction task over the statistics produces H. Either way the
        scheduler starts iteration t+1 as soon as its inputs exist, with no round trip to
        the client in between; the client keeps at most ``_LOOKAHEAD`` iterations in
        flight.
        """
        H_in = H.task if isinstance(H, _Pending) else np.ascontiguousarray(H)
        n_total = self.shape[0]
        stats = self._delayed(_second)
        if not update_H:
            task = self._delayed(_task_w_only)
            pairs = [task(x, w, H_in, loss, with_loss) for x, w in zip(self.pieces, W.pieces)]
            value = self._delayed(_task_sum_values)(n_total, *[stats(p) for p in pairs])
            persisted = _persist("a map update", value, *pairs)
            self._track(persisted[0])
            W_new = ChunkedFactor(list(persisted[1:]), self.rows, W.shape[1], W.dtype)
            return persisted[0], W_new, None
        prev = H.spec if isinstance(H, _Pending) else None  # how to reduce H_in
        if loss == "kl":
            spec = ("kl", n_total, None, 1)
            task = self._delayed(_task_kl)
            pairs = [
                task(x, w, H_in, prev, p, cm, with_loss)
                for x, w, p in zip(self.pieces, W.pieces, self._slices(pm))
            ]
        else:
            spec = ("frobenius", n_total, cm, int(sweeps))
            task = self._delayed(_task_frobenius)
            pairs = [
                task(x, w, H_in, prev, p, cm, int(sweeps))
                for x, w, p in zip(self.pieces, W.pieces, self._slices(pm))
            ]
        direct = (
            len(pairs) <= _DIRECT_CHUNKS
            and n_total * W.shape[1] * np.dtype(W.dtype).itemsize <= _DIRECT_BYTES
        )
        if direct:
            # Each chunk task of the next iteration takes every chunk's (maps, statistics)
            # result whole and reduces H itself: the next iteration follows this one
            # directly, with no task in between (one scheduler hop per iteration); the
            # price, every worker fetching the other chunks' maps, is bounded above.
            pieces = list(_persist("an NMF iteration", *pairs))
            self._track(pieces)
            nxt = pieces
        else:  # one reduction task over the statistics, whose H the next tasks take
            results = [stats(p) for p in pairs]
            persisted = _persist("an NMF iteration", self._delayed(_reduce)(spec, *results), *pairs)
            nxt, pieces = persisted[0], list(persisted[1:])
            self._track(nxt)
        W_new = ChunkedFactor(pieces, self.rows, W.shape[1], W.dtype)
        return _Pending(nxt, 1, spec, direct), W_new, _Pending(nxt, 0, spec, direct)

    def _track(self, obj) -> None:
        """Keep at most ``_LOOKAHEAD`` submitted iterations unfinished (distributed only:
        the local schedulers compute on persist)."""
        futures = _futures_of(obj)
        if not futures:
            return
        self._inflight.append(futures)
        while len(self._inflight) > _LOOKAHEAD:
            _wait_futures(self._inflight.popleft())

    def resolve(self, *objs):
        """The values of what :meth:`update` returned (arrays and numbers as they are)."""
        tasks = [
            (self._delayed(_reduce_pairs)(o.spec, *o.task) if o.direct else o.task)
            if isinstance(o, _Pending)
            else o
            for o in objs
        ]
        lazy = [i for i, t in enumerate(tasks) if _is_dask_object(t)]
        out = list(objs)
        if lazy:
            for i, v in zip(lazy, _compute("an NMF iteration", *[tasks[i] for i in lazy])):
                out[i] = v[objs[i].index] if isinstance(objs[i], _Pending) else v
            self._inflight.clear()
        return out[0] if len(objs) == 1 else tuple(out)

    def _halo(self, A: ChunkedFactor, lo: int, hi: int):
        """Rows [lo, hi) of A (clipped to the factor) as a delayed array."""
        lo, hi = max(lo, 0), min(hi, self.shape[0])
        if hi <= lo:
            return np.zeros((0, A.shape[1]), dtype=A.dtype)
        j0 = int(np.searchsorted(self.bounds, lo, side="right")) - 1
        j1 = int(np.searchsorted(self.bounds, hi, side="left"))
        starts = [int(b) for b in self.bounds[j0:j1]]
        return self._delayed(_gather_rows)(lo, hi, starts, *A.pieces[j0:j1])

    def _halo_width(self) -> int:
        return self.nav_shape[1] if len(self.nav_shape) == 2 else 1

    def laplacian_penalty(self, A: ChunkedFactor) -> float:
        """0.5 Σ over the pixel grid's edges of |a_i - a_j|², chunk by chunk."""
        w, task = self._halo_width(), self._delayed(_task_penalty)
        parts = [
            task(a, self._halo(A, int(b1), int(b1) + w), int(b0), self.nav_shape)
            for a, b0, b1 in zip(A.pieces, self.bounds[:-1], self.bounds[1:])
        ]
        return float(sum(_compute("the Laplacian penalty", *parts)))

    def physics_update(
        self, A: ChunkedFactor, H, s, sparsity, eps, simplex_h, pm, cm, with_loss, smoothness=0.0
    ):
        """One PhysicsNMF pass over the chunks: (kl, log penalty of A, Laplacian penalty
        of A, A_new, numerator K x C, colsum K). With ``smoothness`` each chunk also
        reads the neighbouring chunks' boundary rows (one image row on each side)."""
        H = np.ascontiguousarray(H)
        task = self._delayed(_task_physics)
        w = self._halo_width()
        laps = [None] * len(self.rows)
        if smoothness > 0:
            laps = [
                (
                    float(smoothness),
                    self._halo(A, int(b0) - w, int(b0)),
                    self._halo(A, int(b1), int(b1) + w),
                    int(b0),
                    self.nav_shape,
                )
                for b0, b1 in zip(self.bounds[:-1], self.bounds[1:])
            ]
        pairs = _persist(
            "a PhysicsNMF iteration",
            *[
                task(x, a, H, s, sparsity, eps, simplex_h, p, cm, with_loss, lap)
                for x, a, p, lap in zip(self.pieces, A.pieces, self._slices(pm), laps)
            ],
        )
        stats = _compute("a PhysicsNMF iteration", *[self._delayed(_second)(p) for p in pairs])
        self._check_rows([st[4] for st in stats], "a PhysicsNMF iteration")
        pieces = [self._delayed(_first)(p) for p in pairs]
        A_new = ChunkedFactor(pieces, self.rows, A.shape[1], A.dtype)
        kl = sum(st[0] for st in stats)
        logpen = sum(st[1] for st in stats)
        lappen = sum(st[5] for st in stats)
        num = np.sum([st[2] for st in stats], axis=0)
        colsum = np.sum([st[3] for st in stats], axis=0)
        return kl, logpen, lappen, A_new, num, colsum

    def deviance(self, W: ChunkedFactor, H, pm=None, cm=None) -> np.ndarray:
        task = self._delayed(_task_deviance)
        H = np.ascontiguousarray(H)
        parts = _compute(
            "the residual map",
            *[task(x, w, H, p, cm) for x, w, p in zip(self.pieces, W.pieces, self._slices(pm))],
        )
        self._check_rows([len(p) for p in parts], "the residual map")
        return np.concatenate(parts)

    def unflatten(self, W: ChunkedFactor):
        arr = W.to_dask()
        return arr.reshape(*self.nav_shape, W.shape[1]) if len(self.nav_shape) > 1 else arr
