"""Two Python threads calling kernels at once, and per-call thread limits."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import matchar as mc
from matchar import _core


def run_in_threads(*fns):
    """Start fns in threads released by one barrier; return their results (or raise)."""
    barrier = threading.Barrier(len(fns))
    results: list = [None] * len(fns)
    errors: list = []

    def wrap(i, fn):
        try:
            barrier.wait()
            results[i] = fn()
        except BaseException as err:  # re-raised in the main thread
            errors.append(err)

    threads = [threading.Thread(target=wrap, args=(i, f)) for i, f in enumerate(fns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def cubes():
    rng = np.random.default_rng(0)
    maps = rng.random((400, 3))
    return [rng.poisson(maps @ (rng.random((3, 64)) * s)).astype(np.uint16) for s in (20, 40)]


def test_two_threads_run_kernels_at_once_with_serial_results():
    A, B = cubes()
    X = np.random.default_rng(1).random((150, 20))

    def nmf(data):
        return mc.spectral.NMF(3, random_state=0, max_iter=30, tol=0).fit(data).components_

    def pca(data):
        return mc.spectral.PCA(3, random_state=0).fit(data).components_

    def gp():
        return mc.gp.polynomial_kernel(X, X, zeta=2)

    # Each call gets the same thread count in both runs, so results are bitwise equal.
    with mc.threads(1):
        serial = [nmf(A), nmf(B), pca(A), gp()]

    def limited(fn, *args):
        def call():
            with mc.threads(1):
                return fn(*args)

        return call

    for _ in range(2):
        got = run_in_threads(limited(nmf, A), limited(nmf, B), limited(pca, A), limited(gp))
        for g, s in zip(got, serial):
            np.testing.assert_array_equal(g, s)
    # Unlimited: every call's OpenMP team has the default size, oversubscribed or not.
    serial = [nmf(A), nmf(B), pca(A), gp()]
    got = run_in_threads(lambda: nmf(A), lambda: nmf(B), lambda: pca(A), gp)
    for g, s in zip(got, serial):
        np.testing.assert_array_equal(g, s)


def test_threads_limit_is_per_call_and_per_thread():
    if mc.get_num_threads() < 2:
        pytest.skip("needs OMP_NUM_THREADS >= 2")
    outer = mc.get_num_threads()
    seen: dict[str, tuple[int, int]] = {}
    inside = threading.Event()
    checked = threading.Event()

    def limited():
        with mc.threads(1) as previous:
            seen["limited"] = (_core.parallel_team_size(), previous)
            inside.set()
            checked.wait(30)
        seen["after"] = (_core.parallel_team_size(), mc.get_num_threads())

    def free():
        inside.wait(30)
        seen["free"] = (_core.parallel_team_size(), mc.get_num_threads())
        checked.set()

    run_in_threads(limited, free)
    assert seen["limited"] == (1, outer)
    assert seen["free"] == (outer, outer)  # the other thread is not limited
    assert seen["after"] == (outer, outer)  # restored on exit
    with pytest.raises(ValueError, match=">= 1"):
        with mc.threads(0):
            pass
    with pytest.raises(TypeError):
        with mc.threads(1.5):
            pass
    with pytest.raises(RuntimeError), mc.threads(1):  # restored after an exception too
        raise RuntimeError
    assert mc.get_num_threads() == outer


def test_one_stream_shared_by_two_threads():
    A, B = cubes()
    s = _core.spectral.StreamingPCA_float64(64, 3)

    def feed(data):
        def call():
            for i in range(0, 400, 50):
                s.partial_fit(data[i : i + 50])

        return call

    run_in_threads(feed(A), feed(B))
    assert s.n_samples_seen == 800
    comps = s.components()
    np.testing.assert_allclose(comps @ comps.T, np.eye(3), atol=1e-10)
