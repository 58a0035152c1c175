"""The register-blocked NMF passes at every instruction-set level compiled in (runtime
dispatch: baseline / avx2 / avx512 on x86-64, generic elsewhere) against the NumPy
references, and the MATCHAR_CPU_LEVEL environment variable."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from spectral_reference import reference_deviance, reference_hals_step, reference_kl_step

from matchar import _core

INFO = _core.build_info()
LEVELS = INFO["cpu_levels"]
SUPPORTED = INFO["cpu_levels_supported"]
TOL = {np.float32: dict(rtol=2e-4, atol=1e-6), np.float64: dict(rtol=1e-10, atol=1e-12)}
HALS_TOL = {np.float32: dict(rtol=2e-3, atol=2e-4), np.float64: TOL[np.float64]}


@pytest.fixture(params=LEVELS)
def level(request):
    if request.param not in SUPPORTED:
        pytest.skip(f"this CPU cannot run {request.param}")
    _core._set_cpu_level(request.param)
    yield request.param
    _core._set_cpu_level("")


def problem(seed, N, C, K, rate=3.0):
    rng = np.random.default_rng(seed)
    W = rng.random((N, K)) + 0.05
    H = rng.random((K, C)) + 0.05
    X = rng.poisson(rate * (rng.random((N, K)) @ rng.random((K, C))))
    return X, W, H


# C not a multiple of any vector width (4..16 lanes), N not a multiple of the group rows;
# K = 1..8 run the blocked kernels, K = 11 the general row path.
KS = [1, 2, 3, 4, 5, 6, 7, 8, 11]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("K", KS)
def test_kl_at_level(level, dtype, K):
    X, W, H = problem(K, 67, 37, K)
    W, H = W.astype(dtype), H.astype(dtype)
    assert _core.build_info()["cpu_level"] == level
    loss, Wn, Hn = _core.spectral.nmf_update("kl", X.astype(np.uint16), W, H)
    ref_loss, Wr, Hr = reference_kl_step(X, W, H)
    np.testing.assert_allclose(Wn, Wr, **TOL[dtype])
    np.testing.assert_allclose(Hn, Hr, **TOL[dtype])
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-5 if dtype == np.float32 else 1e-11)
    # masks, W only
    rng = np.random.default_rng(K + 100)
    pm, cm = rng.random(67) > 0.2, rng.random(37) > 0.3
    loss, Wn, Hn = _core.spectral.nmf_update(
        "kl", X.astype(dtype), W, H, pm.astype(np.uint8), cm.astype(np.uint8)
    )
    ref_loss, Wr, Hr = reference_kl_step(X, W, H, pm, cm)
    np.testing.assert_allclose(Wn, Wr, **TOL[dtype])
    np.testing.assert_allclose(Hn, Hr, **TOL[dtype])
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-5 if dtype == np.float32 else 1e-11)
    _, Wn, Hn = _core.spectral.nmf_update("kl", X.astype(dtype), W, H, update_H=False)
    assert Hn is None
    np.testing.assert_allclose(Wn, reference_kl_step(X, W, H, update_H=False)[1], **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("K", KS)
def test_kl_non_contiguous_at_level(level, dtype, K):
    X, W, H = problem(K + 50, 2 * 41, 3 * 29, K)
    Xs = X.astype(dtype)[::2, ::3]  # strided view, 29 channels
    Wf = np.asfortranarray(W[::2].astype(dtype))
    Ht = np.ascontiguousarray(H[:, ::3].T.astype(dtype)).T
    _, Wn, Hn = _core.spectral.nmf_update("kl", Xs, Wf, Ht)
    _, Wr, Hr = reference_kl_step(Xs, Wf, Ht)
    np.testing.assert_allclose(Wn, Wr, **TOL[dtype])
    np.testing.assert_allclose(Hn, Hr, **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("K", KS)
def test_poisson_deviance_at_level(level, dtype, K):
    X, W, H = problem(K + 300, 2 * 59, 3 * 43, K)
    W, H = W.astype(dtype), H.astype(dtype)
    Xs = X.astype(np.uint16)[::2, ::3]  # strided view: 59 pixels, 43 channels
    Wc, Hc = W[::2], H[:, ::3]
    rng = np.random.default_rng(K)
    cm = rng.random(43) > 0.3
    for mask in (None, cm):
        got = _core.spectral.poisson_deviance(
            Xs, Wc, Hc, None, None if mask is None else mask.astype(np.uint8)
        )
        keep = np.ones(43, dtype=bool) if mask is None else mask
        ref = reference_deviance(Xs[:, keep], Wc, Hc[:, keep])
        # the sum of |terms| bounds the rounding: float32 lanes (eps 6e-8, a log to 1e-6)
        # or float64 (a log to 1e-13), over 43 channels
        scale = 2 * np.sum(Xs[:, keep] * (1 + np.abs(np.log1p(Xs[:, keep]))), axis=1) + 1
        rel = 1e-5 if dtype == np.float32 else 1e-11
        np.testing.assert_allclose(got, ref, rtol=rel, atol=0)
        assert np.all(np.abs(got - ref) <= rel * scale)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("L", [1, 2, 3, 4, 5, 7, 13, 64, 65])
def test_weighted_gram_at_level(level, dtype, L):
    # L = 1..64 run the blocked pass (chunks of 4 columns and a remainder of 1..3),
    # L = 65 Eigen's GEMM; odd N and C, strided X and V, weights and an offset
    rng = np.random.default_rng(L)
    X = rng.poisson(3.0, size=(2 * 71, 3 * 45)).astype(np.uint16)[::2, ::3]
    V = rng.standard_normal((45, 2 * L)).astype(dtype)[:, ::2]
    r, c = rng.random(71) + 0.5, rng.random(45) + 0.5
    offset = rng.standard_normal(L)
    Xw = X.astype(np.float64) * r[:, None] * c[None, :]
    for off in (None, offset):
        Y = Xw @ V.astype(np.float64) - (0.0 if off is None else off)
        Z, s = _core.spectral.weighted_gram_apply(X, r, c, V, off)
        # float32: products rounded in float32 and summed over 45 channels, then 71 rows
        scale = np.abs(Xw).T @ np.abs(Y) + np.abs(Xw).T @ (np.abs(Xw) @ np.abs(V))
        tol = 1e-5 if dtype == np.float32 else 1e-12
        assert np.all(np.abs(Z - Xw.T @ Y) <= tol * scale + 1e-300)
        np.testing.assert_allclose(
            s, Y.sum(0), rtol=0, atol=tol * float(np.abs(Xw).sum() * np.abs(V).max() + 1)
        )
        np.testing.assert_allclose(
            Z, Xw.T @ Y, rtol=2e-3 if dtype == np.float32 else 1e-10, atol=tol * scale.max()
        )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("K", KS)
def test_hals_at_level(level, dtype, K):
    X, W, H = problem(K + 200, 53, 45, K)
    W, H = W.astype(dtype), H.astype(dtype)
    for sweeps in (1, 3):
        ref_loss, Wr, Hr = reference_hals_step(X, W, H, sweeps=sweeps)
        Xs = X.astype(dtype)[:, ::-1][:, ::-1]  # negative strides
        loss, Wn, Hn = _core.spectral.nmf_update("frobenius", Xs, W, H, sweeps=sweeps)
        np.testing.assert_allclose(Wn, Wr, **HALS_TOL[dtype])
        np.testing.assert_allclose(Hn, Hr, **HALS_TOL[dtype])
        np.testing.assert_allclose(
            loss, ref_loss, rtol=1e-3 if dtype == np.float32 else 1e-8, atol=1e-6
        )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("K", KS)
def test_passes_read_rows_in_place_at_level(level, dtype, K):
    # X of the factor type with unit channel stride and C a whole number of vectors at
    # every level (48 channels: 3 AVX-512 float vectors) is read in place, not packed:
    # contiguous rows and rows with a stride (every other pixel of a wider array); 61
    # pixels, so the last group is partial and packed; with and without masks
    X, W, H = problem(K + 400, 2 * 61, 64, K)
    W, H = W[:61].astype(dtype), H[:, :48].astype(dtype)
    wide = X.astype(dtype)
    rng = np.random.default_rng(K + 500)
    pm, cm = rng.random(61) > 0.2, rng.random(48) > 0.3
    for Xv in (np.ascontiguousarray(wide[:61, :48]), wide[::2, :48]):
        assert Xv.shape == (61, 48)
        for masks in ((), (pm.astype(np.uint8), cm.astype(np.uint8))):
            kw = dict(zip(("pixel_mask", "channel_mask"), (pm, cm))) if masks else {}
            loss, Wn, Hn = _core.spectral.nmf_update("kl", Xv, W, H, *masks)
            ref_loss, Wr, Hr = reference_kl_step(Xv, W, H, *kw.values())
            np.testing.assert_allclose(Wn, Wr, **TOL[dtype])
            np.testing.assert_allclose(Hn, Hr, **TOL[dtype])
            np.testing.assert_allclose(loss, ref_loss, rtol=1e-5 if dtype == np.float32 else 1e-11)
        ref_loss, Wr, Hr = reference_hals_step(Xv, W, H, sweeps=2)
        loss, Wn, Hn = _core.spectral.nmf_update("frobenius", Xv, W, H, sweeps=2)
        np.testing.assert_allclose(Wn, Wr, **HALS_TOL[dtype])
        np.testing.assert_allclose(Hn, Hr, **HALS_TOL[dtype])
        np.testing.assert_allclose(
            loss, ref_loss, rtol=1e-3 if dtype == np.float32 else 1e-8, atol=1e-6
        )
    np.testing.assert_array_equal(wide, X.astype(dtype))  # input untouched


@pytest.mark.parametrize("counts", [np.uint8, np.uint16, np.uint32])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("K", [1, 4, 7])
def test_integer_rows_converted_at_level(level, counts, dtype, K):
    # unsigned integer counts with unit channel stride are converted by the level's own
    # code: contiguous, every other pixel, and a channel slice (a row stride wider than
    # C); 45 channels (padded), 59 pixels (a partial last group); KL, HALS, deviance
    X, W, H = problem(K + 600, 2 * 59, 50, K)
    W, H = W[:59].astype(dtype), H[:, :45].astype(dtype)
    wide = X.astype(counts)
    for Xv in (np.ascontiguousarray(wide[:59, :45]), wide[::2, :45], wide[1::2, 5:]):
        assert Xv.shape == (59, 45)
        loss, Wn, Hn = _core.spectral.nmf_update("kl", Xv, W, H)
        ref_loss, Wr, Hr = reference_kl_step(Xv, W, H)
        np.testing.assert_allclose(Wn, Wr, **TOL[dtype])
        np.testing.assert_allclose(Hn, Hr, **TOL[dtype])
        np.testing.assert_allclose(loss, ref_loss, rtol=1e-5 if dtype == np.float32 else 1e-11)
        ref_loss, Wr, Hr = reference_hals_step(Xv, W, H, sweeps=1)
        loss, Wn, Hn = _core.spectral.nmf_update("frobenius", Xv, W, H)
        np.testing.assert_allclose(Wn, Wr, **HALS_TOL[dtype])
        np.testing.assert_allclose(Hn, Hr, **HALS_TOL[dtype])
        got = _core.spectral.poisson_deviance(Xv, W, H, None, None)
        np.testing.assert_allclose(
            got, reference_deviance(Xv, W, H), rtol=1e-5 if dtype == np.float32 else 1e-11
        )


def test_levels_agree():
    """Every level gives the same update up to the summation order of its width."""
    X, W, H = problem(7, 301, 1027, 4, rate=50.0)
    W, H = W.astype(np.float32), H.astype(np.float32)
    results = {}
    for lv in SUPPORTED:
        _core._set_cpu_level(lv)
        try:
            results[lv] = _core.spectral.nmf_update("kl", X.astype(np.float32), W, H)
        finally:
            _core._set_cpu_level("")
    first = results[SUPPORTED[0]]
    for loss, Wn, Hn in results.values():
        np.testing.assert_allclose(loss, first[0], rtol=1e-6)
        np.testing.assert_allclose(Wn, first[1], rtol=1e-5)
        np.testing.assert_allclose(Hn, first[2], rtol=1e-5)


def test_set_cpu_level_rejects_unknown_names():
    with pytest.raises(ValueError, match="not a level of this build"):
        _core._set_cpu_level("sse9")
    assert _core.build_info()["cpu_level"] in SUPPORTED


def run_with_level(value):
    env = dict(os.environ, MATCHAR_CPU_LEVEL=value)
    code = (
        "import numpy as np\n"
        "from matchar import _core\n"
        "X = np.ones((5, 7), np.float32); W = np.ones((5, 2), np.float32)\n"
        "H = np.ones((2, 7), np.float32)\n"
        "_core.spectral.nmf_update('kl', X, W, H)\n"
        "print(_core.build_info()['cpu_level'])\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )


def test_environment_variable_forces_the_level():
    for lv in SUPPORTED:
        out = run_with_level(lv)
        assert out.returncode == 0, out.stderr
        assert out.stdout.split()[-1] == lv
    out = run_with_level("sse9")
    assert out.returncode != 0
    assert "MATCHAR_CPU_LEVEL=sse9: not a level of this build" in out.stderr
    missing = [lv for lv in LEVELS if lv not in SUPPORTED]
    if missing:
        out = run_with_level(missing[0])
        assert out.returncode != 0
        assert "this CPU cannot run that level" in out.stderr
