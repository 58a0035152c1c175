"""Non-negative matrix factorisation of spectrum images (KL / Poisson and Frobenius).

Kept as one module because it is one estimator: the :class:`NMF` class is about 730 of
its lines, and its documented part alone (the class docstring and the public ``fit``,
``fit_transform``, ``partial_fit``, ``transform``, ``inverse_transform``, ``to_signals``
and ``plot``, which the API reference reads from the class itself) is about 500; the
private methods hold the iterations and the streaming state those methods share. The
helpers above the class (sparse input, deviance, NNDSVD start, memory check) are shared
with ``PhysicsNMF`` and ``PCA``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import check_random_state

from .. import _core
from .._threads import serialized
from .._validation import check_fitted, check_float, check_int
from ._anomaly import anomalies_of_fit
from ._dask import DaskSpectrumMatrix, is_dask_input
from ._edx import is_signal
from ._hyperspy import axes_of, hyperspy_decomposition_call, to_signals, warn_hyperspy_treatments
from ._input import (
    SpectrumMatrix,
    as_mask,
    as_spectrum_matrix,
    check_sparse_structure,
    factor_dtype,
    unflatten,
)
from ._svd import randomized_svd

_LOSSES = ("kl", "frobenius")
# Dense input with fewer non-zeros than this fraction is iterated in CSR form: the work
# then scales with the counts, not the cube (typical of EDX maps, often >95 % zeros).
AUTO_SPARSE_DENSITY = 0.05
_ROWS_ELEMENTS = 1 << 22


def _sparse_if_mostly_zero(data: SpectrumMatrix) -> SpectrumMatrix:
    """A CSR copy of the non-zeros of a mostly-zero dense cube, else ``data`` itself."""
    if data.sparse:
        return data
    X = data.X
    N, C = X.shape
    step = max(1, _ROWS_ELEMENTS // C)
    limit, nnz = AUTO_SPARSE_DENSITY * N * C, 0
    for i in range(0, N, step):  # stops as soon as the cube is known to be dense
        nnz += int(np.count_nonzero(X[i : i + step]))
        if nnz > limit:
            return data
    value_dtype = np.float64 if X.dtype in (np.float64, np.uint32) else np.float32
    blocks = [sp.csr_matrix(X[i : i + step], dtype=value_dtype) for i in range(0, N, step)]
    csr = sp.vstack(blocks, format="csr")
    if csr.indices.dtype != csr.indptr.dtype:
        csr.indices = csr.indices.astype(np.int64)
        csr.indptr = csr.indptr.astype(np.int64)
    return SpectrumMatrix(csr, data.nav_shape)


def _identity(*objs):
    return objs[0] if len(objs) == 1 else objs


def _update(
    data: SpectrumMatrix, loss: str, W, H, pm, cm, update_H: bool, with_loss: bool, sweeps=1
):
    """One iteration in C++: (loss, W_new, H_new or None)."""
    if getattr(data, "distributed", False):  # a dask array: chunk tasks + reduction
        return data.update(loss, W, H, pm, cm, update_H, with_loss, sweeps)
    X = data.X
    if data.sparse:
        return _core.spectral.nmf_update_csr(
            loss, X.data, X.indices, X.indptr, X.shape[1], W, H, pm, cm, update_H, with_loss, sweeps
        )
    return _core.spectral.nmf_update(loss, X, W, H, pm, cm, update_H, with_loss, sweeps)


def _deviance(data: SpectrumMatrix, W, H, pm=None, cm=None) -> np.ndarray:
    if getattr(data, "distributed", False):
        return data.deviance(W, H, pm, cm)
    X = data.X
    if data.sparse:
        return _core.spectral.poisson_deviance_csr(
            X.data, X.indices, X.indptr, X.shape[1], W, H, pm, cm
        )
    return _core.spectral.poisson_deviance(X, W, H, pm, cm)


def _data_mean(data: SpectrumMatrix) -> float:
    if getattr(data, "distributed", False):
        return data.data_mean()
    N, C = data.shape
    if data.sparse:
        total = float(data.X.data.sum(dtype=np.float64))
    else:
        total = float(_core.spectral.weighted_sums(data.X, None, None)[0].sum())
    return total / (N * C)


def _nndsvd(data: SpectrumMatrix, k: int, random_state, dtype, fill: bool):
    """NNDSVD(a) (Boutsidis & Gallopoulos 2008) on a blocked randomized SVD of X."""
    if getattr(data, "distributed", False):
        return data.nndsvd(k, random_state, dtype, fill)
    X = data.X
    if data.sparse:
        from sklearn.utils.extmath import randomized_svd as sk_randomized_svd

        U, S, Vt = sk_randomized_svd(X, k, random_state=random_state)
    else:
        S, Vt = randomized_svd(X, k, random_state=random_state, n_iter=4)
        U = _core.spectral.weighted_project(X, None, None, np.ascontiguousarray(Vt.T), None)
        U = U.astype(np.float64) / np.where(S > 0, S, 1.0)
    W = np.zeros((U.shape[0], k))
    H = np.zeros((k, Vt.shape[1]))
    W[:, 0] = np.sqrt(S[0]) * np.abs(U[:, 0])
    H[0] = np.sqrt(S[0]) * np.abs(Vt[0])
    for j in range(1, k):
        x, y = U[:, j], Vt[j]
        xp, yp = np.maximum(x, 0), np.maximum(y, 0)
        xn, yn = np.abs(np.minimum(x, 0)), np.abs(np.minimum(y, 0))
        xpn, ypn, xnn, ynn = (np.linalg.norm(v) for v in (xp, yp, xn, yn))
        mp, mn = xpn * ypn, xnn * ynn
        if mp > mn:
            u, v, sigma = xp / xpn, yp / ypn, mp
        else:
            u, v, sigma = xn / max(xnn, 1e-300), yn / max(ynn, 1e-300), mn
        lbd = np.sqrt(S[j] * sigma)
        W[:, j] = lbd * u
        H[j] = lbd * v
    W[W < 1e-6] = 0
    H[H < 1e-6] = 0
    if fill:
        avg = _data_mean(data)
        W[W == 0] = avg
        H[H == 0] = avg
    return W.astype(dtype), H.astype(dtype)


def nav_channels(X: Any) -> tuple[int, int] | None:
    """(pixels N, channels C) from ``X.shape`` without reading X (None without a usable
    shape): lets parameters and memory be checked before any pass over the data."""
    shape = getattr(X, "shape", None)
    if shape is None or len(shape) not in (2, 3):
        return None
    return int(np.prod(shape[:-1], dtype=np.float64)), int(shape[-1])


def check_maps_memory(n_pixels: int, k: int, copies: int, what: str) -> None:
    """MemoryError (before any pass over the data) when ``copies`` float64 (N, K) arrays
    cannot fit: the maps, their update and the initialisation's temporaries."""
    _core.check_allocation(copies * n_pixels * k + n_pixels, 8, what)


class NMF(TransformerMixin, BaseEstimator):
    """Non-negative matrix factorisation of a spectrum image, ``X ~ maps @ components_``.

    The Kullback-Leibler (Poisson) loss uses Lee-Seung multiplicative updates, the
    Frobenius loss HALS (cyclic coordinate descent); both run in C++ as one blocked pass
    over the data per iteration that never materialises ``W @ H`` or ``X / (W @ H)``.
    Counts (uint8/uint16/uint32) and float32 are read in place; memory beyond the data
    is O(N K + threads K C). Zero counts cost no division (and no work at all for
    ``scipy.sparse`` input).

    Parameters
    ----------
    n_components : int
        Number of components K, ``1 <= K <= min(N, C)``.
    loss : {"kl", "frobenius"}, default "kl"
        "kl" is the generalised Kullback-Leibler divergence, i.e. the Poisson negative
        log-likelihood up to a constant (right for raw counts); "frobenius" is
        ``0.5 |X - W H|^2``.
    max_iter : int, default 200
        Maximum number of iterations (one iteration updates W, then H).
    tol : float, default 1e-4
        Every ``eval_every`` iterations the loss is evaluated; the fit stops when it
        decreased by less than ``tol`` (relative) since the previous evaluation.
        ``tol=0`` runs exactly ``max_iter`` iterations.
    init : {"nndsvda", "nndsvd", "random"} or (W, H), default "nndsvda"
        NNDSVD (zeros filled with the data mean for "nndsvda") from a blocked randomized
        SVD, scikit-learn's "random" scheme, or explicit arrays of shapes (N, K) and
        (K, C) (or (H, W, K) for cube input), which are copied, never modified.
    random_state : int, numpy.random.Generator/RandomState or None
        Seed of the randomized SVD / random init. With a fixed seed and thread count the
        result is bitwise reproducible.
    eval_every : int, default 10
        How often the loss (which needs a logarithm per non-zero count for "kl") is
        evaluated for ``tol`` and ``loss_history_``.
    dtype : {None, "float32", "float64"}
        Dtype of the factors; default float64 for float64 data, float32 otherwise.
        Accumulations are float64 either way.
    progress : bool, default False
        Show a tqdm progress bar over iterations.
    compute_residual_map : bool, default True
        Compute ``residual_map_`` (one extra pass at the end of ``fit``).
    warm_start : bool, default False
        When True and the estimator is already fitted with the same K and C, ``fit``
        starts from the previous ``components_`` (and from the previous maps when X has
        the same number of pixels) instead of ``init``.
    forget_factor : float in (0, 1], default 1.0
        :meth:`partial_fit` only: weight of the past in the sufficient statistics per
        block (1: every spectrum counts equally; < 1 follows drifting data).
    batch_iter : int, default 20
        :meth:`partial_fit` only: multiplicative updates of each new block's maps with
        the components fixed, before the component update.
    inner_sweeps : int, default 1
        ``loss="frobenius"`` only: coordinate-descent sweeps over each row of W (given H)
        and each column of H (given W) per pass over X ("accelerated HALS", Gillis &
        Glineur 2012). Extra sweeps cost K^2 per row, not another read of X, and never
        increase the loss, so fewer iterations reach a given loss. 1 is scikit-learn's
        ``solver="cd"`` iteration. Dask input too (the W sweeps in the chunk tasks,
        the H sweeps in the reduction). At most 1000; a row's sweeps stop early once
        one changes nothing.
    anomaly_fdr : float in (0, 1] or None, default 0.01
        False-discovery rate of the residual test run at the end of ``fit`` (with
        ``compute_residual_map``; in-memory input): pixels whose counts exceed the fitted
        model by more than Poisson noise allows are flagged in ``anomaly_map_`` and
        grouped in ``anomaly_regions_`` (see :func:`residual_anomalies`). None skips it.

    Attributes
    ----------
    components_ : ndarray, shape (K, C)
        Component spectra H (counts per channel per unit abundance).
    n_components_ : int
    n_iter_ : int
        Iterations run.
    loss_history_ : ndarray, shape (n_evaluations,)
        Loss at the iterations in ``loss_iterations_`` (the last entry is the final
        state, over the included pixels and channels).
    loss_iterations_ : ndarray of int, same shape
    reconstruction_err_ : float
        ``sqrt(2 * loss)`` of the final state (scikit-learn's convention).
    residual_map_ : ndarray, shape (N,) or (H, W)
        Poisson deviance of the reconstruction per pixel over the included channels:
        bright pixels carry signal that K components do not explain.
    residual_pvalues_ : ndarray, shape (N,) or (H, W)
        Per-pixel p-value of an excess of counts over the model in some channel window
        (adjusted for the windows scanned; see :func:`residual_anomalies`), or None.
    anomaly_map_ : ndarray of bool, shape (N,) or (H, W)
        Pixels flagged at false-discovery rate ``anomaly_fdr`` (None when not computed).
    anomaly_regions_ : list of AnomalyRegion
        Connected flagged regions, most significant first, each with its summed
        residual spectrum (the peak the model does not explain), or None.
    n_features_in_ : int
    n_samples_seen_ : int
        Spectra merged by :meth:`partial_fit` (only after ``partial_fit``; there
        ``n_iter_`` counts blocks and ``loss_history_`` holds each block's loss under
        the components before the block).

    Notes
    -----
    Masks (``fit(X, pixel_mask=..., channel_mask=...)``, True = excluded): an excluded
    pixel does not influence ``components_`` but still gets its map values fitted to the
    included channels; an excluded channel does not influence the maps but its values in
    ``components_`` are fitted given the maps. Excluded entries are left out of the loss,
    not treated as zeros. All-zero pixels get all-zero maps (never NaN). float16 input is
    converted to float32; signed integer counts to uint32 (both copies). Dense input with
    fewer than 5 % non-zero counts is iterated from a CSR copy of its non-zeros (much
    smaller than the cube), so that the work scales with the number of counts.

    Pressing Ctrl-C stops the fit within one iteration: the estimator keeps the state
    after the last complete iteration (``components_``, ``n_iter_``, ``loss_history_``)
    and ``KeyboardInterrupt`` is re-raised.

    Example
    -------
    >>> import numpy as np, matchar as mc
    >>> rng = np.random.default_rng(0)
    >>> maps = rng.random((20, 30, 2)); spectra = rng.random((2, 64)) * 50
    >>> cube = rng.poisson(maps @ spectra).astype(np.uint16)
    >>> nmf = mc.spectral.NMF(2, random_state=0)
    >>> abundance = nmf.fit_transform(cube)
    >>> abundance.shape, nmf.components_.shape
    ((20, 30, 2), (2, 64))
    """

    def __init__(
        self,
        n_components: int,
        loss: str = "kl",
        max_iter: int = 200,
        tol: float = 1e-4,
        init: Any = "nndsvda",
        random_state: Any = None,
        *,
        eval_every: int = 10,
        dtype: Any = None,
        progress: bool = False,
        compute_residual_map: bool = True,
        warm_start: bool = False,
        forget_factor: float = 1.0,
        batch_iter: int = 20,
        inner_sweeps: int = 1,
        anomaly_fdr: float | None = 0.01,
    ) -> None:
        self.n_components = n_components
        self.loss = loss
        self.max_iter = max_iter
        self.tol = tol
        self.init = init
        self.random_state = random_state
        self.eval_every = eval_every
        self.inner_sweeps = inner_sweeps
        self.dtype = dtype
        self.progress = progress
        self.compute_residual_map = compute_residual_map
        self.warm_start = warm_start
        self.forget_factor = forget_factor
        self.batch_iter = batch_iter
        self.anomaly_fdr = anomaly_fdr

    def __sklearn_tags__(self):  # scikit-learn >= 1.6
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = True  # counts: negative values are rejected
        tags.input_tags.sparse = True
        return tags

    def _more_tags(self) -> dict[str, Any]:  # scikit-learn < 1.6
        return {"requires_positive_X": True, "X_types": ["2darray", "sparse"]}

    # -- parameters -----------------------------------------------------------------
    def _check_params(self, N: int, C: int) -> int:
        if not isinstance(self.loss, str) or self.loss not in _LOSSES:
            raise ValueError(f"loss must be 'kl' or 'frobenius', got {self.loss!r}")
        k = check_int(self.n_components, "n_components", low=1)
        if k > min(N, C):
            raise ValueError(f"n_components={k} must be <= min(n_pixels, n_channels) = {min(N, C)}")
        self._check_iteration_params()
        if self.anomaly_fdr is not None:
            check_float(self.anomaly_fdr, "anomaly_fdr", low=0.0, high=1.0, low_open=True)
        return k

    def _check_iteration_params(self) -> None:
        """The parameters fit and transform iterate with (the C++ kernels take C ints)."""
        check_int(self.max_iter, "max_iter", low=1)
        check_int(self.eval_every, "eval_every", low=1)
        # a pass stops its sweeps early once they change nothing; beyond ~1000 they
        # only cycle in the last bit, and one pass could run for hours
        check_int(self.inner_sweeps, "inner_sweeps", low=1, high=1000)
        check_float(self.tol, "tol", low=0.0)

    def _check_memory(self, X: Any) -> None:
        """MemoryError from X's shape, before any pass over X (the checks of the values
        of X and of cubes that cannot fit would be passes that come to nothing)."""
        nc = nav_channels(X)
        if nc is None or min(nc) < 1:
            return
        try:
            k = self._check_params(*nc)
        except ValueError:
            return  # raised again, after the checks of X, in their usual order
        check_maps_memory(nc[0], k, 4, "NMF: the maps (N x K) and their working copies")

    def _initial_factors(self, data: SpectrumMatrix, k: int, dtype: np.dtype):
        N, C = data.shape
        init = self.init
        if isinstance(init, str):
            if init in ("nndsvda", "nndsvd"):
                return _nndsvd(data, k, self.random_state, dtype, fill=init == "nndsvda")
            if init == "random":
                avg = np.sqrt(_data_mean(data) / k)
                rng = check_random_state(self.random_state)
                H = np.abs(avg * rng.standard_normal((k, C)))
                W = np.abs(avg * rng.standard_normal((N, k)))
                return W.astype(dtype), H.astype(dtype)
            raise ValueError(
                f"init must be 'nndsvda', 'nndsvd', 'random' or a (W, H) pair, got {init!r}"
            )
        if not isinstance(init, (tuple, list)) or len(init) != 2:
            raise ValueError(
                f"init must be 'nndsvda', 'nndsvd', 'random' or a (W, H) pair, "
                f"got {type(init).__name__}"
            )
        W = np.array(init[0], dtype=dtype, copy=True)
        H = np.array(init[1], dtype=dtype, copy=True)
        if W.shape != (*data.nav_shape, k) and W.shape != (N, k):
            raise ValueError(f"init W must have shape {(*data.nav_shape, k)}, got {W.shape}")
        W = W.reshape(N, k)
        if H.shape != (k, C):
            raise ValueError(f"init H must have shape {(k, C)}, got {H.shape}")
        for name, a in (("init W", W), ("init H", H)):
            if not np.isfinite(a).all() or (a < 0).any():
                raise ValueError(f"{name} must be finite and non-negative")
        return W, H

    # -- fitting --------------------------------------------------------------------
    @serialized
    def fit(self, X: ArrayLike, y: Any = None, **fit_params: Any) -> NMF:
        """Fit the factorisation to a spectrum image; see :meth:`fit_transform`.

        Example
        -------
        >>> import numpy as np, matchar as mc
        >>> X = np.random.default_rng(0).poisson(5.0, (50, 40))
        >>> mc.spectral.NMF(2, random_state=0).fit(X).components_.shape
        (2, 40)
        """
        self.fit_transform(X, y, **fit_params)
        return self

    @serialized
    def fit_transform(
        self,
        X: ArrayLike,
        y: Any = None,
        *,
        pixel_mask: ArrayLike | None = None,
        channel_mask: ArrayLike | None = None,
    ) -> np.ndarray:
        """Fit to X and return the abundance maps W.

        Parameters
        ----------
        X : array_like, shape (N, C) or (H, W, C), or scipy.sparse matrix (N, C)
            Non-negative counts or intensities: uint8/16/32 and float32/float64 are read
            in place (``np.memmap`` included); other dtypes are converted (a copy).
        y : ignored
        pixel_mask : bool array, shape (N,) or (H, W), optional
            True marks dead/hot pixels excluded from the fit of ``components_``.
        channel_mask : bool array, shape (C,), optional
            True marks channels excluded from the fit of the maps.

        Returns
        -------
        maps : ndarray, shape (N, K) or (H, W, K)
            Abundances (float32 or float64, see ``dtype``).

        Raises
        ------
        ValueError
            Negative, NaN or infinite values, wrong ndim, empty input, bad masks,
            ``n_components > min(N, C)``, bad parameters.

        Example
        -------
        >>> import numpy as np, matchar as mc
        >>> X = np.random.default_rng(0).poisson(5.0, (8, 8, 40)).astype(np.uint16)
        >>> mc.spectral.NMF(2, random_state=0, max_iter=20).fit_transform(X).shape
        (8, 8, 2)
        """
        call = hyperspy_decomposition_call()
        warn_hyperspy_treatments(f"NMF(loss={self.loss!r})", call, weighted=self.loss == "kl")
        # the axes of the signal fitted (directly, or by HyperSpy's decomposition)
        source = X if is_signal(X) else (call or {}).get("signal")
        self._signal_axes = axes_of(source) if is_signal(source) else None
        if is_dask_input(X):
            return self._fit_transform_dask(X, pixel_mask, channel_mask)
        self._check_memory(X)
        data = as_spectrum_matrix(X, "X")
        N, C = data.shape
        k = self._check_params(N, C)
        check_maps_memory(N, k, 4, "NMF: the maps (N x K) and their working copies")
        dtype = factor_dtype(data, self.dtype)
        pm = as_mask(pixel_mask, "pixel_mask", data.nav_shape, N)
        cm = as_mask(channel_mask, "channel_mask", (C,), C)
        warm = self._warm_factors(data, k, dtype)
        W, H = warm if warm is not None else self._initial_factors(data, k, dtype)
        self.__dict__.pop("_online", None)  # a batch fit ends any partial_fit stream
        self.__dict__.pop("_online_lost", None)
        W, H = self._iterate(_sparse_if_mostly_zero(data), W, H, pm, cm, update_H=True)
        if self.warm_start:
            self._warm_W = W.copy()
        return unflatten(W, data.nav_shape)

    def _fit_transform_dask(self, X: Any, pixel_mask: Any, channel_mask: Any) -> Any:
        """fit_transform of a dask array (or lazy HyperSpy signal); maps stay chunked."""
        data = DaskSpectrumMatrix(X, "X")
        N, C = data.shape
        k = self._check_params(N, C)
        dtype = data.factor_dtype(self.dtype)
        pm = as_mask(pixel_mask, "pixel_mask", data.nav_shape, N)
        cm = as_mask(channel_mask, "channel_mask", (C,), C)
        H_prev = getattr(self, "components_", None)
        if self.warm_start and H_prev is not None and H_prev.shape == (k, C):
            H = np.array(H_prev, dtype=dtype, copy=True)
            W = data.constant_factor(k, float(np.sqrt(max(data.data_mean(), 0.0) / k)), dtype)
        else:
            W, H = self._initial_factors(data, k, dtype)
            if isinstance(W, np.ndarray):
                W = data.factor_from_array(W)
        self.__dict__.pop("_online", None)
        self.__dict__.pop("_online_lost", None)
        self.__dict__.pop("_warm_W", None)
        W, H = self._iterate(data, W, H, pm, cm, update_H=True)
        return data.unflatten(W)

    def _warm_factors(self, data: SpectrumMatrix, k: int, dtype: np.dtype):
        """(W, H) from the previous fit when warm_start applies, else None."""
        H_prev = getattr(self, "components_", None)
        if not self.warm_start or H_prev is None or H_prev.shape != (k, data.shape[1]):
            return None
        H = np.array(H_prev, dtype=dtype, copy=True)
        W_prev = self.__dict__.get("_warm_W")
        if W_prev is not None and W_prev.shape == (data.shape[0], k):
            return np.array(W_prev, dtype=dtype, copy=True), H
        avg = np.sqrt(max(_data_mean(data), 0.0) / k)
        return np.full((data.shape[0], k), avg, dtype=dtype), H

    @serialized
    def partial_fit(self, X: ArrayLike, y: Any = None) -> NMF:
        """Merge a block of spectra (e.g. one scan line) into an online KL NMF.

        Backed by the C++ ``matchar::spectral::OnlineNMF`` (Lefevre, Bach & Fevotte 2011):
        the first block is fitted like :meth:`fit` (``max_iter`` iterations from ``init``:
        "nndsvda"/"nndsvd" are computed on the first block, "random" is drawn from it,
        a (W, H) pair gives the start of H). Every later block gets its maps by
        ``batch_iter`` multiplicative updates with the components fixed, then one update
        of the components from accumulated sufficient statistics
        ``A <- forget_factor A + H * W_b^T (X_b / W_b H)``, ``B <- forget_factor B + W_b^T 1``,
        ``components_ = A / B``. With ``loss="frobenius"`` (Mairal et al. 2010) the maps
        come from ``batch_iter`` HALS sweeps, the statistics are ``A = W_b^T W_b`` and
        ``B = W_b^T X_b`` (accumulated the same way) and ``components_`` from
        ``batch_iter`` HALS sweeps on them. Maps of past blocks are not kept: use
        :meth:`transform`. Calling :meth:`fit` starts over.

        Parameters
        ----------
        X : array_like, shape (n, C) or (h, w, C), or scipy.sparse (n, C)
            Non-negative counts; C must stay the same across calls. Sparse blocks are
            densified (blocks are small).
        y : ignored

        Returns
        -------
        self

        Raises
        ------
        ValueError
            A channel count that differs from the first block, negative/NaN/inf values,
            bad parameters.

        Example
        -------
        >>> import numpy as np, matchar as mc
        >>> rng = np.random.default_rng(0)
        >>> cube = rng.poisson(rng.random((10, 40, 2)) @ (rng.random((2, 64)) * 30))
        >>> nmf = mc.spectral.NMF(2, random_state=0)
        >>> for line in cube:          # one scan line (40 spectra) at a time
        ...     _ = nmf.partial_fit(line)
        >>> nmf.components_.shape, nmf.n_samples_seen_
        ((2, 64), 400)
        """
        if sp.issparse(X):
            check_sparse_structure(X, "X")
            X = X.toarray()
        data = as_spectrum_matrix(X, "X", allow_sparse=False)
        N, C = data.shape
        online = self.__dict__.get("_online")
        if online is None:
            if self.__dict__.get("_online_lost"):
                raise ValueError(
                    "this NMF was unpickled or copied in the middle of a partial_fit stream; "
                    "the stream state is not serialised, start a new estimator"
                )
            k = self._check_params(max(N, C), C)
            rho = check_float(self.forget_factor, "forget_factor", low=0.0, high=1.0, low_open=True)
            inner = check_int(self.batch_iter, "batch_iter", low=1)
            dtype = factor_dtype(data, self.dtype)
            rng = check_random_state(self.random_state)
            seed = int(rng.randint(0, 2**31 - 1))
            online = _core.spectral.OnlineNMF(
                C, k, rho, inner, int(self.max_iter), seed, self.loss, dtype=dtype
            )
            H0 = None
            if not isinstance(self.init, str):
                H0 = self._initial_factors(data, k, dtype)[1] if N >= 1 else None
            elif self.init in ("nndsvda", "nndsvd") and N >= k:
                H0 = self._initial_factors(data, k, dtype)[1]
            elif self.init not in ("nndsvda", "nndsvd", "random"):
                self._initial_factors(data, k, dtype)  # raises the init error
            if H0 is not None:
                online.set_components(np.ascontiguousarray(H0, dtype=dtype))
            self._online = online
            self._online_losses: list[float] = []
        elif C != self.n_features_in_:
            raise ValueError(
                f"X has {C} features, but NMF is expecting {self.n_features_in_} features "
                "as input (channels); the channel count cannot change during a stream"
            )
        loss, _ = online.partial_fit(data.X)
        self._online_losses.append(float(loss))
        H = online.components()
        self.components_ = H
        self.n_components_ = H.shape[0]
        self.n_features_in_ = C
        self.n_iter_ = int(online.n_batches)
        self.n_samples_seen_ = int(online.n_samples_seen)
        self._fit_dtype = H.dtype
        self.loss_history_ = np.asarray(self._online_losses, dtype=np.float64)
        self.loss_iterations_ = np.arange(1, len(self._online_losses) + 1, dtype=np.int64)
        self.reconstruction_err_ = float(np.sqrt(2.0 * max(self._online_losses[-1], 0.0)))
        self.residual_map_ = None
        self.residual_pvalues_ = self.anomaly_map_ = self.anomaly_regions_ = None
        return self

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())  # the C++ stream state is not serialised
        if state.pop("_online", None) is not None:
            state["_online_lost"] = True
        return state

    def _iterate(self, data, W, H, pm, cm, *, update_H: bool):
        # validated by _check_params (integral floats such as 4.0 included)
        loss_name, every, tol = self.loss, int(self.eval_every), float(self.tol)
        max_iter, sweeps = int(self.max_iter), int(self.inner_sweeps)
        # Dask input: update() returns the loss and H as dask objects (iterations are
        # submitted without waiting); resolve() fetches them when a value is needed.
        resolve = getattr(data, "resolve", None) or _identity
        history: list[float] = []
        iterations: list[int] = []
        n_done = 0
        last_value = np.nan  # Frobenius: the loss of the latest state, free with each pass
        bar = None
        if self.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=max_iter, desc=f"NMF ({loss_name})", unit="it")
        try:
            for it in range(max_iter):
                if loss_name == "kl":
                    # The KL pass returns the loss of its input state (after `it` iterations).
                    with_loss = it % every == 0
                    value, W_new, H_new = _update(data, "kl", W, H, pm, cm, update_H, with_loss)
                    evaluated_at = it
                else:
                    value, W_new, H_new = _update(
                        data, "frobenius", W, H, pm, cm, update_H, True, sweeps
                    )
                    with_loss = (it + 1) % every == 0
                    evaluated_at = it + 1
                last_value = value
                W = W_new
                if update_H:
                    H = H_new
                n_done = it + 1
                if bar is not None:
                    bar.update(1)
                if with_loss:
                    history.append(float(resolve(value)))
                    iterations.append(evaluated_at)
                    if tol > 0 and len(history) >= 2:
                        prev, cur = history[-2], history[-1]
                        if prev <= 0 or (prev - cur) / prev < tol:
                            break
        except KeyboardInterrupt:
            if update_H:
                self._set_result(data, W, resolve(H), n_done, history, iterations, pm, cm, None)
            raise
        finally:
            if bar is not None:
                bar.close()
        if update_H:
            H, last_value = resolve(H, last_value)
            self._set_result(data, W, H, n_done, history, iterations, pm, cm, float(last_value))
        return W, H

    def _set_result(self, data, W, H, n_iter, history, iterations, pm, cm, last_value):
        # last_value is None after an interrupt (no extra pass then), else for Frobenius
        # the loss of the final state returned by the last pass.
        final = last_value is not None
        in_memory_w = isinstance(W, np.ndarray)  # dask fits keep W in chunks on the workers
        if not (np.isfinite(H).all() and (not in_memory_w or np.isfinite(W).all())):
            # never hand back NaN maps/components (values near the float range overflow)
            raise ValueError(
                f"NMF (loss={self.loss!r}): the fit reached non-finite (NaN/inf) maps or "
                f"components after {n_iter} iterations: X's values are too large for "
                f"{np.dtype(H.dtype).name} arithmetic; divide X by a constant (the "
                "components are the same up to scale)"
            )
        self.components_ = H
        self.n_components_ = H.shape[0]
        self.n_features_in_ = H.shape[1]
        self.n_iter_ = n_iter
        self._fit_dtype = W.dtype
        residual = None
        if final:
            if self.loss == "kl" or self.compute_residual_map:
                residual = _deviance(data, W, H, pm, cm)
            if self.loss == "kl":
                dev = residual if pm is None else residual[pm.astype(bool)]
                final_loss = 0.5 * float(dev.sum())
            else:
                final_loss = float(last_value)
            if not iterations or iterations[-1] != n_iter:
                history.append(final_loss)
                iterations.append(n_iter)
            else:
                history[-1] = final_loss
        self.loss_history_ = np.asarray(history, dtype=np.float64)
        self.loss_iterations_ = np.asarray(iterations, dtype=np.int64)
        last = history[-1] if history else np.nan
        self.reconstruction_err_ = float(np.sqrt(2.0 * max(last, 0.0)))
        self.residual_map_ = (
            unflatten(residual[:, None], data.nav_shape)[..., 0]
            if residual is not None and self.compute_residual_map
            else None
        )
        self.residual_pvalues_ = self.anomaly_map_ = self.anomaly_regions_ = None
        if (
            final
            and self.compute_residual_map
            and self.anomaly_fdr is not None
            and in_memory_w
            and not getattr(data, "distributed", False)
        ):
            res = anomalies_of_fit(data, W, H, pm, cm, fdr=float(self.anomaly_fdr))
            self.residual_pvalues_ = res.p_values
            self.anomaly_map_ = res.flags
            self.anomaly_regions_ = res.regions

    # -- using a fitted model ---------------------------------------------------------
    def transform(self, X: ArrayLike) -> np.ndarray:
        """Abundance maps of new data with ``components_`` fixed.

        Runs the same updates on W only (up to ``max_iter`` iterations, ``tol`` as in
        fit) from a constant start, like scikit-learn.

        Parameters
        ----------
        X : array_like, shape (N, C) or (H, W, C), or scipy.sparse (N, C)

        Returns
        -------
        maps : ndarray, shape (N, K) or (H, W, K)

        Example
        -------
        >>> import numpy as np, matchar as mc
        >>> X = np.random.default_rng(0).poisson(5.0, (50, 40))
        >>> nmf = mc.spectral.NMF(2, random_state=0).fit(X)
        >>> nmf.transform(X[:5]).shape
        (5, 2)
        """
        check_fitted(self, "components_")
        self._check_iteration_params()
        dask_input = is_dask_input(X)
        data = DaskSpectrumMatrix(X, "X") if dask_input else as_spectrum_matrix(X, "X")
        N, C = data.shape
        if C != self.n_features_in_:
            raise ValueError(
                f"X has {C} features, but NMF is expecting "
                f"{self.n_features_in_} features as input (channels)"
            )
        H = self.components_
        avg = np.sqrt(max(_data_mean(data), 0.0) / self.n_components_)
        if dask_input:
            W = data.constant_factor(self.n_components_, float(avg), H.dtype)
            W, _ = self._iterate(data, W, H, None, None, update_H=False)
            return data.unflatten(W)
        W = np.full((N, self.n_components_), avg, dtype=H.dtype)
        W, _ = self._iterate(_sparse_if_mostly_zero(data), W, H, None, None, update_H=False)
        return unflatten(W, data.nav_shape)

    def inverse_transform(self, X: ArrayLike) -> np.ndarray:
        """Reconstruct spectra from abundance maps: ``maps @ components_``.

        Parameters
        ----------
        X : array_like, shape (N, K) or (H, W, K)
            Abundance maps.

        Returns
        -------
        ndarray, shape (N, C) or (H, W, C)

        Example
        -------
        >>> import numpy as np, matchar as mc
        >>> X = np.random.default_rng(0).poisson(5.0, (50, 40))
        >>> nmf = mc.spectral.NMF(2, random_state=0)
        >>> nmf.inverse_transform(nmf.fit_transform(X)).shape
        (50, 40)
        """
        check_fitted(self, "components_")
        maps = np.asarray(X)
        if maps.ndim not in (2, 3) or maps.shape[-1] != self.n_components_:
            raise ValueError(
                f"X must have shape (N, {self.n_components_}) or "
                f"(H, W, {self.n_components_}), got {maps.shape}"
            )
        return maps @ self.components_

    def to_signals(
        self, maps: ArrayLike, reference: Any = None, energy: Any = None
    ) -> tuple[Any, Any]:
        """(maps, components) as HyperSpy signals, HyperSpy's (loadings, factors).

        Parameters
        ----------
        maps : array_like, shape (H, W, K) or (N, K)
            What :meth:`fit_transform` returned.
        reference : HyperSpy signal, optional
            Its navigation axes (scale, offset, units) label the maps and its signal axis
            the components. Default: the signal passed to ``fit`` (if one was).
        energy : (offset, scale) or (offset, scale, unit) or array of shape (C,), optional
            Energy axis of the components (keV unless a unit is given); wins over the
            reference's signal axis.

        Returns
        -------
        maps : hyperspy Signal2D (K | H, W), or BaseSignal (K | N) for (N, K) maps
        components : hyperspy Signal1D (K | C)

        Example
        -------
        >>> import numpy as np, matchar as mc, hyperspy.api as hs
        >>> s = hs.signals.Signal1D(np.random.default_rng(0).poisson(5.0, (8, 8, 40)))
        >>> nmf = mc.spectral.NMF(2, random_state=0, max_iter=20)
        >>> loadings, factors = nmf.to_signals(nmf.fit_transform(s))
        >>> loadings.data.shape, factors.data.shape
        ((2, 8, 8), (2, 40))
        """
        check_fitted(self, "components_")
        return to_signals(
            maps,
            self.components_,
            reference=reference,
            axes=self.__dict__.get("_signal_axes"),
            energy=energy,
        )

    def plot(
        self,
        maps: ArrayLike | None = None,
        energy: Any = None,
        fig: Any = None,
        *,
        energy_unit: str = "keV",
        pixel_size: float | None = None,
    ) -> Any:
        """Component spectra (and abundance maps when given) plus the loss history.

        Parameters
        ----------
        maps : array_like, shape (N, K) or (H, W, K), optional
            What :meth:`fit_transform` returned (drawn as maps with colorbars).
        energy : (offset, scale), (offset, scale, unit) or array of shape (C,), optional
            Energy axis of the spectra in ``energy_unit`` (or the triple's unit). Default:
            the fitted signal's energy axis when it is calibrated in eV or keV, else
            the channel index.
        fig : matplotlib Figure, optional
        energy_unit : str, default "keV"
            Unit of ``energy`` on the axis label ("eV" for EELS).
        pixel_size : float, optional
            Å per pixel of the maps, for a scale bar (default: from the fitted signal's
            calibrated navigation axes, else pixel axes).

        Returns
        -------
        matplotlib.figure.Figure

        Example
        -------
        >>> import numpy as np, matchar as mc
        >>> X = np.random.default_rng(0).poisson(5.0, (8, 8, 40))
        >>> nmf = mc.spectral.NMF(2, random_state=0, max_iter=20)
        >>> fig = nmf.plot(nmf.fit_transform(X))
        """
        from ._plots import plot_components, signal_energy, signal_pixel_size

        check_fitted(self, "components_")
        axes = self.__dict__.get("_signal_axes")
        if energy is None:
            energy = signal_energy(axes)
        if pixel_size is None:
            pixel_size = signal_pixel_size(axes)
        return plot_components(
            self.components_,
            maps,
            energy,
            fig=fig,
            energy_unit=energy_unit,
            map_label="abundance (a.u.)",
            spectrum_label="counts per channel (a.u.)",
            pixel_size=pixel_size,
            loss=(self.loss_iterations_, self.loss_history_),
            loss_label="loss (Poisson deviance)",
        )
