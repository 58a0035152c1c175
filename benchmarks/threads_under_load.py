"""matchar's hot kernels with and without a competing CPU-bound job on the same cores.

Machines that run acquisition software are rarely idle. This script times the kernels of
``build_timings.py`` (KL and Frobenius NMF, Poisson PCA, the local correlation map, SOAP,
the polynomial kernel), each configuration in a fresh child process (OpenMP reads its
environment once, at start):

- quiet, 1 and 2 OpenMP threads;
- loaded: ``--load`` busy processes (pure spin loops, default: one per core) run beside
  the child for the whole measurement, with matchar on 1 and 2 threads;
- with 2 threads, matchar's default wait (``GOMP_SPINCOUNT=10000``, set at import unless
  the user set ``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT``), libgomp's own default spin
  (``GOMP_SPINCOUNT=300000``) and ``OMP_WAIT_POLICY=passive`` (threads sleep at once).

It prints the medians and the ratios ``loaded / quiet`` (each against the quiet run with
matchar's default and the same thread count): with a competitor on every core a
fair share of the CPU is half, so about 2x is the expected slowdown; spin-waiting threads
that wait at barriers for a descheduled team mate make it much worse. Also printed:
the scaling from 1 to 2 threads on the quiet machine.

    OMP_NUM_THREADS= python benchmarks/threads_under_load.py --repeat 5 --out load.json

Run it on an otherwise idle machine (check ``uptime``): the quiet rows are only quiet if
nothing else runs.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def spin(stop_at: float) -> None:
    """Burn one core until ``stop_at`` (time.time())."""
    x = 0
    while time.time() < stop_at:
        for _ in range(10_000):
            x += 1


def child(threads: int, repeat: int, env: dict[str, str]) -> dict:
    """Run build_timings.run(threads, repeat) in a fresh interpreter with ``env`` added."""
    code = (
        f"import json, sys; sys.path.insert(0, {str(HERE)!r}); import build_timings as b; "
        f"print(json.dumps(b.run({threads}, {repeat})['seconds']))"
    )
    full = {**os.environ, **env}
    full.pop("OMP_NUM_THREADS", None)
    out = subprocess.run(
        [sys.executable, "-c", code], env=full, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(threads: int, repeat: int, env: dict[str, str], load: int) -> dict:
    """One configuration, with ``load`` spinning processes beside it when load > 0."""
    procs = []
    if load:
        stop_at = time.time() + 3600
        ctx = mp.get_context("fork")
        procs = [ctx.Process(target=spin, args=(stop_at,), daemon=True) for _ in range(load)]
        for p in procs:
            p.start()
    try:
        return child(threads, repeat, env)
    finally:
        for p in procs:
            p.terminate()
            p.join()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--load", type=int, default=os.cpu_count() or 2, help="busy processes")
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    sys.path.insert(0, str(HERE))
    from build_timings import cpu

    lib = {"GOMP_SPINCOUNT": "300000"}  # libgomp's own default
    configs = [
        ("quiet, 1 thread", 1, {}, 0),
        ("quiet, 2 threads", 2, {}, 0),
        ("quiet, 2 threads, libgomp spin", 2, lib, 0),
        ("loaded, 1 thread", 1, {}, args.load),
        ("loaded, 2 threads", 2, {}, args.load),
        ("loaded, 2 threads, libgomp spin", 2, lib, args.load),
        ("loaded, 2 threads, passive", 2, {"OMP_WAIT_POLICY": "passive"}, args.load),
    ]
    results = {}
    for name, threads, env, load in configs:
        t0 = time.perf_counter()
        results[name] = measure(threads, args.repeat, env, load)
        print(f"{name}: {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)

    kernels = list(results["quiet, 2 threads"])
    names = list(results)
    print(f"{'milliseconds':30s} " + " ".join(f"{n:>32s}" for n in names))
    for k in kernels:
        print(f"{k:30s} " + " ".join(f"{results[n][k] * 1e3:32.1f}" for n in names))
    print()
    q1, q2 = results["quiet, 1 thread"], results["quiet, 2 threads"]
    loaded = [n for n in names if n.startswith("loaded")]
    print(f"{'ratio':30s} {'quiet 1->2 threads':>20s} " + " ".join(f"{n:>32s}" for n in loaded))
    for k in kernels:
        ratios = [results[n][k] / (q1 if "1 thread" in n else q2)[k] for n in loaded]
        print(f"{k:30s} {q1[k] / q2[k]:19.2f}x " + " ".join(f"{r:31.2f}x" for r in ratios))
    from _results import write_results

    write_results(
        "threads_under_load",
        {"seconds": results},
        extra={"load_processes": args.load, "repeat": args.repeat},
    )
    if args.out:
        record = {
            "cpu": cpu(),
            "command": " ".join(sys.argv),
            "load_processes": args.load,
            "repeat": args.repeat,
            "seconds": results,
        }
        args.out.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
