"""Dask arrays as NMF / PCA input: C++ block updates inside dask tasks, statistics reduced.

A spectrum image held as a ``dask.array`` chunked over pixels is never gathered: every
iteration maps matchar's C++ pass over the chunks (one task per chunk, GIL released,
OpenMP inside) and the client reduces the small per-chunk statistics (K x C numerators,
K column sums, X^T W, W^T W, partial losses). The maps W stay on the workers, one
persisted piece per chunk. Works with the threaded scheduler and with ``dask.distributed``
(whatever client is the default when ``fit`` is called).

On a ``dask.distributed`` cluster that already holds the cube's chunks in memory (a
persisted array, or an in-memory cube scattered by the fit), NMF's iterations skip the
scheduler: each worker's chunks and maps stay in one actor (``ChunkActors``), the client
sends the components to the actors and reduces their statistics, one round trip per
iteration. Chunks read from a source (files) keep the task path.

Guarantees: chunks that split the energy axis are rechunked to whole spectra (pixels
stay chunked); every reduction checks that the rows of all chunks add up to N, so a
chunk that is missing can never pass silently; a failure inside the cluster (a worker
lost beyond what the scheduler recovers) raises ``RuntimeError`` naming the iteration,
and the estimator keeps no partial result of that fit.

This module is the client's side (the chunked cube and factors, the iterations submitted
and their results awaited); the tasks that run on the workers, and the reductions of
their statistics, are in ``_dask_tasks.py``.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from .._moved import forward_private
from . import _dask_tasks
from ._dask_tasks import _CHECKED as _CHECKED
from ._dask_tasks import (
    ChunkActor,
    _actor_maps,
    _actor_set_maps,
    _check_total,
    _first,
    _gather_rows,
    _reduce,
    _reduce_pairs,
    _second,
    _task_deviance,
    _task_frobenius,
    _task_gram,
    _task_kl,
    _task_nndsvd_norms,
    _task_nndsvd_w,
    _task_penalty,
    _task_physics,
    _task_project,
    _task_sum_values,
    _task_sums,
    _task_w_only,
    _unpair,
)
from ._dask_tasks import DaskFailure as DaskFailure
from ._dask_tasks import _chunk_matrix as _chunk_matrix

# Iterations the client submits ahead of the last finished one (distributed scheduler).
_LOOKAHEAD = 3
# Up to this many chunks, and maps of at most _DIRECT_BYTES in all, every chunk task
# takes the previous iteration's results of all chunks (maps and K x C statistics) and
# reduces the components itself; beyond, one reduction task over the statistics.
_DIRECT_CHUNKS = 16
_DIRECT_BYTES = 32 * 2**20
#: NMF fits (KL, Frobenius) of a cube whose chunks are all in the memory of a
#: ``dask.distributed`` cluster keep each worker's chunks and maps in one actor
#: (:class:`ChunkActors`): one direct exchange between the client and each worker per
#: iteration instead of tasks through the scheduler. False: always the task path.
_ACTORS = True


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


def _all_held(arr) -> bool:
    """True when every chunk of ``arr`` is a result held by a ``dask.distributed`` cluster."""
    try:
        from distributed import default_client

        default_client()
    except (ImportError, ValueError):  # no cluster: nothing is held (the graph is not read)
        return False
    held = {f.key for f in _futures_of(arr)}
    if not held:
        return False
    import dask

    keys = dask.core.flatten(arr.__dask_keys__())
    return all(k in held for k in keys)


def _actor_call(what: str, futures) -> list:
    """The results of actor calls, with failures of the cluster as :class:`DaskFailure`."""
    try:
        return [f.result() for f in futures]
    except (ValueError, TypeError, MemoryError, KeyboardInterrupt, DaskFailure):
        raise
    except Exception as err:
        raise DaskFailure(
            f"the dask computation failed during {what} ({type(err).__name__}: {err}); "
            "no partial result was kept. If a worker was lost, rerun the fit"
        ) from err


class ChunkActors:
    """The chunks of a cube held in a cluster's memory, one actor per worker
    (``ChunkActor``) for the fit: its passes skip the scheduler.

    Each actor holds the chunks already in its worker's memory; the client calls it
    directly (one round trip, where a task costs messages through the scheduler: about
    11 ms per pass on a 2-core machine, more than a 64 MB chunk's pass once the kernels
    are fast). The PCA's sums and Gram passes run there. An NMF keeps its maps there
    between iterations: every iteration the client sends the K x C components to each
    actor, which runs the C++ pass over its chunks and returns the statistics; the client
    reduces them into the new components, in chunk order, exactly as the reduction of the
    task path does. The maps are copied out of the actors into ordinary worker memory
    (one task per chunk, on its worker) only when asked for, at the end of the fit."""

    def __init__(self, client, data: DaskSpectrumMatrix, chunks: list) -> None:
        self.client, self.data = client, data
        self.rows, self.n = data.rows, data.shape[0]
        _wait_futures(chunks)
        owner = client.who_has(chunks)
        groups: dict[str, list[int]] = {}
        for i, f in enumerate(chunks):
            groups.setdefault(sorted(owner[f.key])[0], []).append(i)
        self.groups = list(groups.values())
        self.addresses = list(groups)
        futures = [
            client.submit(
                ChunkActor,
                idx,
                *[chunks[i] for i in idx],
                actor=True,
                workers=[addr],
                pure=False,
            )
            for addr, idx in groups.items()
        ]
        self.actors = _actor_call("placing the chunks", futures)
        self._actor_futures = futures  # the actors live as long as their futures
        self.pm = self.cm = None
        self.k, self.dtype = 0, np.dtype(np.float32)
        self.generation, self.version = 0, -1

    def _per_actor(self, v: np.ndarray | None) -> list:
        """A per-pixel array as the per-chunk slices each actor holds (None: None)."""
        if v is None:
            return [None] * len(self.groups)
        return self._per_actor_list(self.data._slices(v))

    def _per_actor_list(self, items: list) -> list:
        """One item per chunk as the lists of each actor's chunks."""
        return [[items[i] for i in idx] for idx in self.groups]

    def _ordered(self, what: str, results: list) -> list:
        out: list = [None] * len(self.rows)
        for part in results:
            for i, value in part:
                out[i] = value
        if any(v is None for v in out):
            raise DaskFailure(f"{what}: a chunk's result is missing; no partial result was kept")
        return out

    def _call(self, what: str, method: str, *per_actor_and_shared) -> list:
        """Every actor's ``method`` (arguments: a list per actor, or one value for all),
        results in chunk order."""
        calls = []
        for j, actor in enumerate(self.actors):
            args = [a[j] if isinstance(a, _PerActor) else a for a in per_actor_and_shared]
            calls.append(getattr(actor, method)(*args))
        return self._ordered(what, _actor_call(what, calls))

    # -- PCA ------------------------------------------------------------------------------
    def weighted_sums(self, r, c) -> list:
        c = None if c is None else np.ascontiguousarray(c)
        return self._call("weighted sums", "sums", _PerActor(self._per_actor(r)), c)

    def gram(self, r, c, V, offset) -> list:
        c = None if c is None else np.ascontiguousarray(c)
        return self._call("a Gram pass", "gram", _PerActor(self._per_actor(r)), c, V, offset)

    # -- NMF ------------------------------------------------------------------------------
    def start(self, W: ChunkedFactor, pm, cm) -> _ActorFactor:
        """Hand W (and the masks) to the actors: the maps of the iterations to come."""
        pms = self._per_actor(pm)
        cmc = None if cm is None else np.ascontiguousarray(cm)
        if isinstance(W, _ArrayFactor) and W._pieces is None:  # sent with the call
            per = self._per_actor_list(W.arrays)
            calls = [a.set_maps(per[j], pms[j], cmc) for j, a in enumerate(self.actors)]
            _actor_call("placing the maps", calls)
        else:  # maps already on the cluster: handed over on their workers
            maps = self.client.compute(list(W.pieces))
            tasks = [
                self.client.submit(
                    _actor_set_maps,
                    a.key,
                    pms[j],
                    cmc,
                    *[maps[i] for i in self.groups[j]],
                    workers=[self.addresses[j]],
                    pure=False,
                )
                for j, a in enumerate(self.actors)
            ]
            _actor_call("placing the maps", tasks)
        self.pm, self.cm = pm, cm
        self.k, self.dtype = W.shape[1], np.dtype(W.dtype)
        self.generation += 1
        self.version = 0
        return self.factor()

    def factor(self) -> _ActorFactor:
        return _ActorFactor(self, self.generation, self.version)

    def current(self, W, pm, cm) -> bool:
        return (
            isinstance(W, _ActorFactor)
            and W.session is self
            and W.generation == self.generation
            and self.pm is pm
            and self.cm is cm
        )

    def update(self, loss: str, W: _ActorFactor, H, with_loss: bool, sweeps: int):
        """One iteration: (loss, maps, components), as :meth:`DaskSpectrumMatrix.update`."""
        H = np.ascontiguousarray(H)
        if W.version != self.version:
            raise DaskFailure("an NMF iteration started from maps that are no longer current")
        stats = self._call(
            "an NMF iteration", "step", loss, H, self.version, with_loss, int(sweeps)
        )
        if loss == "kl":
            spec = ("kl", self.n, None, 1)
        else:
            spec = ("frobenius", self.n, self.cm, int(sweeps))
        H_new, value = _reduce(spec, *[(st, H) for st in stats])
        self.version += 1
        return value, self.factor(), H_new

    def deviance(self, W: _ActorFactor, H) -> np.ndarray:
        parts = self._call("the residual map", "deviance", np.ascontiguousarray(H), W.version)
        _check_total([len(p) for p in parts], self.n, "the residual map")
        return np.concatenate(parts)

    def maps(self, W: _ActorFactor) -> list:
        """The maps W as one dask piece per chunk, copied out of the actors into their
        workers' memory."""
        dask, _ = _lib()
        if W.generation != self.generation:
            raise DaskFailure("the maps of an earlier fit are no longer on the workers")
        futures = [None] * len(self.rows)
        for j, idx in enumerate(self.groups):
            for local, i in enumerate(idx):
                futures[i] = self.client.submit(
                    _actor_maps,
                    self.actors[j].key,
                    local,
                    W.version,
                    workers=[self.addresses[j]],
                    pure=False,
                )
        _actor_call("collecting the maps", futures)  # before the actors can be released
        return [dask.delayed(f) for f in futures]


class _PerActor(list):
    """An argument of :meth:`ChunkActors._call` given per actor."""


class _ArrayFactor(ChunkedFactor):
    """A factor held by the client (an initial W), one array per chunk, persisted on the
    cluster on first use of ``pieces``; an :class:`ChunkActors` sends the arrays with its
    actors instead (no separate transfer)."""

    def __init__(self, arrays: list, rows: tuple[int, ...]) -> None:
        self.arrays = arrays
        self.rows = rows
        self.shape = (int(sum(rows)), int(arrays[0].shape[1]))
        self.dtype = np.dtype(arrays[0].dtype)
        self._pieces: list | None = None

    @property
    def pieces(self) -> list:  # type: ignore[override]
        if self._pieces is None:
            dask, _ = _lib()
            pieces = [dask.delayed(w) for w in self.arrays]
            self._pieces = list(_persist("scattering the initial maps", *pieces))
        return self._pieces


class _ActorFactor(ChunkedFactor):
    """The maps of an :class:`ChunkActors`'s NMF after one iteration; ``pieces`` copies
    them out of the actors on first use."""

    def __init__(self, session: ChunkActors, generation: int, version: int) -> None:
        self.session, self.generation, self.version = session, generation, version
        self.rows = session.rows
        self.shape = (session.n, session.k)
        self.dtype = np.dtype(session.dtype)
        self._pieces: list | None = None

    @property
    def pieces(self) -> list:  # type: ignore[override]
        if self._pieces is None:
            self._pieces = self.session.maps(self)
        return self._pieces


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
        # Chunks that are views of chunks held in the cluster's memory: whole spectra and,
        # for a 3-D cube, whole image rows (the reshape to (N, C) is then a view).
        self._views_of_held = (
            len(arr.chunks[-1]) == 1 and (arr.ndim == 2 or len(arr.chunks[1]) == 1)
        ) and _all_held(arr)
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
        self._session: ChunkActors | None = None
        self._no_actors = False

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
        session = self._actors()
        if session is not None:
            parts = session.weighted_sums(r, c)
        else:
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
        session = self._actors()
        if session is not None:
            parts = session.gram(r, c, Vd, offset)
        else:
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
        """W (N, K) in pieces per chunk, sent to the workers on first use."""
        return _ArrayFactor(self._slices(np.asarray(W)), self.rows)

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
        if update_H and loss in ("kl", "frobenius"):
            W_actor = self._in_actors(W, pm, cm)
            if W_actor is not None:
                return W_actor.session.update(loss, W_actor, self.resolve(H), with_loss, sweeps)
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

    def _in_actors(self, W: ChunkedFactor, pm, cm) -> _ActorFactor | None:
        """W as the maps of the NMF in the chunks' actors (handed to them on the fit's
        first iteration), or None: the task path."""
        session = self._actors()
        if session is None or isinstance(W, _Pending):
            return None
        if session.current(W, pm, cm):
            return W  # type: ignore[return-value]
        return session.start(W, pm, cm)

    def _actors(self) -> ChunkActors | None:
        """The chunks' :class:`ChunkActors` (started on first use) when they are all in
        the memory of a ``dask.distributed`` cluster, else None (the task path)."""
        if self._session is not None or not _ACTORS or self._no_actors:
            return self._session
        self._no_actors = True  # decided once, here
        try:
            from distributed import default_client
        except ImportError:  # pragma: no cover - distributed is in the dask extra
            return None
        try:
            client = default_client()
        except ValueError:  # a local scheduler
            return None
        held = {f.key: f for f in _futures_of(self.X)}
        chunks = [held.get(p.key) for p in self.pieces]
        if any(f is None for f in chunks) and self._views_of_held:
            # (N, C) chunks that are views of chunks in the cluster's memory (the reshape
            # of a 3-D cube chunked by image rows): made once, as views, for the fit
            self._held_views = client.persist(self.X)
            held = {f.key: f for f in _futures_of(self._held_views)}
            keys = self._dask.core.flatten(self._held_views.__dask_keys__())
            chunks = [held.get(k) for k in keys]
        if not chunks or any(f is None for f in chunks):
            return None  # chunks read from their source at every pass: the task path
        self._session = ChunkActors(client, self, chunks)
        return self._session

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
        if isinstance(W, _ActorFactor) and W.session.current(W, pm, cm):
            return W.session.deviance(W, H)
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


#: The private helpers moved to ``_dask_tasks``, under this module's name as well.
__getattr__ = forward_private(__name__, _dask_tasks)
