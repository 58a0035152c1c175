"""The fitting machinery of :class:`PhysicsNMF`: initial maps and W, the iterations (one
C++ pass over the data per iteration in ``_pass``: ``_core.spectral.physics_kl_pass``,
``cpp/src/spectral/physics.cpp``, or, without smoothness, sparsity and simplex="H", the
NMF engine's ``nmf_kl_stats``, ``cpp/src/spectral/nmf_kl.cpp``; then the W step), the dask
path, and the fitted attributes.

``_PhysicsNMFSolver`` is a private base of :class:`PhysicsNMF` (defined, and pickled,
in ``_physics_nmf.py``); its methods read the estimator's parameters from ``self``.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from .. import _core
from ._anomaly import DEFAULT_FDR, anomalies_of_fit
from ._dask import DaskSpectrumMatrix
from ._input import SpectrumMatrix, as_mask, unflatten
from ._nmf import NMF, _deviance
from ._physics_nmf_init import _kmeans_init, _poisson_regression, _vertex_init
from ._physics_nmf_updates import _stalled, da_log_sum, surrogate_terms, w_step

#: The candidates of init="auto", in the order tried (ties go to the first).
AUTO_INITS = ("kmeans", "nmf", "vertex")


class _PhysicsNMFSolver:
    """Fitting methods of :class:`PhysicsNMF` (a private base class)."""

    def _fit_transform_dask(self, raw: Any, pixel_mask: Any, channel_mask: Any) -> Any:
        """fit_transform of a dask array: C++ passes per chunk, statistics reduced.

        The maps stay on the workers (one piece per chunk); each iteration reduces the
        K x C statistics of the components on the client. The Laplacian smoothness
        couples neighbouring pixels across chunks: each chunk's task also reads one image
        row of its neighbours' maps (from the previous iteration, as in memory).
        ``init="kmeans"``/``"vertex"`` (which bin neighbouring pixels) and ``"auto"``
        fall back to ``"nmf"`` (an NMF fitted on the dask array); ``init_used_`` says so.
        """
        data = DaskSpectrumMatrix(raw, "X")
        self._fitted_counts = None
        N, C = data.shape
        self._resolve_model(raw, C)
        K, G = self._check(N, C)
        n_el = int(self._used_model().n_elements)
        E = G.shape[1]
        w_pins, h_pins = self._pins(K, E, C, n_el)
        dtype = data.factor_dtype(self.dtype)
        pm, cm, incl, Gm = self._masks(data, G, pixel_mask, channel_mask)
        self.nav_shape_ = data.nav_shape
        init = "nmf" if self.init in ("kmeans", "vertex", "auto") else self.init
        with threadpool_limits(limits=1, user_api="blas"):
            A0, W = self._init(data, G, Gm, K, n_el, dtype, pm, cm, w_pins, h_pins, init)
            self.init_used_ = init if isinstance(init, str) else "given"
            self.init_losses_ = None
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

    def _masks(self, data, G, pixel_mask, channel_mask):
        """(pixel mask, channel mask, included channels, G with the excluded channels
        zeroed): the user's masks, plus the channels the model does not fit."""
        N, C = data.shape
        pm = as_mask(pixel_mask, "pixel_mask", data.nav_shape, N)
        user_cm = np.zeros(C, dtype=bool) if channel_mask is None else np.asarray(channel_mask)
        if user_cm.shape != (C,) or user_cm.dtype != np.bool_:
            raise ValueError(f"channel_mask must be a boolean array of shape ({C},)")
        fit_ch = np.asarray(
            getattr(self._used_model(), "fit_channels", np.ones(C, dtype=bool)), dtype=bool
        )
        cm = as_mask(user_cm | ~fit_ch, "channel_mask", (C,), C)
        incl = np.ones(C, dtype=bool) if cm is None else cm.astype(bool)
        return pm, cm, incl, G * incl[:, None]

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

    def _run(
        self, data, A, W, G, Gm, n_el, dtype, pm, cm, incl, w_pins, h_pins, n_iter, start=None
    ):
        """``n_iter`` iterations from (A, W), then the fitted attributes. ``start``: the
        (iterations done, hist, kls, its) of a trial run continued here ("auto" init)."""
        it0, hist, kls, its = start if start is not None else (0, [], [], [])
        n_done = it0
        try:
            A, W, n_done = self._iterate(
                data,
                A,
                W,
                G,
                Gm,
                n_el,
                dtype,
                pm,
                cm,
                incl,
                w_pins,
                h_pins,
                n_iter,
                it0,
                hist,
                kls,
                its,
            )
        finally:
            self._finish(data, A, W, G, dtype, pm, cm, h_pins, n_done, hist, kls, its, n_el)

    def _iterate(
        self,
        data,
        A,
        W,
        G,
        Gm,
        n_el,
        dtype,
        pm,
        cm,
        incl,
        w_pins,
        h_pins,
        n_iter,
        it0,
        hist,
        kls,
        its,
    ):
        """Up to ``n_iter`` iterations numbered from ``it0``; F appended to ``hist`` every
        ``eval_every``; returns (A, W, iterations done in all)."""
        regular = self.smoothness > 0 or self.sparsity > 0 or self.simplex == "H"
        every, tol = int(self.eval_every), float(self.tol)
        n_done = it0
        for it in range(it0, it0 + n_iter):
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
        return A, W, n_done

    def _auto_init(self, data, G, Gm, K, n_el, dtype, pm, cm, incl, w_pins, h_pins):
        """init="auto": each of ``AUTO_INITS`` followed by min(init_iter, max_iter)
        iterations of the full objective; the one with the lowest F wins. Returns the
        winner's (A, W, (iterations done, hist, kls, its), iterations left): none left
        when its trial stopped on ``tol`` (as the explicit init's fit would have)."""
        n_try = min(int(self.init_iter), int(self.max_iter))
        best = None
        losses: dict[str, float] = {}
        for name in AUTO_INITS:
            A, W = self._init(data, G, Gm, K, n_el, dtype, pm, cm, w_pins, h_pins, name)
            hist: list[float] = []
            kls: list[float] = []
            its: list[int] = []
            A, W, n_done = self._iterate(
                data,
                A,
                W,
                G,
                Gm,
                n_el,
                dtype,
                pm,
                cm,
                incl,
                w_pins,
                h_pins,
                n_try,
                0,
                hist,
                kls,
                its,
            )
            H = self._components(G, W, dtype, h_pins)
            dev = _deviance(data, A, H, pm, cm)
            kl = 0.5 * float(dev.sum() if pm is None else dev[pm.astype(bool)].sum())
            F = self.objective(A, kl)
            losses[name] = F
            if best is None or (np.isfinite(F) and not F >= best[0]):
                best = (F if np.isfinite(F) else np.inf, name, A, W, (n_done, hist, kls, its))
        self.init_losses_ = losses
        self.init_used_ = best[1]
        n_done = best[4][0]
        left = int(self.max_iter) - n_done if n_done == n_try else 0
        return best[2], best[3], best[4], left

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


def _fitted_counts(data: SpectrumMatrix, incl: np.ndarray) -> float | None:
    """Total counts of X in the fitted channels (None for distributed data)."""
    if getattr(data, "distributed", False):
        return None
    if data.sparse:
        cols = np.asarray(data.X.sum(axis=0), dtype=np.float64).ravel()
    else:
        cols = _core.spectral.weighted_sums(data.X, None, None)[1]
    return float(cols[incl].sum())
