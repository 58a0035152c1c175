"""Validation of spectrum images: dense (N, C) / (H, W, C) arrays, memmaps and CSR matrices."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from .._arrays import as_array

#: dtypes the C++ kernels read in place (no upcast copy of the cube).
COUNT_DTYPES = tuple(np.dtype(d) for d in (np.uint8, np.uint16, np.uint32, np.float32, np.float64))
_CHECK_ELEMENTS = 1 << 22  # validate in slices of ~4M elements: bounded temporaries


@dataclass
class SpectrumMatrix:
    """A validated spectrum image seen as an (N, C) matrix of counts."""

    X: Any  # numpy.ndarray (any strides) or scipy.sparse.csr_matrix
    nav_shape: tuple[int, ...]  # (N,) or (H, W)

    @property
    def sparse(self) -> bool:
        return sp.issparse(self.X)

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.X.shape[0]), int(self.X.shape[1]))


def _check_values(arr: np.ndarray, name: str) -> None:
    """NaN/inf and negative values raise ValueError naming ``name`` (slice by slice)."""
    if arr.size == 0 or arr.dtype.kind == "u":
        return
    step = max(1, _CHECK_ELEMENTS // max(1, int(np.prod(arr.shape[1:]))))
    for i in range(0, arr.shape[0], step):
        blk = arr[i : i + step]
        lo, hi = blk.min(), blk.max()
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise ValueError(f"{name} contains NaN or infinite values")
        if lo < 0:
            raise ValueError(
                f"{name} contains negative values (minimum {lo}). Negative values in data are "
                "not supported: spectrum images must hold non-negative counts or intensities"
            )


def _integers_to_counts(arr: np.ndarray, name: str) -> np.ndarray:
    """Signed / 64-bit integers -> uint32 (exact) or float64, after checking the sign."""
    if arr.dtype in COUNT_DTYPES:
        return arr
    if arr.dtype.kind == "b":
        return arr.view(np.uint8)
    _check_values(arr, name)
    hi = arr.max() if arr.size else 0
    return arr.astype(np.uint32 if hi < 2**32 else np.float64)


def check_sparse_structure(X: Any, name: str) -> None:
    """Raise ValueError unless the index arrays of a scipy.sparse matrix fit its shape.

    scipy checks CSR/CSC/BSR/COO index arrays only when asked (``check_format``), not when
    they are passed to the constructor or changed afterwards; its conversions
    (``tocsr``, ``toarray``) and matchar's kernels read them unchecked, so an index out
    of range would read or write outside the arrays. One vectorised pass over the
    indices, before any of that; the matrix is not modified.
    """
    fmt = getattr(X, "format", None)
    n_rows, n_cols = (int(v) for v in X.shape)
    what = f"{name} is a malformed {str(fmt).upper()} matrix"
    if fmt in ("csr", "csc", "bsr"):
        if fmt == "bsr":
            br, bc = X.blocksize
            major, minor = n_rows // br, n_cols // bc
        else:
            major, minor = (n_rows, n_cols) if fmt == "csr" else (n_cols, n_rows)
        indptr, indices = np.asarray(X.indptr), np.asarray(X.indices)
        n_data = np.shape(X.data)[0] if np.ndim(X.data) else 0
        if indptr.dtype.kind not in "iu" or indices.dtype.kind not in "iu":
            raise ValueError(f"{what}: indptr and indices must hold integers")
        if indptr.ndim != 1 or indptr.shape[0] != major + 1 or indices.ndim != 1:
            raise ValueError(
                f"{what}: indptr must be 1-D of length {major + 1}, got shape {indptr.shape}"
            )
        nnz = int(indptr[-1])
        bad_ends = int(indptr[0]) != 0 or nnz > min(indices.shape[0], n_data)
        if bad_ends or (np.diff(indptr) < 0).any():
            raise ValueError(
                f"{what}: indptr must start at 0, never decrease and end at most at "
                f"len(indices) = {indices.shape[0]} (and len(data) = {n_data}); it runs from "
                f"{int(indptr[0])} to {nnz}"
            )
        if nnz:
            lo, hi = int(indices[:nnz].min()), int(indices[:nnz].max())
            if lo < 0 or hi >= minor:
                raise ValueError(
                    f"{what}: indices must lie in [0, {minor}), got values in [{lo}, {hi}]"
                )
    elif fmt == "coo":
        row, col = np.asarray(X.row), np.asarray(X.col)
        n = np.shape(X.data)[0] if np.ndim(X.data) else 0
        if row.ndim != 1 or col.ndim != 1 or not row.shape[0] == col.shape[0] == n:
            raise ValueError(f"{what}: row, col and data must be 1-D of one length")
        if row.dtype.kind not in "iu" or col.dtype.kind not in "iu":
            raise ValueError(f"{what}: row and col must hold integers")
        for arr, size, axis in ((row, n_rows, "row"), (col, n_cols, "col")):
            if n and (int(arr.min()) < 0 or int(arr.max()) >= size):
                raise ValueError(
                    f"{what}: {axis} indices must lie in [0, {size}), got values in "
                    f"[{int(arr.min())}, {int(arr.max())}]"
                )


def as_spectrum_matrix(X: Any, name: str = "X", *, allow_sparse: bool = True) -> SpectrumMatrix:
    """Validate a spectrum image and view it as (N, C) without copying when possible.

    Dense input keeps uint8/uint16/uint32/float32/float64 as they are (any strides, memmaps
    read in place); other integers become uint32 (float64 beyond 2**32), float16 becomes
    float32, booleans are read as uint8. (H, W, C) cubes are reshaped to (H*W, C), a
    view for C-ordered cubes. CSR/CSC/COO matrices become canonical CSR with float data.
    """
    if sp.issparse(X):
        if not allow_sparse:
            raise TypeError(f"{name}: scipy.sparse input is not supported here; pass a dense array")
        if X.ndim != 2:
            raise ValueError(f"{name} must be 2-D (pixels, channels), got shape {X.shape}")
        if X.shape[0] == 0 or X.shape[1] == 0:
            raise ValueError(f"{name} is empty (shape {X.shape})")
        check_sparse_structure(X, name)
        csr = X.tocsr()
        data = csr.data
        if data.dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
            if data.dtype.kind not in "biuf":
                raise ValueError(f"{name} must hold real numbers, got dtype {data.dtype}")
            data = data.astype(np.float32 if data.dtype.itemsize <= 2 else np.float64)
        _check_values(data, name)
        indices, indptr = csr.indices, csr.indptr
        if indices.dtype not in (np.dtype(np.int32), np.dtype(np.int64)):
            indices, indptr = indices.astype(np.int64), indptr.astype(np.int64)
        csr = sp.csr_matrix((data, indices, indptr), shape=csr.shape, copy=False)
        if not csr.has_canonical_format:
            csr = csr.copy()
            csr.sum_duplicates()
        return SpectrumMatrix(csr, (csr.shape[0],))

    arr = np.asarray(X)
    if arr.ndim not in (2, 3):
        raise ValueError(
            f"{name} must be a 2-D (pixels, channels) or 3-D (rows, columns, channels) array, "
            f"got an array of shape {arr.shape}. Reshape your data: one spectrum is "
            "X.reshape(1, -1)"
        )
    if arr.size == 0:
        what = "0 feature(s)" if arr.shape[-1] == 0 else "0 sample(s)"
        raise ValueError(
            f"{name} is empty: {what} (shape={arr.shape}) while a minimum of 1 is required."
        )
    if arr.dtype.kind == "c":
        raise ValueError(f"{name}: Complex data not supported (dtype {arr.dtype})")
    if arr.dtype == object:
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError) as err:
            raise type(err)(f"{name} must hold real numbers; {err}") from err
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))  # the kernels read native byte order
    if arr.dtype.kind in "biu":
        arr = _integers_to_counts(arr, name)
    arr = as_array(arr, name, ndim=(2, 3), keep_dtypes=COUNT_DTYPES)
    _check_values(arr, name)
    nav_shape = arr.shape[:-1]
    if arr.ndim == 3:
        arr = arr.reshape(-1, arr.shape[-1])  # a view for C-ordered cubes
    return SpectrumMatrix(arr, tuple(int(s) for s in nav_shape))


def as_mask(mask: Any, name: str, shape: tuple[int, ...], n: int) -> np.ndarray | None:
    """A boolean 'excluded' mask of ``shape`` (or flat length n) -> uint8 'included' or None."""
    if mask is None:
        return None
    m = np.asarray(mask)
    if m.dtype != np.bool_:
        raise ValueError(f"{name} must be a boolean array (True = excluded), got dtype {m.dtype}")
    if m.shape != tuple(shape) and m.shape != (n,):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {m.shape}")
    included = np.ascontiguousarray(~m.reshape(-1), dtype=np.uint8)
    if not included.any():
        raise ValueError(f"{name} excludes everything; at least one entry must be included")
    return None if included.all() else included


def factor_dtype(data: SpectrumMatrix, dtype: Any) -> np.dtype:
    """float64 for float64 data, float32 otherwise, unless ``dtype`` says."""
    if dtype is not None:
        d = np.dtype(dtype)
        if d not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise ValueError(f"dtype must be float32 or float64, got {d}")
        return d
    x_dtype = data.X.dtype
    return np.dtype(np.float64) if x_dtype == np.float64 else np.dtype(np.float32)


def unflatten(a: np.ndarray, nav_shape: tuple[int, ...]) -> np.ndarray:
    """(N, K) -> nav_shape + (K,)."""
    return a.reshape(*nav_shape, a.shape[-1]) if len(nav_shape) > 1 else a
