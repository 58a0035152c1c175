"""benchmarks/avx2_only.sh: a process run under it sees no AVX-512 in CPUID, so NumPy,
onnxruntime and matchar's dispatched kernels take their AVX2 paths, and the results
files record the flags the process saw. Checked against the same process run plainly."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "avx2_only.sh"


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


pytestmark = [
    pytest.mark.skipif(not SCRIPT.exists(), reason="benchmarks/ is not part of this installation"),
    pytest.mark.skipif(
        sys.platform != "linux" or platform.machine() != "x86_64", reason="x86-64 Linux only"
    ),
    pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler"),
    pytest.mark.skipif("LD_PRELOAD" in os.environ, reason="another preload (sanitizer) is set"),
]

PROBE = """
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
import matchar
import _results
info = _results.machine_info()
print(json.dumps({
    "numpy_avx512f": bool(np._core._multiarray_umath.__cpu_features__["AVX512F"]),
    "numpy_avx2": bool(np._core._multiarray_umath.__cpu_features__["AVX2"]),
    "cpu_class": info["cpu_class"],
    "vector_flags": info["vector_flags"],
    "hidden": info["vector_flags_hidden"],
    "levels": list(matchar._core.build_info()["cpu_levels_supported"]),
}))
"""


def _probe(wrapped: bool) -> dict:
    cmd = [sys.executable, "-c", PROBE, str(ROOT / "benchmarks")]
    if wrapped:
        cmd = ["bash", str(SCRIPT), *cmd]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_usage_error_exits_2():
    r = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "usage" in r.stderr


@pytest.mark.skipif(
    not {"avx512f", "avx2", "cpuid_fault"} <= _cpu_flags(),
    reason="needs a CPU with AVX-512, AVX2 and CPUID faulting",
)
def test_avx512_hidden_from_the_process_and_recorded():
    plain = _probe(wrapped=False)
    masked = _probe(wrapped=True)
    # the control: run plainly, the process sees AVX-512
    assert plain["numpy_avx512f"] and plain["numpy_avx2"]
    assert plain["hidden"] == [] and "avx512f" in plain["vector_flags"]
    assert plain["cpu_class"].endswith("AVX-512")
    # wrapped: NumPy's CPUID-based dispatch, matchar's kernel levels and the results
    # file's machine description all say AVX2
    assert not masked["numpy_avx512f"] and masked["numpy_avx2"]
    assert "avx512" not in masked["levels"] and "avx2" in masked["levels"]
    assert "avx512f" in masked["hidden"] and "avx512f" not in masked["vector_flags"]
    assert "avx2" in masked["vector_flags"]
    assert masked["cpu_class"].endswith("AVX2")
