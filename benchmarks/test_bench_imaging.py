"""local_correlation_map against the scipy.ndimage.uniform_filter formulation.

Same image, same shifts, same group, one run:

    python -m pytest benchmarks/test_bench_imaging.py --benchmark-only \
        --benchmark-group-by=group --benchmark-columns=min,median,max
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import uniform_filter

import matchar as mc


def scipy_local_correlation_map(image, patch, window, shifts, stride=1):
    """The NumPy/SciPy reference: box filters of products, float64, one shift at a time."""
    c = np.asarray(image, dtype=np.float64)
    c = c - c.mean()
    H, W = c.shape
    m = patch + window
    size = 2 * patch + 1
    mu = uniform_filter(c, size, mode="constant")
    sd = np.sqrt(np.maximum(uniform_filter(c * c, size, mode="constant") - mu * mu, 0))
    ys = slice(m, H - m, stride)
    xs = slice(m, W - m, stride)
    out = np.empty((len(range(H)[ys]), len(range(W)[xs]), len(shifts)), dtype=np.float32)
    prod = np.empty_like(c)
    for k, (dy, dx) in enumerate(shifts):
        prod[:] = 0.0
        prod[max(0, -dy) : H - max(0, dy), max(0, -dx) : W - max(0, dx)] = (
            c[max(0, -dy) : H - max(0, dy), max(0, -dx) : W - max(0, dx)]
            * c[max(0, dy) : H + min(0, dy), max(0, dx) : W + min(0, dx)]
        )
        mab = uniform_filter(prod, size, mode="constant")
        q = (slice(m + dy, H - m + dy, stride), slice(m + dx, W - m + dx, stride))
        out[..., k] = (mab[ys, xs] - mu[ys, xs] * mu[q]) / (sd[ys, xs] * sd[q])
    return out


CASES = {
    "1024x1024 uint16, patch=window=20, 100 shifts, stride 1": ((1024, 1024), 1),
    "1024x1024 uint16, patch=window=20, 100 shifts, stride 4": ((1024, 1024), 4),
}


@pytest.fixture(scope="module", params=list(CASES), ids=list(CASES))
def case(request):
    shape, stride = CASES[request.param]
    rng = np.random.default_rng(0)
    y, x = np.mgrid[: shape[0], : shape[1]]
    lattice = np.cos(2 * np.pi * x / 9.0) + np.cos(2 * np.pi * (0.4 * x + y) / 9.0)
    image = rng.poisson(200 + 60 * lattice).astype(np.uint16)
    return request.param, image, stride


@pytest.mark.parametrize("impl", ["scipy", "matchar"])
def test_local_correlation_map(benchmark, case, impl):
    name, image, stride = case
    benchmark.group = f"local_correlation_map {name}"
    shifts = mc.imaging.default_shifts(20, 100)
    if impl == "matchar":
        maps, _ = benchmark.pedantic(
            mc.imaging.local_correlation_map,
            args=(image, 20, 20, 100, stride),
            rounds=3,
            iterations=1,
            warmup_rounds=1,
        )
    else:
        maps = benchmark.pedantic(
            scipy_local_correlation_map,
            args=(image, 20, 20, shifts, stride),
            rounds=3,
            iterations=1,
            warmup_rounds=0,
        )
    assert maps.shape[2] == 100
    assert maps.shape[0] == -(-(1024 - 80) // stride)


# The two paths of local_correlation_map on all 840 shifts of window 20 (pySTEM's full
# correlation map) and on the default 100: where the FFT path overtakes the box sums.
PATH_CASES = [(840, 8), (840, 16), (840, 24), (840, 32), (100, 32), (100, 64)]


@pytest.fixture(scope="module")
def lattice_1024():
    rng = np.random.default_rng(0)
    y, x = np.mgrid[:1024, :1024]
    lattice = np.cos(2 * np.pi * x / 9.0) + np.cos(2 * np.pi * (0.4 * x + y) / 9.0)
    return rng.poisson(200 + 60 * lattice).astype(np.uint16)


@pytest.mark.parametrize(
    ("n_shifts", "stride"), PATH_CASES, ids=[f"S{s}-stride{t}" for s, t in PATH_CASES]
)
@pytest.mark.parametrize("method", ["boxsum", "fft"])
def test_lcm_paths(benchmark, lattice_1024, n_shifts, stride, method):
    benchmark.group = f"lcm paths 1024x1024 patch=window=20 S={n_shifts} stride {stride}"
    benchmark.extra_info["auto"] = mc.imaging.lcm_cost(20, 20, n_shifts, stride)["best"]
    maps, _ = benchmark.pedantic(
        mc.imaging.local_correlation_map,
        args=(lattice_1024, 20, 20, n_shifts, stride),
        kwargs={"method": method},
        rounds=3,
        iterations=1,
        warmup_rounds=0,
    )
    assert maps.shape == (-(-944 // stride), -(-944 // stride), n_shifts)
