"""The one array-conversion helper every public function uses before calling _core."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def as_array(
    x: Any,
    name: str,
    *,
    ndim: int | Sequence[int],
    dtype: np.dtype | type | None = None,
    allow_empty: bool = False,
    keep_dtypes: Sequence[np.dtype | type] = (),
) -> np.ndarray:
    """Validate and convert ``x`` for a compiled kernel, without copying when possible.

    Parameters
    ----------
    x
        Array-like input (NumPy array, ``np.memmap``, nested lists, ...).
    name
        The user-facing argument name, used in every error message.
    ndim
        Allowed number(s) of dimensions.
    dtype
        Target floating dtype (float32 or float64). ``None`` keeps float32/float64 as
        they are; integers and booleans become float64, float16 becomes float32.
    allow_empty
        Whether arrays with a zero-length axis are accepted.
    keep_dtypes
        Extra dtypes passed through unconverted (e.g. ``uint16`` counts for kernels that
        read integers in place). Empty by default: the rules above apply.

    Returns
    -------
    numpy.ndarray
        ``x`` itself (a view, any strides, C or Fortran order) when its dtype already
        fits and it is aligned; otherwise a converted copy. The input is never modified.

    Raises
    ------
    ValueError
        Naming ``name``: wrong ndim, empty, complex/object/string dtype.
    TypeError
        For sparse matrices, which this function does not accept.
    """
    if hasattr(x, "tocsr") and hasattr(x, "nnz"):
        raise TypeError(f"{name} must be a dense array, got a scipy.sparse {type(x).__name__}")
    arr = np.asarray(x)
    ndims = (ndim,) if isinstance(ndim, int) else tuple(ndim)
    if arr.ndim not in ndims:
        expected = " or ".join(str(d) for d in ndims)
        raise ValueError(f"{name} must be a {expected}-D array, got an array of shape {arr.shape}")
    if not allow_empty and arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); at least one element is needed")

    if any(arr.dtype == np.dtype(d) for d in keep_dtypes):
        if not arr.flags.aligned or any(s % arr.dtype.itemsize for s in arr.strides):
            arr = _aligned_copy(arr)
        return arr

    kind = arr.dtype.kind
    if kind in "biu":
        target = np.dtype(dtype) if dtype is not None else np.dtype(np.float64)
    elif kind == "f":
        if dtype is not None:
            target = np.dtype(dtype)
        elif arr.dtype in FLOAT_DTYPES:
            target = arr.dtype
        elif arr.dtype.itemsize < 4:
            target = np.dtype(np.float32)
        else:  # long double
            target = np.dtype(np.float64)
    else:
        raise ValueError(
            f"{name} must hold real numbers (float32/float64, or integers), got dtype {arr.dtype}"
        )
    if target not in FLOAT_DTYPES:
        raise ValueError(f"internal: unsupported target dtype {target} for {name}")

    if arr.dtype != target:
        arr = arr.astype(target)
    item = arr.dtype.itemsize
    if not arr.flags.aligned or any(s % item for s in arr.strides):
        arr = _aligned_copy(arr)
    return arr


def _aligned_copy(arr: np.ndarray) -> np.ndarray:
    """A C-ordered, aligned copy. ``np.ascontiguousarray`` returns a contiguous but
    misaligned array (e.g. one unpickled from a message buffer) unchanged: copy always."""
    out = np.empty(arr.shape, dtype=arr.dtype)  # NumPy allocations are aligned
    out[...] = arr
    return out


def common_float_dtype(*arrays: Any) -> np.dtype:
    """float32 when every input is float32, else float64 (NumPy promotion, floats only)."""
    dtypes = [np.asarray(a).dtype if not hasattr(a, "dtype") else a.dtype for a in arrays]
    if all(d == np.float32 or (d.kind == "f" and d.itemsize < 4) for d in dtypes):
        return np.dtype(np.float32)
    return np.dtype(np.float64)
