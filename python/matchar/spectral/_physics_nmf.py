"""Physics-constrained NMF: X ~ maps @ (G W)^T with a physical dictionary G (EDX / EELS)."""

from __future__ import annotations

import numbers
import warnings
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator
from threadpoolctl import threadpool_limits

from .. import _core
from .._optional import require
from .._threads import serialized
from .._validation import check_fitted, check_float, check_int
from ._anomaly import DEFAULT_FDR, anomalies_of_fit
from ._dask import DaskSpectrumMatrix, is_dask_input
from ._edx import is_signal
from ._hyperspy import to_signals
from ._input import SpectrumMatrix, as_mask, as_spectrum_matrix, factor_dtype, unflatten
from ._nmf import NMF, _deviance, _sparse_if_mostly_zero, check_maps_memory, nav_channels

_SIMPLEX = ("W", "H", None)
#: Largest smoothness, sparsity and epsilon_sparse: the surrogate's terms (penalty times
#: counts) must stay far inside the float64 range.
MAX_PENALTY = 1e100


def neighbour_sums(A: np.ndarray, nav_shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(sum of the 4 (2-D) or 2 (1-D) image neighbours of each pixel, neighbour count).

    A is (N, K) with N = prod(nav_shape); returns float64 (N, K) and (N, 1).
    """
    if len(nav_shape) == 2:
        h, w = nav_shape
        a = A.reshape(h, w, -1).astype(np.float64)
        s = np.zeros_like(a)
        d = np.zeros((h, w, 1))
        s[1:] += a[:-1]
        s[:-1] += a[1:]
        s[:, 1:] += a[:, :-1]
        s[:, :-1] += a[:, 1:]
        d[1:] += 1
        d[:-1] += 1
        d[:, 1:] += 1
        d[:, :-1] += 1
        return s.reshape(A.shape), d.reshape(-1, 1)
    a = A.astype(np.float64)
    s = np.zeros_like(a)
    d = np.zeros((a.shape[0], 1))
    s[1:] += a[:-1]
    s[:-1] += a[1:]
    d[1:] += 1
    d[:-1] += 1
    return s, d


def laplacian_penalty(A: np.ndarray, nav_shape: tuple[int, ...]) -> float:
    """0.5 * sum_k A_k^T L A_k = 0.5 * sum over neighbour pairs (edges) of (a_i - a_j)^2."""
    if len(nav_shape) == 2:
        a = A.reshape(*nav_shape, -1).astype(np.float64)
        return 0.5 * float(((a[1:] - a[:-1]) ** 2).sum() + ((a[:, 1:] - a[:, :-1]) ** 2).sum())
    a = A.astype(np.float64)
    return 0.5 * float(((a[1:] - a[:-1]) ** 2).sum())


def surrogate_terms(
    A: np.ndarray,
    s: np.ndarray,
    nav_shape: tuple[int, ...],
    smoothness: float,
    sparsity: float,
    epsilon: float,
) -> tuple[np.ndarray, float]:
    """(beta (N, K) float64, q) of the maps surrogate at the current maps A (N, K).

    Per pixel the new maps minimise ``sum_k q/2 a_k^2 + beta_ik a_k - p_ik log a_k``
    (+ the simplex), where p is the KL (Jensen) numerator computed in the pass, and

    - ``beta = s_k`` (the component sums: the KL term),
    - ``+ sparsity / (A_ik + epsilon)`` (tangent of the concave log penalty),
    - ``- smoothness * ((sigma - deg_i) A_ik + sum_{j ~ i} A_jk)``, ``q = smoothness *
      sigma``: the Laplacian penalty ``a^T L a`` majorised with ``L <= sigma I``
      (sigma = 8 on the 4-neighbour grid, 4 on a chain: twice the largest degree).
    """
    beta = np.empty(A.shape, dtype=np.float64)
    beta[:] = s[None, :]
    q = 0.0
    if sparsity > 0:
        beta += sparsity / (A.astype(np.float64) + epsilon)
    if smoothness > 0:
        nb, deg = neighbour_sums(A, nav_shape)
        sigma = 8.0 if len(nav_shape) == 2 else 4.0
        beta -= smoothness * ((sigma - deg) * A + nb)
        q = smoothness * sigma
    return beta, q


def w_step(
    W: np.ndarray,
    G: np.ndarray,
    numerator: np.ndarray,
    colsum: np.ndarray,
    n_elements: int,
    simplex: bool,
    n_bisect: int = 60,
) -> np.ndarray:
    """Multiplicative KL update of the phase matrix W (E, K) from the pass statistics.

    ``components = (G W)^T`` so ``dKL/dW = G^T (1 colsum^T - numerator^T)``; the update is
    ``W <- W * (G^T numerator^T) / (G^T 1 colsum^T + nu)`` with ``nu_k`` (on the element
    rows only) such that each column's element part sums to 1 when ``simplex``.
    ``G`` must have the excluded channels' rows zeroed.
    """
    top = W * (G.T @ numerator.T)
    den = np.outer(G.sum(axis=0), colsum)
    den = np.where(den > 0, den, 1e-300)
    if not simplex:
        return top / den
    new = top / den
    # A phase whose element rows get no counts (no pixel of it holds any) has no simplex
    # solution: its element weights stay 0, i.e. a zero composition.
    live = (top[:n_elements] > 0).any(axis=0)
    if not live.all():
        out = new.copy()
        out[:n_elements, ~live] = 0.0
        if live.any():
            sub = w_step(W[:, live], G, numerator[live], colsum[live], n_elements, True, n_bisect)
            out[:, live] = sub
        return out
    t, d = top[:n_elements], den[:n_elements]
    # sum_e t_e / (d_e + nu) = 1: decreasing in nu > -min d.
    lo = np.max(t - d, axis=0)  # each term <= 1 there  => sum >= max term ... >= 1
    hi = np.max(n_elements * t - d, axis=0)
    dmin = d.min(axis=0)
    # strictly above -min d even where d is so small (a map of a few counts) that
    # -dmin + 1e-300 rounds to -dmin and t / (d + nu) would divide by zero
    lo = np.maximum(lo, -dmin + np.maximum(1e-300, 1e-12 * np.abs(dmin)))
    hi = np.maximum(hi, lo)

    def ratio(nu: np.ndarray) -> np.ndarray:
        den_nu = d + nu
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            r = np.where(t > 0, t / np.where(den_nu > 0, den_nu, 1e-300), 0.0)
        return np.where(np.isfinite(r), r, 1e300)

    for _ in range(n_bisect):
        mid = 0.5 * (lo + hi)
        tot = ratio(mid).sum(axis=0)
        big = tot > 1.0
        lo = np.where(big, mid, lo)
        hi = np.where(big, hi, mid)
    el = ratio(0.5 * (lo + hi))
    tot = el.sum(axis=0)
    new[:n_elements] = el / np.where(tot > 0, tot, 1.0)
    return new


def _stalled(hist: list[float], tol: float) -> bool:
    """The relative decrease of the objective between its last two evaluations < tol."""
    if tol <= 0 or len(hist) < 2:
        return False
    prev, cur = hist[-2], hist[-1]
    return abs(prev) > 0 and (prev - cur) / abs(prev) < tol


class PhysicsNMF(BaseEstimator):
    """NMF whose component spectra are non-negative combinations of a physical model.

    The spectrum image X (N pixels x C channels) is factorised as
    ``X ~ maps @ components_`` with ``components_ = (G W)^T``: G (C x (n_elements +
    n_background)) is the model's dictionary (:class:`EDXModel`: X-ray lines per element
    and bremsstrahlung; :class:`ReferenceModel`: EELS reference spectra and power laws),
    W ((n_elements + n_background) x K) >= 0 the phases' element (and background) weights,
    maps (N x K) >= 0 the abundances. The loss minimised is

    ``F = KL(X || maps (G W)^T) + smoothness * 0.5 * sum_k maps_k^T L maps_k
    + sparsity * sum_ik log(maps_ik + epsilon_sparse)``

    (generalised Kullback-Leibler = Poisson negative log-likelihood up to a constant; L the
    graph Laplacian of the 4-neighbour pixel grid (2 neighbours for (N, C) input); the
    log term favours sparse maps), under ``simplex="W"`` (each phase's element weights sum
    to 1: W's element rows are atomic fractions, the maps carry the counts), ``"H"``
    (the maps of each pixel sum to 1: phase fractions, W carries the counts) or None.

    Every iteration is one blocked C++ pass over the data (W H never materialised) that
    updates the maps and returns the K x C statistics of the component update, then
    O((N + C) K E) NumPy work. It is an alternating majorise-minimise scheme, so F never
    increases (checked in the tests):

    - maps: without smoothness, sparsity or simplex="H" the pass is the NMF engine's
      ``nmf_kl_stats`` (the Lee-Seung update); otherwise ``physics_kl_pass``
      (cpp/src/spectral/physics.cpp) replaces it by the exact per-pixel minimiser of a
      majorising surrogate of F (Jensen for KL, ``L <= sigma I`` for the Laplacian with
      the neighbours at their current values, the tangent of the concave log, a per-pixel
      Lagrange multiplier for the simplex);
    - W: ``W <- W * (G^T numerator^T) / (G^T 1 colsum^T + nu)`` from the statistics of
      the new maps (``nu`` the Lagrange multiplier of simplex="W", by bisection), the
      minimiser of the Jensen surrogate of the KL in W.

    Parameters
    ----------
    model : EDXModel or ReferenceModel
        Anything with ``G`` (C, E), ``n_elements``, ``elements`` and ``fit_channels``.
    n_components : int
        Number of phases K.
    smoothness : float, default 0.0
        Weight of the Laplacian penalty on the maps (units of counts for simplex="W" or
        None, dimensionless for simplex="H"), 0 to 1e100.
    sparsity : float, default 0.0
        Weight of the log penalty on the maps, 0 to 1e100.
    simplex : {"W", "H", None}, default "W"
    fixed : dict {int: array_like}, optional
        Pinned components: component k keeps the W column given (length E = G's columns;
        normalised under simplex="W") or the spectrum given (length C, counts per unit
        abundance; its composition is then NaN).
    max_iter : int, default 200
    tol : float, default 1e-4
        Relative decrease of F between evaluations (every ``eval_every`` iterations) below
        which the fit stops; 0 runs ``max_iter`` iterations.
    random_state : int, Generator or None
        Seed of the initialisation.
    init : {"kmeans", "vertex", "nmf", "random"} or (maps, W), default "kmeans"
        "kmeans": the spectra are summed over 4 x 4 pixel bins (16 consecutive pixels for
        (N, C) input), each bin's element fractions are fitted on G (Poisson regression),
        the bins are clustered by k-means on those fractions (weighted by counts), and
        each cluster's summed spectrum, fitted on G, starts a column of W; the maps start
        from the cluster memberships. Falls back to "nmf" with fewer than 2 K bins.
        Suits images of phase regions. "vertex": the K purest bins (successive
        projections on the element fractions) start W; suits continuous mixtures.
        "nmf": ``init_iter`` iterations of plain KL :class:`NMF` whose components are
        projected onto G (espm's scheme; best on continuous mixtures such as espm's
        "particles" data, where "kmeans" starts from mixed clusters). "random": random
        maps and W. A ``(maps, W)`` pair of shapes
        (N, K) (or nav + (K,)) and (E, K) is used as given (copied, not normalised).
    init_iter : int, default 20
        Iterations of the "nmf" initialisation.
    epsilon_sparse : float, default 1.0
        Offset of the log penalty, in (0, 1e100].
    eval_every : int, default 10
    dtype : {None, "float32", "float64"}
        Dtype of the maps and components (float64 accumulation either way).

    Attributes
    ----------
    components_ : ndarray, shape (K, C)
        Component spectra ``(G W)^T`` (pinned spectra as given).
    W_ : ndarray, shape (E, K), float64
    composition_ : ndarray, shape (K, n_elements)
        Atomic fractions of each phase (``W``'s element rows normalised: G's element
        columns are per atom up to one common constant); for ReferenceModel, fractions of
        the references.
    maps_ : ndarray, shape nav_shape + (K,)
    element_maps_ : ndarray, shape nav_shape + (n_elements,)
        ``maps @ W[:n_elements].T``: per pixel, the amount of each element (atoms, up to
        the model's common constant).
    loss_history_, loss_iterations_ : ndarray
        F at the evaluated iterations (the last entry is the final state).
    kl_history_ : ndarray
        Its KL part.
    residual_map_ : ndarray, shape nav_shape
        Poisson deviance of the fit per pixel over the fitted channels.
    residual_pvalues_, anomaly_map_, anomaly_regions_
        The residual test of :func:`residual_anomalies` at false-discovery rate 0.01,
        run at the end of an in-memory fit: pixels whose counts exceed the fitted model
        by more than Poisson noise allows (an inclusion of an element no phase has),
        as for :class:`NMF` (None for dask input). Other settings:
        ``residual_anomalies(X, est.maps_, est.components_, fdr=...)``.
    n_iter_ : int
    n_features_in_ : int

    Notes
    -----
    A scikit-learn estimator (``BaseEstimator``): the constructor only stores its
    arguments, ``get_params``/``set_params``/``sklearn.base.clone`` work, ``fit`` returns
    the estimator and ``fit_transform`` the maps; validation happens at fit time.

    Example
    -------
    >>> import numpy as np, matchar as mc
    >>> model = mc.spectral.EDXModel(["Fe", "Ni", "O"], (0.2, 0.02, 500))
    >>> W = np.array([[0.7, 0.0], [0.3, 0.4], [0.0, 0.6], [1.0, 1.0], [0.5, 0.5]])
    >>> maps = np.random.default_rng(0).dirichlet([1, 1], (16, 16)) * 300
    >>> X = np.random.default_rng(1).poisson(maps @ (model.G @ W).T)
    >>> est = mc.spectral.PhysicsNMF(model, 2, random_state=0, max_iter=100)
    >>> est.fit_transform(X).shape, est.composition_.shape
    ((16, 16, 2), (2, 3))
    """

    def __init__(
        self,
        model: Any,
        n_components: int,
        smoothness: float = 0.0,
        sparsity: float = 0.0,
        simplex: str | None = "W",
        fixed: dict[int, ArrayLike] | None = None,
        max_iter: int = 200,
        tol: float = 1e-4,
        random_state: Any = None,
        *,
        init: Any = "kmeans",
        init_iter: int = 20,
        epsilon_sparse: float = 1.0,
        eval_every: int = 10,
        dtype: Any = None,
    ) -> None:
        self.model = model
        self.n_components = n_components
        self.smoothness = smoothness
        self.sparsity = sparsity
        self.simplex = simplex
        self.fixed = fixed
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state
        self.init = init
        self.init_iter = init_iter
        self.epsilon_sparse = epsilon_sparse
        self.eval_every = eval_every
        self.dtype = dtype

    def __sklearn_tags__(self):  # scikit-learn >= 1.6
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = True  # counts: negative values are rejected
        tags.input_tags.sparse = True
        return tags

    def _more_tags(self) -> dict[str, Any]:  # scikit-learn < 1.6
        return {"requires_positive_X": True, "X_types": ["2darray", "sparse"]}

    # -- validation -------------------------------------------------------------------
    def _check(self, N: int, C: int) -> tuple[int, np.ndarray]:
        G = getattr(self.model, "G", None)
        if G is None or not hasattr(self.model, "n_elements"):
            raise ValueError("model must be an EDXModel or ReferenceModel (with .G, .n_elements)")
        G = np.asarray(G, dtype=np.float64)
        if G.ndim != 2 or G.shape[0] != C:
            raise ValueError(
                f"X has {C} channels but the model's dictionary G has {G.shape[0]} rows: build "
                f"the model on the data's energy axis (X's n_features = {C} must equal the "
                "model's channel count)"
            )
        if not np.isfinite(G).all() or (G < 0).any():
            raise ValueError("model.G must be finite and non-negative")
        k = self._n_components(N)
        for name in ("smoothness", "sparsity"):
            check_float(getattr(self, name), name, low=0.0, high=MAX_PENALTY)
        check_float(self.epsilon_sparse, "epsilon_sparse", low=0.0, high=MAX_PENALTY, low_open=True)
        if self.simplex not in _SIMPLEX:
            raise ValueError(f"simplex must be 'W', 'H' or None, got {self.simplex!r}")
        if not isinstance(self.init, tuple) and self.init not in (
            "kmeans",
            "vertex",
            "nmf",
            "random",
        ):
            raise ValueError(
                "init must be 'kmeans', 'vertex', 'nmf', 'random' or a (maps, W) pair, "
                f"got {self.init!r}"
            )
        for name in ("max_iter", "eval_every", "init_iter"):
            check_int(getattr(self, name), name, low=1)
        check_float(self.tol, "tol", low=0.0)
        return k, G

    def _n_components(self, N: int) -> int:
        try:
            return check_int(self.n_components, "n_components", low=1, high=N)
        except ValueError:
            raise ValueError(
                f"n_components must be an integer in [1, n_pixels={N}], got {self.n_components!r}"
            ) from None

    def _check_memory(self, X: Any) -> None:
        """MemoryError from X's shape, before any pass over X: the maps and the
        surrogate's per-pixel terms are (N, K) float64 arrays."""
        nc = nav_channels(X)
        if nc is None or min(nc) < 1:
            return
        try:
            k = self._n_components(nc[0])
        except ValueError:
            return  # raised again, after the checks of X, in their usual order
        check_maps_memory(nc[0], k, 6, "PhysicsNMF: the maps (N x K) and their working copies")

    def _pins(self, K: int, E: int, C: int, n_el: int):
        w_pins: dict[int, np.ndarray] = {}
        h_pins: dict[int, np.ndarray] = {}
        if self.fixed is None:
            return w_pins, h_pins
        if not isinstance(self.fixed, dict):
            raise ValueError("fixed must be a dict {component index: W column or spectrum}")
        for k, v in self.fixed.items():
            if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 0 <= k < K:
                raise ValueError(f"fixed: component index {k!r} not in [0, {K})")
            a = np.array(v, dtype=np.float64, copy=True).reshape(-1)
            if not np.isfinite(a).all() or (a < 0).any() or not a.any():
                raise ValueError(f"fixed[{k}] must be finite, non-negative and not all zero")
            if a.size == E and a.size != C:
                if self.simplex == "W":
                    tot = a[:n_el].sum()
                    if tot <= 0:
                        raise ValueError(f"fixed[{k}]: the element part must not be all zero")
                    a = a / tot
                w_pins[int(k)] = a
            elif a.size == C:
                h_pins[int(k)] = a
            else:
                raise ValueError(
                    f"fixed[{k}] has {a.size} values: expected a W column ({E}) or a spectrum ({C})"
                )
        return w_pins, h_pins

    # -- fitting ----------------------------------------------------------------------
    @serialized
    def fit(self, X: Any, y: Any = None, **kwargs: Any) -> PhysicsNMF:
        """Fit to a spectrum image; see :meth:`fit_transform`.

        Example
        -------
        >>> import numpy as np, matchar as mc
        >>> m = mc.spectral.EDXModel(["Cu"], (0.2, 0.02, 500))
        >>> X = np.random.default_rng(0).poisson(100 * m.G[:, :1].T.repeat(20, 0) + 1)
        >>> mc.spectral.PhysicsNMF(m, 1, max_iter=20).fit(X).components_.shape
        (1, 500)
        """
        self.fit_transform(X, y, **kwargs)
        return self

    @serialized
    def fit_transform(
        self,
        X: Any,
        y: Any = None,
        *,
        pixel_mask: ArrayLike | None = None,
        channel_mask: ArrayLike | None = None,
    ) -> np.ndarray:
        """Fit the model and return the abundance maps.

        Parameters
        ----------
        X : array_like (N, C) or (H, W, C), scipy.sparse (N, C), or a HyperSpy signal
            Non-negative counts on the model's energy axis (uint8/16/32, float32/64 read in
            place).
        y : ignored
        pixel_mask : bool array (N,) or (H, W), optional
            True = excluded from the fit of the components.
        channel_mask : bool array (C,), optional
            True = excluded (in addition to the channels outside ``model.fit_channels``).

        Returns
        -------
        maps : ndarray, shape (N, K) or (H, W, K)
            Phase abundances (counts scale for simplex="W"/None, fractions for "H").

        Raises
        ------
        ValueError
            Bad counts (negative, NaN/inf, wrong ndim), a channel count different from the
            model's, bad parameters or pins.

        Example
        -------
        >>> import numpy as np, matchar as mc
        >>> m = mc.spectral.EDXModel(["Cu", "Zn"], (0.2, 0.02, 500))
        >>> X = np.random.default_rng(0).poisson(m.G @ [50, 50, 20, 20] + 1.0, (8, 8, 500))
        >>> mc.spectral.PhysicsNMF(m, 1, max_iter=20).fit_transform(X).shape
        (8, 8, 1)
        """
        self._signal = X if is_signal(X) else None
        raw = X.data if self._signal is not None else X
        if is_dask_input(raw):
            return self._fit_transform_dask(raw, pixel_mask, channel_mask)
        self._check_memory(raw)
        data = as_spectrum_matrix(raw, "X")
        N, C = data.shape
        K, G = self._check(N, C)
        n_el = int(self.model.n_elements)
        E = G.shape[1]
        w_pins, h_pins = self._pins(K, E, C, n_el)
        dtype = factor_dtype(data, self.dtype)
        pm = as_mask(pixel_mask, "pixel_mask", data.nav_shape, N)
        user_cm = np.zeros(C, dtype=bool) if channel_mask is None else np.asarray(channel_mask)
        if user_cm.shape != (C,) or user_cm.dtype != np.bool_:
            raise ValueError(f"channel_mask must be a boolean array of shape ({C},)")
        fit_ch = np.asarray(getattr(self.model, "fit_channels", np.ones(C, dtype=bool)), dtype=bool)
        cm = as_mask(user_cm | ~fit_ch, "channel_mask", (C,), C)
        incl = np.ones(C, dtype=bool) if cm is None else cm.astype(bool)
        Gm = G * incl[:, None]
        work = _sparse_if_mostly_zero(data)
        self.nav_shape_ = data.nav_shape
        self._fitted_counts = _fitted_counts(data, incl)
        args = (G, Gm, n_el, dtype, pm, cm, incl, w_pins, h_pins)
        n_iter = int(self.max_iter)
        # The NumPy side works on small matrices (E x C, bins x C): multi-threaded BLAS
        # only adds overhead there (10x on a loaded machine); the C++ passes keep OpenMP.
        with threadpool_limits(limits=1, user_api="blas"):
            A, W = self._init(work, G, Gm, K, n_el, dtype, pm, cm, w_pins, h_pins, self.init)
            self.init_used_ = self.init if isinstance(self.init, str) else "given"
            self._run(work, A, W, *args, n_iter=n_iter)
        return unflatten(self._A, data.nav_shape)

    def _fit_transform_dask(self, raw: Any, pixel_mask: Any, channel_mask: Any) -> Any:
        """fit_transform of a dask array: C++ passes per chunk, statistics reduced.

        The maps stay on the workers (one piece per chunk); each iteration reduces the
        K x C statistics of the components on the client. The Laplacian smoothness
        couples neighbouring pixels across chunks: each chunk's task also reads one image
        row of its neighbours' maps (from the previous iteration, as in memory).
        ``init="kmeans"``/``"vertex"`` (which bin neighbouring pixels)
        fall back to ``"nmf"`` (an NMF fitted on the dask array); ``init_used_`` says so.
        """
        data = DaskSpectrumMatrix(raw, "X")
        self._fitted_counts = None
        N, C = data.shape
        K, G = self._check(N, C)
        n_el = int(self.model.n_elements)
        E = G.shape[1]
        w_pins, h_pins = self._pins(K, E, C, n_el)
        dtype = data.factor_dtype(self.dtype)
        pm = as_mask(pixel_mask, "pixel_mask", data.nav_shape, N)
        user_cm = np.zeros(C, dtype=bool) if channel_mask is None else np.asarray(channel_mask)
        if user_cm.shape != (C,) or user_cm.dtype != np.bool_:
            raise ValueError(f"channel_mask must be a boolean array of shape ({C},)")
        fit_ch = np.asarray(getattr(self.model, "fit_channels", np.ones(C, dtype=bool)), dtype=bool)
        cm = as_mask(user_cm | ~fit_ch, "channel_mask", (C,), C)
        incl = np.ones(C, dtype=bool) if cm is None else cm.astype(bool)
        Gm = G * incl[:, None]
        self.nav_shape_ = data.nav_shape
        init = "nmf" if self.init in ("kmeans", "vertex") else self.init
        with threadpool_limits(limits=1, user_api="blas"):
            A0, W = self._init(data, G, Gm, K, n_el, dtype, pm, cm, w_pins, h_pins, init)
            self.init_used_ = init if isinstance(init, str) else "given"
            A = data.factor_from_array(A0)
            del A0
            smoothness = float(self.smoothness)
            regular = smoothness > 0 or self.sparsity > 0 or self.simplex == "H"
            every, tol = int(self.eval_every), float(self.tol)
            sparsity, eps = float(self.sparsity), float(self.epsilon_sparse)
            hist, kls, its = [], [], []
            n_done = 0
            for it in range(int(self.max_iter)):
                H = self._components(G, W, dtype, h_pins)
                with_loss = it % every == 0
                s = H[:, incl].sum(axis=1, dtype=np.float64) if regular else None
                kl, logpen, lappen, A_new, num, colsum = data.physics_update(
                    A, H, s, sparsity, eps, self.simplex == "H", pm, cm, with_loss, smoothness
                )
                if with_loss:
                    hist.append(float(kl) + smoothness * lappen + sparsity * logpen)
                    kls.append(float(kl))
                    its.append(it)
                A, W = A_new, self._w_update(W, Gm, num, colsum, n_el, w_pins)
                n_done = it + 1
                if with_loss and _stalled(hist, tol):
                    break
            H = self._components(G, W, dtype, h_pins)
            dev = _deviance(data, A, H, pm, cm)
            kl = 0.5 * float(dev.sum() if pm is None else dev[pm.astype(bool)].sum())
            if not its or its[-1] != n_done:
                logpen = 0.0
                if sparsity > 0:
                    logpen = float(da_log_sum(A.to_dask(), eps))
                lappen = data.laplacian_penalty(A) if smoothness > 0 else 0.0
                hist.append(kl + smoothness * lappen + sparsity * logpen)
                kls.append(kl)
                its.append(n_done)
        maps = data.unflatten(A)
        self._A = A.to_dask()
        self._set_results(H, W, n_done, hist, kls, its, n_el, h_pins)
        self.maps_ = maps
        Wel = W[:n_el].T.copy()
        for k in h_pins:
            Wel[k] = 0.0
        elem = self._A.astype(np.float64) @ Wel
        self.element_maps_ = (
            elem.reshape(*data.nav_shape, n_el) if len(data.nav_shape) > 1 else elem
        )
        self.residual_map_ = dev.reshape(data.nav_shape) if len(data.nav_shape) > 1 else dev
        self.residual_pvalues_ = self.anomaly_map_ = self.anomaly_regions_ = None
        return maps

    def _components(self, G, W, dtype, h_pins):
        H = (G @ W).T
        for k, spec in h_pins.items():
            H[k] = spec
        return np.ascontiguousarray(H, dtype=dtype)

    def _init(self, data, G, Gm, K, n_el, dtype, pm, cm, w_pins, h_pins, init):
        E = G.shape[1]
        rng = np.random.default_rng(
            self.random_state
            if not isinstance(self.random_state, np.random.RandomState)
            else self.random_state.randint(2**31)
        )
        if isinstance(init, tuple):
            if len(init) != 2:
                raise ValueError("init must be a (maps, W) pair")
            A0 = np.array(init[0], dtype=np.float64, copy=True).reshape(-1, K)
            W0 = np.array(init[1], dtype=np.float64, copy=True)
            if A0.shape != (data.shape[0], K) or W0.shape != (E, K):
                raise ValueError(
                    f"init maps must have {data.shape[0]} x {K} values and W shape {(E, K)}"
                )
            for name, a in (("init maps", A0), ("init W", W0)):
                if not np.isfinite(a).all() or (a < 0).any():
                    raise ValueError(f"{name} must be finite and non-negative")
            for k, col in w_pins.items():
                W0[:, k] = col
            return A0.astype(dtype), W0
        A0 = H0 = W0 = found = None
        if init in ("kmeans", "vertex"):
            make = _kmeans_init if init == "kmeans" else _vertex_init
            found = make(data, Gm, K, n_el, pm, rng)
            if found is not None:
                frac, W0, totals = found
                hs = np.maximum((Gm @ W0).sum(axis=0), 1e-300)
                if self.simplex == "H":
                    A0 = frac
                    W0 = W0 * (float(np.mean(totals)) / hs)[None, :]
                else:
                    A0 = frac * np.maximum(totals, 0.0)[:, None] / hs[None, :]
        if A0 is None and init in ("kmeans", "vertex", "nmf"):
            nmf = NMF(
                K,
                max_iter=int(self.init_iter),
                tol=0,
                random_state=self.random_state,
                dtype=dtype,
                compute_residual_map=False,
            )
            pixel_mask = None if pm is None else ~pm.astype(bool)
            channel_mask = None if cm is None else ~cm.astype(bool)
            A0 = nmf.fit_transform(data.X, pixel_mask=pixel_mask, channel_mask=channel_mask)
            A0 = np.asarray(A0, dtype=np.float64).reshape(-1, K)
            H0 = np.asarray(nmf.components_, dtype=np.float64)
        elif A0 is None:
            if getattr(data, "distributed", False):
                mean = data.data_mean() * data.shape[0] * data.shape[1]
            elif data.sparse:
                mean = float(data.X.sum())
            else:
                mean = float(_core.spectral.weighted_sums(data.X, None, None)[0].sum())
            A0 = rng.random((data.shape[0], K)) + 0.5
            H0 = np.tile(G.sum(axis=1), (K, 1)) * rng.random((K, 1))
            H0 *= mean / max((A0 @ H0).sum(), 1e-300)
        if W0 is None:
            W0 = np.empty((E, K))
            for k in range(K):
                W0[:, k] = _poisson_regression(H0[k], Gm, rng)
        W = np.maximum(W0, 1e-9 * max(W0.max(), 1e-300))  # no exact zeros: MU could not leave them
        for k, col in w_pins.items():
            W[:, k] = col
        if self.simplex == "W":
            tot = W[:n_el].sum(axis=0)
            tot = np.where(tot > 0, tot, 1.0)
            W = W / tot
            A0 = A0 * tot
        elif self.simplex == "H" and found is None:
            tot = A0.sum(axis=1, keepdims=True)
            scale = float(tot[tot > 0].mean()) if (tot > 0).any() else 1.0
            A0 = np.where(tot > 0, A0 / np.where(tot > 0, tot, 1.0), 1.0 / K)
            W = W * scale
        A0 = np.maximum(A0, 1e-9 * max(A0.max(), 1e-300))
        return A0.astype(dtype), W

    def objective(self, A: np.ndarray, kl: float) -> float:
        """F = kl + smoothness * Laplacian penalty + sparsity * log penalty of maps A (N, K).

        Example
        -------
        >>> import numpy as np, matchar as mc
        >>> m = mc.spectral.EDXModel(["Cu"], (0.2, 0.02, 100))
        >>> est = mc.spectral.PhysicsNMF(m, 1, smoothness=1.0)
        >>> est.nav_shape_ = (2, 2)
        >>> est.objective(np.array([[0.0], [1.0], [1.0], [1.0]]), 0.0)
        1.0
        """
        F = float(kl)
        if self.smoothness > 0:
            F += self.smoothness * laplacian_penalty(A, self.nav_shape_)
        if self.sparsity > 0:
            F += self.sparsity * float(np.log(A.astype(np.float64) + self.epsilon_sparse).sum())
        return F

    def _pass(self, data: SpectrumMatrix, A, H, pm, cm, with_loss, beta=None, q=0.0):
        X = data.X
        if beta is not None:
            simplex = self.simplex == "H"
            if data.sparse:
                return _core.spectral.physics_kl_pass_csr(
                    X.data,
                    X.indices,
                    X.indptr,
                    X.shape[1],
                    A,
                    H,
                    beta,
                    q,
                    simplex,
                    pm,
                    cm,
                    with_loss,
                )
            return _core.spectral.physics_kl_pass(X, A, H, beta, q, simplex, pm, cm, with_loss)
        if data.sparse:
            return _core.spectral.nmf_kl_stats_csr(
                X.data, X.indices, X.indptr, X.shape[1], A, H, pm, cm, with_loss
            )
        return _core.spectral.nmf_kl_stats(X, A, H, pm, cm, with_loss)

    def _run(self, data, A, W, G, Gm, n_el, dtype, pm, cm, incl, w_pins, h_pins, n_iter):
        regular = self.smoothness > 0 or self.sparsity > 0 or self.simplex == "H"
        every, tol = int(self.eval_every), float(self.tol)
        hist, kls, its = [], [], []
        n_done = 0
        try:
            for it in range(n_iter):
                H = self._components(G, W, dtype, h_pins)
                with_loss = it % every == 0
                beta = q = None
                if regular:
                    s = H[:, incl].sum(axis=1, dtype=np.float64)
                    beta, q = surrogate_terms(
                        A,
                        s,
                        data.nav_shape,
                        float(self.smoothness),
                        float(self.sparsity),
                        float(self.epsilon_sparse),
                    )
                kl, A_new, num, colsum = self._pass(data, A, H, pm, cm, with_loss, beta, q)
                if with_loss:
                    hist.append(self.objective(A, kl))
                    kls.append(float(kl))
                    its.append(it)
                A, W = A_new, self._w_update(W, Gm, num, colsum, n_el, w_pins)
                n_done = it + 1
                if with_loss and _stalled(hist, tol):
                    break
        finally:
            self._finish(data, A, W, G, dtype, pm, cm, h_pins, n_done, hist, kls, its, n_el)

    def _w_update(self, W, Gm, num, colsum, n_el, w_pins):
        """The W step from one pass's statistics, pinned columns restored."""
        W_new = w_step(W, Gm, num, colsum, n_el, self.simplex == "W")
        for k, col in w_pins.items():
            W_new[:, k] = col
        return W_new

    def _set_results(self, H, W, n_iter, hist, kls, its, n_el, h_pins) -> None:
        """The fitted attributes both fit paths (in memory, dask) share."""
        if not (np.isfinite(H).all() and np.isfinite(W).all()):
            # never hand back NaN maps/composition silently
            raise ValueError(
                f"PhysicsNMF: the fit reached non-finite (NaN/inf) phases after {n_iter} "
                "iterations: X's counts are too large for float arithmetic or degenerate; "
                "divide X by a constant or check the data"
            )
        self.components_ = H
        self.W_ = W
        self.n_components_ = H.shape[0]
        self.n_features_in_ = H.shape[1]
        self.n_iter_ = n_iter
        self.loss_history_ = np.asarray(hist)
        self.kl_history_ = np.asarray(kls)
        self.loss_iterations_ = np.asarray(its, dtype=np.int64)
        el = W[:n_el].T.copy()
        tot = el.sum(axis=1, keepdims=True)
        comp = el / np.where(tot > 0, tot, 1.0)
        if getattr(self, "_fitted_counts", None) == 0:
            warnings.warn(
                "PhysicsNMF: X holds no counts in the fitted channels (an empty map, or "
                "counts only below the model's low_cut_keV or in masked channels): the "
                "maps and composition_ are 0",
                UserWarning,
                stacklevel=4,
            )
        for k in h_pins:
            comp[k] = np.nan
        self.composition_ = comp

    def _finish(self, data, A, W, G, dtype, pm, cm, h_pins, n_iter, hist, kls, its, n_el):
        H = self._components(G, W, dtype, h_pins)
        dev = _deviance(data, A, H, pm, cm)
        kl = 0.5 * float(dev.sum() if pm is None else dev[pm.astype(bool)].sum())
        if not its or its[-1] != n_iter:
            hist.append(self.objective(A, kl))
            kls.append(kl)
            its.append(n_iter)
        if not np.isfinite(A).all():
            raise ValueError(
                f"PhysicsNMF: the fit reached non-finite (NaN/inf) maps after {n_iter} "
                "iterations: X's counts are too large for float arithmetic or degenerate; "
                "divide X by a constant or check the data"
            )
        self._A = A
        self._set_results(H, W, n_iter, hist, kls, its, n_el, h_pins)
        self.maps_ = unflatten(A, data.nav_shape)
        elem = A.astype(np.float64) @ W[:n_el].T
        for k in h_pins:
            elem -= np.outer(A[:, k], W[:n_el, k])
        self.element_maps_ = unflatten(elem, data.nav_shape)
        self.residual_map_ = (
            unflatten(dev[:, None], data.nav_shape)[..., 0] if len(data.nav_shape) > 1 else dev
        )
        res = anomalies_of_fit(data, A, H, pm, cm, fdr=DEFAULT_FDR)
        self.residual_pvalues_ = res.p_values
        self.anomaly_map_ = res.flags
        self.anomaly_regions_ = res.regions

    # -- results ----------------------------------------------------------------------
    def quantification(self) -> list[dict[str, Any]]:
        """The quantification table: one row per (component, element).

        Returns
        -------
        list of dict
            ``{"component", "element", "atomic_fraction", "weight_fraction"}``
            (weight fractions from xraylib's atomic weights for EDXModel, all 0 for a
            phase that received no counts; NaN for a ReferenceModel, whose references
            carry no atomic weights).

        Example
        -------
        >>> import numpy as np, matchar as mc
        >>> m = mc.spectral.EDXModel(["Cu", "Zn"], (0.2, 0.02, 500))
        >>> X = np.random.default_rng(0).poisson(m.G @ [50, 50, 20, 20] + 1.0, (8, 8, 500))
        >>> est = mc.spectral.PhysicsNMF(m, 1, max_iter=50).fit(X)
        >>> [row["element"] for row in est.quantification()]
        ['Cu', 'Zn']
        """
        check_fitted(self, "composition_")
        names = list(self.model.elements)
        weights = None
        zs = getattr(self.model, "atomic_numbers", None)
        if zs is not None:
            xraylib = require("xraylib", "edx", "PhysicsNMF.quantification")
            weights = np.array([xraylib.AtomicWeight(int(z)) for z in zs])
        rows = []
        for k, frac in enumerate(self.composition_):
            wf = np.full(frac.shape, np.nan)
            if weights is not None and np.isfinite(frac).all():
                m = frac * weights
                # a phase without counts has zero composition: zero weight fractions too
                wf = m / m.sum() if m.sum() > 0 else np.zeros_like(m)
            for e, name in enumerate(names):
                rows.append(
                    dict(
                        component=k,
                        element=name,
                        atomic_fraction=float(frac[e]),
                        weight_fraction=float(wf[e]),
                    )
                )
        return rows

    def plot(
        self,
        fig: Any = None,
        top: int = 3,
        *,
        energy_unit: str | None = None,
        pixel_size: float | None = None,
    ) -> Any:
        """Each component's map (with a colorbar) above its spectrum on the model's
        energy axis, titled with its ``top`` most abundant elements (atomic %).

        Parameters
        ----------
        fig : matplotlib Figure, optional
        top : int, default 3
            Elements named in each title.
        energy_unit : str, optional
            Unit of the model's energy axis on the label. Default: keV for an
            :class:`EDXModel`; for a :class:`ReferenceModel`, the fitted signal's energy
            unit when it records one, else eV when the axis reaches beyond 50 (energy
            losses in eV), else no unit (pass it).
        pixel_size : float, optional
            Å per pixel of the maps, for a scale bar (default: from the fitted signal's
            calibrated navigation axes, else pixel axes).

        Returns
        -------
        matplotlib.figure.Figure

        Example
        -------
        >>> import numpy as np, matchar as mc
        >>> m = mc.spectral.EDXModel(["Cu", "Zn"], (0.2, 0.02, 500))
        >>> X = np.random.default_rng(0).poisson(m.G @ [50, 50, 20, 20] + 1.0, (8, 8, 500))
        >>> fig = mc.spectral.PhysicsNMF(m, 1, max_iter=20).fit(X).plot()
        """
        from ._edx import EDXModel
        from ._plots import plot_components, signal_energy, signal_pixel_size

        check_fitted(self, "composition_")
        top = check_int(top, "top", low=1)
        names = list(self.model.elements)
        titles = []
        for k, frac in enumerate(self.composition_):
            if not np.isfinite(frac).all():
                titles.append(f"component {k} (pinned spectrum)")
                continue
            order = np.argsort(-frac)[:top]
            titles.append(
                f"{k}: "
                + " ".join(f"{names[e]} {100 * frac[e]:.0f}%" for e in order if frac[e] >= 0.005)
            )
        energy = getattr(self.model, "energy", None)
        signal = self.__dict__.get("_signal")
        axes = None
        if signal is not None:
            from ._hyperspy import axes_of

            axes = axes_of(signal)
        if energy_unit is None and energy is not None:
            if isinstance(self.model, EDXModel):
                energy_unit = "keV"
            elif signal_energy(axes) is not None:
                energy_unit = signal_energy(axes)[2]
            elif float(np.max(energy)) > 50.0:
                energy_unit = "eV"
        if pixel_size is None:
            pixel_size = signal_pixel_size(axes)
        return plot_components(
            self.components_,
            self.maps_,
            energy,
            titles=titles,
            fig=fig,
            energy_unit=energy_unit,
            map_label="abundance (a.u.)",
            spectrum_label="counts per channel (a.u.)",
            pixel_size=pixel_size,
            loss=(self.loss_iterations_, self.loss_history_),
            loss_label="loss",
        )

    def to_signals(self) -> tuple[Any, Any]:
        """(maps, components) as HyperSpy signals (needs hyperspy; fit on any input).

        The maps are a ``Signal2D`` stack (K | H, W) (``BaseSignal`` (K | N) for (N, C)
        input) with the fitted signal's navigation axes, the components a ``Signal1D``
        (K | C) with the model's energy axis (keV) when known.

        Example
        -------
        >>> import numpy as np, matchar as mc, hyperspy.api as hs
        >>> m = mc.spectral.EDXModel(["Cu", "Zn"], (0.2, 0.02, 500))
        >>> X = np.random.default_rng(0).poisson(m.G @ [50, 50, 20, 20] + 1.0, (8, 8, 500))
        >>> maps, spectra = mc.spectral.PhysicsNMF(m, 1, max_iter=20).fit(X).to_signals()
        >>> maps.data.shape, spectra.data.shape, isinstance(spectra, hs.signals.Signal1D)
        ((1, 8, 8), (1, 500), True)
        """
        check_fitted(self, "components_")
        energy = getattr(self.model, "energy", None)
        if energy is not None and len(energy) < 2:
            energy = None
        return to_signals(
            self.maps_,
            self.components_,
            reference=self.__dict__.get("_signal"),
            energy=energy,
            titles=("Abundance maps", "Components"),
        )


def _fitted_counts(data: SpectrumMatrix, incl: np.ndarray) -> float | None:
    """Total counts of X in the fitted channels (None for distributed data)."""
    if getattr(data, "distributed", False):
        return None
    if data.sparse:
        cols = np.asarray(data.X.sum(axis=0), dtype=np.float64).ravel()
    else:
        cols = _core.spectral.weighted_sums(data.X, None, None)[1]
    return float(cols[incl].sum())


def da_log_sum(A: Any, eps: float) -> float:
    """sum log(A + eps) of a dask array, in float64."""
    import dask.array as da

    return float(da.log(A.astype(np.float64) + eps).sum().compute())


def _binned_spectra(data: SpectrumMatrix, pm, b: int = 4):
    """(bin label per pixel (N,), summed spectra (n_bins, C) float64, pixel totals (N,))."""
    import scipy.sparse as sparse

    N, C = data.shape
    nav = data.nav_shape
    idx = np.arange(N)
    if len(nav) == 2:
        w = nav[1]
        r, c = np.divmod(idx, w)
        labels = (r // b) * ((w + b - 1) // b) + c // b
    else:
        labels = idx // (b * b)
    n_bins = int(labels.max()) + 1
    weights = np.ones(N) if pm is None else pm.astype(np.float64)
    S = sparse.csr_matrix((weights, (labels, idx)), shape=(n_bins, N))
    X = data.X
    if data.sparse:
        binned = np.asarray((S @ X).todense(), dtype=np.float64)
        totals = np.asarray(X.sum(axis=1)).reshape(-1)
    else:
        binned = np.zeros((n_bins, C))
        totals = np.empty(N)
        step = max(1, (1 << 22) // max(C, 1))
        for i in range(0, N, step):
            chunk = np.asarray(X[i : i + step], dtype=np.float32)
            binned += S[:, i : i + step] @ chunk
            totals[i : i + step] = chunk.sum(axis=1, dtype=np.float64)
    return labels, binned, totals


def _vertex_init(data, Gm, K, n_el, pm, rng):
    """(maps, W, totals) from the K purest bins (successive projections on element
    fractions, Gillis & Vavasis 2014), or None. Suits continuous mixtures."""
    labels, binned, totals = _binned_spectra(data, pm)
    counts = binned.sum(axis=1)
    ok = counts >= 0.5 * np.median(counts[counts > 0]) if (counts > 0).any() else counts > 0
    if ok.sum() < 2 * K:
        return None
    Y = binned[ok]
    coef = _poisson_regression_rows(Y, Gm)
    el = coef[:, :n_el]
    frac = el / np.maximum(el.sum(axis=1, keepdims=True), 1e-300)
    R = frac.copy()
    picks = []
    for _ in range(K):
        j = int(np.argmax((R * R).sum(axis=1)))
        picks.append(j)
        u = R[j] / max(np.linalg.norm(R[j]), 1e-300)
        R -= np.outer(R @ u, u)
    W = np.empty((Gm.shape[1], K))
    for k, j in enumerate(picks):
        # the vertex bin and its 2 nearest neighbours in fraction space (less noise)
        near = np.argsort(((frac - frac[j]) ** 2).sum(axis=1))[:3]
        W[:, k] = _poisson_regression(Y[near].sum(axis=0), Gm, rng)
    # memberships: non-negative least squares of each bin's fractions on the vertices
    from scipy.optimize import nnls

    V = np.stack([frac[j] for j in picks], axis=1)
    coef_all = _poisson_regression_rows(binned, Gm)[:, :n_el]
    fr_all = coef_all / np.maximum(coef_all.sum(axis=1, keepdims=True), 1e-300)
    memb = np.array([nnls(V, f)[0] for f in fr_all]) + 0.02
    memb /= memb.sum(axis=1, keepdims=True)
    frac_maps = memb[labels]
    return frac_maps, W, totals


def _kmeans_init(data, Gm, K, n_el, pm, rng):
    """(maps (N, K) summing to 1, W (E, K), pixel totals (N,)) from k-means on the element
    fractions of binned spectra, or None."""
    from sklearn.cluster import KMeans

    labels, binned, totals = _binned_spectra(data, pm)
    counts = binned.sum(axis=1)
    ok = counts > 0
    if ok.sum() < 2 * K:
        return None
    coef = _poisson_regression_rows(binned[ok], Gm)
    el = coef[:, :n_el]
    frac = el / np.maximum(el.sum(axis=1, keepdims=True), 1e-300)
    km = KMeans(K, n_init=4, random_state=int(rng.integers(2**31)))
    assign = km.fit_predict(frac, sample_weight=counts[ok])
    if len(np.unique(assign)) < K:
        return None
    W = np.empty((Gm.shape[1], K))
    for k in range(K):
        W[:, k] = _poisson_regression(binned[ok][assign == k].sum(axis=0), Gm, rng)
    bin_cluster = np.full(binned.shape[0], -1)
    bin_cluster[np.flatnonzero(ok)] = assign
    member = bin_cluster[labels]
    frac_maps = np.full((labels.size, K), 0.1 / K)
    has = member >= 0
    frac_maps[np.flatnonzero(has), member[has]] += 0.9
    frac_maps /= frac_maps.sum(axis=1, keepdims=True)
    return frac_maps, W, totals


def _poisson_regression_rows(Y: np.ndarray, G: np.ndarray, n_iter: int = 60) -> np.ndarray:
    """Row-wise non-negative Poisson regression Y (B, C) ~ coef (B, E) G^T (an init)."""
    used = G.sum(axis=1) > 0
    Y, G = Y[:, used], G[used]
    col = np.maximum(G.sum(axis=0), 1e-300)
    coef = np.maximum(Y.sum(axis=1, keepdims=True), 1e-12) / G.shape[1] / col[None, :]
    for _ in range(n_iter):
        f = np.maximum(coef @ G.T, 1e-300)
        coef *= ((Y / f) @ G) / col[None, :]
    return coef


def _poisson_regression(y: np.ndarray, G: np.ndarray, rng, n_iter: int = 500) -> np.ndarray:
    """Non-negative c minimising KL(y || G c) by multiplicative updates (E,)."""
    col = G.sum(axis=0)
    c = np.where(col > 0, max(float(y.sum()), 1e-12) / G.shape[1] / np.maximum(col, 1e-300), 0.0)
    c *= 1.0 + 0.01 * rng.random(c.shape)
    for _ in range(n_iter):
        f = np.maximum(G @ c, 1e-300)
        c *= (G.T @ (y / f)) / np.maximum(col, 1e-300)
    return c
