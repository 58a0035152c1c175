"""Threads, Ctrl-C, fork safety and the import contract."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import matchar as mc


def test_version_and_threads():
    assert isinstance(mc.__version__, str) and mc.__version__.count(".") >= 2
    assert mc.get_num_threads() >= 1


def test_set_num_threads_reaches_the_kernels():
    before = mc.get_num_threads()
    try:
        mc.set_num_threads(1)
        assert mc.get_num_threads() == 1
        assert mc._core.parallel_team_size() == 1
        mc.set_num_threads(2)
        assert mc._core.parallel_team_size() == 2
    finally:
        mc.set_num_threads(before)


@pytest.mark.parametrize("bad", [0, -3])
def test_set_num_threads_rejects_bad_values(bad):
    with pytest.raises(ValueError, match="n must be >= 1"):
        mc.set_num_threads(bad)


def test_set_num_threads_rejects_non_integers():
    with pytest.raises(TypeError):
        mc.set_num_threads(1.5)


def test_threadpoolctl_limits_the_kernels():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    before = mc.get_num_threads()
    mc.set_num_threads(2)
    try:
        with threadpoolctl.threadpool_limits(1):
            assert mc.get_num_threads() == 1
            assert mc._core.parallel_team_size() == 1
            mc.gp.polynomial_kernel(np.ones((3, 2)), np.ones((2, 2)))
        assert mc.get_num_threads() == 2
    finally:
        mc.set_num_threads(before)


def test_omp_num_threads_is_honoured():
    code = "import matchar; print(matchar.get_num_threads(), matchar._core.parallel_team_size())"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["1", "1"]


def _kernel_in_child(seed: int) -> float:
    import numpy as np

    import matchar as mc

    X = np.random.default_rng(seed).random((64, 16))
    return float(mc.gp.polynomial_kernel(X, X).sum())


def test_spawned_children_after_a_parallel_region():
    # libgomp can hang a *forked* child after a parallel region; spawn is safe.
    X = np.random.default_rng(0).random((512, 64))
    mc.gp.polynomial_kernel(X, X)  # a parallel region in the parent first
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        sums = pool.map(_kernel_in_child, [0, 1])
    assert sums == pytest.approx([_kernel_in_child(0), _kernel_in_child(1)], rel=1e-12)


def test_ctrl_c_interrupts_a_long_kernel(ctrl_c):
    # About a minute of work (broadcast inputs cost no memory); SIGINT must end it early.
    ctrl_c(
        """
        import numpy as np, matchar as mc
        X = np.broadcast_to(np.ones((1, 8000), dtype=np.float32), (12000, 8000))
        """,
        "mc.gp.polynomial_kernel(X, X)",
    )


@pytest.mark.parametrize("threads", ["1", "2"])
@pytest.mark.parametrize("delay", [0.3, 1.0])
def test_exit_while_a_daemon_thread_runs_a_kernel(delay, threads):
    """A program that exits while a daemon thread is inside a kernel exits normally. Python
    3.11-3.13 end a thread that takes the GIL back during finalization with pthread_exit,
    whose unwind used to abort the whole process through the kernels' noexcept frames
    ("terminate called without an active exception" or "FATAL: exception not rethrown",
    every time)."""
    code = textwrap.dedent(
        f"""
        import threading, time
        import numpy as np
        import matchar as mc
        X = np.random.default_rng(0).poisson(5.0, (20000, 512)).astype(np.uint16)
        fit = lambda: mc.spectral.NMF(4, init="random", max_iter=10**6, tol=0).fit(X)
        threading.Thread(target=fit, daemon=True).start()
        time.sleep({delay})
        print("exiting", flush=True)
        """
    )
    env = dict(os.environ, OMP_NUM_THREADS=threads)
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "exiting"
    assert "terminate called" not in r.stderr and "FATAL" not in r.stderr


def test_missing_core_message_is_helpful():
    code = textwrap.dedent(
        """
        import sys, importlib.abc
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == "matchar._core":
                    raise ImportError("simulated missing extension")
        sys.meta_path.insert(0, Block())
        try:
            import matchar
        except ImportError as err:
            print(err)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "compiled core" in out.stdout and "pip install" in out.stdout


def test_build_info_reports_the_cpu_target():
    info = mc._core.build_info()
    assert set(info) >= {"avx2", "fma", "avx512f", "openmp"}
    assert info["openmp"] >= 201107


def test_as_array_copies_contiguous_but_misaligned_input():
    """A C-contiguous float64 array at an odd byte offset (as unpickled from a message
    buffer) must reach the kernels as an aligned copy with the same values."""
    from matchar._arrays import as_array

    raw = np.zeros(8 * 12 + 1, dtype=np.uint8)
    mis = np.frombuffer(raw.data, dtype=np.float64, count=12, offset=1).reshape(3, 4)
    assert mis.flags.c_contiguous and not mis.flags.aligned
    for dtype in (None, np.float64):
        out = as_array(mis, "X", ndim=2, dtype=dtype)
        assert out.flags.aligned and out.flags.c_contiguous
        np.testing.assert_array_equal(out, mis)
    K = mc.gp.polynomial_kernel(mis + 0, mis)  # through the kernel entry point
    assert K.shape == (3, 3)


@pytest.mark.parametrize("n", [10**6, 2**31, 2**63])
def test_set_num_threads_refuses_more_threads_than_the_machine_can_start(n):
    # 600 threads under a 4 GB address-space limit made libgomp fail and end the process;
    # a million crashed it.
    limit = mc._core.max_num_threads()
    assert limit == 4 * os.cpu_count() or limit >= 4
    with pytest.raises(ValueError, match=f"n must be <= {limit}"):
        mc.set_num_threads(n)
    with pytest.raises(ValueError, match="4 per processor"):
        mc._core.set_num_threads(min(n, 2**31 - 1))


@pytest.mark.skipif(
    "libasan" in os.environ.get("LD_PRELOAD", ""),
    reason="AddressSanitizer's shadow memory needs more address space than any limit allows",
)
def test_allocation_check_respects_the_address_space_limit():
    # A 3 GB request under a 2 GB `ulimit -v` is a MemoryError before allocating, in the
    # kernels' own check (it used to compare with the physical memory only).
    code = textwrap.dedent(
        """
        import resource
        import matchar as mc
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
        try:
            mc._core.check_allocation(3 << 30, 1, "test buffer")
        except MemoryError as err:
            print("MemoryError:", err)
        mc._core.check_allocation(1 << 20, 1, "small buffer")  # still fine
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=os.environ
    )
    assert proc.returncode == 0, proc.stderr
    assert "MemoryError: test buffer would need" in proc.stdout
    assert "address-space limit" in proc.stdout


def _spin_setting(extra_env: dict[str, str]) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(extra_env)
    code = "import os, matchar; print(os.environ.get('GOMP_SPINCOUNT', '-'))"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def test_short_openmp_spin_unless_the_user_chose():
    # matchar shortens libgomp's spin before sleeping at barriers (threads under load),
    # but leaves a user's own wait policy or spin count alone
    assert _spin_setting({}) == "10000"
    assert _spin_setting({"OMP_WAIT_POLICY": "active"}) == "-"
    assert _spin_setting({"GOMP_SPINCOUNT": "123"}) == "123"
