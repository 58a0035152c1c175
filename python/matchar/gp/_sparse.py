"""SparseGPR: sparse Gaussian-process regression (projected process / DTC).

The estimator (fit, regularizer scan, prediction, compression, calibration). Its pieces
live beside it: the kernels in ``_kernels``, the sparse-point selections in
``_selection``, the blockwise linear algebra in ``_linalg``, the calibration fits in
``_calibration`` and the low-rank form of ``compress`` in ``_compression``.

Over 600 lines because it is one class: the estimator's public methods, each with its
documented parameters, share the fitted state; what computes on its own is in those
modules.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import scipy.linalg
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.exceptions import DataConversionWarning

from .. import _core
from .._arrays import as_array
from .._threads import get_num_threads, serialized
from .._validation import check_fitted, check_float, check_int
from ._calibration import _check_calibration_method, fit_calibration
from ._compression import (
    block_layout,
    committee_quadratic_forms,
    inverse_block_norms,
    low_rank_form,
    quadratic_form,
    stack_committee,
)
from ._inputs import _feature_rows, _finite_rows, _targets
from ._kernels import (
    MultiPolynomialKernel,
    PolynomialKernel,
    _blas_threads,
    _check_kernel,
    _kernel_diag,
)
from ._linalg import _add_gram, _cholesky, _cholesky_in_place, _full_kernel
from ._selection import _greedy_farthest, cur_selection, farthest_point_sampling

# Rows of X per block when forming K_NM^T K_NM: bounds memory to block x n_sparse.
_BLOCK_ROWS = 8192
# Rows of a full GP's K per block of a committee member's products (block x mc float64).
_EXACT_BLOCK_ROWS = 2048
#: Largest ``regularizer`` (σ): σ² stays a finite float64.
MAX_REGULARIZER = 1e150
#: Largest ``n_committee``: each member is a full solve of the sparse problem.
MAX_COMMITTEE = 10_000


class SparseGPR(RegressorMixin, BaseEstimator):
    """Sparse GP regression (projected process) with calibrated committee uncertainty.

    With ``M`` sparse (active) points selected from the training set, the weights solve
    ``(σ² K_MM + K_MN K_NM) w = K_MN (y - ȳ)`` by Cholesky factorisation (jitter added
    only if needed, no explicit inverse), where σ is ``regularizer``; ``K_MN K_NM`` is
    accumulated over blocks of training rows, so memory is O(block · M + M²).

    Uncertainty:

    - ``n_committee=0`` (default): the projected-process predictive variance of a
      target, ``k(x,x) - q(x,x) + σ² k_M(x)ᵀ (σ² K_MM + K_MN K_NM)⁻¹ k_M(x) + σ²``;
    - ``n_committee >= 2``: a committee of models fitted on random subsamples
      (fraction ``subsample``) of the training rows sharing the sparse set; the variance
      is ``α² σ²_committee`` (+ β² with the affine calibration), fitted by
      :meth:`calibrate` on validation data (Musil et al., JCTC 15, 906 (2019)). The mean
      always comes from the model fitted on every row, which is more accurate than the
      committee mean.

    Parameters
    ----------
    kernel : callable, default PolynomialKernel(zeta=2)
        ``kernel(A, B) -> (len(A), len(B))`` array; optional ``.diag(A)``. A kernel that
        is not callable raises TypeError at fit.
    n_sparse : int, default 1000
        Number of sparse points (capped by nothing: must be <= number of training rows).
    selection : {"fps", "cur", "random"} or array of int, default "fps"
        How sparse points are chosen from the training rows, or the row indices
        themselves (``n_sparse`` is then ignored).
    regularizer : float, default 1e-3
        σ, the noise standard deviation in target units, in (0, 1e150].
    n_committee : int, default 0
        0 for the GP variance, or the number of committee members (2 to 10000).
    subsample : float, default 0.5
        Fraction of training rows each committee member sees, in (0, 1].
    random_state : int, optional
        Seed for random selection and committee subsamples.
    normalize_y : bool, default False
        Fit on targets divided by their standard deviation (the GP's prior signal
        variance then is the targets' variance): ``regularizer`` becomes the noise
        relative to the target spread, the same for targets in ppm or in %.
    n_sparse_committee : int, optional
        Committee members use only the first this many sparse points (the selection is
        ordered: FPS's first ones are the FPS of that many points, random selection is in
        random order); default: all. Lets the mean use many more sparse points — with
        ``n_sparse`` equal to the number of rows, the full GP — at no cost to the spread.

    Attributes
    ----------
    sparse_indices_ : (M,) int
        Training rows used as sparse points.
    X_sparse_ : (M, d)
    weights_ : (M,)
        Weights of the model fitted on every training row (it gives the mean).
    y_mean_ : float
    regularizer_ : float
        σ of the fitted model: ``regularizer``, or the value :meth:`tune_regularizer`
        chose.
    n_committee_sparse_ : int
        m_c, the sparse points the committee uses (the first ones).
    committee_weights_ : (n_committee, m_c)
    committee_y_mean_ : (n_committee,)
        Committee members (only with ``n_committee >= 2``; they give the spread).
    alpha_, beta_ : float
        Calibration ``σ' = sqrt(α² σ² + β²)`` (1 and 0 until :meth:`calibrate`).

    Example
    -------
    >>> import numpy as np, matchar as mc
    >>> rng = np.random.default_rng(0)
    >>> X = rng.random((200, 5)); y = X @ np.arange(5.0)
    >>> gpr = mc.gp.SparseGPR(n_sparse=50, regularizer=1e-2).fit(X, y)
    >>> mean, std = gpr.predict(X[:3], return_std=True)
    >>> mean.shape, std.shape
    ((3,), (3,))
    """

    def __init__(
        self,
        kernel: Callable | None = None,
        n_sparse: int = 1000,
        selection: str = "fps",
        regularizer: float = 1e-3,
        n_committee: int = 0,
        subsample: float = 0.5,
        random_state: int | None = None,
        normalize_y: bool = False,
        n_sparse_committee: int | None = None,
    ) -> None:
        self.kernel = kernel
        self.n_sparse = n_sparse
        self.selection = selection
        self.regularizer = regularizer
        self.n_committee = n_committee
        self.subsample = subsample
        self.random_state = random_state
        self.normalize_y = normalize_y
        self.n_sparse_committee = n_sparse_committee

    def _descriptor_kernel(self) -> bool:
        """The kernel is the normalised polynomial one (the default), made for descriptors."""
        kernel = self._kernel()
        return isinstance(kernel, PolynomialKernel) and kernel.normalize

    def __sklearn_tags__(self):  # scikit-learn >= 1.6
        tags = super().__sklearn_tags__()
        # The normalised polynomial kernel sees only the direction of a feature vector and
        # is even in it (a SOAP power spectrum's similarity): it cannot fit targets that
        # depend on the length or the sign of x, such as scikit-learn's linear test data.
        tags.regressor_tags.poor_score = self._descriptor_kernel()
        return tags

    def _more_tags(self) -> dict:  # scikit-learn < 1.6
        return {"poor_score": self._descriptor_kernel()}

    # -- helpers -------------------------------------------------------------------------
    def _kernel(self) -> Callable:
        return PolynomialKernel() if self.kernel is None else self.kernel

    def _check_params(self, n: int) -> None:
        if self.kernel is not None:
            _check_kernel(self.kernel)
        if not isinstance(self.selection, str):
            idx = np.asarray(self.selection)
            if idx.ndim != 1 or idx.dtype.kind not in "iu" or len(np.unique(idx)) != len(idx):
                raise ValueError("selection must be 'fps', 'cur', 'random' or distinct row indices")
            if len(idx) == 0 or idx.min() < 0 or idx.max() >= n:
                raise ValueError(f"selection indices must lie in [0, {n}) and not be empty")
        elif self.selection not in ("fps", "cur", "random"):
            raise ValueError(f"selection must be 'fps', 'cur' or 'random', got {self.selection!r}")
        if isinstance(self.selection, str):
            try:
                check_int(self.n_sparse, "n_sparse", low=1, high=n)
            except ValueError:
                raise ValueError(
                    f"n_sparse must be an integer between 1 and the number of training rows "
                    f"(n_samples={n}), got {self.n_sparse!r}"
                ) from None
        # sigma^2 must stay a finite float64
        check_float(self.regularizer, "regularizer", low=0.0, high=MAX_REGULARIZER, low_open=True)
        nc = check_int(self.n_committee, "n_committee", low=0, high=MAX_COMMITTEE)
        if nc == 1:
            raise ValueError(f"n_committee must be 0 or >= 2, got {self.n_committee!r}")
        check_int(self.n_sparse_committee, "n_sparse_committee", low=1, allow_none=True)
        check_float(self.subsample, "subsample", low=0.0, high=1.0, low_open=True)
        _core.check_allocation((1 + nc) * n, 1, "SparseGPR: the committee's row masks")

    def _committee_size(self, m: int) -> int:
        """How many of the ``m`` sparse points (the first ones) the committee uses."""
        return m if self.n_sparse_committee is None else min(int(self.n_sparse_committee), m)

    def _select(self, X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Sparse rows, most informative first (so that a prefix serves the committee)."""
        if not isinstance(self.selection, str):
            return np.asarray(self.selection, dtype=np.int64)
        if self.selection == "random":  # in random order: every prefix is a random subset
            return rng.choice(len(X), int(self.n_sparse), replace=False).astype(np.int64)
        if self.selection == "cur":
            return cur_selection(X, self.n_sparse, random_state=int(rng.integers(2**31)))
        mc = self._committee_size(int(self.n_sparse))
        if self.n_sparse == len(X) and mc < self.n_sparse:
            # Every row is a sparse point: only the committee's prefix needs the FPS order
            # (a greedy FPS of n_sparse rows starts with the FPS of its first mc rows).
            head = farthest_point_sampling(X, mc, self._kernel(), start=0)
            return np.concatenate([head, np.setdiff1d(np.arange(len(X)), head)])
        return farthest_point_sampling(X, self.n_sparse, self._kernel(), start=0)

    # -- fitting -------------------------------------------------------------------------
    @serialized
    def fit(self, X: ArrayLike, y: ArrayLike) -> SparseGPR:
        """Select sparse points and solve for the weights.

        Parameters
        ----------
        X : array_like, shape (n, d)
            Training features.
        y : array_like, shape (n,)
            Targets (e.g. shieldings in ppm); finite.

        Returns
        -------
        self
        """
        X_ = _feature_rows(X, "X")
        if y is None:
            raise ValueError("SparseGPR requires y to be passed, but the target y is None")
        y_ = _targets(y, "y")
        if y_.ndim == 2 and y_.shape[1] == 1:  # scikit-learn's rule for a column vector
            warnings.warn(
                "A column-vector y was passed when a 1d array was expected. Please change "
                "the shape of y to (n_samples,), for example using ravel().",
                DataConversionWarning,
                stacklevel=3,
            )
            y_ = y_[:, 0]
        if y_.ndim != 1 or len(y_) != len(X_):
            raise ValueError(
                f"y must be a 1-D array with one value per row of X ({len(X_)}), "
                f"got shape {y_.shape}"
            )
        if not np.isfinite(y_).all():
            raise ValueError("y contains NaN or infinite values")
        X_ = _finite_rows(X_, "X")
        n = len(X_)
        self._check_params(n)
        # the σ of this fit: the parameter, or the value tune_regularizer chose
        sigma = self.__dict__.pop("_tuned_regularizer", None)
        self.regularizer_ = float(self.regularizer if sigma is None else sigma)
        n_committee = int(self.n_committee)  # validated: an integer, maybe given as 4.0
        rng = np.random.default_rng(self.random_state)
        kernel = self._kernel()

        m = min(int(self.n_sparse), n) if isinstance(self.selection, str) else 0
        m = m or len(np.asarray(self.selection))
        mc = self._committee_size(m)
        # Every training row a sparse point: the projected process is the full GP, solved
        # as (K + σ² I) w = y - ȳ (the same weights as (σ² K + K²) w = K (y - ȳ), without
        # squaring the condition number or the K² product). K is computed once, in the
        # rows' own order, and factorised in place: the farthest-point order of the
        # committee's sparse points is read from its columns, the committee's products
        # from its rows.
        exact = m == n
        _core.check_allocation((1 if exact else 5) * m * m, 8, "SparseGPR.fit")
        if exact and isinstance(self.selection, str) and self.selection == "fps":
            K = _full_kernel(kernel, X_)
            head = _greedy_farthest(_kernel_diag(kernel, X_), K.__getitem__, mc, 0)
            idx = np.concatenate([head, np.setdiff1d(np.arange(n), head)]) if mc < n else head
        else:
            idx = self._select(X_, rng)
            K = _full_kernel(kernel, X_) if exact else None
        if exact and not n_committee:
            K = K[np.ix_(idx, idx)]  # the GP variance needs the factor in sparse order
            order = idx
        else:
            order = np.arange(n) if exact else idx
        # ``order``: the training row of each row of K (sparse order without ``exact``).
        if exact:
            head = idx[:mc]
            pos = np.empty(n, dtype=np.int64)
            pos[order] = np.arange(n)
            Kmm = K  # K_MM with rows and columns in ``order``
            head_cols = pos[head]
        else:
            Xm = np.ascontiguousarray(X_[idx])
            Kmm = np.asarray(kernel(Xm), dtype=np.float64)
            Kmm += Kmm.T
            Kmm *= 0.5
            head_cols = np.arange(mc)
        # the committee's K_MM (a copy: the full GP's factorisation overwrites K)
        Kcc = Kmm[np.ix_(head_cols, head_cols)] if n_committee else None

        # Model 0 sees every row (it gives the mean); committee members see subsamples
        # and use the first ``mc`` sparse points.
        n_models = 1 + n_committee
        masks = np.ones((n_models, n), dtype=bool)
        if n_committee:
            n_sub = max(1, round(self.subsample * n))
            masks[1:] = False
            for k in range(1, n_models):
                masks[k, rng.choice(n, n_sub, replace=False)] = True
        y_scale = float(np.std(y_)) if self.normalize_y else 1.0
        y_scale = y_scale if y_scale > 0 else 1.0
        y_ = y_ / y_scale
        y_mean = np.array([y_[mask].mean() for mask in masks])

        # Accumulate K_MN K_NM and K_MN (y - ȳ) per model over blocks of rows (with
        # ``exact``, K_NM is K's rows: no kernel to evaluate, and model 0 needs none).
        sizes = [m] + [mc] * n_committee
        KtK: list = [None] * n_models
        Kty: list = [None] * n_models
        if not exact:  # one pass of kernel evaluations serves every model
            KtK = [np.zeros((size, size)) for size in sizes]
            Kty = [np.zeros(size) for size in sizes]
            for start in range(0, n, _BLOCK_ROWS):
                stop = min(n, start + _BLOCK_ROWS)
                Knm = np.asarray(kernel(X_[start:stop], Xm), dtype=np.float64)
                r = np.arange(start, stop)
                for k in range(n_models):
                    mk = masks[k, r]
                    Kb = Knm if mk.all() else Knm[mk]
                    Kb = Kb[:, : sizes[k]]
                    _add_gram(KtK[k], Kb)
                    Kty[k] += Kb.T @ (y_[r][mk] - y_mean[k])

        def member_products(k: int) -> tuple[np.ndarray, np.ndarray]:
            """K_MN K_NM and K_MN (y - ȳ) of committee member k, read from K's rows
            (``exact``): one member at a time, so one (mc, mc) product is held."""
            A, b = np.zeros((mc, mc)), np.zeros(mc)
            for start in range(0, n, _EXACT_BLOCK_ROWS):
                stop = min(n, start + _EXACT_BLOCK_ROWS)
                rows = start + np.flatnonzero(masks[k, order[start:stop]])
                Kb = Kmm[np.ix_(rows, head_cols)]
                _add_gram(A, Kb)
                b += Kb.T @ (y_[order[rows]] - y_mean[k])
            return A, b

        sigma2 = self.regularizer_**2
        weights: list[np.ndarray] = [np.empty(0)] * n_models
        # The committee first: the full GP's factorisation overwrites K.
        for k in [*range(1, n_models), 0]:
            if exact and k == 0:  # (K + σ² I) w = y - ȳ, factorised in place
                Kmm[np.diag_indices_from(Kmm)] += sigma2
                try:
                    L = _cholesky_in_place(Kmm)
                except np.linalg.LinAlgError:  # jitter needs the matrix: compute it again
                    K = Kmm = None
                    Kmm = _full_kernel(kernel, X_)
                    Kmm = Kmm[np.ix_(order, order)] if not n_committee else Kmm
                    Kmm[np.diag_indices_from(Kmm)] += sigma2
                    L = _cholesky(Kmm, "K + sigma^2 I")
                del Kmm, K
                # two triangular solves: no Fortran-order copy of the n x n factor
                w = scipy.linalg.solve_triangular(
                    L, y_[order] - y_mean[0], lower=True, check_finite=False
                )
                w = scipy.linalg.solve_triangular(L, w, lower=True, trans="T", check_finite=False)
                w = w[pos[idx]]  # in the sparse order
            else:
                A, rhs = member_products(k) if exact else (KtK[k], Kty[k])
                A += sigma2 * (Kcc if k else Kmm)[: sizes[k], : sizes[k]]
                A += A.T
                A *= 0.5
                KtK[k] = None
                L = _cholesky(A, "sigma^2 K_MM + K_MN K_NM")
                del A
                w = scipy.linalg.cho_solve((L, True), rhs)
            weights[k] = w
            if k == 0 and not n_committee:  # the GP variance needs the factors
                self.L_a_ = L
                self.L_mm_ = None if exact else _cholesky(Kmm, "K_MM")
            del L
        for name in ("L_a_", "L_mm_") if n_committee else ():
            self.__dict__.pop(name, None)
        if exact:
            Xm = np.ascontiguousarray(X_[idx])

        for name in (
            "mean_basis_",
            "mean_eigenvalues_",
            "mean_error_bound_",
            "mean_error_sparse_",
            "committee_basis_",
            "committee_eigenvalues_",
            "committee_error_sparse_",
            "_committee_stacked",
        ):
            self.__dict__.pop(name, None)  # a refit invalidates an earlier compress()
        self.sparse_indices_ = idx
        self.X_sparse_ = Xm
        self.n_features_in_ = X_.shape[1]
        self.weights_ = weights[0]
        self.y_mean_ = float(y_mean[0])
        self.y_scale_ = y_scale
        self.n_committee_sparse_ = mc
        if n_committee:
            self.committee_weights_ = np.array(weights[1:])
            self.committee_y_mean_ = y_mean[1:]
        self.alpha_, self.beta_ = 1.0, 0.0
        self.__dict__.pop("_sparse_prepared", None)
        if hasattr(kernel, "prepare") and hasattr(kernel, "cross"):
            # prepared here, not at the first prediction: predict leaves the state as is
            for size in {m, mc}:
                self._prepared_sparse(kernel, size)
        return self

    # -- prediction ----------------------------------------------------------------------
    @serialized
    def tune_regularizer(
        self,
        X: ArrayLike,
        y: ArrayLike,
        X_val: ArrayLike,
        y_val: ArrayLike,
        grid: Sequence[float] | None = None,
    ) -> SparseGPR:
        """Choose σ (``regularizer``) on validation data, then fit with it.

        The sparse points, ``K_MM``, ``K_MN K_NM``, ``K_MN y`` and the validation kernel
        are computed once; each candidate σ only costs one m × m Cholesky solve, so a
        scan of many values costs little more than one fit. The value with the lowest
        validation RMSE of the mean prediction is kept (ties: the larger σ).

        Parameters
        ----------
        X, y : array_like, shapes (n, d) and (n,)
            Training data.
        X_val, y_val : array_like, shapes (n_val, d) and (n_val,)
            Validation data (e.g. held-out structures), not used for the fit.
        grid : sequence of float, optional
            Candidate σ, in the units of ``regularizer`` (target units, or relative to
            the targets' spread with ``normalize_y``); default 12 values log-spaced over
            1e-3 … 3 (times the standard deviation of ``y`` without ``normalize_y``).

        Returns
        -------
        self
            Fitted with the chosen σ, which is ``regularizer_``; ``regularizer_scores_``
            maps every σ tried to its validation RMSE. The ``regularizer`` parameter is
            left as it was (a scikit-learn parameter is never changed by a fit), so a
            later :meth:`fit` uses the parameter again.

        Example
        -------
        >>> import numpy as np, matchar as mc
        >>> rng = np.random.default_rng(0)
        >>> X = rng.random((200, 6)); y = X @ rng.random(6)
        >>> gpr = mc.gp.SparseGPR(mc.gp.PolynomialKernel(2), n_sparse=50)
        >>> gpr = gpr.tune_regularizer(X[:150], y[:150], X[150:], y[150:])
        >>> gpr.regularizer_ in gpr.regularizer_scores_
        True
        """
        X_ = as_array(X, "X", ndim=2)
        Xv = as_array(X_val, "X_val", ndim=2)
        y_ = _targets(y, "y")
        yv = _targets(y_val, "y_val")
        if y_.shape != (len(X_),) or yv.shape != (len(Xv),):
            raise ValueError("y and y_val must be 1-D with one value per row of X and X_val")
        if Xv.shape[1] != X_.shape[1]:
            raise ValueError(
                f"X_val has {Xv.shape[1]} features, X has {X_.shape[1]}: they must match"
            )
        for arr, name in ((X_, "X"), (Xv, "X_val"), (y_, "y"), (yv, "y_val")):
            if not np.isfinite(arr).all():
                raise ValueError(f"{name} contains NaN or infinite values")
        if len(yv) == 0:
            raise ValueError("X_val is empty")
        scale = 1.0 if self.normalize_y else (float(np.std(y_)) or 1.0)
        values = (
            np.geomspace(1e-3, 3.0, 12) * scale
            if grid is None
            else np.asarray(list(grid), dtype=np.float64)
        )
        if values.ndim != 1 or len(values) == 0 or not np.all(np.isfinite(values) & (values > 0)):
            raise ValueError("grid must be a non-empty sequence of positive, finite numbers")
        self._check_params(len(X_))
        kernel = self._kernel()
        idx = self._select(X_, np.random.default_rng(self.random_state))
        Xm = np.ascontiguousarray(X_[idx])
        Kmm = np.asarray(kernel(Xm), dtype=np.float64)
        Kmm = 0.5 * (Kmm + Kmm.T)
        y_scale = float(np.std(y_)) if self.normalize_y else 1.0
        y_scale = y_scale if y_scale > 0 else 1.0
        yn = y_ / y_scale
        y_mean = float(yn.mean())
        m = len(idx)
        KtK = np.zeros((m, m))
        Kty = np.zeros(m)
        for start in range(0, len(X_), _BLOCK_ROWS):
            stop = min(len(X_), start + _BLOCK_ROWS)
            Knm = np.asarray(kernel(X_[start:stop], Xm), dtype=np.float64)
            _add_gram(KtK, Knm)
            Kty += Knm.T @ (yn[start:stop] - y_mean)
        Kvm = np.asarray(kernel(Xv, Xm), dtype=np.float64)
        scores: dict[float, float] = {}
        for sigma in values:
            A = sigma**2 * Kmm + KtK  # as in fit: σ in the (normalised) target units
            L = _cholesky(0.5 * (A + A.T), "sigma^2 K_MM + K_MN K_NM")
            w = scipy.linalg.cho_solve((L, True), Kty)
            pred = (Kvm @ w + y_mean) * y_scale
            scores[float(sigma)] = float(np.sqrt(np.mean((pred - yv) ** 2)))
        best = min(scores, key=lambda s: (scores[s], -s))
        self._tuned_regularizer = best  # fit's σ, leaving the parameter as it is
        try:
            self.fit(X_, y_)
        finally:
            self.__dict__.pop("_tuned_regularizer", None)
        self.regularizer_scores_ = scores
        return self

    def _fitted_regularizer(self) -> float:
        """σ of the fitted model (``regularizer_``; the parameter for a model fitted before
        that attribute existed)."""
        return float(self.__dict__.get("regularizer_", self.regularizer))

    def _n_committee_sparse(self) -> int:
        return int(self.__dict__.get("n_committee_sparse_", len(self.X_sparse_)))

    def _sparse_kernel(self, X: np.ndarray, n: int | None = None) -> np.ndarray:
        """k(X, X_sparse_[:n]) (len(X), n; all M sparse points for None). Kernels with
        ``prepare``/``cross`` get the sparse points prepared once (contiguous blocks and
        row scales, cached until they change), so repeated small predictions cost one
        GEMM each."""
        kernel = self._kernel()
        Y = self.X_sparse_ if n is None or n >= len(self.X_sparse_) else self.X_sparse_[:n]
        if not (hasattr(kernel, "prepare") and hasattr(kernel, "cross")):
            return kernel(X, Y)
        return kernel.cross(X, self._prepared_sparse(kernel, len(Y)))

    def _prepared_sparse(self, kernel, n: int):
        """``kernel.prepare`` of the first ``n`` sparse points, cached until they change."""
        # self.kernel, not the kernel built from it: the default is built anew at each call
        owner = None if self.kernel is None else id(self.kernel)
        key = (owner, id(self.X_sparse_), self.X_sparse_.shape, self.X_sparse_.dtype)
        cache = self.__dict__.get("_sparse_prepared")
        if cache is None or cache[0] != key:
            cache = (key, {})
            self.__dict__["_sparse_prepared"] = cache
        if n not in cache[1]:
            cache[1][n] = kernel.prepare(self.X_sparse_[:n])
        return cache[1][n]

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state.pop("_sparse_prepared", None)  # a cache, rebuilt on the first prediction
        state.pop("_committee_stacked", None)
        return state

    @serialized
    def compress(self, tol: float | None = None, committee: bool = False) -> SparseGPR:
        """Low-rank form of the mean prediction for the ζ = 2 polynomial kernels.

        With ``k(x, y) = Σ_b w_b (x̂_b · ŷ_b)²`` the mean is a quadratic form per block,
        ``f(x) = Σ_b w_b x̂_bᵀ A_b x̂_b + ȳ`` with ``A_b = Σ_j a_j ŷ_bj ŷ_bjᵀ`` (``a``: the
        fitted weights). Keeping the eigenpairs of ``A_b`` with the largest ``|λ|``,
        ``f(x) ≈ Σ_b w_b Σ_{k≤r_b} λ_bk (v_bk · x̂_b)²`` costs ``Σ_b 2 r_b d_b`` per row
        instead of ``Σ_b 2 M d_b``. The ranks are the smallest for which the error on
        every sparse point — the most diverse environments of the training set, by
        construction — stays ≤ ``tol`` (target units, after ``y_scale_``); recorded as
        ``mean_error_sparse_``. ``mean_error_bound_`` is the worst case over *all*
        inputs, ``Σ_b w_b max_{k>r_b} |λ_bk|`` (``|x̂_b| = 1``), usually far larger than
        the errors seen. The basis is stored in the sparse points' dtype, so a float32
        model adds float32 rounding, as its exact kernel path does.

        After this, :meth:`predict` computes the mean this way. With ``committee=True``
        every committee member's prediction (a quadratic form over the committee's sparse
        points) is compressed the same way, so the standard deviation costs no kernel
        evaluation either: each member's ranks keep its prediction within
        ``tol / (2 α sqrt(n / (n − 1)))`` on the sparse points (α the calibration factor,
        n the committee size), which keeps the calibrated std within ``tol`` there
        (``committee_error_sparse_``, the largest member error; not saved by
        ``ShiftModel.save``). :meth:`fit` discards the compression. One symmetric
        eigendecomposition per block (and member) of size ``min(d_b, M)`` (about a minute
        for d_b = 4480 on 2 cores).

        Parameters
        ----------
        tol : float, optional
            Bound on the absolute error of the mean (and with ``committee`` of the std),
            in target units (default: ``1e-3 · y_scale_``, a thousandth of the training
            targets' spread with ``normalize_y``).
        committee : bool, default False
            Also compress the committee members (needs ``n_committee >= 2``). A model
            whose exact mean weights are not stored (a compressed model loaded from a
            file) keeps its compressed mean and compresses only the committee.

        Returns
        -------
        self
            With ``mean_basis_`` (list of arrays (d_b, r_b), the sparse points' dtype),
            ``mean_eigenvalues_`` (list of float64 arrays (r_b,)),
            ``mean_error_sparse_`` and ``mean_error_bound_`` (floats, target units).

        Raises
        ------
        ValueError
            If the kernel is not a normalised ζ = 2 ``PolynomialKernel`` or
            ``MultiPolynomialKernel``, or ``tol`` is not positive.

        Example
        -------
        >>> import numpy as np, matchar as mc
        >>> rng = np.random.default_rng(0)
        >>> X = rng.random((200, 30)); y = X[:, 0] - X[:, 1]
        >>> gpr = mc.gp.SparseGPR(n_sparse=50, regularizer=1e-2).fit(X, y)
        >>> exact = gpr.predict(X[:5])
        >>> gpr = gpr.compress(1e-4)
        >>> bool(np.abs(gpr.predict(X[:5]) - exact).max() <= gpr.mean_error_bound_ + 1e-12)
        True
        """
        check_fitted(self, "X_sparse_")
        exact_mean = self.weights_ is not None and len(self.weights_) == len(self.X_sparse_)
        if not exact_mean and not (committee and self.__dict__.get("mean_basis_") is not None):
            raise ValueError(
                "this SparseGPR keeps only its committee's sparse points (a compressed model "
                "loaded from a file): the exact mean it would compress from is not stored"
            )
        if committee and not self.n_committee:
            raise ValueError("compress(committee=True) needs a committee (n_committee >= 2)")
        kernel = self._kernel()
        if isinstance(kernel, MultiPolynomialKernel):
            offsets, block_w = kernel._offsets, kernel.weights
        elif isinstance(kernel, PolynomialKernel) and kernel.normalize:
            offsets, block_w = np.array([0, self.n_features_in_]), np.ones(1)
        else:
            raise ValueError(
                "compress() needs a normalised PolynomialKernel or a MultiPolynomialKernel, "
                f"got {kernel!r}"
            )
        if getattr(kernel, "zeta", None) != 2:
            raise ValueError(f"compress() needs zeta = 2, got {getattr(kernel, 'zeta', None)!r}")
        y_scale = float(getattr(self, "y_scale_", 1.0))
        tol = 1e-3 * y_scale if tol is None else check_float(tol, "tol", low=0.0, low_open=True)
        if exact_mean:
            bases, eigs, bound, sparse_err = low_rank_form(
                self.X_sparse_, self.weights_, len(self.X_sparse_), tol, offsets, block_w, y_scale
            )
            self.mean_basis_ = bases
            self.mean_eigenvalues_ = eigs
            self.mean_error_bound_ = float(bound)
            self.mean_error_sparse_ = float(sparse_err)
        if committee:
            n_c = len(self.committee_weights_)
            alpha = float(getattr(self, "alpha_", 1.0))
            member_tol = tol / (2.0 * max(alpha, 1e-12) * math.sqrt(n_c / (n_c - 1)))
            c_bases, c_eigs, worst = [], [], 0.0
            for w in self.committee_weights_:
                bases, eigs, _, err = low_rank_form(
                    self.X_sparse_,
                    w,
                    self._n_committee_sparse(),
                    member_tol,
                    offsets,
                    block_w,
                    y_scale,
                )
                c_bases.append(bases)
                c_eigs.append(eigs)
                worst = max(worst, err)
            self.committee_basis_ = c_bases
            self.committee_eigenvalues_ = c_eigs
            self.committee_error_sparse_ = float(worst)
        return self

    def _compressed_mean(
        self, X_: np.ndarray, inv_norms: list[np.ndarray] | None = None
    ) -> np.ndarray:
        """Mean in target units from the compressed form (see :meth:`compress`)."""
        offsets, block_w = block_layout(self._kernel(), self.n_features_in_)
        inv_norms = inverse_block_norms(X_, offsets) if inv_norms is None else inv_norms
        f = quadratic_form(
            X_, self.mean_basis_, self.mean_eigenvalues_, offsets, block_w, inv_norms
        )
        return (f + self.y_mean_) * getattr(self, "y_scale_", 1.0)

    def _inverse_block_norms(self, X_: np.ndarray) -> list[np.ndarray]:
        """``1 / |x_b|²`` per row and kernel block (1 for zero rows), float64."""
        return inverse_block_norms(X_, block_layout(self._kernel(), self.n_features_in_)[0])

    def _committee_quadratics(
        self, X_: np.ndarray, inv_norms: list[np.ndarray] | None = None
    ) -> np.ndarray:
        """Every compressed committee member's quadratic form, (n_committee, n), before
        ``y_scale_``; the members' stacked bases are cached until they change."""
        offsets, block_w = block_layout(self._kernel(), self.n_features_in_)
        cache = self.__dict__.get("_committee_stacked")
        if cache is None or cache[0] is not self.committee_basis_:
            stacked = stack_committee(
                self.committee_basis_, self.committee_eigenvalues_, len(block_w)
            )
            cache = (self.committee_basis_, stacked)
            self.__dict__["_committee_stacked"] = cache
        inv_norms = inverse_block_norms(X_, offsets) if inv_norms is None else inv_norms
        return committee_quadratic_forms(
            X_, cache[1], len(self.committee_basis_), offsets, block_w, inv_norms
        )

    def _check_X(self, X: ArrayLike) -> np.ndarray:
        check_fitted(self, "X_sparse_")
        X_ = _feature_rows(X, "X")
        if X_.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X_.shape[1]} features, but SparseGPR is expecting "
                f"{self.n_features_in_} features as input (it was fitted with that many)"
            )
        return X_

    def _committee_predictions(self, X_: np.ndarray) -> np.ndarray:
        """(n_committee, n) predictions of every member."""
        out = np.empty((len(self.committee_weights_), len(X_)))
        for start in range(0, len(X_), _BLOCK_ROWS):
            stop = min(len(X_), start + _BLOCK_ROWS)
            Kxm = self._sparse_kernel(X_[start:stop], self._n_committee_sparse())
            Kxm = np.asarray(Kxm, dtype=np.float64)
            out[:, start:stop] = self.committee_weights_ @ Kxm.T + self.committee_y_mean_[:, None]
        return out * getattr(self, "y_scale_", 1.0)

    @serialized
    def predict(
        self, X: ArrayLike, return_std: bool = False
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Predict targets, and optionally their standard deviation.

        Parameters
        ----------
        X : array_like, shape (n, d)
        return_std : bool, default False

        Returns
        -------
        mean : numpy.ndarray, shape (n,)
        std : numpy.ndarray, shape (n,)
            Only with ``return_std=True``, in target units: the predictive standard
            deviation of a target value, ``α · sqrt(var_f + σ²)`` for the GP variance, or
            ``sqrt(α² σ²_committee + β²)`` for a committee.

        After :meth:`compress`, the mean comes from the low-rank form (within
        ``mean_error_bound_`` of the exact mean) and costs no kernel evaluation.
        """
        X_ = self._check_X(X)
        committee = bool(self.n_committee) and return_std
        mean = np.empty(len(X_))
        var = np.empty(len(X_)) if return_std else None
        kernel = self._kernel()
        sigma2 = self._fitted_regularizer() ** 2
        compressed = self.__dict__.get("mean_basis_") is not None
        fast_committee = committee and self.__dict__.get("committee_basis_") is not None
        # With a compressed mean a committee needs only its own sparse points' kernel.
        n_kernel = self._n_committee_sparse() if compressed and committee else None
        need_kernel = not compressed or (return_std and not fast_committee)
        starts = range(0, len(X_), _BLOCK_ROWS) if need_kernel else ()
        # every BLAS call below on matchar's thread setting, as the kernels
        with _blas_threads(get_num_threads()):
            for start in starts:  # the kernel against the sparse points, unless not needed
                stop = min(len(X_), start + _BLOCK_ROWS)
                Kxm = self._sparse_kernel(X_[start:stop], n_kernel)
                Kxm = np.asarray(Kxm, dtype=np.float64)
                if not compressed:
                    mean[start:stop] = Kxm @ self.weights_ + self.y_mean_
                if committee and not fast_committee:
                    Kc = Kxm[:, : self._n_committee_sparse()]
                    preds = self.committee_weights_ @ Kc.T + self.committee_y_mean_[:, None]
                    var[start:stop] = preds.var(axis=0, ddof=1)
                elif var is not None and not committee:
                    s = scipy.linalg.solve_triangular(self.L_a_, Kxm.T, lower=True)
                    kxx = _kernel_diag(kernel, X_[start:stop])
                    if self.L_mm_ is None:  # every training row a sparse point: the full GP
                        var[start:stop] = kxx - np.sum(s * s, axis=0) + sigma2
                    else:
                        q = scipy.linalg.solve_triangular(self.L_mm_, Kxm.T, lower=True)
                        var[start:stop] = (
                            kxx - np.sum(q * q, axis=0) + sigma2 * np.sum(s * s, axis=0) + sigma2
                        )
        inv_norms = self._inverse_block_norms(X_) if compressed or fast_committee else None
        if fast_committee:
            preds = self._committee_quadratics(X_, inv_norms) + self.committee_y_mean_[:, None]
            var = preds.var(axis=0, ddof=1)
        scale = getattr(self, "y_scale_", 1.0)
        mean *= scale
        if compressed:
            mean = self._compressed_mean(X_, inv_norms)
        if var is None:
            return mean
        return mean, self._calibrated(scale * np.sqrt(np.clip(var, 0.0, None)))

    def _calibrated(self, std: np.ndarray) -> np.ndarray:
        beta = getattr(self, "beta_", 0.0)
        return np.sqrt((self.alpha_ * std) ** 2 + beta**2)

    @serialized
    def calibrate(self, X: ArrayLike, y: ArrayLike, method: str = "musil") -> SparseGPR:
        """Fit the calibration of the predicted uncertainty on validation data.

        Methods (Δ: error of the mean prediction, σ: uncalibrated predicted std):

        - ``"musil"`` (committees; Musil et al., JCTC 15, 906 (2019)):
          ``α² = -1/n_c + (n_c-3)/(n_c-1) · mean(Δ²/σ²)``; for the GP variance the same
          as ``"ml"``;
        - ``"ml"``: the maximum-likelihood scale, ``α² = mean(Δ²/σ²)``;
        - ``"affine"``: ``σ'² = α² σ² + β²`` with (α, β) maximising the Gaussian
          likelihood — a floor β for errors the model's spread does not see, which makes
          heavy-tailed errors better calibrated at both 1σ and 2σ.
        - ``"coverage"``: the same form, with (α, β) making the fractions of errors within
          1σ' and 2σ' as close as possible to the Gaussian 0.683 and 0.954: the largest of
          the two deviations, each in units of its binomial spread ``sqrt(p (1 - p))``, is
          minimised (over a grid of β in [0, rms error] and, per β, every α at which a
          coverage changes). Where errors are heavy-tailed the likelihood fit trades the
          1σ coverage for the tails; this one asks for what "σ" is read as.
        - ``"band"``: as ``"coverage"``, with each deviation in units of the half-width of
          the band it is accepted in, 0.683 ± 0.05 within 1σ' and 0.954 ± 0.03 within
          2σ': the largest fraction of a band used is minimised, i.e. the smaller margin
          to the bands is maximised. With heavy-tailed errors no σ' of this form hits both
          Gaussian coverages; ``"coverage"`` then weights the 2σ deviation 2.2× the 1σ one
          (their binomial spreads), ``"band"`` 1.7× (the bands' widths).

        Parameters
        ----------
        X : array_like, shape (n_val, d)
        y : array_like, shape (n_val,)
        method : {"musil", "ml", "affine", "coverage", "band"}, default "musil"

        Returns
        -------
        self
        """
        _check_calibration_method(method)
        X_ = self._check_X(X)
        y_ = _targets(y, "y")
        if y_.shape != (len(X_),) or not np.isfinite(y_).all():
            raise ValueError("y must be finite, with one value per row of X")
        self.alpha_, self.beta_ = 1.0, 0.0
        mean, std = self.predict(X_, return_std=True)
        return self.calibrate_errors(mean - y_, std, method)

    @serialized
    def calibrate_errors(
        self, errors: ArrayLike, std: ArrayLike, method: str = "musil"
    ) -> SparseGPR:
        """Fit the calibration from errors and *uncalibrated* standard deviations measured
        elsewhere, e.g. pooled over the folds of a cross-validation (each fold's model
        predicting the rows it did not see).

        Parameters
        ----------
        errors : array_like, shape (n,)
            Prediction minus truth, target units.
        std : array_like, shape (n,)
            Uncalibrated predicted standard deviations (α = 1, β = 0), target units.
        method : {"musil", "ml", "affine", "coverage", "band"}, default "musil"
            As for :meth:`calibrate`.

        Returns
        -------
        self
        """
        _check_calibration_method(method)
        err = _targets(errors, "errors")
        sd = _targets(std, "std")
        if err.ndim != 1 or sd.shape != err.shape or len(err) == 0:
            raise ValueError("errors and std must be non-empty 1-D arrays of the same length")
        if not (np.isfinite(err).all() and np.isfinite(sd).all()) or (sd < 0).any():
            raise ValueError("errors and std must be finite, std >= 0")
        self.alpha_, self.beta_ = fit_calibration(err, sd, method, self.n_committee)
        return self
