"""Thread counts: one setting, OpenMP's own, shared by every matchar kernel."""

from __future__ import annotations

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
    """Set the number of OpenMP threads matchar's kernels use (``n >= 1``).

    Equivalent to ``threadpoolctl.threadpool_limits(n, user_api="openmp")`` for matchar's
    kernels, but permanent. Note that it also applies to other OpenMP code that shares the
    same OpenMP runtime in this process.

    Example
    -------
    >>> import matchar as mc
    >>> mc.set_num_threads(1); mc.get_num_threads()
    1
    """
    if isinstance(n, bool) or not hasattr(n, "__index__"):
        raise TypeError(f"n must be an integer, got {type(n).__name__}")
    n = int(n.__index__())
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    _core.set_num_threads(n)
