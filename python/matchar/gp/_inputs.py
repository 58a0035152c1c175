"""The arrays that the GP functions and :class:`~matchar.gp.SparseGPR` take, checked.

Feature rows (2-D, real, optionally finite) and targets (real, float64), refused with
the words of scikit-learn's ``check_array`` where it reports the same failure.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from .._arrays import as_array


def _feature_rows(X: ArrayLike, name: str) -> np.ndarray:
    """A 2-D float array of ``X`` (no copy when possible), as :func:`as_array` gives it.

    The messages of the failures scikit-learn's ``check_array`` also reports use its
    words ("Reshape your data", "0 feature(s)", "Complex data not supported"), so that
    code written against scikit-learn recognises them; object arrays of numbers are read
    as float64, as scikit-learn does.
    """
    if X is None:
        raise ValueError(f"{name} must be a 2-D array (samples, features), got None")
    arr = np.asarray(X) if not (hasattr(X, "tocsr") and hasattr(X, "nnz")) else X
    if isinstance(arr, np.ndarray):
        if arr.ndim == 1:
            raise ValueError(
                f"{name} must be a 2-D array (samples, features), got an array of shape "
                f"{arr.shape}. Reshape your data: X.reshape(-1, 1) for one feature, "
                "X.reshape(1, -1) for one sample"
            )
        if arr.ndim == 2 and arr.size == 0:
            what = "0 feature(s)" if arr.shape[1] == 0 else "0 sample(s)"
            raise ValueError(
                f"{name} is empty: {what} (shape={arr.shape}) while a minimum of 1 is required."
            )
        if arr.dtype.kind == "c":
            raise ValueError(
                f"{name} must hold real numbers, got dtype {arr.dtype}: Complex data not supported"
            )
        if arr.dtype == object:
            try:
                arr = arr.astype(np.float64)
            except (TypeError, ValueError) as err:
                raise type(err)(f"{name} must hold real numbers; {err}") from err
    return as_array(arr, name, ndim=2)


def _finite_rows(X: ArrayLike, name: str) -> np.ndarray:
    """A 2-D float array of ``X`` (no copy when possible); ValueError for NaN/inf."""
    X_ = _feature_rows(X, name)
    step = max(1, (1 << 22) // max(X_.shape[1], 1))  # bounded temporaries
    if not all(np.isfinite(X_[i : i + step]).all() for i in range(0, len(X_), step)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return X_


def _targets(y: ArrayLike, name: str) -> np.ndarray:
    """``y`` as float64; a ValueError (not a ComplexWarning and a lost imaginary part) for
    complex, object or string values."""
    arr = np.asarray(y)
    if arr.dtype == object:  # numbers in an object array are read, as scikit-learn does
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{name} must hold real numbers, got dtype object ({err})") from None
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    return arr.astype(np.float64, copy=False)
