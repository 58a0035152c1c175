"""simulate_haadf and the C++ column renderer, against a NumPy reference."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import threadpoolctl

import matchar as mc
from matchar import _core
from matchar.imaging._simulate import (
    ZONE_AXES,
    column_weights,
    haadf_params,
    normalize_zone_axis,
    probe_sigma,
    projected_cell,
)

# the kernel at each output dtype (the binding's dtype argument)
RENDER = {
    dt: functools.partial(_core.imaging.render_haadf, dtype=dt) for dt in (np.float32, np.float64)
}


def reference_render(columns, p, rows, cols):
    """Noise-free rendering (thermal_sigma = jitter = 0), straight from the definition."""
    a1, a2 = np.array(p[0:2]), np.array(p[2:4])
    origin, ps, s = np.array(p[4:6]), p[6], p[7]
    r = np.arange(rows)[:, None]
    c = np.arange(cols)[None, :]
    x = c * ps + r * p[13] + 0.0 * c
    y = r * (ps + p[14]) + 0.0 * c
    img = np.zeros((rows, cols))
    n = 24
    for i in range(-n, n + 1):
        for j in range(-n, n + 1):
            for fx, fy, w in columns:
                pos = origin + (i + fx) * a1 + (j + fy) * a2
                d2 = (x - pos[0]) ** 2 + (y - pos[1]) ** 2
                g = w / (2 * np.pi * s * s) * np.exp(-d2 / (2 * s * s))
                g[np.abs(x - pos[0]) > 5 * s] = 0.0  # the kernel's 5-sigma truncation
                g[np.abs(y - pos[1]) > 5 * s] = 0.0
                img += g
    m = img.mean()
    b = p[9]
    return (img + b * m) / ((1 + b) * m)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "proto,zone", [("fcc", (1, 1, 0)), ("hcp", (2, -1, -1, 0)), ("diamond", (1, 1, 0))]
)
def test_render_matches_reference(dtype, proto, zone):
    cell = projected_cell(proto, zone)
    cols = column_weights(cell, 3.9, 29)
    p = haadf_params(
        cell,
        3.9,
        23.0,
        0.3,
        origin=(1.3, 2.1),
        probe=0.4,
        thermal_sigma=0.0,
        background=0.2,
        drift=(0.01, -0.02),
    )
    rows, ncols = 17, 23  # odd shapes
    got = RENDER[dtype](
        cols, np.array([0, len(cols)]), np.zeros(1, np.int64), p[None], rows, ncols, 7
    )[0]
    assert got.dtype == dtype
    ref = reference_render(cols, p, rows, ncols)
    tol = 2e-5 if dtype == np.float32 else 1e-9
    np.testing.assert_allclose(got, ref, rtol=tol, atol=tol)


def test_batch_mixes_motifs_and_is_thread_independent():
    cells = [projected_cell(p, z) for p, z in ZONE_AXES[:3]]
    cols = np.concatenate([c.columns for c in cells])
    offs = np.array([0, *np.cumsum([len(c.columns) for c in cells])], np.int64)
    idx = np.array([2, 0, 1, 2, 0], np.int64)
    params = np.stack(
        [
            haadf_params(
                cells[k],
                3.0 + 0.1 * n,
                10.0 * n,
                0.25,
                probe=0.35,
                thermal_sigma=0.05,
                dose=300,
                read_noise=0.02,
                jitter=0.03,
            )
            for n, k in enumerate(idx)
        ]
    )
    a = RENDER[np.float32](cols, offs, idx, params, 32, 32, 11)
    with threadpoolctl.threadpool_limits(1, user_api="openmp"):
        b = RENDER[np.float32](cols, offs, idx, params, 32, 32, 11)
    np.testing.assert_array_equal(a, b)
    # image n depends only on (seed, n) and its own parameters
    one = RENDER[np.float32](cols, offs, idx[:2], params[:2], 32, 32, 11)
    np.testing.assert_array_equal(one, a[:2])
    # the noise-free part of each image matches its motif rendered alone
    clean = params.copy()
    clean[:, 8] = clean[:, 10] = clean[:, 11] = clean[:, 12] = 0.0
    c = RENDER[np.float64](cols, offs, idx, clean, 32, 32, 0)
    for n, k in enumerate(idx):
        ref = reference_render(cells[k].columns, clean[n], 32, 32)
        np.testing.assert_allclose(c[n], ref, rtol=1e-9, atol=1e-9)


def test_dose_gives_poisson_statistics():
    img = mc.imaging.simulate_haadf(
        "fcc", (1, 0, 0), 4.0, shape=(64, 64), pixel_size=0.2, thermal_sigma=0.0, seed=1
    )
    n = 120
    stack = np.stack(
        [
            mc.imaging.simulate_haadf(
                "fcc",
                (1, 0, 0),
                4.0,
                shape=(64, 64),
                pixel_size=0.2,
                dose=dose,
                thermal_sigma=0.0,
                seed=s,
            )
            for s, dose in enumerate([20.0] * n)
        ]
    )
    np.testing.assert_allclose(stack.mean(0), img, atol=5 * np.sqrt(img.max() / 20 / n) + 1e-3)
    var = stack.var(0) * 20.0  # counts variance / dose = mean intensity for Poisson
    assert abs(var.mean() / img.mean() - 1.0) < 0.05
    counts = stack * 20.0
    np.testing.assert_allclose(counts, np.round(counts), atol=1e-3)  # integer counts


def test_scan_jitter_shifts_lines():
    kw = dict(shape=(96, 96), pixel_size=0.15, thermal_sigma=0.0)
    clean = mc.imaging.simulate_haadf("bcc", (1, 0, 0), 3.3, seed=0, **kw)
    jit = mc.imaging.simulate_haadf("bcc", (1, 0, 0), 3.3, seed=0, scan_jitter=0.3, **kw)
    assert not np.allclose(clean, jit)
    # every scan line of the jittered image is a shifted copy of the clean line profile
    shifts = []
    xs = np.arange(96) * 0.15
    for r in range(10, 86, 5):
        best = min(
            np.linspace(-1.2, 1.2, 241),
            key=lambda d: np.sum((np.interp(xs + d, xs, clean[r]) - jit[r])[10:-10] ** 2),
        )
        shifts.append(best)
    assert 0.15 < np.std(shifts) < 0.5


def test_projected_cells():
    # nearest column spacing (lattice constant 1) and symmetry orders
    expect = {
        ("fcc", (1, 0, 0)): (0.5, 4),
        ("fcc", (1, 1, 1)): (1 / np.sqrt(6), 6),
        ("bcc", (1, 0, 0)): (1 / np.sqrt(2), 4),
        ("bcc", (1, 1, 1)): (np.sqrt(2 / 3), 6),
        ("hcp", (0, 0, 0, 1)): (1 / np.sqrt(3), 6),
        ("diamond", (1, 1, 0)): (0.25, 2),
        ("fcc", (1, 1, 0)): (np.sqrt(2) / 4 * np.sqrt(1 + 2), 2),
    }
    for (p, z), (d, n) in expect.items():
        c = projected_cell(p, z)
        pts = np.array(
            [
                (i + fx) * c.a1 + (j + fy) * c.a2
                for i in range(-3, 4)
                for j in range(-3, 4)
                for fx, fy, _ in c.columns
            ]
        )
        dist = np.linalg.norm(pts[:, None] - pts[None], axis=-1)
        nn = dist[dist > 1e-9].min()
        assert nn == pytest.approx(d, rel=1e-9), (p, z)
        assert c.symmetry_order == n, (p, z)
    # projected atom density: sum of weights x cell area = atoms per volume (per a^3)
    for p, z in ZONE_AXES:
        c = projected_cell(p, z)
        area = abs(c.a1[0] * c.a2[1] - c.a1[1] * c.a2[0])
        density = c.columns[:, 2].sum() / area
        per_cell = {"fcc": 4, "bcc": 2, "diamond": 8}.get(p)
        want = per_cell if per_cell else 2 / (np.sqrt(3) / 2 * np.sqrt(8 / 3))
        assert density == pytest.approx(want, rel=1e-9), (p, z)


def test_zone_axis_forms():
    assert normalize_zone_axis("hcp", (2, 1, 0)) == (1, 0, -1, 0)
    assert normalize_zone_axis("hcp", (0, 0, 1)) == (0, 0, 0, 1)
    assert normalize_zone_axis("fcc", (2, 2, 0)) == (1, 1, 0)
    a = mc.imaging.simulate_haadf("hcp", (1, 0, 0), 3.2, shape=(40, 40), seed=0, thermal_sigma=0.0)
    b = mc.imaging.simulate_haadf(
        "hcp", (2, -1, -1, 0), 3.2, shape=(40, 40), seed=0, thermal_sigma=0.0
    )
    np.testing.assert_array_equal(a, b)


def test_probe_sigma():
    # 300 kV: lambda = 0.019687 A; FWHM = 0.51 lambda / alpha
    assert probe_sigma(300, 25, 0) == pytest.approx(0.51 * 0.019687 / 0.025 / 2.35482, rel=1e-3)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(prototype="sc"), "prototype"),
        (dict(zone_axis=(1, 0)), "zone_axis"),
        (dict(zone_axis=(0, 0, 0)), "zone_axis"),
        (dict(prototype="hcp", zone_axis=(1, 1, 1, 0)), "U \\+ V \\+ T"),
        (dict(lattice_constant=float("nan")), "lattice_constant"),
        (dict(lattice_constant=-1.0), "lattice_constant"),
        (dict(pixel_size=0.0), "pixel_size"),
        (dict(shape=(0, 5)), "shape"),
        (dict(dose=-3.0), "dose"),
        (dict(thermal_sigma=float("inf")), "thermal_sigma"),
        (dict(rotation_deg=float("nan")), "rotation_deg"),
    ],
)
def test_bad_input(kwargs, match):
    args = dict(prototype="fcc", zone_axis=(1, 0, 0), lattice_constant=4.0, shape=(16, 16))
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        mc.imaging.simulate_haadf(**args)


def test_huge_shape_and_fine_lattice():
    with pytest.raises(MemoryError):
        mc.imaging.simulate_haadf("fcc", (1, 0, 0), 4.0, shape=(1 << 20, 1 << 20))
    with pytest.raises(ValueError, match="too fine"):
        mc.imaging.simulate_haadf("fcc", (1, 0, 0), 1e-4, shape=(64, 64))


def test_kernel_rejects_bad_tables():
    cell = projected_cell("fcc", (1, 0, 0))
    p = haadf_params(cell, 4.0, 0.0, 0.2)[None]
    cols = cell.columns
    off = np.array([0, len(cols)])
    r = RENDER[np.float32]
    with pytest.raises(ValueError, match="motif_index"):
        r(cols, off, np.array([1], np.int64), p, 8, 8, 0)
    bad = p.copy()
    bad[0, 7] = 0.0
    with pytest.raises(ValueError, match="probe_sigma"):
        r(cols, off, np.zeros(1, np.int64), bad, 8, 8, 0)
    bad = p.copy()
    bad[0, 2:4] = bad[0, 0:2]
    with pytest.raises(ValueError, match="collinear"):
        r(cols, off, np.zeros(1, np.int64), bad, 8, 8, 0)
    with pytest.raises(ValueError, match="params"):
        r(cols, off, np.zeros(2, np.int64), p, 8, 8, 0)
    neg = cols.copy()
    neg[0, 2] = -1
    with pytest.raises(ValueError, match="weights"):
        r(neg, off, np.zeros(1, np.int64), p, 8, 8, 0)
    before = p.copy()
    r(cols, off, np.zeros(1, np.int64), p, 8, 8, 0)
    np.testing.assert_array_equal(p, before)


def test_non_contiguous_tables_and_float_dtypes():
    cell = projected_cell("bcc", (1, 1, 0))
    cols = column_weights(cell, 3.3, 74)
    p = haadf_params(cell, 3.3, 5.0, 0.2, probe=0.3, thermal_sigma=0.0)
    wide = np.zeros((1, 2 * len(p)))
    wide[0, ::2] = p  # a strided (non-contiguous) view
    cols_f = np.asfortranarray(cols)
    args = (np.array([0, len(cols)]), np.zeros(1, np.int64))
    ref = RENDER[np.float64](cols, *args, p[None], 21, 19, 0)
    got = RENDER[np.float64](cols_f, *args, wide[:, ::2], 21, 19, 0)
    np.testing.assert_array_equal(got, ref)
    got32 = RENDER[np.float32](cols_f.astype(np.float32), *args, wide[:, ::2], 21, 19, 0)
    np.testing.assert_allclose(got32, ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(wide[0, ::2], p)  # the caller's table is untouched


def test_ctrl_c_interrupts_render(ctrl_c):
    ctrl_c(
        """
        import numpy as np
        from matchar import _core
        from matchar.imaging._simulate import projected_cell, haadf_params
        cell = projected_cell("fcc", (1, 0, 0))
        n = 60000
        p = np.tile(haadf_params(cell, 2.5, 0.0, 0.25, dose=20.0), (n, 1))
        """,
        "_core.imaging.render_haadf(cell.columns, np.array([0, 1]), np.zeros(n, np.int64), "
        "p, 64, 64, 0, np.float32)",
        wait=1.5,
    )
