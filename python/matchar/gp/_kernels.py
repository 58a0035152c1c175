"""Kernel functions evaluated by the C++ core."""

from __future__ import annotations

import operator

import numpy as np
from numpy.typing import ArrayLike

from .. import _core
from .._arrays import as_array, common_float_dtype


def polynomial_kernel(
    X: ArrayLike, Y: ArrayLike | None = None, zeta: int = 2, normalize: bool = True
) -> np.ndarray:
    """Polynomial (normalised dot-product) kernel, the SOAP kernel of ShiftML.

    ``K[i, j] = ((X[i] / |X[i]|) · (Y[j] / |Y[j]|)) ** zeta``, or ``(X[i] · Y[j]) ** zeta``
    with ``normalize=False``.

    Fused and blocked in C++: rows are normalised while blocks are packed, products go
    through Eigen's GEMM and are raised to ``zeta`` in cache, so the only large allocation
    is the (n, m) result. OpenMP-parallel (see :func:`matchar.set_num_threads`), GIL
    released, interruptible with Ctrl-C.

    Parameters
    ----------
    X : array_like, shape (n, d)
        Feature vectors (e.g. SOAP power spectra), float32 or float64; any memory
        layout (C, Fortran, sliced) is read without a copy. Integers become float64.
    Y : array_like, shape (m, d), optional
        Second set of feature vectors. ``None`` (or ``X`` itself) gives the Gram matrix
        ``K(X, X)``, computed with its symmetry in half the time.
    zeta : int, default 2
        Integer exponent ``>= 1``.
    normalize : bool, default True
        Normalise every row to unit length first. Rows of zero norm are treated as
        zero vectors: their kernel values are 0, not NaN.

    Returns
    -------
    K : numpy.ndarray, shape (n, m)
        float32 when both inputs are float32 (no upcast copy), float64 otherwise.

    Raises
    ------
    ValueError
        If an input holds NaN/inf, is not 2-D, is empty, the feature dimensions differ,
        or ``zeta`` is not an integer ``>= 1``.
    MemoryError
        If the (n, m) result cannot fit in this machine's memory (raised before
        allocating).

    Example
    -------
    >>> import numpy as np, matchar as mc
    >>> X = np.random.default_rng(0).random((5, 3))
    >>> K = mc.gp.polynomial_kernel(X, X, zeta=2)
    >>> K.shape, bool(np.allclose(np.diag(K), 1.0))
    ((5, 5), True)
    """
    try:
        zeta_int = operator.index(zeta)
    except TypeError:
        if isinstance(zeta, (float, np.floating)) and float(zeta).is_integer():
            zeta_int = int(zeta)
        else:
            raise ValueError(f"zeta must be an integer >= 1, got {zeta!r}") from None
    if zeta_int < 1:
        raise ValueError(f"zeta must be an integer >= 1, got {zeta!r}")

    X_ = as_array(X, "X", ndim=2)
    if Y is None or Y is X:
        # The Gram matrix: symmetric, so the core computes half of it and mirrors.
        return _kernel_fn(X_.dtype)(X_, None, zeta_int, bool(normalize))
    Y_ = as_array(Y, "Y", ndim=2)
    if X_.shape[1] != Y_.shape[1]:
        raise ValueError(
            f"X and Y must have the same number of features, got X with {X_.shape[1]} "
            f"and Y with {Y_.shape[1]}"
        )
    dtype = common_float_dtype(X_, Y_)
    X_ = X_.astype(dtype, copy=False)
    Y_ = Y_.astype(dtype, copy=False)
    return _kernel_fn(dtype)(X_, Y_, zeta_int, bool(normalize))


def _kernel_fn(dtype: np.dtype):
    return _core.gp.polynomial_kernel_f32 if dtype == np.float32 else _core.gp.polynomial_kernel_f64
