"""Physics-constrained NMF: X ~ maps @ (G W)^T with a physical dictionary G (EDX / EELS).

The estimator :class:`PhysicsNMF` (parameters, validation, ``fit``/``fit_transform``, the
results). Its fitting machinery is in ``_physics_nmf_solver.py`` (a private base class: the
iterations, the C++ passes, the dask path), the NumPy update steps in
``_physics_nmf_updates.py`` and the initialisations in ``_physics_nmf_init.py``.

Over 600 lines because it is one estimator whose documented parameters, attributes and
result methods (quantification, plots, HyperSpy signals) the API reference reads from
the class itself; over 40 % of the file is that documentation.
"""

from __future__ import annotations

import numbers
import warnings
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator
from threadpoolctl import threadpool_limits

from .._moved import forward_private
from .._optional import require
from .._threads import serialized
from .._validation import check_fitted, check_float, check_int
from . import _physics_nmf_init, _physics_nmf_solver, _physics_nmf_updates
from ._dask import is_dask_input
from ._edx import is_signal
from ._hyperspy import to_signals
from ._input import as_spectrum_matrix, factor_dtype, unflatten
from ._nmf import _sparse_if_mostly_zero, check_maps_memory, nav_channels
from ._physics_nmf_solver import _fitted_counts, _PhysicsNMFSolver
from ._physics_nmf_updates import da_log_sum as da_log_sum
from ._physics_nmf_updates import laplacian_penalty as laplacian_penalty
from ._physics_nmf_updates import neighbour_sums as neighbour_sums
from ._physics_nmf_updates import surrogate_terms as surrogate_terms
from ._physics_nmf_updates import w_step as w_step

_SIMPLEX = ("W", "H", None)
#: Values of ``refine``.
REFINE_CHOICES = ("auto", True, False, "shell", "family")
#: refine="auto" refines the detector when X holds at least this many counts on the
#: model's fitted channels (the summed spectrum then pins the line widths and positions).
REFINE_MIN_COUNTS = 1e5
#: Largest smoothness, sparsity and epsilon_sparse: the surrogate's terms (penalty times
#: counts) must stay far inside the float64 range.
MAX_PENALTY = 1e100


class PhysicsNMF(_PhysicsNMFSolver, BaseEstimator):
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
    init : {"auto", "kmeans", "vertex", "nmf", "random"} or (maps, W), default "auto"
        "auto": "kmeans", "nmf" and "vertex" each start ``min(init_iter, max_iter)``
        iterations of the full objective F from the same ``random_state``; the one with
        the lowest F at the end (``init_losses_``) wins (``init_used_``; ties go to the
        first in that order) and its fit continues for the remaining iterations, so the
        result is that of the winner's explicit ``init`` with the same parameters. Cost:
        the three initialisations, 2 x ``init_iter`` extra passes over X and three
        evaluations of F (on real SEM/TEM maps of 64 x 64 to 100 x 87 pixels, 0.8 to
        2.9 s instead of 0.5 to 1.3 s for "kmeans"). On espm's simulated cube the
        three starts land on different optima and F after 20 iterations ranks them as
        their accuracy does; it is the rank after ``init_iter`` iterations, not after
        the whole fit (a start behind at 20 iterations can end a little lower).
        Dask input: "nmf" (as for "kmeans" and "vertex").
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
        Iterations of the "nmf" initialisation, and of each candidate's trial run under
        "auto".
    refine : {"auto", True, False, "shell", "family"}, default "auto"
        Fit the detector to the data first (:func:`refine_detector` on the summed
        spectrum of all pixels, masks ignored) and decompose with the refined model
        (``model_``; ``model`` itself is left as given). "auto": only when ``model`` is
        a plain :class:`EDXModel` (not a :class:`RefinedEDXModel`, a
        :class:`ReferenceModel` or another model) and X holds at least
        ``REFINE_MIN_COUNTS`` = 1e5 counts on the model's fitted channels, with
        ``ratios="shell"``; a refinement that fails (ValueError:
        degenerate data) falls back to the nominal model silently. True or "shell":
        always (per-shell line ratios), "family": always with ``ratios="family"``; a
        non-EDXModel is then a ValueError and a failed refinement a UserWarning (and the
        nominal model). False: the model as given. Cost: one pass over X (the summed
        spectrum) and a fraction of a second to seconds of fitting on it. Nominal
        detectors (resolution, window, line ratios of xraylib) can be off by enough to
        leave several degrees of spectral angle (14.9 deg instead of 2.8 deg on espm's
        simulated cube, see docs/spectral_physics.md).
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
        Iterations run (those of the winning trial under init="auto" included).
    n_features_in_ : int
    model_ : model
        The model fitted: the refined :class:`RefinedEDXModel` when ``refine`` refined
        it, else ``model``. ``components_``, ``composition_``, ``quantification``,
        ``plot`` and ``to_signals`` use it.
    detector_ : dict or None
        The report of :func:`refine_detector` (offset, gain, resolution, line ratios,
        ...), None when the detector was not refined.
    init_used_ : str
        The initialisation used ("given" for a (maps, W) pair; the winner under "auto";
        "nmf" for "kmeans"/"vertex"/"auto" on dask input).
    init_losses_ : dict or None
        Under init="auto", F after the trial iterations of each candidate.

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
        init: Any = "auto",
        init_iter: int = 20,
        refine: Any = "auto",
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
        self.refine = refine
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
        G = getattr(self._used_model(), "G", None)
        if G is None or not hasattr(self._used_model(), "n_elements"):
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
            "auto",
            "kmeans",
            "vertex",
            "nmf",
            "random",
        ):
            raise ValueError(
                "init must be 'auto', 'kmeans', 'vertex', 'nmf', 'random' or a (maps, W) pair, "
                f"got {self.init!r}"
            )
        for name in ("max_iter", "eval_every", "init_iter"):
            check_int(getattr(self, name), name, low=1)
        check_float(self.tol, "tol", low=0.0)
        return k, G

    def _used_model(self) -> Any:
        """The model of the fit: ``model_`` once fitted (the refined one), else ``model``."""
        return self.__dict__.get("model_", self.model)

    def _resolve_model(self, X: Any, C: int) -> None:
        """Set ``model_`` and ``detector_``: the detector refinement of ``refine`` on X's
        summed spectrum (X: the (N, C) counts, in memory or dask)."""
        from ._detector import RefinedEDXModel, refine_detector
        from ._edx import EDXModel
        from ._edx_spectrum import _summed_spectrum

        self.model_ = self.model
        self.detector_ = None
        refine = self.refine
        if not isinstance(refine, (bool, str)) or refine not in REFINE_CHOICES:
            raise ValueError(
                f"refine must be 'auto', True, False, 'shell' or 'family', got {refine!r}"
            )
        if refine is False:
            return
        explicit = refine != "auto"
        plain = isinstance(self.model, EDXModel) and not isinstance(self.model, RefinedEDXModel)
        if not plain:
            if explicit:
                raise ValueError(
                    f"refine={refine!r} needs a plain EDXModel (the detector refinement of "
                    f"refine_detector), got {type(self.model).__name__}: pass refine=False"
                )
            return
        if np.asarray(self.model.G).shape[0] != C:
            return  # a channel mismatch: reported by _check
        ratios = "family" if refine == "family" else "shell"
        try:
            # the summed spectrum once (one pass over X), for the count threshold and
            # the refinement (which fits it alone)
            x = _summed_spectrum(X, C)
            fit_ch = np.asarray(self.model.fit_channels, dtype=bool)
            if not explicit and not float(x[fit_ch].sum()) >= REFINE_MIN_COUNTS:
                return
            refined, report = refine_detector(self.model, x, ratios=ratios)
        except ValueError as exc:
            if explicit:
                warnings.warn(
                    f"PhysicsNMF: refine={refine!r}: the detector refinement failed ({exc}); "
                    "fitting with the nominal model (detector_ is None)",
                    UserWarning,
                    stacklevel=4,
                )
            return
        self.model_, self.detector_ = refined, report

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
        self._resolve_model(data.X, C)
        K, G = self._check(N, C)
        n_el = int(self._used_model().n_elements)
        E = G.shape[1]
        w_pins, h_pins = self._pins(K, E, C, n_el)
        dtype = factor_dtype(data, self.dtype)
        pm, cm, incl, Gm = self._masks(data, G, pixel_mask, channel_mask)
        work = _sparse_if_mostly_zero(data)
        self.nav_shape_ = data.nav_shape
        self._fitted_counts = _fitted_counts(data, incl)
        args = (G, Gm, n_el, dtype, pm, cm, incl, w_pins, h_pins)
        n_iter = int(self.max_iter)
        # The NumPy side works on small matrices (E x C, bins x C): multi-threaded BLAS
        # only adds overhead there (10x on a loaded machine); the C++ passes keep OpenMP.
        with threadpool_limits(limits=1, user_api="blas"):
            start = None
            if isinstance(self.init, str) and self.init == "auto":
                A, W, start, n_iter = self._auto_init(
                    work, G, Gm, K, n_el, dtype, pm, cm, incl, w_pins, h_pins
                )
            else:
                A, W = self._init(work, G, Gm, K, n_el, dtype, pm, cm, w_pins, h_pins, self.init)
                self.init_used_ = self.init if isinstance(self.init, str) else "given"
                self.init_losses_ = None
            self._run(work, A, W, *args, n_iter=n_iter, start=start)
        return unflatten(self._A, data.nav_shape)

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
        names = list(self._used_model().elements)
        weights = None
        zs = getattr(self._used_model(), "atomic_numbers", None)
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
        names = list(self._used_model().elements)
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
        energy = getattr(self._used_model(), "energy", None)
        signal = self.__dict__.get("_signal")
        axes = None
        if signal is not None:
            from ._hyperspy import axes_of

            axes = axes_of(signal)
        if energy_unit is None and energy is not None:
            if isinstance(self._used_model(), EDXModel):
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
        energy = getattr(self._used_model(), "energy", None)
        if energy is not None and len(energy) < 2:
            energy = None
        return to_signals(
            self.maps_,
            self.components_,
            reference=self.__dict__.get("_signal"),
            energy=energy,
            titles=("Abundance maps", "Components"),
        )


#: The private helpers moved to the sibling modules, under this module's name as well.
__getattr__ = forward_private(
    __name__, _physics_nmf_solver, _physics_nmf_updates, _physics_nmf_init
)
