"""Time matchar's hot kernels in whatever matchar this interpreter imports, as JSON.

Run it with two interpreters (say, a venv holding the portable wheel from
scripts/build_wheel.sh and one holding a `MATCHAR_ARCH=native` build) on the same quiet
machine and compare the medians: a portable build's hot kernels should be within 10% of
the native build's. Add `--compare A.json B.json` to print the ratios.

    python benchmarks/build_timings.py --out native.json           # native build
    build/venv-wheel-smoke/bin/python benchmarks/build_timings.py --out portable.json
    python benchmarks/build_timings.py --compare native.json portable.json

Every kernel runs on `--threads` OpenMP threads (default 2), median of `--repeat` calls.
The short calls (SOAP, the local correlation map: 5-20 ms) need more repeats than the
others to be compared to 10%: `--only soap_nacl_1728_atoms,local_correlation_map_512
--repeat 60`.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from spectral_cube import poisson_cube, poisson_cube_truth


def cpu() -> dict:
    """CPU model and vector flags from lscpu (Linux), for the record."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return {"model": platform.processor(), "flags": []}
    info = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    flags = [f for f in info.get("Flags", "").split() if f.startswith(("avx", "fma", "sse4"))]
    return {"model": info.get("Model name", "").strip(), "flags": sorted(flags)}


def median_seconds(fn, repeat: int) -> float:
    fn()  # warm-up (thread pool, caches)
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def run(threads: int, repeat: int, only: list[str] | None = None) -> dict:
    import ase.build

    import matchar as mc

    mc.set_num_threads(threads)
    X = poisson_cube(25_600, 1024, counts=1000.0)
    maps, spectra = poisson_cube_truth(25_600, 1024, counts=1000.0)
    rng = np.random.default_rng(0)
    img = mc.datasets.bicrystal(15.0, shape=(512, 512), dose=50, seed=0)[0]
    G = rng.random((4000, 2000))
    H = rng.random((1000, 2000))
    crystal = ase.build.bulk("NaCl", "rocksalt", a=5.64, cubic=True).repeat((6, 6, 6))
    soap = mc.atoms.SOAP(cutoff=5.0, species=["Na", "Cl"])

    # a fixed start (no SVD initialisation) and no residual scan: the time is that of the
    # iterations; the scan is timed on its own
    W0 = rng.random((X.shape[0], 4)).astype(np.float32) + 0.1
    H0 = rng.random((4, X.shape[1])).astype(np.float32) + 0.1

    def nmf(loss: str, iters: int = 10):
        def call():
            est = mc.spectral.NMF(
                4, loss=loss, max_iter=iters, tol=0.0, init=(W0, H0), anomaly_fdr=None
            )
            est.fit(X)

        return call

    kernels = {
        "nmf_kl_10_iterations": nmf("kl"),
        "nmf_frobenius_10_iterations": nmf("frobenius"),
        "pca_poisson": lambda: mc.spectral.PCA(4, random_state=0).fit(X),
        "residual_anomalies_160x160": lambda: mc.spectral.residual_anomalies(
            X.reshape(160, 160, -1), maps.reshape(160, 160, -1), spectra
        ),
        "local_correlation_map_512": lambda: mc.imaging.local_correlation_map(img),
        "soap_nacl_1728_atoms": lambda: soap.compute([crystal]),
        "polynomial_kernel_4000x1000x2000": lambda: mc.gp.polynomial_kernel(G, H, zeta=2),
        "simulate_haadf_2048": lambda: mc.imaging.simulate_haadf(
            "fcc", (1, 1, 0), 3.6, shape=(2048, 2048), seed=0
        ),
        "simulate_cbed_96_x64": lambda: [
            mc.imaging.simulate_cbed("bcc", (1, 0, 0), 2.87, seed=i) for i in range(64)
        ],
    }
    return {
        "matchar": mc.__version__,
        "module": mc._core.__file__,
        "build_info": mc._core.build_info(),
        "cpu": cpu(),
        "threads": threads,
        "repeat": repeat,
        "seconds": {
            name: median_seconds(fn, repeat)
            for name, fn in kernels.items()
            if only is None or name in only
        },
    }


def compare(a: dict, b: dict) -> str:
    lines = [f"{'kernel':34s} {'A (s)':>9s} {'B (s)':>9s} {'B/A':>6s}"]
    for name, ta in a["seconds"].items():
        tb = b["seconds"].get(name)
        if tb is not None:
            lines.append(f"{name:34s} {ta:9.4f} {tb:9.4f} {tb / ta:6.2f}")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--out", type=Path)
    p.add_argument(
        "--only", default=None, help="comma-separated kernel names (default: every kernel)"
    )
    p.add_argument("--compare", nargs=2, type=Path, metavar=("A", "B"))
    args = p.parse_args()
    if args.compare:
        a, b = (json.loads(path.read_text()) for path in args.compare)
        print(compare(a, b))
        return
    result = run(args.threads, args.repeat, None if args.only is None else args.only.split(","))
    from _results import write_results

    write_results("build_timings", {"seconds": result["seconds"]}, extra={"build": result})
    text = json.dumps(result, indent=1)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
