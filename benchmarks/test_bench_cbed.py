"""CBED simulator throughput: simulate_cbed (C++ kernel) against the vectorised NumPy
reference renderer of tests/imaging/test_cbed.py on the same patterns, same group.

Run: OMP_NUM_THREADS=2 python -m pytest benchmarks/test_bench_cbed.py --benchmark-only \
        --benchmark-group-by=group --benchmark-columns=min,median,max

Patterns per second = N_PATTERNS / time: 128 x 128, 0.035 1/Å per pixel, noiseless (the
reference has no noise), fcc [110] at a = 3.6 Å (the reflections out to 4 1/Å deplete the
direct beam), default optics (300 kV, 2 mrad, 30 Å).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import matchar as mc

N_PATTERNS = 5
KW = dict(shape=(128, 128), reciprocal_pixel_size=0.035, thermal_sigma=0.05)
GROUP = f"simulate_cbed, {N_PATTERNS} patterns 128x128"


def _reference():
    path = Path(__file__).resolve().parents[1] / "tests" / "imaging" / "test_cbed.py"
    spec = importlib.util.spec_from_file_location("test_cbed", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.reference_cbed


def test_simulate_cbed(benchmark):
    benchmark.group = GROUP

    def run():
        for i in range(N_PATTERNS):
            mc.imaging.simulate_cbed("fcc", (1, 1, 0), 3.6, 3.0 * i, **KW)

    benchmark.pedantic(run, rounds=3, iterations=1, warmup_rounds=1)


def test_numpy_reference(benchmark):
    benchmark.group = GROUP
    ref = _reference()

    def run():
        for i in range(N_PATTERNS):
            ref(
                "fcc", (1, 1, 0), 3.6, 3.0 * i, KW["shape"], KW["reciprocal_pixel_size"], sigma=0.05
            )

    benchmark.pedantic(run, rounds=3, iterations=1, warmup_rounds=0)


def test_render_cbed_batch(benchmark):
    """The training generator's path: 512 mixed-class patterns in one kernel call (noise,
    random optics and calibrations; no peer: the NumPy reference takes ~2 s a pattern)."""
    from matchar.imaging._dataset import CbedGenerator

    benchmark.group = "render_cbed, 512 patterns 128x128 (CbedGenerator.sample)"
    gen = CbedGenerator(0)
    benchmark.pedantic(lambda: gen.sample(512), rounds=3, iterations=1, warmup_rounds=0)
