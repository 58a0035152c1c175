"""PhysicsNMF against a dense NumPy implementation of the same updates, same data and init.

espm itself runs in its own environment (benchmarks/espm_compare.py); this in-process
peer is the NumPy dense implementation of exactly PhysicsNMF's iteration (W H and X/(W H)
materialised in float64, as espm does), from tests/spectral/physics_reference.py.

Run: OMP_NUM_THREADS=2 python -m pytest benchmarks/test_bench_edx.py --benchmark-only \
        --benchmark-group-by=group --benchmark-columns=min,median,max
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import matchar as mc

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "spectral"))
from physics_reference import physics_nmf_iterations
from test_physics_nmf import ELEMENTS, three_phase_cube

ITER = 10


@pytest.fixture(scope="module")
def problem():
    model = mc.spectral.EDXModel(ELEMENTS, (0.0, 0.02, 1000), low_cut_keV=0.0)
    X, _ = three_phase_cube(model, 200, shape=(64, 64))
    rng = np.random.default_rng(0)
    E = model.G.shape[1]
    W0 = rng.random((E, 3)) + 0.1
    W0[: len(ELEMENTS)] /= W0[: len(ELEMENTS)].sum(0)
    A0 = rng.random((64 * 64, 3)) * 100 + 1
    return model, X, A0, W0


def test_physics_nmf_matchar(benchmark, problem):
    model, X, A0, W0 = problem
    benchmark.group = "physics_nmf 4096x1000 K=3, 10 iterations"

    def run():
        est = mc.spectral.PhysicsNMF(
            model, 3, simplex="W", max_iter=ITER, tol=0, init=(A0, W0), dtype="float64"
        )
        return est.fit_transform(X)

    maps = benchmark.pedantic(run, rounds=3, iterations=1)
    A_ref, _, _ = physics_nmf_iterations(
        X.reshape(-1, X.shape[-1]),
        A0,
        W0,
        model.G,
        (64, 64),
        ITER,
        0.0,
        0.0,
        1.0,
        "W",
        len(ELEMENTS),
    )
    np.testing.assert_allclose(maps.reshape(-1, 3), A_ref, rtol=1e-6, atol=1e-8)


def test_physics_nmf_numpy_dense(benchmark, problem):
    model, X, A0, W0 = problem
    benchmark.group = "physics_nmf 4096x1000 K=3, 10 iterations"
    Xd = X.reshape(-1, X.shape[-1]).astype(np.float64)

    def run():
        return physics_nmf_iterations(
            Xd, A0, W0, model.G, (64, 64), ITER, 0.0, 0.0, 1.0, "W", len(ELEMENTS)
        )

    benchmark.pedantic(run, rounds=3, iterations=1)
