"""Thread counts: one setting, OpenMP's own, shared by every matchar kernel.

OpenMP keeps this setting per OS thread (libgomp's nthreads ICV): a value set in one
Python thread applies to the kernels that thread calls, not to other Python threads,
which start from ``OMP_NUM_THREADS`` (or the number of cores). :func:`threads` limits
it for one block of calls.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from . import _core


def get_num_threads() -> int:
    """Return the number of OpenMP threads matchar's kernels use.

    This is OpenMP's ``max-threads`` setting of the calling thread, so it follows
    ``OMP_NUM_THREADS``, :func:`set_num_threads` and
    ``threadpoolctl.threadpool_limits(...)``.

    Example
    -------
    >>> import matchar as mc
    >>> mc.get_num_threads() >= 1
    True
    """
    return int(_core.get_num_threads())


def set_num_threads(n: int) -> None:
    """Set the number of OpenMP threads matchar's kernels use (``1 <= n <= 4 x processors``).

    Equivalent to ``threadpoolctl.threadpool_limits(n, user_api="openmp")`` for matchar's
    kernels, but permanent for the calling thread. It also applies to other OpenMP code
    that shares the same OpenMP runtime and runs in this thread; other Python threads
    keep their own setting (use :func:`threads` for a temporary limit).

    Example
    -------
    >>> import matchar as mc
    >>> mc.set_num_threads(1); mc.get_num_threads()
    1
    """
    _core.set_num_threads(_check_n(n))


def _check_n(n: int) -> int:
    if isinstance(n, bool) or not hasattr(n, "__index__"):
        raise TypeError(f"n must be an integer, got {type(n).__name__}")
    n = int(n.__index__())
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    limit = int(_core.max_num_threads())
    if n > limit:
        # thousands of OpenMP threads make libgomp fail to create them and end the process
        raise ValueError(
            f"n must be <= {limit} (4 threads per processor available to this process), got {n}"
        )
    return n


@contextlib.contextmanager
def threads(n: int) -> Iterator[int]:
    """Run the matchar kernels called inside the ``with`` block on ``n`` OpenMP threads.

    The limit is per call site: it applies to the calling Python thread only (OpenMP keeps
    the setting per OS thread), so two Python threads can run kernels at the same time
    with different limits, e.g. one thread each in a service, or ``threads(1)`` inside
    dask tasks that already run one per core. The previous setting is restored on exit,
    also after an exception. Nested blocks work.

    Parameters
    ----------
    n : int
        Threads, ``>= 1``.

    Yields
    ------
    int
        The previous setting.

    Example
    -------
    >>> import numpy as np, matchar as mc
    >>> with mc.threads(1):
    ...     mc.get_num_threads()
    1
    """
    n = _check_n(n)
    previous = int(_core.get_num_threads())
    _core.set_num_threads(n)
    try:
        yield previous
    finally:
        _core.set_num_threads(previous)


_F = TypeVar("_F", bound=Callable[..., Any])


def _worker_thread_count() -> int | None:
    """Threads for kernels inside a task on a ``dask.distributed`` worker, else None.

    The worker's ``OMP_NUM_THREADS`` as it reads when the task runs (what
    ``LocalCluster(env=...)`` or distributed's pre-spawn environment set; OpenMP itself
    may have read its environment before that, and task threads then start from the
    number of cores), else the cores divided among the worker's task threads.
    """
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return None
    env = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if env.isdigit() and int(env) >= 1:
        return int(env)
    return max(1, (os.cpu_count() or 1) // max(1, int(getattr(worker, "nthreads", 1) or 1)))


def task_threads(fn: _F) -> _F:
    """Decorate a dask task so that its kernels use the worker's thread budget
    (:func:`_worker_thread_count`); outside a distributed worker it runs unchanged."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        n = _worker_thread_count()
        if n is None:
            return fn(*args, **kwargs)
        with threads(n):
            return fn(*args, **kwargs)

    return run  # type: ignore[return-value]


#: One re-entrant lock per instance that uses :func:`serialized`, kept outside the
#: instance (keyed by id, removed when the instance is collected) so that estimators
#: still pickle, copy and compare as before.
_LOCKS: dict[int, threading.RLock] = {}
_LOCKS_GUARD = threading.Lock()


def _instance_lock(obj: Any) -> threading.RLock:
    key = id(obj)
    with _LOCKS_GUARD:
        lock = _LOCKS.get(key)
        if lock is None:
            lock = _LOCKS[key] = threading.RLock()
            weakref.finalize(obj, _LOCKS.pop, key, None)
        return lock


def serialized(method: _F) -> _F:
    """Decorate an estimator method so that calls on one instance run one at a time.

    Two Python threads that call ``partial_fit`` (or ``fit``) on one shared estimator
    then take turns, and every call sees the state the previous one left: no lost
    updates. The lock is per instance and re-entrant (``fit_transform`` may call
    ``fit``); waiting for it releases the GIL.
    """

    @functools.wraps(method)
    def run(self: Any, *args: Any, **kwargs: Any) -> Any:
        with _instance_lock(self):
            return method(self, *args, **kwargs)

    return run  # type: ignore[return-value]


@contextlib.contextmanager
def single_threaded_sklearn() -> Iterator[None]:
    """Run scikit-learn's OpenMP and BLAS code on one thread.

    scikit-learn ships its own OpenMP runtime; with matchar's runtime (and the BLAS
    pool) in the same process, the teams' spin-waiting threads fight over the cores
    (measured on 2 loaded cores: the real-image segmentation took 23 s instead of
    3.3 s). Clustering and PCA of low-dimensional descriptors lose little on one thread.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield
