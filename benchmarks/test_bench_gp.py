"""polynomial_kernel against the NumPy chain it fuses, same data, same group.

Run: python -m pytest benchmarks/test_bench_gp.py --benchmark-only \
        --benchmark-group-by=group --benchmark-columns=min,median,max
(MATCHAR_BENCH_BIG=1 adds the 100000 x 2000 x 5000 target case; run it alone with
 -k "100000 and float32" and OMP_NUM_THREADS=2.)
"""

from __future__ import annotations

import os

import pytest

import matchar as mc
from matchar._bench import kernel_features, numpy_polynomial_kernel


def numpy_gemm(X, Y, zeta=2):
    """The single BLAS GEMM of the same shape: the floor any kernel is measured against."""
    return X @ Y.T


CASES = {
    # ShiftML-like: many environments against a sparse set, SOAP-sized features.
    "sparse-set 20000x1000, d=2000": (20000, 1000, 2000),
    # Gram matrix of a sparse set (matchar uses the symmetry when Y is None).
    "gram 4000x4000, d=2000": (4000, None, 2000),
}
if os.environ.get("MATCHAR_BENCH_BIG"):
    # the sparse-GP target shape (X 2 GB in float32, 4 GB in float64; output 0.8 / 1.6 GB;
    # one GEMM is 2e12 flop: ~10-40 s on 2 cores)
    CASES["sparse-set 100000x2000, d=5000"] = (100000, 2000, 5000)


@pytest.fixture(scope="module", params=list(CASES), ids=list(CASES))
def case(request):
    return request.param


_DATA: dict = {}


def _data(name: str, dtype: str):
    """X, Y of a case, generated directly in dtype (no float64 original held next to the
    float32 copy: the big case's X is 2 GB in float32); only the latest case is kept."""
    if (name, dtype) not in _DATA:
        _DATA.clear()
        _DATA[(name, dtype)] = kernel_features(*CASES[name], dtype=dtype)
    return _DATA[(name, dtype)]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("impl", ["numpy", "matchar", "numpy GEMM only"])
def test_polynomial_kernel(benchmark, case, dtype, impl):
    name = case
    if impl == "numpy GEMM only" and CASES[name][1] is None:
        pytest.skip("the GEMM floor is measured for rectangular kernels")
    X, Y = _data(name, dtype)
    benchmark.group = f"polynomial_kernel {name} {dtype}"
    if impl == "matchar":
        args = (X, Y)
        fn = mc.gp.polynomial_kernel
    else:
        args = (X, X if Y is None else Y)
        fn = numpy_polynomial_kernel if impl == "numpy" else numpy_gemm
    K = benchmark.pedantic(fn, args=args, rounds=3, iterations=1, warmup_rounds=1)
    assert K.shape == (X.shape[0], X.shape[0] if Y is None else Y.shape[0])
