"""SOAP power spectra: matchar against featomic and dscribe, same structures, one run.

Run (peers from the ``bench`` extra: ``pip install featomic dscribe``):

    OMP_NUM_THREADS=1 RAYON_NUM_THREADS=1 python -m pytest benchmarks/test_bench_atoms.py \
        --benchmark-only --benchmark-group-by=group \
        --benchmark-columns=min,median,max -s

Structures: rattled urea crystals (P-42_1m, 2x2x3 cells, 192 atoms, σ = 0.05 Å
displacements); r_c = 5 Å, 8 radial functions, l_max = 6, atomic width 0.3 Å, shifted
cosine smoothing 0.5 Å (featomic: ``max_radial=7``; dscribe: ``n_max=8``, its own GTO
basis and no smoothing). Every implementation produces the dense (n_envs, n_features)
float64 array.
"""

from __future__ import annotations

import os

# featomic's thread pool (rayon) reads this once, when first used.
os.environ.setdefault("RAYON_NUM_THREADS", "1")

import multiprocessing as mp
import time

import numpy as np
import pytest

import matchar as mc

ase_spacegroup = pytest.importorskip("ase.spacegroup")

SPECIES = [1, 6, 7, 8]
N_FRAMES = 5
CUTOFF, N_RADIAL, L_MAX, WIDTH, SMOOTH = 5.0, 8, 6, 0.3, 0.5


def urea_cell(seed: int):
    cell = ase_spacegroup.crystal(
        ["C", "O", "N", "H", "H"],
        basis=[
            (0.0, 0.5, 0.326),
            (0.0, 0.5, 0.5953),
            (0.1459, 0.6459, 0.1766),
            (0.2575, 0.7575, 0.2827),
            (0.1441, 0.6441, -0.038),
        ],
        spacegroup=113,
        cellpar=[5.565, 5.565, 4.684, 90, 90, 90],
    ).repeat((2, 2, 3))
    cell.positions += np.random.default_rng(seed).normal(scale=0.05, size=cell.positions.shape)
    return cell


def make_matchar():
    soap = mc.atoms.SOAP(CUTOFF, N_RADIAL, L_MAX, WIDTH, SMOOTH, species=SPECIES)
    return soap.compute


def make_featomic():
    featomic = pytest.importorskip("featomic")
    calc = featomic.SoapPowerSpectrum(
        cutoff={"radius": CUTOFF, "smoothing": {"type": "ShiftedCosine", "width": SMOOTH}},
        density={"type": "Gaussian", "width": WIDTH},
        basis={
            "type": "TensorProduct",
            "max_angular": L_MAX,
            "radial": {"type": "Gto", "max_radial": N_RADIAL - 1},
        },
    )

    def compute(frames):
        d = calc.compute(frames)
        d = d.keys_to_samples("center_type").keys_to_properties(
            ["neighbor_1_type", "neighbor_2_type"]
        )
        return np.asarray(d.block().values)

    return compute


def make_dscribe():
    dscribe = pytest.importorskip("dscribe.descriptors")
    soap = dscribe.SOAP(
        species=SPECIES, r_cut=CUTOFF, n_max=N_RADIAL, l_max=L_MAX, sigma=WIDTH,
        periodic=True, sparse=False,
    )  # fmt: skip

    def compute(frames):
        return np.concatenate(soap.create(frames, n_jobs=1))

    return compute


MAKERS = {"matchar": make_matchar, "featomic": make_featomic, "dscribe": make_dscribe}


@pytest.fixture(scope="module")
def frames():
    return [urea_cell(s) for s in range(N_FRAMES)]


@pytest.mark.parametrize("impl", ["matchar", "featomic", "dscribe"])
def test_soap_single_thread(benchmark, frames, impl):
    fn = MAKERS[impl]()
    benchmark.group = f"SOAP urea {N_FRAMES}x192 atoms, 1 thread"
    before = mc.get_num_threads()
    mc.set_num_threads(1)
    try:
        X = benchmark.pedantic(fn, args=(frames,), rounds=3, iterations=1, warmup_rounds=1)
    finally:
        mc.set_num_threads(before)
    n_env = sum(len(f) for f in frames)
    assert X.shape[0] == n_env
    benchmark.extra_info["us_per_env"] = benchmark.stats.stats.min / n_env * 1e6


@pytest.mark.parametrize("threads", [1, 2])
def test_soap_matchar_threads(benchmark, frames, threads):
    fn = make_matchar()
    benchmark.group = f"SOAP urea {N_FRAMES}x192 atoms, matchar threads"
    before = mc.get_num_threads()
    mc.set_num_threads(threads)
    try:
        benchmark.pedantic(fn, args=(frames,), rounds=3, iterations=1, warmup_rounds=1)
    finally:
        mc.set_num_threads(before)


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _peak_memory_child(impl: str, n_frames: int, queue) -> None:
    os.environ["RAYON_NUM_THREADS"] = "1"
    fn = MAKERS[impl]()
    frames = [urea_cell(s) for s in range(n_frames)]
    fn(frames[:1])  # warm up: lazy tables, imports, thread pools
    # Reset the peak-RSS counter (VmHWM) to the current RSS (Linux >= 4.0), then
    # measure how far compute() pushes it above the resident set it started from.
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    base = _status_kib("VmRSS")
    X = fn(frames)
    peak = _status_kib("VmHWM")
    queue.put(((peak - base) * 1024 / X.nbytes, X.nbytes))


@pytest.mark.parametrize("impl", ["matchar", "featomic", "dscribe"])
def test_soap_peak_memory(impl):
    """Peak resident-memory growth during compute / size of the dense output."""
    MAKERS[impl]()  # skip here (not in the child) when the peer is missing
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    p = ctx.Process(target=_peak_memory_child, args=(impl, 20, queue))
    p.start()
    ratio, nbytes = queue.get(timeout=600)
    p.join()
    print(f"\npeak memory {impl}: {ratio:.2f} x output ({nbytes / 2**20:.0f} MiB)")
    if impl == "matchar":
        assert ratio < 1.3


def test_soap_streamed_peptide_frames():
    """Antamanide-sized synthetic frames (162 atoms, C58H80N12O12) through a callback."""
    n_frames, chunk = int(os.environ.get("MATCHAR_BENCH_STREAM_FRAMES", 2000)), 250
    rng = np.random.default_rng(0)
    import ase

    symbols = ["C"] * 58 + ["H"] * 80 + ["N"] * 12 + ["O"] * 12
    # a compact random "molecule": points >= 1.0 Å apart in a 12 Å box
    base = []
    while len(base) < len(symbols):
        p = rng.uniform(0, 12.0, 3)
        if all(np.linalg.norm(p - q) > 1.0 for q in base):
            base.append(p)
    base = np.array(base)
    frames = (
        ase.Atoms(symbols, positions=base + rng.normal(scale=0.1, size=base.shape))
        for _ in range(n_frames)
    )
    frames = list(frames)
    soap = mc.atoms.SOAP(CUTOFF, N_RADIAL, L_MAX, WIDTH, SMOOTH, species=SPECIES, dtype="float32")
    total = [0]

    def consume(row, X, samples):
        total[0] += X.shape[0]

    t = time.perf_counter()
    soap.compute(frames, chunk_size=chunk, callback=consume)
    dt = time.perf_counter() - t
    assert total[0] == n_frames * 162
    print(
        f"\nstreamed {n_frames} frames x 162 atoms with {mc.get_num_threads()} thread(s): "
        f"{dt:.1f} s, {dt / total[0] * 1e6:.1f} us/env, "
        f"90,000 frames extrapolated: {dt * 90000 / n_frames / 60:.1f} min"
    )
