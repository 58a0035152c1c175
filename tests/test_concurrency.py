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
    s = _core.spectral.StreamingPCA(64, 3)

    def feed(data):
        def call():
            for i in range(0, 400, 50):
                s.partial_fit(data[i : i + 50])

        return call

    run_in_threads(feed(A), feed(B))
    assert s.n_samples_seen == 800
    comps = s.components()
    np.testing.assert_allclose(comps @ comps.T, np.eye(3), atol=1e-10)


def _run_child(code: str, timeout: float = 120.0) -> str:
    """Run code in a fresh interpreter (a deadlock fails the test instead of hanging it)."""
    import os
    import subprocess
    import sys
    import textwrap

    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=os.environ,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_shared_nmf_partial_fit_from_two_threads():
    # partial_fit holds the stream's mutex and polls Ctrl-C (which takes the GIL); reading
    # the components took the mutex while holding the GIL: two threads deadlocked.
    out = _run_child(
        """
        import threading
        import numpy as np
        import matchar as mc

        rng = np.random.default_rng(0)
        blocks = [rng.poisson(rng.random((1000, 2)) @ (rng.random((2, 256)) * 5)) for _ in range(4)]
        nmf = mc.spectral.NMF(2, batch_iter=50, random_state=0)

        def feed(k):
            for b in blocks[k::2]:
                nmf.partial_fit(b)

        threads = [threading.Thread(target=feed, args=(k,)) for k in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        print(nmf.n_samples_seen_, nmf.components_.shape)
        """
    )
    assert out.split() == ["4000", "(2,", "256)"]


@pytest.mark.parametrize("estimator", ["NMF", "PCA"])
def test_first_partial_fit_from_four_threads_loses_no_update(estimator):
    # Without a per-instance lock each thread created its own stream on a fresh estimator
    # and all but one were lost (1850 of 2000 samples seen).
    out = _run_child(
        f"""
        import threading
        import numpy as np
        import matchar as mc

        rng = np.random.default_rng(0)
        blocks = [rng.poisson(rng.random((500, 2)) @ (rng.random((2, 64)) * 5)) for _ in range(4)]
        est = mc.spectral.{estimator}(2, random_state=0)
        barrier = threading.Barrier(4)

        def feed(k):
            barrier.wait()
            est.partial_fit(blocks[k])

        threads = [threading.Thread(target=feed, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        print(est.n_samples_seen_)
        """
    )
    assert out.strip() == "2000"


def test_estimators_with_their_lock_still_pickle():
    import pickle

    rng = np.random.default_rng(1)
    X = rng.poisson(5.0, (60, 16))
    for est in (mc.spectral.NMF(2, random_state=0), mc.spectral.PCA(2, random_state=0)):
        est.fit(X)
        clone = pickle.loads(pickle.dumps(est))
        np.testing.assert_array_equal(clone.components_, est.components_)
        clone.fit(X)  # and the copy gets a lock of its own


def test_every_estimator_shared_between_threads_takes_turns():
    # fit/predict/compute on one shared instance are serialized per instance: two threads
    # fitting and predicting at once leave it exactly as one thread would.
    import ase.build

    rng = np.random.default_rng(2)
    X, y = rng.random((120, 6)) + 0.05, rng.random(120)
    gpr = mc.gp.SparseGPR(n_sparse=30, regularizer=0.1)
    run_in_threads(lambda: gpr.fit(X, y), lambda: gpr.fit(X, y))
    serial = mc.gp.SparseGPR(n_sparse=30, regularizer=0.1).fit(X, y)
    got = run_in_threads(lambda: gpr.predict(X[:20]), lambda: gpr.predict(X[20:40]))
    np.testing.assert_array_equal(np.concatenate(got), serial.predict(X[:40]))

    soap = mc.atoms.SOAP(cutoff=4.0, max_radial=4, max_angular=3, species=["Na", "Cl"])
    a = ase.build.bulk("NaCl", "rocksalt", a=5.64, cubic=True)
    b = a.copy()
    b.rattle(0.05, seed=1)
    got = run_in_threads(lambda: soap.compute([a]), lambda: soap.compute([b]))
    np.testing.assert_array_equal(got[0], soap.compute([a]))
    np.testing.assert_array_equal(got[1], soap.compute([b]))

    model = mc.spectral.EDXModel(["Cu", "Zn"], (0.2, 0.02, 300))
    counts = rng.poisson(model.G @ [50, 50, 20, 20] + 1.0, (8, 8, 300))
    est = mc.spectral.PhysicsNMF(model, 2, max_iter=20, random_state=0)
    run_in_threads(lambda: est.fit(counts), lambda: est.fit(counts))
    ref = mc.spectral.PhysicsNMF(model, 2, max_iter=20, random_state=0).fit(counts)
    np.testing.assert_array_equal(est.components_, ref.components_)
