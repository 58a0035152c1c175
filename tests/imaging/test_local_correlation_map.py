"""matchar.imaging.local_correlation_map against box-filter and brute-force references."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import uniform_filter

import matchar as mc


def reference_lcm(image, patch, window, shifts, stride=1):
    """uniform_filter on products (float64): the textbook box-filter formulation."""
    c = np.asarray(image, dtype=np.float64)
    c = c - c.mean()
    H, W = c.shape
    m = patch + window
    size = 2 * patch + 1
    mu = uniform_filter(c, size, mode="constant")
    var = uniform_filter(c * c, size, mode="constant") - mu * mu
    ys = np.arange(m, H - m, stride)
    xs = np.arange(m, W - m, stride)
    out = np.empty((len(ys), len(xs), len(shifts)))
    for k, (dy, dx) in enumerate(shifts):
        shifted = np.roll(c, (-dy, -dx), axis=(0, 1))  # shifted[y, x] = c[y + dy, x + dx]
        mab = uniform_filter(c * shifted, size, mode="constant")
        cov = mab[np.ix_(ys, xs)] - mu[np.ix_(ys, xs)] * mu[np.ix_(ys + dy, xs + dx)]
        out[..., k] = cov / np.sqrt(var[np.ix_(ys, xs)] * var[np.ix_(ys + dy, xs + dx)])
    return out


def brute_force_pearson(image, p, s, patch):
    """np.corrcoef of the two neighbourhoods themselves."""
    img = np.asarray(image, dtype=np.float64)
    (y, x), (dy, dx) = p, s
    a = img[y - patch : y + patch + 1, x - patch : x + patch + 1]
    b = img[y + dy - patch : y + dy + patch + 1, x + dx - patch : x + dx + patch + 1]
    return np.corrcoef(a.ravel(), b.ravel())[0, 1]


def lattice_image(rng, shape, noise=0.3):
    y, x = np.mgrid[: shape[0], : shape[1]]
    clean = np.cos(2 * np.pi * x / 7.0) + np.cos(2 * np.pi * (0.3 * x + y) / 9.0)
    return clean + noise * rng.standard_normal(shape)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("stride", [1, 2, 3, 7])
@pytest.mark.parametrize(("shape", "patch", "window"), [((61, 75), 4, 6), ((47, 33), 2, 3)])
def test_matches_box_filter_reference(dtype, stride, shape, patch, window):
    rng = np.random.default_rng(stride + shape[0])
    image = lattice_image(rng, shape).astype(dtype)
    maps, shifts = mc.imaging.local_correlation_map(
        image, patch=patch, window=window, n_shifts=20, stride=stride
    )
    ref = reference_lcm(image, patch, window, shifts, stride)
    assert maps.dtype == np.float32
    assert maps.shape == ref.shape
    assert shifts.shape == (20, 2)
    np.testing.assert_allclose(maps, ref, rtol=0, atol=2e-6)


def test_output_shape_formula():
    image = np.random.default_rng(0).random((100, 131))
    for stride in (1, 2, 5, 9):
        maps, _ = mc.imaging.local_correlation_map(image, 5, 7, 10, stride)
        m = 12
        assert maps.shape[:2] == (-(-(100 - 2 * m) // stride), -(-(131 - 2 * m) // stride))


def test_brute_force_pixels_and_explicit_shifts():
    rng = np.random.default_rng(1)
    image = lattice_image(rng, (70, 80))
    shifts = np.array([[0, 6], [-3, 5], [6, -6], [-6, -6], [2, 0]])
    patch, window, stride = 5, 6, 3
    maps, used = mc.imaging.local_correlation_map(
        image, patch=patch, window=window, stride=stride, shifts=shifts
    )
    np.testing.assert_array_equal(used, shifts)
    m = patch + window
    for i, j in [(0, 0), (3, 5), (maps.shape[0] - 1, maps.shape[1] - 1), (7, 2)]:
        for k, s in enumerate(shifts):
            expected = brute_force_pearson(image, (m + i * stride, m + j * stride), s, patch)
            assert maps[i, j, k] == pytest.approx(expected, abs=2e-6)


def test_stride_larger_than_neighbourhood():
    rng = np.random.default_rng(2)
    image = lattice_image(rng, (90, 90))
    maps, shifts = mc.imaging.local_correlation_map(image, patch=2, window=4, n_shifts=12, stride=6)
    np.testing.assert_allclose(maps, reference_lcm(image, 2, 4, shifts, 6), atol=2e-6)


def test_perfect_lattice_gives_one_at_lattice_vectors():
    y, x = np.mgrid[:80, :80]
    image = np.cos(2 * np.pi * x / 8) * np.cos(2 * np.pi * y / 8)
    maps, _ = mc.imaging.local_correlation_map(
        image, patch=6, window=8, shifts=[[0, 8], [8, 0], [8, 8], [0, 4]]
    )
    np.testing.assert_allclose(maps[..., :3], 1.0, atol=1e-5)
    np.testing.assert_allclose(maps[..., 3], -1.0, atol=1e-5)


def test_uint16_with_large_offset_is_accurate():
    # HAADF-like: counts near the top of uint16 with a small modulation; sums of squares
    # of the raw values would lose everything to cancellation in float32.
    rng = np.random.default_rng(3)
    mod = lattice_image(rng, (64, 64), noise=0.5)
    image = (60000 + 40 * mod).astype(np.uint16)
    maps, shifts = mc.imaging.local_correlation_map(image, patch=4, window=5, n_shifts=15)
    ref = reference_lcm(image.astype(np.float64), 4, 5, shifts)
    np.testing.assert_allclose(maps, ref, atol=2e-6)
    maps64, _ = mc.imaging.local_correlation_map(image.astype(np.float64), 4, 5, 15)
    np.testing.assert_array_equal(maps, maps64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layouts_fortran_and_sliced(dtype):
    rng = np.random.default_rng(4)
    base = lattice_image(rng, (120, 150)).astype(dtype)
    ref_maps, shifts = mc.imaging.local_correlation_map(np.ascontiguousarray(base), 4, 5, 10)
    maps_f, _ = mc.imaging.local_correlation_map(np.asfortranarray(base), 4, 5, 10)
    np.testing.assert_array_equal(maps_f, ref_maps)
    sliced = base[1::2, ::3]
    maps_s, _ = mc.imaging.local_correlation_map(sliced, 4, 5, 10)
    maps_c, _ = mc.imaging.local_correlation_map(np.ascontiguousarray(sliced), 4, 5, 10)
    np.testing.assert_array_equal(maps_s, maps_c)
    np.testing.assert_allclose(maps_s, reference_lcm(sliced, 4, 5, shifts), atol=2e-6)


def test_input_not_modified_and_lists_accepted():
    rng = np.random.default_rng(5)
    image = lattice_image(rng, (40, 40))
    before = image.copy()
    maps, _ = mc.imaging.local_correlation_map(image, 3, 4, 8)
    np.testing.assert_array_equal(image, before)
    maps_list, _ = mc.imaging.local_correlation_map(image.tolist(), 3, 4, 8)
    np.testing.assert_array_equal(maps, maps_list)


def test_thread_count_does_not_change_results():
    rng = np.random.default_rng(6)
    image = lattice_image(rng, (101, 97))
    old = mc.get_num_threads()
    try:
        mc.set_num_threads(1)
        one, _ = mc.imaging.local_correlation_map(image, 4, 6, 25)
        mc.set_num_threads(2)
        two, _ = mc.imaging.local_correlation_map(image, 4, 6, 25)
    finally:
        mc.set_num_threads(old)
    np.testing.assert_array_equal(one, two)


def test_flat_neighbourhood_gives_zero_not_nan():
    rng = np.random.default_rng(7)
    image = lattice_image(rng, (60, 60))
    image[:, :30] = 2.0  # the left half is flat
    maps, _ = mc.imaging.local_correlation_map(image, 3, 4, 10)
    assert np.isfinite(maps).all()
    assert np.all(maps[:, :5] == 0.0)
    assert np.abs(maps).max() <= 1.0


def test_default_shifts_properties():
    s = mc.imaging.default_shifts(20, 100)
    assert s.shape == (100, 2)
    assert s.dtype == np.int32
    assert np.abs(s).max() <= 20
    # upper half-plane, no duplicates, no zero shift, shortest first
    assert np.all((s[:, 0] > 0) | ((s[:, 0] == 0) & (s[:, 1] > 0)))
    assert len({tuple(r) for r in s.tolist()}) == 100
    lengths = (s**2).sum(axis=1)
    assert np.all(np.diff(lengths) >= 0)
    # spread over the window: step 2 is the largest whose half-plane grid holds 100 points
    assert np.all(s % 2 == 0)
    assert lengths.max() > 15**2
    assert mc.imaging.default_shifts(2, 4).tolist() == [[0, 2], [2, 0], [2, 2], [2, -2]]
    assert mc.imaging.default_shifts(2, 5).tolist() == [[0, 1], [1, 0], [1, 1], [1, -1], [0, 2]]
    assert len(mc.imaging.default_shifts(3, 24)) == 24  # the whole half-plane


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(image=np.ones(50)), r"image must be a 2-D array"),
        (dict(image=np.ones((50, 50, 2))), r"image must be a 2-D array"),
        (dict(image=np.ones((50, 50, 3))), r"RGB"),
        (dict(image=np.ones((0, 50))), r"image is empty"),
        (dict(image=np.ones((50, 50), dtype=complex)), r"image must hold real numbers"),
        (dict(image=np.ones((20, 50)), patch=5, window=5), r"too small"),
        (dict(image=np.ones((50, 50))), r"constant"),
        (dict(patch=0), r"patch must be an integer in \[1, 2147483647\]"),
        (dict(window=-1), r"window must be an integer in \[1, 2147483647\]"),
        (dict(stride=0), r"stride must be an integer in \[1, 2147483647\]"),
        (dict(n_shifts=0), r"n_shifts must be an integer in \[1, 2147483647\]"),
        (dict(n_shifts=500, window=5), r"n_shifts must be between 1 and 60"),
        (dict(patch=1.5), r"patch must be an integer"),
        (dict(shifts=[[0, 9]], window=5), r"within \+-window"),
        (dict(shifts=[0, 1]), r"shifts must have shape"),
        (dict(shifts=[[0.5, 1]]), r"shifts must be integers"),
    ],
)
def test_bad_input(kwargs, match):
    args = dict(image=np.random.default_rng(0).random((50, 50)), patch=3, window=5, n_shifts=10)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        mc.imaging.local_correlation_map(**args)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_pixels(bad):
    image = np.random.default_rng(0).random((40, 40))
    image[10, 20] = bad
    with pytest.raises(ValueError, match=r"image.*NaN or infinite"):
        mc.imaging.local_correlation_map(image, 3, 4, 5)


def test_huge_output_raises_memory_error_before_allocating():
    # (2^20)^2 pixels x 100 shifts of float32 is ~400 TB; a broadcast view costs nothing.
    image = np.broadcast_to(np.float32(1.0), (2**20, 2**20))
    with pytest.raises(MemoryError, match="local_correlation_map output"):
        mc.imaging.local_correlation_map(image)


def test_ctrl_c_interrupts_local_correlation_map(ctrl_c):
    ctrl_c(
        """
        import numpy as np, matchar as mc
        image = np.random.default_rng(0).random((4096, 4096), dtype=np.float32)
        """,
        "mc.imaging.local_correlation_map(image, 20, 30, 1800, stride=32, method='boxsum')",  # ~6 s
        wait=1.5,
    )


def test_ctrl_c_interrupts_the_fft_path(ctrl_c):
    ctrl_c(
        """
        import numpy as np, matchar as mc
        image = np.random.default_rng(0).random((4096, 4096), dtype=np.float32)
        """,
        "mc.imaging.local_correlation_map(image, 20, 20, 100, stride=16, method='fft')",
        wait=1.5,
    )


@pytest.mark.parametrize("stride", [1, 3, 11])
def test_many_shifts_span_several_column_tiles(stride):
    # 300 shifts make the kernel split the 370 output columns into tiles of ~150 px.
    rng = np.random.default_rng(8)
    image = lattice_image(rng, (50, 400))
    maps, shifts = mc.imaging.local_correlation_map(
        image, patch=4, window=13, n_shifts=300, stride=stride
    )
    np.testing.assert_allclose(maps, reference_lcm(image, 4, 13, shifts, stride), atol=2e-6)


# --- the FFT path -------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint16])
@pytest.mark.parametrize("stride", [1, 4, 9])
@pytest.mark.parametrize(("shape", "patch", "window"), [((61, 75), 4, 6), ((47, 33), 2, 3)])
def test_fft_path_matches_reference(dtype, stride, shape, patch, window):
    rng = np.random.default_rng(stride + shape[1])
    image = lattice_image(rng, shape)
    if dtype == np.uint16:
        image = (30000 + 300 * image).astype(np.uint16)
    else:
        image = image.astype(dtype)
    maps, shifts = mc.imaging.local_correlation_map(
        image, patch=patch, window=window, n_shifts=20, stride=stride, method="fft"
    )
    ref = reference_lcm(image.astype(np.float64), patch, window, shifts, stride)
    assert maps.dtype == np.float32 and maps.shape == ref.shape
    np.testing.assert_allclose(maps, ref, rtol=0, atol=2e-6)
    box, _ = mc.imaging.local_correlation_map(
        image, patch=patch, window=window, n_shifts=20, stride=stride, method="boxsum"
    )
    np.testing.assert_allclose(maps, box, rtol=0, atol=1e-6)


def test_fft_path_non_contiguous_and_explicit_shifts():
    rng = np.random.default_rng(11)
    base = lattice_image(rng, (130, 170))
    sliced = base[1::2, ::2]  # (65, 85), strided
    fortran = np.asfortranarray(base)
    shifts = [[0, 5], [5, -5], [-3, 2], [4, 0]]  # any signs
    for img in (sliced, fortran):
        before = img.copy()
        maps, _ = mc.imaging.local_correlation_map(img, 4, 5, shifts=shifts, stride=3, method="fft")
        np.testing.assert_array_equal(img, before)
        ref = reference_lcm(np.ascontiguousarray(img), 4, 5, np.array(shifts), 3)
        np.testing.assert_allclose(maps, ref, atol=2e-6)


def test_fft_path_flat_and_bad_input():
    rng = np.random.default_rng(12)
    image = lattice_image(rng, (60, 60))
    image[:, :30] = 2.0
    maps, _ = mc.imaging.local_correlation_map(image, 3, 4, 10, method="fft")
    box, _ = mc.imaging.local_correlation_map(image, 3, 4, 10, method="boxsum")
    assert np.isfinite(maps).all()
    np.testing.assert_allclose(maps, box, atol=1e-6)
    with pytest.raises(ValueError, match="constant"):
        mc.imaging.local_correlation_map(np.ones((40, 40)), 3, 4, 5, method="fft")
    bad = image.copy()
    bad[5, 5] = np.nan
    with pytest.raises(ValueError, match=r"image.*NaN or infinite"):
        mc.imaging.local_correlation_map(bad, 3, 4, 5, method="fft")
    with pytest.raises(ValueError, match="too small"):
        mc.imaging.local_correlation_map(image[:14], 3, 4, 5, method="fft")
    with pytest.raises(ValueError, match="method must be"):
        mc.imaging.local_correlation_map(image, 3, 4, 5, method="direct")
    huge = np.broadcast_to(np.float32(1.0), (2**20, 2**20))
    with pytest.raises(MemoryError, match="local_correlation_map output"):
        mc.imaging.local_correlation_map(huge, method="fft")


def test_cost_model_picks_the_path():
    # stride 1: the box sums (every pixel once per shift) always win
    assert mc.imaging.lcm_cost(20, 20, 100, 1)["best"] == "boxsum"
    # the box-sum cost per output pixel grows as stride^2, the FFT cost does not
    costs = [mc.imaging.lcm_cost(20, 20, 840, s) for s in (4, 8, 16, 32, 64)]
    assert all(a["boxsum"] < b["boxsum"] for a, b in zip(costs, costs[1:]))
    assert len({c["fft"] for c in costs}) == 1
    assert costs[0]["best"] == "boxsum" and costs[-1]["best"] == "fft"
    with pytest.raises(ValueError, match="stride"):
        mc.imaging.lcm_cost(20, 20, 100, 0)


def test_auto_uses_the_cost_model(monkeypatch):
    from matchar.imaging import _correlation

    calls = []
    real = _correlation._fft_map

    def spy(*args):
        calls.append(args[-1])
        return real(*args)

    monkeypatch.setattr(_correlation, "_fft_map", spy)
    rng = np.random.default_rng(13)
    image = lattice_image(rng, (125, 125))
    mc.imaging.local_correlation_map(image, 20, 20, 840, stride=1)
    assert calls == []
    assert mc.imaging.lcm_cost(20, 20, 840, 40)["best"] == "fft"
    maps, shifts = mc.imaging.local_correlation_map(image, 20, 20, 840, stride=40)
    assert calls == [40]
    np.testing.assert_allclose(maps, reference_lcm(image, 20, 20, shifts, 40), atol=2e-6)


def test_misaligned_shift_array_is_copied_not_read_misaligned():
    # A shifts array unpickled on a dask worker can start at an odd byte; the binding must
    # hand the kernel an aligned copy (UBSan flagged the misaligned int loads in CI's
    # sanitizer run of the distributed tests). Same result as the aligned array.
    from matchar import _core

    rng = np.random.default_rng(0)
    image = rng.random((48, 48))
    shifts = _core.imaging.select_shifts(4, 10).astype(np.int32)
    raw = np.zeros(shifts.nbytes + 1, np.uint8)
    raw[1:] = shifts.reshape(-1).view(np.uint8)
    odd = np.frombuffer(raw.data, dtype=np.int32, count=shifts.size, offset=1).reshape(shifts.shape)
    assert not odd.flags.aligned and np.array_equal(odd, shifts)
    f = _core.imaging.local_correlation_map
    np.testing.assert_array_equal(f(image, 3, 4, odd, 1), f(image, 3, 4, shifts, 1))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_cpu_level_matches_the_reference(dtype):
    # The column sums have a copy per x86-64 level in builds not made for the host
    # (MATCHAR_ARCH=portable): every copy against the box-filter reference, on odd
    # shapes, sliding (stride 1, 2) and fresh (stride 7 > 2 patch + 1) boxes, a strided
    # view of the image.
    from matchar import _core

    info = _core.build_info()
    rng = np.random.default_rng(11)
    image = lattice_image(rng, (83, 2 * 67)).astype(dtype)[:, ::2]
    for level in info["cpu_levels"]:
        if level not in info["cpu_levels_supported"]:
            continue
        _core._set_cpu_level(level)
        try:
            for stride in (1, 2, 7):
                maps, shifts = mc.imaging.local_correlation_map(
                    image, patch=3, window=5, n_shifts=13, stride=stride
                )
                ref = reference_lcm(image, 3, 5, shifts, stride)
                np.testing.assert_allclose(maps, ref, rtol=0, atol=2e-6, err_msg=level)
        finally:
            _core._set_cpu_level("")
