"""Benchmarks: matchar and its reference/peer in one pytest-benchmark group.

Every run that times something leaves one results file in ``benchmarks/results/``
(``benchmarks/_results.py``: the command, commit, CPU model and vector flags, thread
settings, date and each case's statistics); ``MATCHAR_BENCH_RESULTS=0`` turns that off,
``MATCHAR_BENCH_RESULTS=<dir>`` writes elsewhere. ``--benchmark-json`` output gains the
same machine description under ``machine_info["matchar"]``.
"""

from __future__ import annotations

import multiprocessing
import sys
from pathlib import Path

multiprocessing.set_start_method("spawn", force=True)

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _results  # noqa: E402
import pytest  # noqa: E402


@pytest.hookimpl(optionalhook=True)  # a pytest-benchmark hook: fine without the plugin
def pytest_benchmark_update_json(config, benchmarks, output_json):
    output_json.setdefault("machine_info", {})["matchar"] = _results.machine_info()
    output_json["command"] = _results.command_line(
        list(config.invocation_params.args), module="pytest"
    )


def pytest_sessionfinish(session, exitstatus):
    bench = getattr(session.config, "_benchmarksession", None)
    if bench is None or getattr(bench, "disabled", False) or not bench.benchmarks:
        return
    results = [b.as_dict(include_data=False) for b in bench.benchmarks]
    files = sorted({Path(str(b.fullname).split("::")[0]).stem for b in bench.benchmarks})
    path = _results.write_results(
        "+".join(files),
        results,
        command=_results.command_line(list(session.config.invocation_params.args), module="pytest"),
    )
    if path is not None:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.ensure_newline()
            reporter.write_line(f"results: {path}")
