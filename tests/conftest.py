"""Shared test fixtures: where the shared data lives, and spawn-only multiprocessing."""

from __future__ import annotations

import importlib.util
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

# libgomp hangs a child forked after an OpenMP parallel region: tests that need
# processes use the "spawn" start method (see docs/developing.md, Forking).
multiprocessing.set_start_method("spawn", force=True)

# A test run started in the background (``cmd &`` in a script, nohup) inherits SIGINT
# ignored, and Python then installs no KeyboardInterrupt handler: the Ctrl-C tests that
# interrupt the main thread would wait for a signal that never arrives. Ctrl-C is what
# they test, so the suite takes Python's default handler back.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

SHARED_DATA = Path(
    os.environ.get(
        "MATCHAR_SHARED_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
    )
).resolve()


@pytest.fixture(scope="session")
def repo_script():
    """Import a script from the repository's ``scripts/`` by name (skips without it)."""
    root = Path(__file__).resolve().parents[1] / "scripts"

    def load(name: str):
        path = root / f"{name}.py"
        if not path.is_file():
            pytest.skip(f"scripts/{name}.py not found")
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod  # dataclasses with string annotations look themselves up
        spec.loader.exec_module(mod)
        return mod

    return load


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path to ../shared/data; tests that need it skip cleanly when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


def _interrupts(setup: str, call: str, *, wait: float = 1.0, env: dict | None = None) -> float:
    """Run ``setup`` then the long ``call`` in a child Python, send SIGINT ``wait`` seconds
    into the call, and check the call raised KeyboardInterrupt. Returns the seconds from
    the signal to the child's exit (a liveness bound, not a speed claim)."""
    code = (
        "import sys\n"
        + textwrap.dedent(setup)
        + '\nprint("ready", flush=True)\ntry:\n    '
        + call.strip()
        + '\nexcept KeyboardInterrupt:\n    print("interrupted", flush=True)\n    sys.exit(3)\n'
        + 'print("finished", flush=True)\n'
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=None if env is None else dict(os.environ, **env),
    )
    assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
    time.sleep(wait)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    elapsed = time.monotonic() - t0
    assert proc.returncode == 3, (out, err)
    assert "interrupted" in out
    assert elapsed < 30, elapsed
    return elapsed


@pytest.fixture
def ctrl_c():
    """``ctrl_c(setup, call, wait=1.0, env=None)``: check Ctrl-C interrupts ``call``."""
    if sys.platform == "win32":
        pytest.skip("POSIX signals")
    return _interrupts


@pytest.fixture(scope="session")
def dask_client():
    """One 2-process dask LocalCluster (1 thread, OMP_NUM_THREADS=1 each) for every test
    that needs one: starting a cluster costs seconds. ``allowed-failures=1``: a task whose
    worker dies once is retried, twice -> KilledWorker (tests/spectral/test_dask.py).
    Not the default client: tests opt in with ``with dask_client.as_current():``, so
    other tests' dask work (lazy HyperSpy signals) keeps the local scheduler."""
    distributed = pytest.importorskip("distributed")
    import dask

    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        cluster = distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            env={"OMP_NUM_THREADS": "1"},
        )
        with distributed.Client(cluster, set_as_default=False) as c:
            yield c
        cluster.close()


def _velox_emd(shared_data: Path, tmp_path: Path, reduced: bool) -> Path:
    """A Velox EDS .emd of ../shared/data/velox-edx-16x16.zip extracted to tmp_path: the
    full one, or the reduced one (maps and summed spectra, no spectrum image)."""
    import zipfile

    pytest.importorskip("rsciio")
    pytest.importorskip("h5py")
    pytest.importorskip("sparse")
    archive = shared_data / "velox-edx-16x16.zip"
    if not archive.exists():
        pytest.skip(f"{archive} not found")
    with zipfile.ZipFile(archive) as z:
        name = next(n for n in z.namelist() if n.endswith(".emd") and reduced == ("Reduced" in n))
        z.extract(name, tmp_path)
    return tmp_path / name


@pytest.fixture
def velox(shared_data: Path, tmp_path: Path) -> Path:
    """The Velox EDS .emd of ../shared/data/velox-edx-16x16.zip, extracted to tmp_path
    (skips without the file or rosettasciio's readers)."""
    return _velox_emd(shared_data, tmp_path, reduced=False)


@pytest.fixture
def velox_reduced(shared_data: Path, tmp_path: Path) -> Path:
    """Its reduced .emd, which holds no spectrum image RosettaSciIO reads."""
    return _velox_emd(shared_data, tmp_path, reduced=True)
