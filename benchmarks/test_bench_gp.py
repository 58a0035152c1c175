"""polynomial_kernel against the NumPy chain it fuses, same data, same group.

Run: python -m pytest benchmarks/test_bench_gp.py --benchmark-only \
        --benchmark-group-by=group --benchmark-columns=min,median,max
"""

from __future__ import annotations

import numpy as np
import pytest

import matchar as mc


def numpy_polynomial_kernel(X, Y, zeta=2):
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    Yn = Y / np.linalg.norm(Y, axis=1, keepdims=True)
    return (Xn @ Yn.T) ** zeta


CASES = {
    # ShiftML-like: many environments against a sparse set, SOAP-sized features.
    "sparse-set 20000x1000, d=2000": (20000, 1000, 2000),
    # Gram matrix of a sparse set (matchar uses the symmetry when Y is None).
    "gram 4000x4000, d=2000": (4000, None, 2000),
}


@pytest.fixture(scope="module", params=list(CASES), ids=list(CASES))
def case(request):
    n, m, d = CASES[request.param]
    rng = np.random.default_rng(0)
    basis = rng.random((16, d))
    X = rng.random((n, 16)) @ basis
    return request.param, X, None if m is None else rng.random((m, 16)) @ basis


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("impl", ["numpy", "matchar"])
def test_polynomial_kernel(benchmark, case, dtype, impl):
    name, X, Y = case
    X = X.astype(dtype)
    Y = None if Y is None else Y.astype(dtype)
    benchmark.group = f"polynomial_kernel {name} {dtype}"
    if impl == "matchar":
        args = (X, Y)
        fn = mc.gp.polynomial_kernel
    else:
        args = (X, X if Y is None else Y)
        fn = numpy_polynomial_kernel
    K = benchmark.pedantic(fn, args=args, rounds=3, iterations=1, warmup_rounds=1)
    assert K.shape == (X.shape[0], X.shape[0] if Y is None else Y.shape[0])
