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


def _cpu_id() -> str | None:
    """ "family F model M" of the first CPU in /proc/cpuinfo (x86): a virtual machine's
    model name ("AMD EPYC") can hide which generation it runs on."""
    found: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in {"cpu family", "model"} and key not in found:
            found[key] = value.strip()
        if not line.strip():
            break
    if len(found) < 2:
        return None
    return f"family {found['cpu family']} model {found['model']}"


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


def run_class(machine: dict[str, Any]) -> str:
    """The CPU class a results file is grouped under: its ``cpu_class``, marked
    "(AVX-512 hidden)" for a run under ``benchmarks/avx2_only.sh``, so that such a run
    is never taken for one on a CPU without AVX-512 of the same model name."""
    cls = str(machine.get("cpu_class", "?"))
    return f"{cls} (AVX-512 hidden)" if machine.get("vector_flags_hidden") else cls


def _hidden_from_process(vector: list[str]) -> list[str]:
    """The vector flags of /proc/cpuinfo that this process's CPUID does not report.

    ``benchmarks/avx2_only.sh`` hides AVX-512 and AVX-VNNI from CPUID; NumPy's run-time
    dispatch reads CPUID, so its view is this process's view.
    """
    if "avx512f" not in vector:
        return []
    try:
        import numpy as np

        features = np._core._multiarray_umath.__cpu_features__
    except (ImportError, AttributeError):
        return []
    if features.get("AVX512F", True):
        return []
    return [f for f in vector if f.startswith("avx512") or f == "avx_vnni"]


def machine_info() -> dict[str, Any]:
    """CPU model and vector flags, CPU and thread counts, load, Python and libraries.

    ``vector_flags`` are the flags this process sees: under ``benchmarks/avx2_only.sh``
    the AVX-512 ones are listed in ``vector_flags_hidden`` instead, and ``cpu_class``
    names the widest extension the process can use.
    """
    model, flags = _cpuinfo()
    vector = sorted(f for f in flags if _VECTOR_FLAGS.match(f))
    hidden = _hidden_from_process(vector)
    vector = [f for f in vector if f not in hidden]
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
        "cpu_id": _cpu_id(),
        "vector_flags": vector,
        "vector_flags_hidden": hidden,
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


def latest_runs(
    directory: str | os.PathLike | None = None, per_command: bool = False
) -> dict[tuple[str, ...], dict]:
    """The latest results file per (benchmark, CPU class) in ``directory``; with
    ``per_command``, per (benchmark, CPU class, command), so that runs of one script
    with different arguments (other elements, another kernel level) are all kept."""
    folder = Path(directory) if directory is not None else (results_dir() or DEFAULT_DIR)
    latest: dict[tuple[str, str], dict] = {}
    for path in sorted(folder.glob("*.json")):
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(doc, dict) or "benchmark" not in doc:
            continue
        key: tuple[str, ...] = (doc["benchmark"], run_class(doc.get("machine", {})))
        if per_command:
            key += (str(doc.get("command")),)
        if key not in latest or doc.get("date", "") >= latest[key].get("date", ""):
            doc["_path"] = str(path)
            latest[key] = doc
    return latest


def _fmt(value: Any) -> str:
    """One table cell: 4 significant digits for floats, text as it is (pipes escaped)."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|")


def _flatten(row: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as dotted keys; lists are left out (per-round arrays, flag lists)."""
    flat: dict[str, Any] = {}
    for k, v in row.items():
        if isinstance(v, dict):
            flat.update(_flatten(v, f"{prefix}{k}."))
        elif not isinstance(v, (list, tuple)):
            flat[f"{prefix}{k}"] = v
    return flat


def _benchmark_table(results: list[dict[str, Any]]) -> list[str]:
    """A pytest-benchmark run: one row per case, grouped as the run grouped them, with
    each case's median relative to matchar's in the same group (peer / matchar: above 1
    means matchar is faster)."""
    lines = [
        "| group | case | min (s) | median (s) | rounds | median / matchar's |",
        "|---|---|---|---|---|---|",
    ]
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault(str(r.get("group") or ""), []).append(r)
    for group, rows in groups.items():
        ours = [r for r in rows if "matchar" in str(r.get("param") or r.get("name"))]
        ref = ours[0]["stats"].get("median") if ours else None
        for r in rows:
            st = r["stats"]
            ratio = st["median"] / ref if ref else None
            lines.append(
                f"| {_fmt(group)} | `{r.get('name')}` | {st.get('min', float('nan')):.4g} | "
                f"{st.get('median', float('nan')):.4g} | {st.get('rounds')} | "
                f"{'' if ratio is None else f'{ratio:.3g}'} |"
            )
    return lines


def _script_table(results: list[dict[str, Any]]) -> list[str]:
    """A script's rows: columns that never change are listed once above the table; rows
    that differ only by ``round`` are reduced to the median of each number."""
    rows = [_flatten(r) for r in results if isinstance(r, dict)]
    if not rows:
        return []
    keys = list(dict.fromkeys(k for r in rows for k in r))
    common = {k: rows[0].get(k) for k in keys if all(r.get(k) == rows[0].get(k) for r in rows)}
    varying = [k for k in keys if k not in common]
    if "round" in varying and len(rows) > 1:
        labels = [
            k
            for k in varying
            if k != "round" and not all(isinstance(r.get(k), (int, float)) for r in rows)
        ]
        merged: dict[tuple, list[dict[str, Any]]] = {}
        for r in rows:
            merged.setdefault(tuple(str(r.get(k)) for k in labels), []).append(r)
        reduced = []
        for group in merged.values():
            out = {k: group[0].get(k) for k in labels}
            out["rounds"] = len(group)
            for k in varying:
                values = [g.get(k) for g in group]
                if (
                    k not in labels
                    and k != "round"
                    and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
                ):
                    out[f"{k} (median)"] = float(sorted(values)[len(values) // 2])
            reduced.append(out)
        rows = reduced
        varying = list(dict.fromkeys(k for r in rows for k in r))
    lines = []
    if len(rows) == 1:
        lines += ["| quantity | value |", "|---|---|"]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in rows[0].items()]
        return lines
    if common:
        lines.append(
            "Same in every row: " + "; ".join(f"{k} = {_fmt(v)}" for k, v in common.items())
        )
        lines.append("")
    if not varying:
        return lines
    if len(varying) > 8 and len(rows) <= 8:  # wide and short: one row per quantity
        lines.append("| quantity | " + " | ".join(str(i + 1) for i in range(len(rows))) + " |")
        lines.append("|---" * (len(rows) + 1) + "|")
        for k in varying:
            lines.append(f"| {k} | " + " | ".join(_fmt(r.get(k, "")) for r in rows) + " |")
    else:
        lines.append("| " + " | ".join(varying) + " |")
        lines.append("|---" * len(varying) + "|")
        for r in rows:
            lines.append("| " + " | ".join(_fmt(r.get(k, "")) for k in varying) + " |")
    return lines


def render_markdown(directory: str | os.PathLike | None = None) -> str:
    """The benchmarks results page: the latest run of each benchmark on each CPU class.

    Used by ``docs/conf.py``, which writes it to ``docs/benchmark_results.md`` at every
    documentation build; nothing on that page is typed by hand.

    Parameters
    ----------
    directory : path, optional
        The results folder (default: :func:`results_dir`, else ``benchmarks/results``).

    Returns
    -------
    str
        Markdown: one section per CPU class, one subsection per benchmark with its
        command, commit, date, threads, load and numbers.
    """
    runs = latest_runs(directory, per_command=True)
    out = [
        "# Latest benchmark results",
        "",
        "Generated from `benchmarks/results/*.json` when the documentation is built: for",
        "each CPU class, the latest run of each benchmark command, with the command, the",
        "commit, the date, the thread settings and the load average during the run. What",
        "each benchmark measures, and the reading of its numbers, is in",
        "[Benchmarks](benchmarks.md). To add a run, run the command shown (it writes a",
        "results file) and commit the file.",
        "",
        "In pytest-benchmark tables, *median / matchar's* divides each case's median by",
        "the median of matchar's case in the same group: a peer at 3 takes three times as",
        "long as matchar on the same data in the same run.",
        "",
    ]
    by_class: dict[str, list[tuple[str, dict]]] = {}
    for (name, cls, _), doc in sorted(runs.items(), key=lambda kv: (kv[0], kv[1].get("date"))):
        by_class.setdefault(cls, []).append((name, doc))
    for cls, docs in by_class.items():
        first = docs[0][1].get("machine", {})
        out += [f"## {cls}", ""]
        out.append(
            f"CPU model `{first.get('cpu_model')}`"
            + (f" ({first['cpu_id']})" if first.get("cpu_id") else "")
            + f", {first.get('logical_cpus')} logical CPUs; "
            f"vector flags: {' '.join(first.get('vector_flags') or []) or 'not recorded'}."
        )
        out.append("")
        for name, doc in docs:
            m = doc.get("machine", {})
            git = doc.get("git", {})
            commit = str(git.get("commit") or "unknown")[:10]
            dirty = " (with uncommitted changes)" if git.get("dirty") else ""
            build = m.get("matchar_build") or {}
            out += [f"### {name}", ""]
            out.append(
                f"{doc.get('date')}, commit `{commit}`{dirty}; threads "
                f"{_fmt(m.get('threads') or 'default')}; load average (1, 5, 15 min) "
                f"{m.get('load_average')}; kernels `{build.get('cpu_level', 'n/a')}`; "
                f"file `{Path(doc.get('_path', '')).name}`."
            )
            out += ["", "```bash", str(doc.get("command")), "```", ""]
            results = doc.get("results")
            if isinstance(results, dict):
                results = [results]
            if not isinstance(results, list):
                continue
            if results and all(isinstance(r, dict) and "stats" in r for r in results):
                out += _benchmark_table(results)
            else:
                out += _script_table(results)
            out.append("")
    return "\n".join(out).rstrip() + "\n"


def _main(argv: list[str]) -> int:
    """Print the latest run of each benchmark per CPU class (``--json`` for JSON,
    ``--markdown`` for the documentation page)."""
    if "--markdown" in argv:
        args = [a for a in argv if a != "--markdown"]
        print(render_markdown(args[0] if args else None), end="")
        return 0
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
