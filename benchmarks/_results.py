"""One machine-readable results file per benchmark run.

Every run of a pytest-benchmark file (through ``benchmarks/conftest.py``) and every
standalone benchmark script that calls :func:`write_results` leaves one JSON file in
``benchmarks/results/`` (or in ``$MATCHAR_BENCH_RESULTS``; set it to ``0`` to write
nothing)::

    {
      "schema": 1,
      "benchmark": "test_bench_nmr",          # the file or script that ran
      "command": "OMP_NUM_THREADS=2 python -m pytest benchmarks/test_bench_nmr.py ...",
      "date": "2026-12-06T05:01:02Z",         # UTC, end of the run
      "git": {"commit": "d81153c...", "dirty": false},
      "machine": {"cpu_model": ..., "cpu_class": ..., "vector_flags": [...],
                  "logical_cpus": 2, "threads": {...}, "load_average": [...], ...},
      "results": [...]                        # the numbers: one dict per case
    }

The file name is ``<benchmark>-<date>-<commit>.json``, so a folder of runs sorts by
benchmark and date. ``cpu_class`` (CPU model plus its widest vector extension) is what
the benchmarks page groups by: ``python benchmarks/_results.py`` prints the latest run
of each benchmark per CPU class.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DIR = Path(__file__).resolve().parent / "results"

# The /proc/cpuinfo flags that decide which kernels a build can use (MATCHAR_ARCH=native).
_VECTOR_FLAGS = re.compile(
    r"^(sse4_[12]|avx|avx2|fma|f16c|avx_vnni|avx512\w*|amx\w*|neon|asimd\w*|sve\w*)$"
)

# Environment variables that change what a run measures: kernel level and thread counts.
_THREAD_ENV = (
    "MATCHAR_CPU_LEVEL",
    "OMP_NUM_THREADS",
    "OMP_WAIT_POLICY",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "RAYON_NUM_THREADS",
    "MATCHAR_NUM_THREADS",
)


def results_dir() -> Path | None:
    """Where results files go: ``$MATCHAR_BENCH_RESULTS``, else ``benchmarks/results``;
    ``None`` when the variable is ``0``, ``off`` or ``no``."""
    env = os.environ.get("MATCHAR_BENCH_RESULTS")
    if env is None or env == "":
        return DEFAULT_DIR
    if env.lower() in {"0", "off", "no", "false"}:
        return None
    return Path(env)


def _cpuinfo() -> tuple[str | None, list[str]]:
    """CPU model name and flags from /proc/cpuinfo (Linux), else from lscpu / platform."""
    model, flags = None, []
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if model is None and key in {"model name", "cpu model", "hardware"}:
            model = value.strip()
        elif not flags and key in {"flags", "features"}:
            flags = value.split()
    if model is None or not flags:
        try:
            out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.SubprocessError):
            out = ""
        for line in out.splitlines():
            key, _, value = line.partition(":")
            if model is None and key.strip() == "Model name":
                model = value.strip()
            elif not flags and key.strip() == "Flags":
                flags = value.split()
    return model or platform.processor() or platform.machine(), flags


def cpu_class(model: str, vector_flags: list[str]) -> str:
    """``"<model>, <widest vector extension>"``: the key results are grouped by."""
    flags = set(vector_flags)
    for name, widest in (
        ("AVX-512", "avx512f"),
        ("AVX2", "avx2"),
        ("AVX", "avx"),
        ("SVE", "sve"),
        ("NEON", "asimd"),
    ):
        if widest in flags:
            return f"{model}, {name}"
    return model


def machine_info() -> dict[str, Any]:
    """CPU model and vector flags, CPU and thread counts, load, Python and libraries."""
    model, flags = _cpuinfo()
    vector = sorted(f for f in flags if _VECTOR_FLAGS.match(f))
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count()
    threads: dict[str, Any] = {k: os.environ[k] for k in _THREAD_ENV if k in os.environ}
    versions: dict[str, str] = {"python": platform.python_version()}
    for name in ("matchar", "numpy", "scipy", "sklearn"):
        mod = sys.modules.get(name)
        if mod is not None and hasattr(mod, "__version__"):
            versions[name] = str(mod.__version__)
    mc = sys.modules.get("matchar")
    build: dict[str, Any] | None = None
    if mc is not None and hasattr(mc, "get_num_threads"):
        try:
            threads["matchar.get_num_threads()"] = int(mc.get_num_threads())
            # the kernel level this process dispatches to (MATCHAR_CPU_LEVEL can force one)
            build = dict(mc._core.build_info())
        except Exception:  # a half-imported or broken build must not lose the results
            pass
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        load = None
    return {
        "cpu_model": model,
        "cpu_class": cpu_class(model, vector),
        "vector_flags": vector,
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable,
        "threads": threads,
        "load_average": load,
        "platform": platform.platform(),
        "versions": versions,
        "matchar_build": build,
    }


def git_commit(root: Path = ROOT) -> dict[str, Any]:
    """The checked-out commit and whether the work tree differs from it."""

    def git(*args: str) -> str | None:
        try:
            r = subprocess.run(
                ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=20
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return r.stdout.strip() if r.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def command_line(argv: list[str] | None = None, module: str | None = None) -> str:
    """The command that ran, with the thread variables that were set in front of it.

    ``module="pytest"`` writes ``python -m pytest ARGS`` whatever entry point started it.
    """
    argv = list(sys.argv if argv is None else argv)
    if module is not None:
        head = ["python", "-m", module]
    else:
        head = ["python", os.path.relpath(argv[0], ROOT) if argv and argv[0] else ""]
        argv = argv[1:]
    env = [f"{k}={os.environ[k]}" for k in _THREAD_ENV if k in os.environ]
    env += [f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith("MATCHAR_BENCH_")]
    return shlex.join(env + head + argv)


def write_results(
    benchmark: str,
    results: list[dict[str, Any]] | dict[str, Any],
    *,
    command: str | None = None,
    directory: str | os.PathLike | None = None,
    extra: dict[str, Any] | None = None,
) -> Path | None:
    """Write one run's numbers with the machine and commit they come from.

    Parameters
    ----------
    benchmark : str
        Name of the benchmark file or script, e.g. ``"shift_latency"``.
    results : list of dict or dict
        The numbers, one dict per case (name, parameters, times in seconds, ratios, ...).
    command : str, optional
        The exact command; default: this process's command line (:func:`command_line`).
    directory : path, optional
        Default: :func:`results_dir`. Nothing is written when that is ``None``.
    extra : dict, optional
        Anything else worth keeping with the run (data set, seeds, notes on the setup).

    Returns the path written, or ``None``.

    Example
    -------
    >>> write_results("shift_latency", [{"case": "1H mean", "median_s": 0.0102}])  # doctest: +SKIP
    """
    out = Path(directory) if directory is not None else results_dir()
    if out is None:
        return None
    now = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)
    git = git_commit()
    doc: dict[str, Any] = {
        "schema": 1,
        "benchmark": benchmark,
        "command": command if command is not None else command_line(),
        "date": now.isoformat().replace("+00:00", "Z"),
        "git": git,
        "machine": machine_info(),
        "results": results,
    }
    if extra:
        doc["extra"] = extra
    out.mkdir(parents=True, exist_ok=True)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    short = (git["commit"] or "nogit")[:10]
    path = out / f"{benchmark}-{stamp}-{short}.json"
    path.write_text(json.dumps(doc, indent=1, default=str) + "\n")
    return path


def latest_runs(directory: str | os.PathLike | None = None) -> dict[tuple[str, str], dict]:
    """The latest results file per (benchmark, CPU class) in ``directory``."""
    folder = Path(directory) if directory is not None else (results_dir() or DEFAULT_DIR)
    latest: dict[tuple[str, str], dict] = {}
    for path in sorted(folder.glob("*.json")):
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(doc, dict) or "benchmark" not in doc:
            continue
        key = (doc["benchmark"], doc.get("machine", {}).get("cpu_class", "?"))
        if key not in latest or doc.get("date", "") >= latest[key].get("date", ""):
            doc["_path"] = str(path)
            latest[key] = doc
    return latest


def _main(argv: list[str]) -> int:
    """Print the latest run of each benchmark per CPU class (``--json`` for JSON)."""
    args = [a for a in argv if a != "--json"]
    runs = latest_runs(args[0] if args else None)
    if "--json" in argv:
        print(json.dumps(list(runs.values()), indent=1, default=str))
        return 0
    for (name, cls), doc in sorted(runs.items()):
        m = doc.get("machine", {})
        print(f"## {name} — {cls}")
        print(f"{doc.get('date')}  commit {str(doc.get('git', {}).get('commit'))[:10]}", end="")
        print(f"  threads {m.get('threads')}  load {m.get('load_average')}")
        print(f"    {doc.get('command')}")
        for r in doc.get("results", []) if isinstance(doc.get("results"), list) else []:
            stats = r.get("stats", {})
            if stats:
                print(
                    f"  {r.get('name')}: min {stats.get('min', float('nan')):.4g} s, "
                    f"median {stats.get('median', float('nan')):.4g} s, "
                    f"rounds {stats.get('rounds')}"
                )
            else:
                print(f"  {r}")
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
