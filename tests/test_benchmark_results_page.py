"""The generated benchmarks page (``benchmarks/_results.py``, rendered by docs/conf.py):
written from hand-made results files whose numbers are known, so every cell it shows
can be checked."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def results_module():
    path = ROOT / "benchmarks" / "_results.py"
    if not path.exists():
        pytest.skip("benchmarks/ is not part of this installation")
    spec = importlib.util.spec_from_file_location("_bench_results_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _doc(benchmark, date, command, results, cpu_class="CPU X, AVX2", dirty=False):
    return {
        "schema": 1,
        "benchmark": benchmark,
        "command": command,
        "date": date,
        "git": {"commit": "0123456789abcdef", "dirty": dirty},
        "machine": {
            "cpu_model": cpu_class.split(",")[0],
            "cpu_class": cpu_class,
            "vector_flags": ["avx2", "fma"],
            "logical_cpus": 2,
            "threads": {"OMP_NUM_THREADS": "2"},
            "load_average": [0.5, 0.4, 0.3],
            "matchar_build": {"cpu_level": "avx2"},
        },
        "results": results,
    }


def _case(group, name, median, param):
    return {
        "group": group,
        "name": name,
        "param": param,
        "stats": {"min": median * 0.9, "median": median, "rounds": 3},
    }


def test_latest_run_per_command_and_cpu_class(results_module, tmp_path):
    bench = [
        _case("NMF 100x10", "test_nmf[sklearn]", 3.0, "sklearn"),
        _case("NMF 100x10", "test_nmf[matchar]", 0.5, "matchar"),
    ]
    old = [_case("NMF 100x10", "test_nmf[matchar]", 9.0, "matchar")]
    files = {
        "a.json": _doc("test_bench_x", "2026-01-01T00:00:00Z", "pytest x", old),
        "b.json": _doc("test_bench_x", "2026-02-01T00:00:00Z", "pytest x", bench),
        "c.json": _doc("test_bench_x", "2026-01-15T00:00:00Z", "pytest x", old, "CPU Y, AVX-512"),
        "d.json": _doc(
            "script_y",
            "2026-01-01T00:00:00Z",
            "python y.py --element C",
            [{"element": "C", "rmse_ppm": 5.0}, {"element": "H", "rmse_ppm": 0.5}],
        ),
        "e.json": _doc(
            "script_y",
            "2026-01-02T00:00:00Z",
            "python y.py --element N",
            [{"element": "N", "rmse_ppm": 24.0}],
        ),
        "broken.json": "{not json",
    }
    for name, doc in files.items():
        (tmp_path / name).write_text(doc if isinstance(doc, str) else json.dumps(doc))
    page = results_module.render_markdown(tmp_path)
    # two CPU classes, each with its own latest run
    assert page.count("## CPU X, AVX2") == 1 and page.count("## CPU Y, AVX-512") == 1
    x_section = page.split("## CPU Y, AVX-512")[0]
    # the February run replaced the January one on CPU X: the peer at 3.0 / 0.5 = 6
    assert "| NMF 100x10 | `test_nmf[sklearn]` | 2.7 | 3 | 3 | 6 |" in x_section
    assert "| NMF 100x10 | `test_nmf[matchar]` | 0.45 | 0.5 | 3 | 1 |" in x_section
    assert "| 9 |" not in x_section
    # both commands of the script are kept, each with its rows
    assert "python y.py --element C" in page and "python y.py --element N" in page
    assert "| C | 5 |" in page and "| H | 0.5 |" in page
    assert "| rmse_ppm | 24 |" in page
    assert "threads {'OMP_NUM_THREADS': '2'}" in page and "[0.5, 0.4, 0.3]" in page


def test_rounds_reduced_to_medians(results_module, tmp_path):
    rows = [
        {"round": r, "build": b, "seconds": {"kl": t}}
        for r, (b, t) in enumerate(
            [("native", 1.0), ("wheel", 2.0), ("native", 3.0), ("wheel", 4.0), ("native", 2.0)]
        )
    ]
    (tmp_path / "t.json").write_text(json.dumps(_doc("timings", "2026-01-01T00:00:00Z", "t", rows)))
    page = results_module.render_markdown(tmp_path)
    # native rounds 1, 3, 2 -> median 2; wheel rounds 2, 4 -> the upper median 4
    assert "| native | 3 | 2 |" in page
    assert "| wheel | 2 | 4 |" in page


def test_masked_run_kept_apart_from_a_cpu_without_avx512(results_module, tmp_path):
    # the same model name and cpu_class: one run with AVX-512 hidden from CPUID
    # (benchmarks/avx2_only.sh), one on a CPU that has no AVX-512
    masked = _doc(
        "test_bench_x",
        "2026-01-01T00:00:00Z",
        "pytest x",
        [_case("g", "test_g[matchar]", 2.0, "matchar")],
        "CPU Z, AVX2",
    )
    masked["machine"]["vector_flags_hidden"] = ["avx512f", "avx512bw"]
    real = _doc("test_bench_x", "2026-02-01T00:00:00Z", "pytest x",
                [_case("g", "test_g[matchar]", 3.0, "matchar")], "CPU Z, AVX2")  # fmt: skip
    real["machine"]["vector_flags_hidden"] = []
    (tmp_path / "m.json").write_text(json.dumps(masked))
    (tmp_path / "r.json").write_text(json.dumps(real))
    page = results_module.render_markdown(tmp_path)
    sections = {sec.split("\n", 1)[0]: sec for sec in page.split("\n## ")[1:]}
    assert set(sections) == {"CPU Z, AVX2", "CPU Z, AVX2 (AVX-512 hidden)"}
    # each class keeps its own run: medians 2 (masked) and 3 (no AVX-512)
    assert "| g | `test_g[matchar]` | 1.8 | 2 |" in sections["CPU Z, AVX2 (AVX-512 hidden)"]
    assert "| g | `test_g[matchar]` | 2.7 | 3 |" in sections["CPU Z, AVX2"]
