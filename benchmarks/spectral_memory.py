"""Peak resident memory of one fit, relative to the input array, each in a fresh process.

Run: OMP_NUM_THREADS=2 python benchmarks/spectral_memory.py [n_pixels n_channels iterations]

The cube is written to a temporary .npy file; a child process loads it (np.load, no
temporaries), reads its resident size, fits, and reports the growth of ru_maxrss (which
covers C++ allocations, unlike tracemalloc) over the size of the input.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, resource, sys, warnings
import numpy as np
path, impl, K, iters = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
X = np.load(path)
if impl.endswith("float32"):
    X = X.astype(np.float32)
rng = np.random.default_rng(1)
W0 = (rng.random((X.shape[0], K)) + 0.1).astype(np.float32)
H0 = (rng.random((K, X.shape[1])) + 0.1).astype(np.float32)
import matchar as mc
from sklearn.decomposition import NMF
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()
before = rss()
if impl.startswith("sklearn"):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        NMF(K, solver="mu", beta_loss="kullback-leibler", init="custom", max_iter=iters,
            tol=0).fit(X, W=W0, H=H0)
else:
    mc.spectral.NMF(K, max_iter=iters, tol=0, init=(W0, H0)).fit(X)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps(dict(impl=impl, input_bytes=X.nbytes, growth_bytes=peak - before)))
"""


def main() -> None:
    n, c, iters = (int(a) for a in sys.argv[1:4]) if len(sys.argv) > 3 else (16384, 1024, 5)
    sys.path.insert(0, str(Path(__file__).parent))
    import numpy as np
    from spectral_cube import poisson_cube

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cube.npy"
        np.save(path, poisson_cube(n, c))
        for impl in ("matchar uint16", "matchar float32", "sklearn-mu float32"):
            out = subprocess.run(
                [sys.executable, "-c", CHILD, str(path), impl, "4", str(iters)],
                capture_output=True,
                text=True,
                check=True,
            )
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(
                f"{r['impl']:>20}: input {r['input_bytes'] / 2**20:7.1f} MiB, peak growth "
                f"during fit {r['growth_bytes'] / 2**20:7.1f} MiB = "
                f"{r['growth_bytes'] / r['input_bytes']:.2f}x the input"
            )


if __name__ == "__main__":
    main()
