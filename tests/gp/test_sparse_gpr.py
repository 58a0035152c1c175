"""SparseGPR against dense NumPy GP / subset-of-regressors references."""

from __future__ import annotations

import numpy as np
import pytest

import matchar as mc


def kernel_ref(A, B, zeta=2):
    A = A / np.linalg.norm(A, axis=1, keepdims=True)
    B = B / np.linalg.norm(B, axis=1, keepdims=True)
    return (A @ B.T) ** zeta


def make_data(n=300, d=8, seed=0, noise=0.05):
    rng = np.random.default_rng(seed)
    X = rng.random((n, d)) + 0.05
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    f = np.sin(4 * Xn[:, 0]) + 3 * Xn[:, 1] * Xn[:, 2] - Xn[:, 3] ** 2
    return X, f + noise * rng.standard_normal(n), f


def test_full_sparse_set_equals_dense_gp():
    # With every training row a sparse point, projected process == the full GP.
    X, y, _ = make_data(80, 6)
    Xt, _, _ = make_data(20, 6, seed=1)
    sigma = 0.1
    gpr = mc.gp.SparseGPR(n_sparse=80, selection="random", regularizer=sigma, random_state=0)
    mean, std = gpr.fit(X, y).predict(Xt, return_std=True)

    K = kernel_ref(X, X)
    Ks = kernel_ref(Xt, X)
    ym = y.mean()
    C = K + sigma**2 * np.eye(len(X))
    mean_ref = Ks @ np.linalg.solve(C, y - ym) + ym
    var_ref = 1.0 - np.einsum("ij,ji->i", Ks, np.linalg.solve(C, Ks.T)) + sigma**2
    np.testing.assert_allclose(mean, mean_ref, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(std, np.sqrt(np.clip(var_ref, 0, None)), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matches_subset_of_regressors_reference(dtype):
    X, y, _ = make_data(400, 10, seed=2)
    X = X.astype(dtype)
    sigma = 0.05
    gpr = mc.gp.SparseGPR(n_sparse=40, selection="fps", regularizer=sigma).fit(X, y)
    Xm = X[gpr.sparse_indices_].astype(np.float64)
    X64 = X.astype(np.float64)
    Kmm = kernel_ref(Xm, Xm)
    Knm = kernel_ref(X64, Xm)
    w = np.linalg.solve(sigma**2 * Kmm + Knm.T @ Knm, Knm.T @ (y - y.mean()))
    tol = 1e-4 if dtype == np.float32 else 1e-8
    np.testing.assert_allclose(gpr.predict(X[:50]), Knm[:50] @ w + y.mean(), rtol=tol, atol=tol)


def reference_fps(X, n_select, zeta=2):
    K = kernel_ref(X, X, zeta)
    sel = [0]
    for _ in range(n_select - 1):
        d = np.min(2.0 - 2.0 * K[:, sel], axis=1)
        d[sel] = -np.inf
        sel.append(int(np.argmax(d)))
    return np.array(sel)


def test_fps_matches_reference():
    X, _, _ = make_data(150, 7, seed=3)
    np.testing.assert_array_equal(mc.gp.farthest_point_sampling(X, 25), reference_fps(X, 25))


def test_cur_selects_high_leverage_rows():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((200, 3)) * 0.01
    X[17] = [10.0, 0, 0]
    X[101] = [0, 10.0, 0]
    sel = mc.gp.cur_selection(X, 2)
    assert set(sel.tolist()) == {17, 101}


def test_learns_and_committee_is_calibrated():
    X, y, _ = make_data(1500, 8, seed=5, noise=0.02)
    Xv, yv, _ = make_data(400, 8, seed=6, noise=0.02)
    Xt, yt, _ = make_data(1500, 8, seed=7, noise=0.02)
    gpr = mc.gp.SparseGPR(
        n_sparse=60, regularizer=0.02, n_committee=8, subsample=0.3, random_state=0
    ).fit(X, y)
    gpr.calibrate(Xv, yv)
    mean, std = gpr.predict(Xt, return_std=True)
    rmse = np.sqrt(np.mean((mean - yt) ** 2))
    assert rmse < 0.25 * np.std(yt)
    z = np.abs(mean - yt) / std
    assert 0.58 <= np.mean(z <= 1) <= 0.78
    assert 0.88 <= np.mean(z <= 2) <= 0.99


def test_gp_variance_calibration():
    X, y, _ = make_data(800, 8, seed=8, noise=0.03)
    Xv, yv, _ = make_data(400, 8, seed=9, noise=0.03)
    Xt, yt, _ = make_data(1500, 8, seed=10, noise=0.03)
    gpr = mc.gp.SparseGPR(n_sparse=50, regularizer=0.03).fit(X, y)
    _, std_uncal = gpr.predict(Xt, return_std=True)
    gpr.calibrate(Xv, yv)
    mean, std = gpr.predict(Xt, return_std=True)
    np.testing.assert_allclose(std, gpr.alpha_ * std_uncal, rtol=1e-12)
    z = np.abs(mean - yt) / std
    assert 0.58 <= np.mean(z <= 1) <= 0.78
    assert 0.9 <= np.mean(z <= 2) <= 0.99


def test_deterministic_and_inputs_untouched():
    X, y, _ = make_data(200, 5, seed=11)
    X0, y0 = X.copy(), y.copy()
    a = mc.gp.SparseGPR(n_sparse=30, selection="random", n_committee=3, random_state=3)
    b = mc.gp.SparseGPR(n_sparse=30, selection="random", n_committee=3, random_state=3)
    np.testing.assert_array_equal(a.fit(X, y).predict(X), b.fit(X, y).predict(X))
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(y, y0)


def test_bad_input():
    X, y, _ = make_data(50, 4)
    with pytest.raises(ValueError, match="n_sparse"):
        mc.gp.SparseGPR(n_sparse=51).fit(X, y)
    y_nan = y.copy()
    y_nan[3] = np.nan
    with pytest.raises(ValueError, match="y contains NaN"):
        mc.gp.SparseGPR(n_sparse=10).fit(X, y_nan)
    with pytest.raises(ValueError, match="one value per row"):
        mc.gp.SparseGPR(n_sparse=10).fit(X, y[:-1])
    with pytest.raises(ValueError, match="selection"):
        mc.gp.SparseGPR(n_sparse=10, selection="kmeans").fit(X, y)
    with pytest.raises(ValueError, match="regularizer"):
        mc.gp.SparseGPR(n_sparse=10, regularizer=0).fit(X, y)
    with pytest.raises(ValueError, match="n_committee"):
        mc.gp.SparseGPR(n_sparse=10, n_committee=1).fit(X, y)
    gpr = mc.gp.SparseGPR(n_sparse=10)
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        gpr.predict(X)
    gpr.fit(X, y)
    with pytest.raises(ValueError, match="features"):
        gpr.predict(np.ones((3, 5)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_multi_polynomial_kernel_matches_reference(dtype):
    rng = np.random.default_rng(12)
    X = rng.random((30, 9)).astype(dtype)
    Y = rng.random((20, 9)).astype(dtype)
    k = mc.gp.MultiPolynomialKernel([4, 5], weights=[0.3, 0.7], zeta=3)
    ref = 0.3 * kernel_ref(X[:, :4], Y[:, :4], 3) + 0.7 * kernel_ref(X[:, 4:], Y[:, 4:], 3)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(k(X, Y), ref, rtol=tol)
    np.testing.assert_allclose(k(X), k(X, X), rtol=tol)
    np.testing.assert_allclose(k.diag(X), 1.0)
    gpr = mc.gp.SparseGPR(kernel=k, n_sparse=10).fit(X, X.sum(axis=1))
    assert gpr.predict(Y).shape == (20,)
    with pytest.raises(ValueError, match="blocks add up to 9"):
        k(np.ones((2, 8)))
    with pytest.raises(ValueError, match="weights"):
        mc.gp.MultiPolynomialKernel([4, 5], weights=[1.0, -1.0])


def test_explicit_selection_indices():
    X, y, _ = make_data(120, 5, seed=13)
    idx = np.array([3, 50, 7, 99])
    a = mc.gp.SparseGPR(selection=idx, regularizer=0.05).fit(X, y)
    np.testing.assert_array_equal(a.sparse_indices_, idx)
    b = mc.gp.SparseGPR(selection=idx[::-1], regularizer=0.05).fit(X, y)
    np.testing.assert_allclose(a.predict(X), b.predict(X), rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match="selection"):
        mc.gp.SparseGPR(selection=np.array([1, 1])).fit(X, y)
    with pytest.raises(ValueError, match="selection indices"):
        mc.gp.SparseGPR(selection=np.array([0, 500])).fit(X, y)


def _calibration_problem(n_val: int, noise):
    """A committee model and validation targets whose errors are ``noise(n)`` times
    sqrt((2 · committee spread)² + 0.05²): (gpr, Xv, yv, mean, spread)."""
    X, y, _ = make_data(600, 6, seed=14, noise=0.0)
    gpr = mc.gp.SparseGPR(n_sparse=30, regularizer=0.01, n_committee=6, random_state=0)
    gpr.fit(X, y)
    Xv, _, _ = make_data(n_val, 6, seed=15, noise=0.0)
    mean, spread = gpr.predict(Xv), gpr._committee_predictions(Xv).std(0, ddof=1)
    yv = mean + noise(len(mean)) * np.sqrt((2.0 * spread) ** 2 + 0.05**2)
    return gpr, Xv, yv, mean, spread


def test_affine_calibration_fits_scale_and_floor():
    # Errors = committee spread * 2 plus an independent floor of 0.05: the affine fit
    # must recover both on validation data.
    gpr, Xv, yv, _, spread = _calibration_problem(4000, np.random.default_rng(16).standard_normal)
    gpr.calibrate(Xv, yv, method="affine")
    assert gpr.alpha_ == pytest.approx(2.0, rel=0.1)
    assert gpr.beta_ == pytest.approx(0.05, rel=0.15)
    _, std = gpr.predict(Xv, return_std=True)
    np.testing.assert_allclose(std, np.sqrt((gpr.alpha_ * spread) ** 2 + gpr.beta_**2))
    with pytest.raises(ValueError, match="method"):
        gpr.calibrate(Xv, yv, method="isotonic")


def test_coverage_calibration_matches_the_gaussian_coverages():
    """Heavy-tailed errors (Student t, 3 dof, times the committee spread, plus a floor):
    the likelihood fit puts too many errors within 1σ; "coverage" picks (α, β) whose 1σ
    and 2σ coverages on the calibration data are the Gaussian ones to binomial accuracy,
    and the minimax it solves is checked against a brute-force grid."""
    from matchar.gp._calibration import _coverage_calibration

    rng = np.random.default_rng(17)
    gpr, Xv, yv, mean, spread = _calibration_problem(3000, lambda n: rng.standard_t(3, n))

    def coverages():
        pred, std = gpr.predict(Xv, return_std=True)
        err = np.abs(pred - yv)
        return np.mean(err <= std), np.mean(err <= 2 * std)

    gpr.calibrate(Xv, yv, method="affine")
    c1_ml, _ = coverages()
    gpr.calibrate(Xv, yv, method="coverage")
    c1, c2 = coverages()
    tol = 3 / np.sqrt(len(yv))  # a few binomial spreads
    assert abs(c1 - 0.6827) <= tol and abs(c2 - 0.9545) <= 0.03
    assert abs(c1_ml - 0.6827) > abs(c1 - 0.6827)
    # brute force over a grid: no (α, β) does better than the solver's (to grid precision)
    err = np.abs(mean - yv)
    w1, w2 = np.sqrt(0.6827 * 0.3173), np.sqrt(0.9545 * 0.0455)

    def dev(a, b):
        sig = np.sqrt((a * spread) ** 2 + b**2)
        return max(
            abs(np.mean(err <= sig) - 0.6827) / w1, abs(np.mean(err <= 2 * sig) - 0.9545) / w2
        )

    a, b = _coverage_calibration(err, spread)
    grid = min(
        dev(aa, bb)
        for aa in np.linspace(0.2, 6, 59)
        for bb in np.linspace(0, np.sqrt(np.mean(err**2)), 21)
    )
    assert dev(a, b) <= grid + 1e-3


def test_band_calibration_maximises_the_margin_to_the_bands():
    """The "band" calibration minimises the larger coverage deviation in units of the
    bands 0.683 ± 0.05 and 0.954 ± 0.03: checked against a brute-force grid, and no worse
    on that measure than "coverage" (which weighs the deviations by their binomial
    spreads instead)."""
    rng = np.random.default_rng(21)
    gpr, Xv, yv, mean, spread = _calibration_problem(3000, lambda n: rng.standard_t(3, n))
    err = np.abs(mean - yv)

    def dev(a, b):
        sig = np.sqrt((a * spread) ** 2 + b**2)
        return max(
            abs(np.mean(err <= sig) - 0.6827) / 0.05, abs(np.mean(err <= 2 * sig) - 0.9545) / 0.03
        )

    gpr.calibrate(Xv, yv, method="band")
    band = dev(gpr.alpha_, gpr.beta_)
    _, std = gpr.predict(Xv, return_std=True)
    np.testing.assert_allclose(std, np.sqrt((gpr.alpha_ * spread) ** 2 + gpr.beta_**2))
    gpr.calibrate(Xv, yv, method="coverage")
    assert band <= dev(gpr.alpha_, gpr.beta_) + 1e-12
    grid = min(
        dev(aa, bb)
        for aa in np.linspace(0.2, 6, 59)
        for bb in np.linspace(0, np.sqrt(np.mean(err**2)), 21)
    )
    assert band <= grid + 1e-3


def test_normalize_y_is_scale_invariant():
    X, y, _ = make_data(300, 6, seed=17)
    a = mc.gp.SparseGPR(n_sparse=40, regularizer=0.1, normalize_y=True).fit(X, y)
    b = mc.gp.SparseGPR(n_sparse=40, regularizer=0.1, normalize_y=True).fit(X, 1000.0 * y + 5)
    ma, sa = a.predict(X[:20], return_std=True)
    mb, sb = b.predict(X[:20], return_std=True)
    np.testing.assert_allclose(mb, 1000.0 * ma + 5, rtol=1e-9)
    np.testing.assert_allclose(sb, 1000.0 * sa, rtol=1e-9)
    # The mean does not depend on the target scale (unit kernel), only the variance does.
    c = mc.gp.SparseGPR(n_sparse=40, regularizer=0.1).fit(X, y)
    mc_, sc = c.predict(X[:20], return_std=True)
    np.testing.assert_allclose(mc_, ma, rtol=1e-9)
    np.testing.assert_allclose(sa, np.std(y) * sc, rtol=1e-9)


@pytest.mark.parametrize("normalize_y", [False, True])
def test_tune_regularizer_matches_refits(normalize_y):
    """The scan's validation RMSEs equal those of separate fits at each σ."""
    rng = np.random.default_rng(3)
    X = rng.random((260, 8))
    y = 5.0 * (X @ rng.random(8)) ** 2 + rng.normal(scale=0.3, size=260)
    Xt, yt, Xv, yv = X[:200], y[:200], X[200:], y[200:]
    grid = [1e-3, 1e-2, 0.1, 1.0]
    kw = dict(n_sparse=60, random_state=0, normalize_y=normalize_y)
    gpr = mc.gp.SparseGPR(mc.gp.PolynomialKernel(2), **kw).tune_regularizer(Xt, yt, Xv, yv, grid)
    for sigma in grid:
        ref = mc.gp.SparseGPR(mc.gp.PolynomialKernel(2), regularizer=sigma, **kw).fit(Xt, yt)
        rmse = np.sqrt(np.mean((ref.predict(Xv) - yv) ** 2))
        assert gpr.regularizer_scores_[sigma] == pytest.approx(rmse, rel=1e-6)
    best = min(grid, key=lambda s: gpr.regularizer_scores_[s])
    assert gpr.regularizer_ == best
    assert gpr.regularizer == 1e-3  # the parameter is left as it was (the default)
    assert gpr.get_params()["regularizer"] == 1e-3
    ref = mc.gp.SparseGPR(mc.gp.PolynomialKernel(2), regularizer=best, **kw).fit(Xt, yt)
    np.testing.assert_allclose(gpr.predict(Xv), ref.predict(Xv), rtol=1e-10)
    np.testing.assert_allclose(
        gpr.predict(Xv, return_std=True), ref.predict(Xv, return_std=True), rtol=1e-10
    )
    assert gpr.fit(Xt, yt).regularizer_ == 1e-3  # a plain fit uses the parameter again


def test_tune_regularizer_bad_input():
    rng = np.random.default_rng(0)
    X, y = rng.random((50, 4)), rng.random(50)
    gpr = mc.gp.SparseGPR(n_sparse=10)
    with pytest.raises(ValueError, match="grid"):
        gpr.tune_regularizer(X, y, X, y, grid=[0.1, -1.0])
    with pytest.raises(ValueError, match="features"):
        gpr.tune_regularizer(X, y, X[:, :3], y)
    yv = y.copy()
    yv[3] = np.nan
    with pytest.raises(ValueError, match="y_val"):
        gpr.tune_regularizer(X, y, X, yv)


def _sum_of_quadratic_forms_reference(gpr, X, blocks, block_w):
    """Mean of a ζ=2 model written as Σ_b w_b x̂ᵀ A_b x̂ with A_b formed explicitly."""
    f = np.zeros(len(X))
    for (a, b), w in zip(blocks, block_w):
        Y = gpr.X_sparse_[:, a:b].astype(np.float64)
        Y = Y / np.linalg.norm(Y, axis=1, keepdims=True)
        Xb = X[:, a:b] / np.linalg.norm(X[:, a:b], axis=1, keepdims=True)
        A = (Y.T * gpr.weights_) @ Y
        f += w * np.einsum("ni,ij,nj->n", Xb, A, Xb)
    return (f + gpr.y_mean_) * gpr.y_scale_


@pytest.mark.parametrize("n_sparse", [17, 60])  # d = 31 > M (QR route) and d < M (eigh)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compress_mean_is_the_quadratic_form_and_respects_tol(n_sparse, dtype):
    X, y, _ = make_data(240, 31, seed=3)
    X = X.astype(dtype)
    Xt, _, _ = make_data(50, 31, seed=4)
    kernel = mc.gp.MultiPolynomialKernel([12, 19], weights=[0.3, 0.7])
    gpr = mc.gp.SparseGPR(kernel=kernel, n_sparse=n_sparse, regularizer=1e-2, normalize_y=True)
    gpr.fit(X, y)
    exact, std = gpr.predict(Xt, return_std=True)
    # the exact model is the sum of quadratic forms (a NumPy reference of the identity)
    ref = _sum_of_quadratic_forms_reference(gpr, Xt, [(0, 12), (12, 31)], [0.3, 0.7])
    rounding = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(exact, ref, atol=rounding * np.abs(ref).max())
    full = gpr.compress(1e-12)  # keeps every eigenpair: exact up to rounding
    np.testing.assert_allclose(full.predict(Xt), exact, atol=rounding * np.abs(ref).max())
    tol = 0.05 * float(np.std(y))
    gpr.compress(tol)
    ranks = [V.shape[1] for V in gpr.mean_basis_]
    assert all(V.dtype == dtype for V in gpr.mean_basis_)
    assert sum(ranks) < 31  # a real truncation at this tolerance
    assert gpr.mean_error_sparse_ <= tol + 1e-12
    err_sparse = np.abs(
        gpr.predict(gpr.X_sparse_)
        - _sum_of_quadratic_forms_reference(
            gpr, gpr.X_sparse_.astype(np.float64), [(0, 12), (12, 31)], [0.3, 0.7]
        )
    )
    assert err_sparse.max() <= tol + rounding * np.abs(ref).max()
    mean_c, std_c = gpr.predict(Xt, return_std=True)
    assert np.abs(mean_c - exact).max() <= gpr.mean_error_bound_ + rounding * np.abs(ref).max()
    np.testing.assert_array_equal(std_c, std)  # the std keeps the exact kernel
    gpr.fit(X, y)  # a refit drops the compression
    assert "mean_basis_" not in gpr.__dict__


def _committee_reference(gpr, X, blocks, block_w):
    """Calibrated committee std from every member's quadratic form formed explicitly."""
    m = gpr.n_committee_sparse_
    preds = []
    for c, y0 in zip(gpr.committee_weights_, gpr.committee_y_mean_):
        f = np.zeros(len(X))
        for (a, b), w in zip(blocks, block_w):
            Y = gpr.X_sparse_[:m, a:b].astype(np.float64)
            Y = Y / np.linalg.norm(Y, axis=1, keepdims=True)
            Xb = X[:, a:b] / np.linalg.norm(X[:, a:b], axis=1, keepdims=True)
            f += w * np.einsum("ni,ij,nj->n", Xb, (Y.T * c) @ Y, Xb)
        preds.append(f + y0)
    sd = gpr.y_scale_ * np.std(np.array(preds), axis=0, ddof=1)
    return np.sqrt((gpr.alpha_ * sd) ** 2 + getattr(gpr, "beta_", 0.0) ** 2)


@pytest.mark.parametrize("n_sparse", [17, 60])  # d > M (QR route) and d < M (eigh)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compressed_committee_std_is_within_tol(n_sparse, dtype):
    X, y, _ = make_data(240, 31, seed=3)
    X = X.astype(dtype)
    Xt, _, _ = make_data(50, 31, seed=4)
    kernel = mc.gp.MultiPolynomialKernel([12, 19], weights=[0.3, 0.7])
    gpr = mc.gp.SparseGPR(
        kernel=kernel, n_sparse=n_sparse, regularizer=1e-2, normalize_y=True, n_committee=4
    ).fit(X, y)
    gpr.calibrate(Xt, make_data(50, 31, seed=4)[1])
    _exact_mean, exact_std = gpr.predict(Xt, return_std=True)
    ref = _committee_reference(gpr, Xt.astype(np.float64), [(0, 12), (12, 31)], [0.3, 0.7])
    rounding = 1e-4 if dtype == np.float32 else 1e-9
    np.testing.assert_allclose(exact_std, ref, atol=rounding * ref.max() + 1e-12)
    tol = 0.02 * float(exact_std.mean())
    gpr.compress(tol, committee=True)
    ranks = [sum(V.shape[1] for V in member) for member in gpr.committee_basis_]
    assert len(ranks) == 4 and max(ranks) <= 31  # at most the blocks' dimensions
    _mean_c, std_c = gpr.predict(Xt, return_std=True)
    # on the sparse points the std is within tol; elsewhere the error stays of that order
    sp = gpr.X_sparse_[: gpr.n_committee_sparse_]
    sp_exact = _committee_reference(gpr, sp.astype(np.float64), [(0, 12), (12, 31)], [0.3, 0.7])
    assert np.abs(gpr.predict(sp, return_std=True)[1] - sp_exact).max() <= tol * (1 + 1e-6) + (
        rounding * sp_exact.max()
    )
    assert np.abs(std_c - exact_std).max() <= 20 * tol
    gpr.compress(1e-12, committee=True)  # every eigenpair: exact up to rounding
    np.testing.assert_allclose(
        gpr.predict(Xt, return_std=True)[1], ref, atol=rounding * ref.max() + 1e-9
    )
    gpr.fit(X, y)  # a refit drops it
    assert "committee_basis_" not in gpr.__dict__
    with pytest.raises(ValueError, match="needs a committee"):
        mc.gp.SparseGPR(kernel=kernel, n_sparse=10).fit(X, y).compress(committee=True)


def test_compress_bad_input():
    X, y, _ = make_data(60, 5)
    with pytest.raises(ValueError, match="not fitted"):
        mc.gp.SparseGPR(n_sparse=10).compress()
    gpr = mc.gp.SparseGPR(n_sparse=10, regularizer=1e-2).fit(X, y)
    for tol in (0.0, -1.0, np.nan):
        with pytest.raises(ValueError, match="tol"):
            gpr.compress(tol)
    gpr3 = mc.gp.SparseGPR(kernel=mc.gp.PolynomialKernel(zeta=3), n_sparse=10).fit(X, y)
    with pytest.raises(ValueError, match="zeta = 2"):
        gpr3.compress()
    raw = mc.gp.SparseGPR(kernel=mc.gp.PolynomialKernel(normalize=False), n_sparse=10).fit(X, y)
    with pytest.raises(ValueError, match="normalised"):
        raw.compress()


def test_prepared_sparse_points_give_the_same_kernel():
    X, y, _ = make_data(400, 300, seed=5)  # large enough for the BLAS route
    Xt, _, _ = make_data(70, 300, seed=6)
    kernel = mc.gp.MultiPolynomialKernel([100, 200])
    gpr = mc.gp.SparseGPR(kernel=kernel, n_sparse=300, regularizer=1e-2).fit(X, y)
    np.testing.assert_allclose(
        gpr._sparse_kernel(Xt[::-1]), kernel(Xt[::-1], gpr.X_sparse_), rtol=1e-12, atol=1e-14
    )
    import pickle

    assert "_sparse_prepared" not in pickle.loads(pickle.dumps(gpr)).__dict__


@pytest.mark.parametrize("panel_rows", [3, 2048])
def test_large_order_path_matches_lapack(monkeypatch, panel_rows):
    # Above _LARGE_ORDER the Gram matrix is accumulated by GEMM panels and the Cholesky
    # factor is computed blockwise (OpenBLAS's 2-thread DSYRK/DPOTRF crash at order
    # >= ~16,000), its solves and updates by panels of rows. Shrink the threshold to
    # exercise that path on a small problem.
    from matchar.gp import _linalg

    rng = np.random.default_rng(3)
    K = rng.standard_normal((50, 23))
    A = K.T @ K + 0.1 * np.eye(23)
    monkeypatch.setattr(_linalg, "_LARGE_ORDER", 5)
    monkeypatch.setattr(_linalg, "_PANEL_ROWS", panel_rows)
    G = np.zeros((23, 23))
    _linalg._add_gram(G, K)
    np.testing.assert_allclose(G, K.T @ K, rtol=1e-12, atol=1e-12)
    A_in = A.copy()
    L = _linalg._cholesky(A, "A")
    np.testing.assert_array_equal(A, A_in)  # the caller's matrix is not overwritten
    np.testing.assert_allclose(L, np.linalg.cholesky(A), rtol=1e-10, atol=1e-12)
    assert np.all(np.triu(L, 1) == 0)
    with pytest.raises(np.linalg.LinAlgError, match="not positive definite"):
        _linalg._cholesky(-A, "A")

    B = A.copy()  # the in-place factorisation of a full GP
    np.testing.assert_allclose(
        _linalg._cholesky_in_place(B), np.linalg.cholesky(A), rtol=1e-10, atol=1e-12
    )

    X, y, _ = make_data(200, 8, seed=4)
    params = dict(n_sparse=30, regularizer=0.05, n_committee=3, random_state=0)
    blocked = mc.gp.SparseGPR(**params).fit(X, y)
    full_blocked = mc.gp.SparseGPR(n_sparse=200, regularizer=0.05).fit(X, y)
    monkeypatch.setattr(_linalg, "_LARGE_ORDER", 8192)
    plain = mc.gp.SparseGPR(**params).fit(X, y)
    full = mc.gp.SparseGPR(n_sparse=200, regularizer=0.05).fit(X, y)
    np.testing.assert_allclose(full_blocked.weights_, full.weights_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(blocked.weights_, plain.weights_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(
        blocked.committee_weights_, plain.committee_weights_, rtol=1e-8, atol=1e-10
    )


def test_committee_on_a_prefix_of_the_sparse_points():
    # n_sparse_committee=mc: the committee members are the DTC models on their
    # subsamples with the first mc sparse points (the same members as a model whose
    # sparse set is that prefix), while the mean uses all of them. (FPS draws no random
    # numbers, so both models draw the same committee subsamples.)
    X, y, _ = make_data(240, 8, seed=5)
    selection = "fps"
    params = dict(regularizer=0.05, n_committee=4, random_state=1)
    a = mc.gp.SparseGPR(n_sparse=60, selection=selection, n_sparse_committee=15, **params)
    a.fit(X, y)
    assert a.committee_weights_.shape == (4, 15) and a.weights_.shape == (60,)
    full = mc.gp.SparseGPR(n_sparse=60, selection=selection, **params).fit(X, y)
    np.testing.assert_array_equal(a.sparse_indices_, full.sparse_indices_)
    np.testing.assert_allclose(a.weights_, full.weights_, rtol=1e-10, atol=1e-12)
    prefix = mc.gp.SparseGPR(selection=a.sparse_indices_[:15], **params).fit(X, y)
    # Same systems A w = b, but K_NM's prefix columns come out of GEMMs of other widths
    # (rounding differs at eps): normwise, |dw|/|w| <= kappa(A) |dA|/|A| (elementwise
    # comparisons fail on the small weights). kappa of the full-data A bounds the
    # committee subsamples' up to a small factor.
    Xm = X[a.sparse_indices_[:15]]
    Knm = mc.gp.polynomial_kernel(X, Xm)
    A = 0.05**2 * mc.gp.polynomial_kernel(Xm, Xm) + Knm.T @ Knm
    tol = 100 * np.linalg.cond(A) * np.finfo(np.float64).eps
    dw = np.linalg.norm(a.committee_weights_ - prefix.committee_weights_, axis=1)
    assert np.all(dw <= tol * np.linalg.norm(prefix.committee_weights_, axis=1))
    Xt, _, _ = make_data(30, 8, seed=6)
    _, std_a = a.predict(Xt, return_std=True)
    _, std_p = prefix.predict(Xt, return_std=True)
    np.testing.assert_allclose(std_a, std_p, rtol=1e-8)
    # a greedy FPS's prefix is the FPS of that many points
    np.testing.assert_array_equal(
        a.sparse_indices_[:15], mc.gp.farthest_point_sampling(X, 15, start=0)
    )


def test_every_row_sparse_is_the_full_gp_with_a_committee():
    # n_sparse = n: the mean is the dense GP's (solved as K + σ² I); the FPS order is only
    # computed for the committee's prefix, and the committee matches the prefix model.
    X, y, _ = make_data(150, 6, seed=7)
    Xt, _, _ = make_data(20, 6, seed=8)
    sigma = 0.05
    params = dict(regularizer=sigma, n_committee=3, random_state=2)
    g = mc.gp.SparseGPR(n_sparse=150, n_sparse_committee=25, **params).fit(X, y)
    np.testing.assert_array_equal(
        g.sparse_indices_[:25], mc.gp.farthest_point_sampling(X, 25, start=0)
    )
    assert sorted(g.sparse_indices_) == list(range(150))
    ym = y.mean()
    mean_ref = kernel_ref(Xt, X) @ np.linalg.solve(
        kernel_ref(X, X) + sigma**2 * np.eye(150), y - ym
    )
    np.testing.assert_allclose(g.predict(Xt), mean_ref + ym, rtol=1e-7, atol=1e-8)
    prefix = mc.gp.SparseGPR(selection=g.sparse_indices_[:25], **params).fit(X, y)
    # (K_NM here comes from K_MM's rows: the same kernel values to rounding, and the
    # members' weights are ill-conditioned, so their predictions are compared)
    np.testing.assert_allclose(
        g._committee_predictions(Xt), prefix._committee_predictions(Xt), rtol=1e-6, atol=1e-8
    )
    with pytest.raises(ValueError, match="n_sparse_committee"):
        mc.gp.SparseGPR(n_sparse=20, n_sparse_committee=0).fit(X, y)


def test_calibrate_errors_equals_calibrate():
    X = np.random.default_rng(0).random((200, 6)) + 0.1
    y = np.sin(3 * X[:, 0]) + X[:, 1]
    g = mc.gp.SparseGPR(n_sparse=30, regularizer=0.05, n_committee=4, random_state=0)
    g.fit(X[:150], y[:150])
    for method in ("musil", "ml", "affine", "coverage", "band"):
        a = (g.calibrate(X[150:], y[150:], method).alpha_, g.beta_)
        g.alpha_, g.beta_ = 1.0, 0.0
        mean, std = g.predict(X[150:], return_std=True)
        g.calibrate_errors(mean - y[150:], std, method)
        assert (g.alpha_, g.beta_) == a
    with pytest.raises(ValueError, match="same length"):
        g.calibrate_errors(np.zeros(3), np.ones(4))
    with pytest.raises(ValueError, match="finite"):
        g.calibrate_errors(np.array([np.nan]), np.ones(1))
    with pytest.raises(ValueError, match="method"):
        g.calibrate_errors(np.zeros(3), np.ones(3), "bogus")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_full_gp_without_committee_factorises_in_the_sparse_order(dtype, monkeypatch):
    # n_sparse = n, FPS, no committee: the GP variance uses the factor of K + σ² I in
    # the sparse (FPS) order; K is filled by several row panels (odd sizes).
    from matchar.gp import _linalg

    monkeypatch.setattr(_linalg, "_PANEL_BYTES", 8 * 97 * 23)  # 23-row panels
    X, y, _ = make_data(97, 5, seed=11)
    Xt, _, _ = make_data(13, 5, seed=12)
    sigma = 0.1
    g = mc.gp.SparseGPR(n_sparse=97, regularizer=sigma).fit(X.astype(dtype), y)
    np.testing.assert_array_equal(g.sparse_indices_, mc.gp.farthest_point_sampling(X, 97))
    mean, std = g.predict(Xt.astype(dtype), return_std=True)
    C = kernel_ref(X, X) + sigma**2 * np.eye(97)
    Ks = kernel_ref(Xt, X)
    mean_ref = Ks @ np.linalg.solve(C, y - y.mean()) + y.mean()
    var_ref = 1.0 - np.einsum("ij,ji->i", Ks, np.linalg.solve(C, Ks.T)) + sigma**2
    tol = 1e-4 if dtype == np.float32 else 1e-7
    np.testing.assert_allclose(mean, mean_ref, rtol=tol, atol=tol)
    np.testing.assert_allclose(std, np.sqrt(var_ref), rtol=10 * tol, atol=10 * tol)


def test_full_kernel_by_panels_is_the_symmetric_kernel(monkeypatch):
    from matchar.gp import _linalg

    X, _, _ = make_data(61, 7, seed=13)
    k = mc.gp.MultiPolynomialKernel([3, 4], weights=[0.3, 0.7])
    for rows in (1, 7, 61):
        monkeypatch.setattr(_linalg, "_PANEL_BYTES", 8 * 61 * rows)
        K = _linalg._full_kernel(k, X[::1])
        ref = 0.3 * kernel_ref(X[:, :3], X[:, :3]) + 0.7 * kernel_ref(X[:, 3:], X[:, 3:])
        np.testing.assert_array_equal(K, K.T)
        np.testing.assert_allclose(K, ref, rtol=1e-12, atol=1e-12)


def test_full_gp_recomputes_the_kernel_when_the_in_place_factorisation_fails(monkeypatch):
    # The in-place Cholesky overwrites K; if it fails, K is computed again and factorised
    # with jitter, and the fit equals the normal one.
    from matchar.gp import _sparse

    X, y, _ = make_data(60, 5, seed=14)
    params = dict(
        n_sparse=60, regularizer=0.05, n_committee=2, n_sparse_committee=10, random_state=0
    )
    normal = mc.gp.SparseGPR(**params).fit(X, y)

    def fail(B):
        B[:] = np.nan
        raise np.linalg.LinAlgError("not positive definite")

    monkeypatch.setattr(_sparse, "_cholesky_in_place", fail)
    fallback = mc.gp.SparseGPR(**params).fit(X, y)
    np.testing.assert_allclose(fallback.weights_, normal.weights_, rtol=1e-9, atol=1e-12)
    # (the members' weights are ill-conditioned: their predictions are compared)
    Xt, _, _ = make_data(20, 5, seed=15)
    np.testing.assert_allclose(
        fallback._committee_predictions(Xt), normal._committee_predictions(Xt), rtol=1e-6, atol=1e-8
    )


def test_full_gp_from_explicit_indices_of_every_row():
    # selection = a permutation of every row: the full GP, with the committee on the
    # first indices given.
    X, y, _ = make_data(70, 5, seed=16)
    Xt, _, _ = make_data(9, 5, seed=17)
    order = np.random.default_rng(0).permutation(70)
    params = dict(regularizer=0.05, n_committee=2, n_sparse_committee=10, random_state=0)
    g = mc.gp.SparseGPR(selection=order, **params).fit(X, y)
    np.testing.assert_array_equal(g.sparse_indices_, order)
    C = kernel_ref(X, X) + 0.05**2 * np.eye(70)
    ref = kernel_ref(Xt, X) @ np.linalg.solve(C, y - y.mean()) + y.mean()
    np.testing.assert_allclose(g.predict(Xt), ref, rtol=1e-7, atol=1e-8)
    prefix = mc.gp.SparseGPR(selection=order[:10], **params).fit(X, y)
    np.testing.assert_allclose(
        g._committee_predictions(Xt), prefix._committee_predictions(Xt), rtol=1e-6, atol=1e-8
    )
