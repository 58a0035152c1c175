"""Poisson-weighted PCA of spectrum images (Keenan & Kotula), blocked randomized SVD.

Kept as one module because it is one estimator: the :class:`PCA` class is about 640 of
its lines, of which about 500 are its docstring and the public methods (``fit``,
``partial_fit``, ``transform``, ``inverse_transform``, ``hyperspy_factors``,
``to_signals``, ``plot``) that the API reference reads from the class itself.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import check_random_state

from .. import _core
from .._threads import serialized
from .._validation import check_fitted, check_int
from ._dask import DaskSpectrumMatrix, is_dask_input
from ._edx import is_signal
from ._hyperspy import axes_of, hyperspy_decomposition_call, to_signals, warn_hyperspy_treatments
from ._input import as_spectrum_matrix, factor_dtype, unflatten
from ._svd import randomized_svd, randomized_svd_gram

#: Largest ``n_iter``: subspace iteration converges geometrically (scikit-learn uses 4 to
#: 7 passes); more passes only cost time.
MAX_N_ITER = 100
#: Largest magnitude of the weighted data (``|X|`` without the Poisson weighting, at most
#: ``sqrt(total counts)`` with it) that :meth:`PCA.partial_fit` merges, per factor dtype:
#: the streaming sketch holds products of four such values (overflow near 1e77 in float64,
#: 1e18 for float32 factors), so larger values would turn its state into inf/NaN.
STREAM_MAX_WEIGHTED = {np.dtype(np.float64): 1e50, np.dtype(np.float32): 1e12}


def _check_finite_sums(sumsq: float, mean: np.ndarray) -> None:
    """ValueError when the sums of squares of the weighted data overflow float64."""
    with np.errstate(over="ignore"):
        finite = np.isfinite(sumsq) and np.isfinite(float(mean @ mean) * 2.0)
    if not finite:
        raise ValueError(
            "X is too large for PCA: the sum of squares of the (weighted) data overflows "
            "float64. Divide X by a constant: the components are the same"
        )


def _inv_sqrt(v: np.ndarray) -> np.ndarray:
    """1/sqrt(v), 0 where v == 0 (empty pixels/channels get weight 0, never inf)."""
    out = np.zeros_like(v, dtype=np.float64)
    np.divide(1.0, np.sqrt(v), out=out, where=v > 0)
    return out


class PCA(TransformerMixin, BaseEstimator):
    """Principal component analysis of a spectrum image with Poisson weighting.

    With ``poisson=True`` (Keenan & Kotula 2004) the data are scaled as
    ``X_w = X / sqrt(g h^T)``, g the image (total counts per pixel) and h the mean
    spectrum normalised to sum 1, so that ``g h^T`` is the expected count under a rank-one
    model and Poisson noise has unit variance in every entry. ``X_w`` is then centred and
    decomposed by a randomized SVD whose products are computed by the C++ core in blocks
    of pixels: neither the weighted nor the centred matrix is ever formed, and counts
    (uint8/16/32) or float32 are read in place.

    Parameters
    ----------
    n_components : int
        Number of components K, ``1 <= K <= min(N, C)``.
    poisson : bool, default True
        Apply the Poisson weighting (False: plain PCA of X).
    random_state : int, numpy.random.Generator/RandomState or None
        Seed of the random start of the subspace iteration.
    n_iter : int or "auto", default "auto"
        Power (subspace) iterations, 0 to ``MAX_N_ITER`` (100): 7 when K < 0.1 min(N, C),
        else 4 (scikit-learn's rule). One pass over the data each, plus 3 passes
        (weights, mean/variance, Rayleigh-Ritz). The error of the subspace decays as
        ``(s[K + n_oversamples] / s[K - 1]) ** (2 n_iter + 1)`` (s the singular values):
        on sparse EDX maps, whose noise spectrum is flat, raise it (e.g. 30) to match an
        exact SVD such as HyperSpy's.
    n_oversamples : int, default 10
        Extra random directions of the sketch (>= 0).
    center : bool, default True
        Subtract the mean (weighted) spectrum, as scikit-learn's PCA does. False gives
        HyperSpy's convention (its SVD does not centre): see :meth:`hyperspy_factors`.
    dtype : {None, "float32", "float64"}
        Precision of the blocked products (accumulated in float64 either way); default
        float64 for float64 data, float32 otherwise.

    Attributes
    ----------
    components_ : ndarray, shape (K, C)
        Principal axes in the weighted space, unit norm.
    explained_variance_ : ndarray, shape (K,)
    explained_variance_ratio_ : ndarray, shape (K,)
        Fraction of the total variance of the (weighted, centred) data.
    singular_values_ : ndarray, shape (K,)
    mean_ : ndarray, shape (C,)
        Mean of the weighted spectra (zeros when ``center=False``).
    image_ : ndarray, shape (N,) or (H, W)
        Total counts per pixel of the fitted data (the g of the weighting).
    spectrum_weights_ : ndarray, shape (C,)
        ``1 / sqrt(h)`` (ones when ``poisson=False``).
    n_components_, n_features_in_, n_samples_ : int
    n_samples_seen_ : int
        Spectra merged by :meth:`partial_fit` (only after ``partial_fit``).

    Example
    -------
    >>> import numpy as np, matchar as mc
    >>> rng = np.random.default_rng(0)
    >>> cube = rng.poisson(rng.random((32, 32, 2)) @ (rng.random((2, 100)) * 30))
    >>> pca = mc.spectral.PCA(3, random_state=0)
    >>> scores = pca.fit_transform(cube)
    >>> scores.shape, pca.components_.shape
    ((32, 32, 3), (3, 100))
    """

    def __init__(
        self,
        n_components: int,
        poisson: bool = True,
        random_state: Any = None,
        *,
        n_iter: int | str = "auto",
        n_oversamples: int = 10,
        center: bool = True,
        dtype: Any = None,
    ) -> None:
        self.n_components = n_components
        self.poisson = poisson
        self.random_state = random_state
        self.n_iter = n_iter
        self.n_oversamples = n_oversamples
        self.center = center
        self.dtype = dtype

    def __sklearn_tags__(self):  # scikit-learn >= 1.6
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = True  # counts: negative values are rejected
        tags.input_tags.sparse = False
        return tags

    def _more_tags(self) -> dict[str, Any]:  # scikit-learn < 1.6
        return {"requires_positive_X": True, "X_types": ["2darray"]}

    def _weights(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(image g, row weights r, column weights c) of X; one pass."""
        g, h, _ = _core.spectral.weighted_sums(X, None, None)
        if not self.poisson:
            return g, np.ones_like(g), np.ones_like(h)
        total = h.sum()
        return g, _inv_sqrt(g), _inv_sqrt(h / total if total > 0 else h)

    def _check_params(self, N: int, C: int) -> tuple[int, int]:
        """(n_components, n_iter) for N pixels and C channels, or ValueError."""
        k = self._n_components(min(N, C), "min(n_pixels, n_channels)")
        if N < 2:
            raise ValueError(f"X must have at least 2 pixels for PCA, got n_samples={N}")
        if isinstance(self.n_iter, str) and self.n_iter == "auto":
            n_iter = 7 if k < 0.1 * min(N, C) else 4
        else:
            try:
                n_iter = check_int(self.n_iter, "n_iter", low=0, high=MAX_N_ITER)
            except ValueError:
                raise ValueError(
                    f"n_iter must be 'auto' or an integer in [0, {MAX_N_ITER}], got {self.n_iter!r}"
                ) from None
        check_int(self.n_oversamples, "n_oversamples", low=0)
        return k, n_iter

    def _n_components(self, limit: int, what: str) -> int:
        k = self.n_components
        try:
            return check_int(k, "n_components", low=1, high=limit)
        except ValueError:
            raise ValueError(
                f"n_components must be an integer in [1, {what}] = [1, {limit}], got {k!r}"
            ) from None

    @serialized
    def fit(self, X: ArrayLike, y: Any = None) -> PCA:
        """Fit the weighted PCA; see :meth:`fit_transform`.

        Example
        -------
        >>> import numpy as np, matchar as mc
        >>> X = np.random.default_rng(0).poisson(5.0, (100, 30))
        >>> mc.spectral.PCA(2, random_state=0).fit(X).components_.shape
        (2, 30)
        """
        self._note_caller(X)
        if is_dask_input(X):
            return self._fit_dask(X)
        data = as_spectrum_matrix(X, "X", allow_sparse=False)
        X2 = data.X
        N, C = data.shape
        k, n_iter = self._check_params(N, C)
        dtype = factor_dtype(data, self.dtype)
        self.__dict__.pop("_stream", None)  # a batch fit ends any partial_fit stream
        self.__dict__.pop("_stream_lost", None)
        g, r, c = self._weights(X2)
        col_sums, sumsq = _core.spectral.weighted_sums(X2, r, c)[1:]
        mean = col_sums / N if self.center else np.zeros(C)
        _check_finite_sums(sumsq, mean)
        total_var = (sumsq - N * float(mean @ mean)) / (N - 1)
        S, Vt = randomized_svd(
            X2,
            k,
            r=r,
            c=c,
            mean=mean if self.center else None,
            n_oversamples=int(self.n_oversamples),
            n_iter=n_iter,
            random_state=self.random_state,
            dtype=dtype,
        )

        self.components_ = Vt
        self.singular_values_ = S
        self.explained_variance_ = S**2 / (N - 1)
        self.explained_variance_ratio_ = (
            self.explained_variance_ / total_var if total_var > 0 else np.zeros(k)
        )
        self.mean_ = mean
        self.image_ = g.reshape(data.nav_shape)
        self.spectrum_weights_ = c
        self.n_components_ = k
        self.n_features_in_ = C
        self.n_samples_ = N
        self._dtype = dtype
        return self

    def _note_caller(self, X: Any) -> None:
        """Warn about HyperSpy treatments that do not suit this PCA; keep X's axes."""
        call = hyperspy_decomposition_call()
        if call is not None:
            warn_hyperspy_treatments(
                f"PCA(poisson={self.poisson!r})", call, weighted=bool(self.poisson)
            )
            if self.poisson and not call["normalize_poissonian_noise"]:
                warnings.warn(
                    "PCA(poisson=True) was called by HyperSpy's decomposition: HyperSpy "
                    "stores its weighted-space scores and components as loadings and "
                    "factors, so get_decomposition_model is not in counts. Use "
                    "PCA(K, poisson=False, center=False) with "
                    "normalize_poissonian_noise=True (HyperSpy weights and unweights)",
                    UserWarning,
                    stacklevel=3,
                )
        # the axes of the signal fitted (directly, or by HyperSpy's decomposition)
        source = X if is_signal(X) else (call or {}).get("signal")
        self._signal_axes = axes_of(source) if is_signal(source) else None

    def _fit_dask(self, X: Any) -> PCA:
        """fit of a dask array (or lazy HyperSpy signal): the same passes over the chunks."""
        data = DaskSpectrumMatrix(X, "X")
        N, C = data.shape
        k, n_iter = self._check_params(N, C)
        dtype = data.factor_dtype(self.dtype)
        self.__dict__.pop("_stream", None)
        self.__dict__.pop("_stream_lost", None)
        g, h, _ = data.weighted_sums()
        if self.poisson:
            total = h.sum()
            r, c = _inv_sqrt(g), _inv_sqrt(h / total if total > 0 else h)
        else:
            r, c = np.ones_like(g), np.ones_like(h)
        col_sums, sumsq = data.weighted_sums(r, c)[1:]
        mean = col_sums / N if self.center else np.zeros(C)
        _check_finite_sums(sumsq, mean)
        total_var = (sumsq - N * float(mean @ mean)) / (N - 1)
        S, Vt = randomized_svd_gram(
            lambda V: data.gram(r, c, V, mean if self.center else None, dtype),
            (N, C),
            k,
            n_oversamples=int(self.n_oversamples),
            n_iter=n_iter,
            random_state=self.random_state,
        )
        self.components_ = Vt
        self.singular_values_ = S
        self.explained_variance_ = S**2 / (N - 1)
        self.explained_variance_ratio_ = (
            self.explained_variance_ / total_var if total_var > 0 else np.zeros(k)
        )
        self.mean_ = mean
        self.image_ = g.reshape(data.nav_shape)
        self.spectrum_weights_ = c
        self.n_components_ = k
        self.n_features_in_ = C
        self.n_samples_ = N
        self._dtype = dtype
        return self

    @serialized
    def partial_fit(self, X: ArrayLike, y: Any = None) -> PCA:
        """Merge a block of spectra (e.g. one scan line) into an incremental PCA.

        Backed by the C++ ``matchar::spectral::StreamingPCA``: a rank
        ``n_components + n_oversamples`` sketch of the weighted, centred data is merged
        with each block by a Rayleigh-Ritz step on the old subspace plus a randomized
        range of the block's residual (one power iteration), the scheme of
        scikit-learn's ``IncrementalPCA`` with a randomized residual instead of a full
        SVD of each block. With ``poisson=True`` every spectrum is weighted by its own
        total counts and by the running mean spectrum; when the mean spectrum changes
        the sketch is rescaled into the new weights (exact for what it holds), and
        ``mean_``, the total variance and ``spectrum_weights_`` are exact running sums.
        When ``n_components + n_oversamples >= C`` the result equals the batch PCA up to
        rounding. ``n_iter`` is not used here. After ``partial_fit``, ``transform`` and
        ``inverse_transform`` work as after ``fit`` (``image_`` holds the last block's
        totals). Calling :meth:`fit` starts over.

        Parameters
        ----------
        X : array_like, shape (n, C) or (h, w, C)
            Non-negative counts (uint8/16/32, float32/64 read in place), one or more
            spectra; C must stay the same across calls.
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
        >>> cube = rng.poisson(rng.random((16, 50, 2)) @ (rng.random((2, 64)) * 30))
        >>> pca = mc.spectral.PCA(2, random_state=0)
        >>> for line in cube:          # one scan line (50 spectra) at a time
        ...     _ = pca.partial_fit(line)
        >>> pca.components_.shape, pca.n_samples_seen_
        ((2, 64), 800)
        """
        data = as_spectrum_matrix(X, "X", allow_sparse=False)
        _, C = data.shape
        g = _core.spectral.weighted_sums(data.X, None, None)[0]  # totals per pixel
        stream = self.__dict__.get("_stream")
        if stream is None:
            if self.__dict__.get("_stream_lost"):
                raise ValueError(
                    "this PCA was unpickled or copied in the middle of a partial_fit stream; "
                    "the stream state is not serialised, start a new estimator"
                )
            k = self._n_components(C, "n_channels")
            over = check_int(self.n_oversamples, "n_oversamples", low=0)
            dtype = factor_dtype(data, self.dtype)
            seed = int(check_random_state(self.random_state).randint(0, 2**31 - 1))
            self._check_stream_range(data.X, g, dtype, 0.0)
            stream = _core.spectral.StreamingPCA(
                C, k, bool(self.poisson), bool(self.center), over, seed, dtype=dtype
            )
            self._stream = stream
            self._stream_total = 0.0
            self._dtype = dtype
            self.n_features_in_ = C
            self.n_components_ = k
        elif C != self.n_features_in_:
            raise ValueError(
                f"X has {C} features, but PCA is expecting {self.n_features_in_} features "
                "as input (channels); the channel count cannot change during a stream"
            )
        else:
            self._check_stream_range(data.X, g, self._dtype, self._stream_total)
        stream.partial_fit(data.X)
        self._stream_total += float(g.sum())
        n = int(stream.n_samples_seen)
        self.n_samples_seen_ = n
        self.n_samples_ = n
        self.image_ = g.reshape(data.nav_shape)
        if n >= 2:
            self.components_ = stream.components()
            self.singular_values_ = stream.singular_values()
            self.explained_variance_ = stream.explained_variance()
            self.explained_variance_ratio_ = stream.explained_variance_ratio()
            self.mean_ = stream.mean()
            self.spectrum_weights_ = stream.spectrum_weights()
        return self

    def _check_stream_range(self, X: np.ndarray, g: np.ndarray, dtype: np.dtype, past: float):
        """ValueError before a block whose weighted values could overflow the sketch."""
        limit = STREAM_MAX_WEIGHTED[np.dtype(dtype)]
        if self.poisson:  # |X_w| <= sqrt(total counts): X_ic^2 <= g_i h_c
            value, what = float(np.sqrt(past + float(g.sum()))), "sqrt(total counts)"
        else:
            value, what = float(X.max()), "max(X)"
        if not value <= limit:
            raise ValueError(
                f"X is too large for a streaming PCA with {dtype} factors: {what} = "
                f"{value:.3g} > {limit:.3g}, where the sums the stream keeps would overflow. "
                "Divide every block by one constant (the components are the same)"
                + (" or pass dtype='float64'" if dtype == np.float32 else "")
            )

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())  # the C++ stream state is not serialised
        if state.pop("_stream", None) is not None:
            state["_stream_lost"] = True
        return state

    @serialized
    def fit_transform(self, X: ArrayLike, y: Any = None) -> np.ndarray:
        """Fit and return the scores of X.

        Parameters
        ----------
        X : array_like, shape (N, C) or (H, W, C)
            Non-negative counts (uint8/16/32, float32/64 read in place; ``np.memmap`` ok).
        y : ignored

        Returns
        -------
        scores : ndarray, shape (N, K) or (H, W, K)

        Example
        -------
        >>> import numpy as np, matchar as mc
        >>> X = np.random.default_rng(0).poisson(5.0, (100, 30))
        >>> mc.spectral.PCA(2, random_state=0).fit_transform(X).shape
        (100, 2)
        """
        return self.fit(X).transform(X)

    def transform(self, X: ArrayLike) -> np.ndarray:
        """Scores ``(X_w - mean_) @ components_.T`` in the weighted space.

        Each pixel is weighted by its own total counts and the fitted mean spectrum.

        Parameters
        ----------
        X : array_like, shape (N, C) or (H, W, C)

        Returns
        -------
        scores : ndarray, shape (N, K) or (H, W, K)

        Example
        -------
        >>> import numpy as np, matchar as mc
        >>> X = np.random.default_rng(0).poisson(5.0, (100, 30))
        >>> mc.spectral.PCA(2, random_state=0).fit(X).transform(X[:4]).shape
        (4, 2)
        """
        check_fitted(self, "components_")
        if is_dask_input(X):
            ddata = DaskSpectrumMatrix(X, "X")
            if ddata.shape[1] != self.n_features_in_:
                raise ValueError(
                    f"X has {ddata.shape[1]} features, but PCA is expecting "
                    f"{self.n_features_in_} features as input (channels)"
                )
            g = ddata.weighted_sums()[0]
            r = _inv_sqrt(g) if self.poisson else np.ones_like(g)
            V = np.ascontiguousarray(self.components_.T, dtype=self._dtype)
            offset = np.ascontiguousarray(self.mean_ @ self.components_.T, dtype=np.float64)
            Y = ddata.project(r, self.spectrum_weights_, V, offset).astype(np.float64)
            return Y.reshape(*ddata.nav_shape, -1) if len(ddata.nav_shape) > 1 else Y
        data = as_spectrum_matrix(X, "X", allow_sparse=False)
        if data.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {data.shape[1]} features, but PCA is expecting "
                f"{self.n_features_in_} features as input (channels)"
            )
        _, r, _ = self._weights(data.X)
        V = np.ascontiguousarray(self.components_.T, dtype=self._dtype)
        offset = np.ascontiguousarray(self.mean_ @ self.components_.T, dtype=np.float64)
        Y = _core.spectral.weighted_project(data.X, r, self.spectrum_weights_, V, offset)
        return unflatten(Y.astype(np.float64), data.nav_shape)

    def inverse_transform(self, X: ArrayLike, image: ArrayLike | None = None) -> np.ndarray:
        """Denoised spectra (in counts) from scores: unweight ``scores @ components_ + mean_``.

        Parameters
        ----------
        X : array_like, shape (N, K) or (H, W, K)
            Scores from :meth:`transform`.
        image : array_like, shape (N,) or (H, W), optional
            Total counts per pixel of the data the scores came from; default: ``image_``
            of the fitted data (then X must have its number of pixels).

        Returns
        -------
        ndarray, shape (N, C) or (H, W, C), float64

        Example
        -------
        >>> import numpy as np, matchar as mc
        >>> X = np.random.default_rng(0).poisson(5.0, (100, 30))
        >>> pca = mc.spectral.PCA(2, random_state=0)
        >>> pca.inverse_transform(pca.fit_transform(X)).shape
        (100, 30)
        """
        check_fitted(self, "components_")
        Z = np.asarray(X, dtype=np.float64)
        if Z.ndim not in (2, 3) or Z.shape[-1] != self.n_components_:
            raise ValueError(
                f"X must have shape (N, {self.n_components_}) or "
                f"(H, W, {self.n_components_}), got {Z.shape}"
            )
        g = np.asarray(self.image_ if image is None else image, dtype=np.float64).reshape(-1)
        Z2 = Z.reshape(-1, self.n_components_)
        if g.shape[0] != Z2.shape[0]:
            raise ValueError(
                f"image must have one entry per pixel of X ({Z2.shape[0]}), got {g.shape[0]}"
            )
        Xw = Z2 @ self.components_ + self.mean_
        if self.poisson:
            c = self.spectrum_weights_
            unweight_c = np.divide(1.0, c, out=np.zeros_like(c), where=c > 0)
            Xw *= np.sqrt(g)[:, None] * unweight_c[None, :]
        return Xw.reshape(*Z.shape[:-1], -1)

    def hyperspy_factors(self, scores: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """(loadings, factors) in HyperSpy's convention: unweighted, uncentred.

        HyperSpy's ``decomposition(algorithm="SVD", normalize_poissonian_noise=True)``
        decomposes ``X / sqrt(g b^T)`` (g counts per pixel, b counts per channel) without
        centring and returns ``factors = V sqrt(b)`` and ``loadings = U S sqrt(g)``, so
        that ``loadings @ factors.T`` is the model in counts. This method returns the
        same quantities from a fit with ``center=False``: ``factors = components_ /
        spectrum_weights_`` (0 in empty channels) and ``loadings = scores * sqrt(image_)``
        (``poisson=False``: ``components_`` and ``scores`` as they are, HyperSpy's
        ``normalize_poissonian_noise=False``). They span the same subspaces as HyperSpy's
        (tested on real files), with factors scaled per component differently.

        Parameters
        ----------
        scores : array_like, shape (N, K) or (H, W, K)
            What :meth:`fit_transform` returned (the fitted data's pixels).

        Returns
        -------
        loadings : ndarray, shape (N, K) or (H, W, K), float64
        factors : ndarray, shape (K, C), float64

        Raises
        ------
        ValueError
            A fit with ``center=True`` (the mean spectrum is not a HyperSpy factor), or
            scores of another shape.

        Example
        -------
        >>> import numpy as np, matchar as mc
        >>> X = np.random.default_rng(0).poisson(5.0, (100, 30))
        >>> pca = mc.spectral.PCA(2, center=False, random_state=0)
        >>> loadings, factors = pca.hyperspy_factors(pca.fit_transform(X))
        >>> np.allclose(loadings @ factors, pca.inverse_transform(pca.transform(X)))
        True
        """
        check_fitted(self, "components_")
        if self.center:
            raise ValueError(
                "hyperspy_factors needs a fit with center=False (HyperSpy's SVD does not "
                "centre; a centred fit's mean spectrum is not one of its factors)"
            )
        Z = np.asarray(scores, dtype=np.float64)
        n = int(np.prod(np.shape(self.image_)))
        if Z.ndim not in (2, 3) or Z.shape[-1] != self.n_components_ or Z[..., 0].size != n:
            raise ValueError(
                f"scores must have shape {(*np.shape(self.image_), self.n_components_)} "
                f"(the fitted pixels), got {Z.shape}"
            )
        H = np.asarray(self.components_, dtype=np.float64)
        if not self.poisson:
            return Z.copy(), H.copy()
        c = np.asarray(self.spectrum_weights_, dtype=np.float64)
        factors = H * np.divide(1.0, c, out=np.zeros_like(c), where=c > 0)
        g = np.asarray(self.image_, dtype=np.float64).reshape(Z.shape[:-1])
        return Z * np.sqrt(g)[..., None], factors

    def to_signals(
        self,
        scores: ArrayLike,
        reference: Any = None,
        energy: Any = None,
        convention: str = "weighted",
    ) -> tuple[Any, Any]:
        """(scores, components) as HyperSpy signals (loadings, factors).

        Parameters
        ----------
        scores : array_like, shape (H, W, K) or (N, K)
            What :meth:`fit_transform` returned.
        reference : HyperSpy signal, optional
            Its navigation axes label the maps and its signal axis the factors. Default:
            the signal passed to ``fit`` (if one was).
        energy : (offset, scale) or (offset, scale, unit) or array of shape (C,), optional
            Energy axis of the factors (keV unless a unit is given).
        convention : {"weighted", "hyperspy"}, default "weighted"
            "weighted": ``scores`` and ``components_`` as they are (weighted space);
            "hyperspy": :meth:`hyperspy_factors` (needs ``center=False``).

        Returns
        -------
        loadings : hyperspy Signal2D (K | H, W), or BaseSignal (K | N) for (N, K) scores
        factors : hyperspy Signal1D (K | C)

        Example
        -------
        >>> import numpy as np, matchar as mc, hyperspy.api as hs
        >>> s = hs.signals.Signal1D(np.random.default_rng(0).poisson(5.0, (8, 8, 40)))
        >>> pca = mc.spectral.PCA(3, center=False, random_state=0)
        >>> loadings, factors = pca.to_signals(pca.fit_transform(s), convention="hyperspy")
        >>> loadings.data.shape, factors.data.shape
        ((3, 8, 8), (3, 40))
        """
        check_fitted(self, "components_")
        if convention == "hyperspy":
            scores, comps = self.hyperspy_factors(scores)
        elif convention == "weighted":
            comps = self.components_
        else:
            raise ValueError(f"convention must be 'weighted' or 'hyperspy', got {convention!r}")
        return to_signals(
            scores,
            comps,
            reference=reference,
            axes=self.__dict__.get("_signal_axes"),
            energy=energy,
        )

    def plot(
        self,
        scores: ArrayLike | None = None,
        energy: Any = None,
        n_show: int = 4,
        fig: Any = None,
        *,
        energy_unit: str = "keV",
        pixel_size: float | None = None,
    ) -> Any:
        """Scree plot of the explained variance and the first ``n_show`` components.

        Parameters
        ----------
        scores : array_like, shape (N, K) or (H, W, K), optional
            What :meth:`fit_transform` returned (drawn as maps above the spectra).
        energy : (offset, scale), (offset, scale, unit) or array of shape (C,), optional
            Energy axis of the spectra in ``energy_unit`` (or the triple's unit). Default:
            the fitted signal's energy axis when it is calibrated in eV or keV, else
            the channel index.
        n_show : int, default 4
            Components shown (the scree plot shows all K).
        fig : matplotlib Figure, optional
        energy_unit : str, default "keV"
            Unit of ``energy`` on the axis label ("eV" for EELS).
        pixel_size : float, optional
            Å per pixel of the score maps, for a scale bar (default: from the fitted
            signal's calibrated navigation axes, else pixel axes).

        Returns
        -------
        matplotlib.figure.Figure

        Example
        -------
        >>> import numpy as np, matchar as mc
        >>> X = np.random.default_rng(0).poisson(5.0, (8, 8, 40))
        >>> fig = mc.spectral.PCA(3, random_state=0).fit(X).plot()
        """
        from .._plotting import constrained, new_figure
        from ._plots import plot_components, plot_scree, signal_energy, signal_pixel_size

        check_fitted(self, "components_")
        k = min(check_int(n_show, "n_show", low=1), self.n_components_)
        axes = self.__dict__.get("_signal_axes")
        if energy is None:
            energy = signal_energy(axes)
        if pixel_size is None:
            pixel_size = signal_pixel_size(axes)
        if fig is None:
            fig = new_figure((3.0 * (k + 1), 5.6 if scores is not None else 2.8))
        constrained(fig)
        left, right = fig.subfigures(1, 2, width_ratios=[1, k])
        plot_scree(self.explained_variance_ratio_, ax=left.subplots())
        s = None if scores is None else np.asarray(scores)[..., :k]
        plot_components(
            self.components_[:k],
            s,
            energy,
            fig=right,
            energy_unit=energy_unit,
            map_label="score (a.u.)",
            spectrum_label="loading (a.u.)",
            pixel_size=pixel_size,
        )
        return fig
