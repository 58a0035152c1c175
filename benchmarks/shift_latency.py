"""Latency of SOAP + ShiftModel prediction for one ~162-atom structure (target:
<= 20 ms on 2 cores), and frames per second.

``ShiftModel.predict`` is timed as a user calls it, back to back: the mean alone
(``predict(frames)``, the low-rank form of compressed models) and the mean with the
committee standard deviation (``return_std=True``, the exact kernel); SOAP alone is timed
in a separate loop. Uses the shipped models and the CSD-1000R structure closest to 162
atoms (read in place from ../shared/data). Reports the median wall time over
``--repeats`` calls after a warm-up, with the process CPU time per call, for each thread
count, with the load average.

Run: python benchmarks/shift_latency.py [--elements H C] [--threads 1 2] [--repeats 50]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np

import matchar as mc

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "CSD-1000R.json.gz"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--elements", nargs="+", default=["H", "C"])
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--atoms", type=int, default=162)
    args = ap.parse_args()

    frames, _ = mc.nmr.load_chemiscope(args.data)
    frame = min(frames, key=lambda a: (abs(len(a) - args.atoms), len(a)))
    print(f"structure: {frame.get_chemical_formula()} ({len(frame)} atoms)")
    for element in args.elements:
        model = mc.nmr.ShiftModel.pretrained(element)
        n_el = int(np.sum(frame.symbols == element)) if hasattr(frame, "symbols") else 0
        for threads, with_std in [(t, s) for s in (False, True) for t in args.threads]:
            with mc.threads(threads):
                model.predict([frame], return_std=True)  # warm-up (prepares the sparse set)
                wall, cpu, soap = [], [], []
                for _ in range(args.repeats):  # the user's call: SOAP + prediction
                    t0, c0 = time.perf_counter(), time.process_time()
                    model.predict([frame], return_std=with_std)
                    wall.append(time.perf_counter() - t0)
                    cpu.append(time.process_time() - c0)
                for _ in range(args.repeats):  # SOAP alone, for the breakdown
                    t0 = time.perf_counter()
                    model.features([frame])
                    soap.append(time.perf_counter() - t0)
            med = statistics.median(wall)
            what = "mean+std" if with_std else "mean"
            print(
                f"{element} ({n_el} atoms) {what}, {threads} thread(s): median {1e3 * med:.1f} ms "
                f"(SOAP {1e3 * statistics.median(soap):.1f} ms, min {1e3 * min(wall):.1f} ms), "
                f"CPU {1e3 * statistics.median(cpu):.1f} ms/call, {1.0 / med:.1f} frames/s, "
                f"load {os.getloadavg()[0]:.2f}"
            )


if __name__ == "__main__":
    main()
