"""simulate_cbed and the C++ kinematic CBED kernel, against a NumPy reference."""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np
import pytest

import matchar as mc
from matchar import _core
from matchar.imaging._cbed import cbed_motif, cbed_params, zolz_reflections
from matchar.imaging._simulate import ZONE_AXES, projected_cell

# the kernel at each output dtype (the binding's dtype argument)
RENDER = {
    dt: functools.partial(_core.imaging.render_cbed, dtype=dt) for dt in (np.float32, np.float64)
}
A0 = 0.529177210903


def moliere(z, g):
    """Born scattering factor of the Thomas-Fermi atom with Moliere's screening (Å)."""
    a_tf = 0.88534 * A0 * z ** (-1 / 3)
    q2 = (2 * np.pi * np.asarray(g, dtype=float)) ** 2
    return (
        2
        * z
        / A0
        * sum(al / (q2 + (b / a_tf) ** 2) for al, b in [(0.35, 0.3), (0.55, 1.2), (0.1, 6)])
    )


# Conventional-cell atoms written out independently of the package.
FCC = [(0, 0, 0), (0, 0.5, 0.5), (0.5, 0, 0.5), (0.5, 0.5, 0)]
BASIS = {
    "fcc": FCC,
    "bcc": [(0, 0, 0), (0.5, 0.5, 0.5)],
    "diamond": FCC + [(x + 0.25, y + 0.25, z + 0.25) for x, y, z in FCC],
    "hcp": [(1 / 3, 2 / 3, 0.25), (2 / 3, 1 / 3, 0.75)],
}


def structure_factor(proto, hkl, z, g, sigma):
    phase = np.exp(2j * np.pi * (np.asarray(hkl, float) @ np.asarray(BASIS[proto]).T))
    return moliere(z, g) * np.exp(-2 * np.pi**2 * sigma**2 * g**2) * phase.sum(axis=-1)


def reference_cbed(
    proto,
    zone,
    a,
    rot,
    shape,
    ps,
    *,
    kv=300.0,
    alpha=2.0,
    thick=30.0,
    sigma=0.05,
    tilt=(0.0, 0.0),
    bg=0.0,
    z=29,
    center=None,
):
    """Noise-free pattern straight from the definition in cbed.hpp, vectorised over pixels."""
    rows, cols = shape
    cx, cy = ((cols - 1) / 2, (rows - 1) / 2) if center is None else center
    v = kv * 1e3
    lam = 12.2643 / math.sqrt(v * (1 + 0.97845e-6 * v))
    gamma = 1 + kv / 510.99895
    radius = alpha * 1e-3 / lam
    t = np.array(tilt) * 1e-3 / lam
    vol = a**3 * (math.sqrt(3) / 2 * math.sqrt(8 / 3) if proto == "hcp" else 1.0)
    # the kernel's list: every reflection out to |g| = max(4 1/Å, the pattern's reach)
    reach = math.hypot(max(cx, cols - 1 - cx), max(cy, rows - 1 - cy)) * ps + radius + ps
    gcut = max(4.0, reach)
    axis = mc.imaging._simulate.normalize_zone_axis(proto, zone)
    refl = zolz_reflections(proto, axis, math.ceil(gcut * a) + 1)
    refl = refl[np.linalg.norm(refl[:, 3:], axis=1) / a <= gcut]
    th = math.radians(rot)
    R = np.array([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]])
    g = refl[:, 3:] @ R.T / a
    gn = np.linalg.norm(g, axis=1)
    F = gamma * structure_factor(proto, refl[:, :3], z, gn, sigma)
    amp2 = (lam * np.abs(F) / vol) ** 2
    amp2[np.abs(F) < 1e-9 * gamma * moliere(z, gn) * len(BASIS[proto])] = 0.0
    yy, xx = np.mgrid[0:rows, 0:cols].astype(float)

    def inten(k, kx, ky):  # I_g for incident (kx, ky)
        s = -0.5 * lam * (2 * (kx * g[k, 0] + ky * g[k, 1]) + gn[k] ** 2)
        x = np.pi * s
        with np.errstate(invalid="ignore", divide="ignore"):
            f = np.where(np.abs(x * thick) < 1e-6, thick**2, np.sin(x * thick) ** 2 / x**2)
        return amp2[k] * f

    img = np.zeros(shape)
    rpx = radius / ps
    for k in range(len(g)):
        px, py = cx + g[k, 0] / ps, cy + g[k, 1] / ps
        dx, dy = xx - px, yy - py
        cover = np.clip(rpx - np.hypot(dx, dy) + 0.5, 0, 1)
        img += cover * inten(k, dx * ps + t[0], dy * ps + t[1])
    dx, dy = xx - cx, yy - cy
    cover = np.clip(rpx - np.hypot(dx, dy) + 0.5, 0, 1)
    total = sum(inten(k, dx * ps + t[0], dy * ps + t[1]) for k in range(len(g)))
    img += cover * np.maximum(0.0, 1 - total)
    return img + bg


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "proto,zone,a,rot",
    [
        ("fcc", (1, 1, 0), 3.9, 23.0),
        ("hcp", (2, -1, -1, 0), 3.2, -71.0),
        ("diamond", (1, 0, 0), 5.43, 10.0),
        ("bcc", (1, 1, 1), 3.1, 200.0),
    ],
)
def test_pattern_matches_reference(dtype, proto, zone, a, rot):
    kw = dict(thickness_nm=4.5, convergence_mrad=3.0, tilt_mrad=(0.7, -0.4), background=0.01)
    got = mc.imaging.simulate_cbed(
        proto,
        zone,
        a,
        rot,
        shape=(45, 58),
        reciprocal_pixel_size=0.07,
        thermal_sigma=0.08,
        center=(27.3, 20.6),
        dtype=dtype,
        **kw,
    )
    ref = reference_cbed(
        proto,
        zone,
        a,
        rot,
        (45, 58),
        0.07,
        alpha=3.0,
        thick=45.0,
        sigma=0.08,
        tilt=(0.7, -0.4),
        bg=0.01,
        center=(27.3, 20.6),
    )
    assert got.dtype == dtype and got.shape == (45, 58)
    tol = 2e-5 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(got, ref, rtol=tol, atol=tol)
    assert ref.max() > 0.05 and (ref > 1e-4).sum() > 100  # the comparison sees disks


def test_kernel_batch_non_contiguous_and_mixed_motifs():
    """A batch with two motifs, from non-contiguous inputs, equals single renders."""
    m1 = cbed_motif("fcc", (1, 0, 0), 8, 29)
    m2 = cbed_motif("hcp", (0, 0, 0, 1), 8, 40)
    refl = np.concatenate([m1[0], m2[0]])
    atoms = np.concatenate([m1[1], m2[1]])
    ro = np.array([0, len(m1[0]), len(refl)], np.int64)
    ao = np.array([0, len(m1[1]), len(atoms)], np.int64)
    vol = np.array([m1[2], m2[2]])
    p = np.stack([cbed_params(3.6, 5.0, 0.06, (15.0, 16.0)), cbed_params(3.1, 50, 0.06, (16, 15))])
    assert p[0, 15] == 4.0  # g_max: G_DEPLETION beyond the small pattern's reach
    idx = np.array([1, 0, 1], np.int64)
    params = p[idx]
    refl_nc = np.asfortranarray(refl)
    params_nc = np.concatenate([params, params], axis=1)[:, ::2]
    params_nc[:] = params  # strided view with the right values
    out = RENDER[np.float64](refl_nc, ro, atoms, ao, vol, idx, params_nc, 31, 33, 0)
    assert out.shape == (3, 31, 33)
    for n, m in enumerate(idx):
        one = RENDER[np.float64](
            refl[ro[m] : ro[m + 1]],
            np.array([0, ro[m + 1] - ro[m]]),
            atoms[ao[m] : ao[m + 1]],
            np.array([0, ao[m + 1] - ao[m]]),
            vol[m : m + 1],
            np.zeros(1, np.int64),
            params[n : n + 1],
            31,
            33,
            0,
        )
        np.testing.assert_array_equal(out[n], one[0])
    np.testing.assert_array_equal(out[0], out[2])


def test_scattering_factor():
    g = np.array([0.0, 0.1, 0.5, 1.0, 3.0])
    got = np.array([_core.imaging.moliere_scattering_factor(29, v) for v in g])
    np.testing.assert_allclose(got, moliere(29, g), rtol=1e-12)
    # large g: the unscreened Rutherford limit f = 0.023934 Z / s^2 (Mott-Bethe), s = g / 2
    s = 50.0
    f = _core.imaging.moliere_scattering_factor(29, 2 * s)
    assert f == pytest.approx(0.023934 * 29 / s**2, rel=1e-3)
    assert np.all(np.diff(got) < 0)


@pytest.mark.parametrize("proto,zone", ZONE_AXES)
def test_zolz_reflections_complete(proto, zone):
    """All integer hkl in the zone and within |g| <= 6/a, each once, perpendicular to the axis."""
    refl = zolz_reflections(proto, zone, 6)
    hkl = refl[:, :3].astype(int)
    if proto == "hcp":
        U, V, T, W = zone
        uvw = np.array([U - T, V - T, W])
        c = math.sqrt(8 / 3)
        A = np.array([[0.5, -math.sqrt(3) / 2, 0], [0.5, math.sqrt(3) / 2, 0], [0, 0, c]])
    else:
        uvw, A = np.array(zone), np.eye(3)
    B = np.linalg.inv(A).T
    brute = [
        t
        for t in itertools.product(range(-12, 13), repeat=3)
        if any(t) and np.dot(t, uvw) == 0 and np.linalg.norm(np.array(t) @ B) <= 6 + 1e-9
    ]
    assert sorted(map(tuple, hkl)) == sorted(brute)
    g3 = hkl @ B
    np.testing.assert_allclose(np.linalg.norm(refl[:, 3:], axis=1), np.linalg.norm(g3, axis=1))
    # the in-plane frame is the real-space frame of projected_cell: for the reflections the
    # lattice centring allows, g . a1 and g . a2 are integers (a1, a2 are projected lattice
    # translations and g is perpendicular to the axis)
    if proto in ("fcc", "diamond"):
        ok = np.all(hkl % 2 == hkl[:, :1] % 2, axis=1)
    elif proto == "bcc":
        ok = hkl.sum(axis=1) % 2 == 0
    else:
        ok = np.ones(len(hkl), bool)
    assert ok.sum() >= 6
    cell = projected_cell(proto, zone)
    for v in (cell.a1, cell.a2):
        d = refl[ok, 3:] @ v
        np.testing.assert_allclose(d, np.round(d), atol=1e-9)


@pytest.mark.parametrize(
    "proto,hkl,allowed",
    [
        ("fcc", (1, 0, 0), False),
        ("fcc", (1, 1, 0), False),
        ("fcc", (2, 1, 0), False),
        ("fcc", (1, 1, 1), True),
        ("fcc", (2, 0, 0), True),
        ("fcc", (2, 2, 0), True),
        ("bcc", (1, 0, 0), False),
        ("bcc", (1, 1, 1), False),
        ("bcc", (2, 1, 0), False),
        ("bcc", (1, 1, 0), True),
        ("bcc", (2, 0, 0), True),
        ("bcc", (2, 1, 1), True),
        ("diamond", (2, 0, 0), False),
        ("diamond", (2, 2, 2), False),
        ("diamond", (1, 1, 0), False),
        ("diamond", (1, 1, 1), True),
        ("diamond", (2, 2, 0), True),
        ("diamond", (4, 0, 0), True),
        ("hcp", (0, 0, 1), False),
        ("hcp", (0, 0, 2), True),
        ("hcp", (1, 0, 0), True),
    ],
)
def test_extinction_rules(proto, hkl, allowed):
    """Disk intensity of one reflection vs the textbook extinction rules.

    The pattern is rendered with the reflection hkl on the +x axis far from others (large
    a, so one disk per spot); the disk is bright iff the rule allows it.
    """
    zone = {
        (1, 0, 0): (0, 0, 1),
        (1, 1, 0): (0, 0, 1),
        (2, 1, 0): (0, 0, 1),
        (1, 1, 1): (1, -1, 0),
        (2, 0, 0): (0, 0, 1),
        (2, 2, 0): (0, 0, 1),
        (2, 1, 1): (0, 1, -1),
        (2, 2, 2): (1, -1, 0),
        (4, 0, 0): (0, 0, 1),
        (0, 0, 1): (1, 0, 0),
        (0, 0, 2): (1, 0, 0),
    }[hkl]
    if proto == "hcp" and hkl == (1, 0, 0):
        zone = (0, 0, 1)
    if proto == "hcp":
        zone = mc.imaging._simulate.normalize_zone_axis("hcp", zone)
    refl = zolz_reflections(proto, zone, 8)
    row = refl[np.all(refl[:, :3] == hkl, axis=1)][0]
    a = 4.0
    gx, gy = row[3] / a, row[4] / a
    ps = 0.01
    img = mc.imaging.simulate_cbed(
        proto,
        zone,
        a,
        0.0,
        shape=(301, 301),
        reciprocal_pixel_size=ps,
        convergence_mrad=0.5,
        thermal_sigma=0.0,
        thickness_nm=2.0,
    )
    r, c = round(150 + gy / ps), round(150 + gx / ps)
    val = img[r, c]
    f = structure_factor(proto, hkl, 29, math.hypot(gx, gy), 0.0)
    if allowed:
        assert abs(f) > 1.0 and val > 1e-3
    else:
        assert abs(f) < 1e-9 and val == 0.0


@pytest.mark.parametrize("proto,zone", [("fcc", (1, 0, 0)), ("hcp", (0, 0, 0, 1))])
def test_disk_positions_and_radii(proto, zone):
    """Centroid of each isolated disk at g / reciprocal_pixel_size, area pi R^2
    (R = alpha / lambda)."""
    a, rot, ps, alpha = 4.1, 17.0, 0.02, 1.5
    shape = (201, 201)
    img = mc.imaging.simulate_cbed(
        proto,
        zone,
        a,
        rot,
        shape=shape,
        reciprocal_pixel_size=ps,
        convergence_mrad=alpha,
        thickness_nm=0.5,
    )
    lam = mc.imaging.electron_wavelength(300.0)
    rpx = alpha * 1e-3 / lam / ps
    th = math.radians(rot)
    R = np.array([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]])
    refl = zolz_reflections(proto, zone, 6)
    refl = refl[np.abs(structure_factor(proto, refl[:, :3], 29, 1.0, 0.0)) > 1e-6]  # allowed
    g = refl[:, 3:] @ R.T / a / ps  # pixels from the centre
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    checked = 0
    for gx, gy in [(0.0, 0.0), *g[:6]]:
        px, py = 100 + gx, 100 + gy
        m = np.hypot(xx - px, yy - py) <= rpx + 1.5
        w = img * m
        if w.sum() <= 0 or not (rpx + 2 < px < shape[1] - rpx - 2):
            continue
        cy, cx = (w * yy).sum() / w.sum(), (w * xx).sum() / w.sum()
        # the intensity varies across a disk (excitation error): centroid within 0.1 px
        assert abs(cx - px) < 0.1 and abs(cy - py) < 0.1
        # thin crystal: nearly flat disks, so the summed intensity over the centre value is
        # the antialiased area
        area = w.sum() / img[round(py), round(px)]
        assert abs(area - np.pi * rpx**2) < 0.02 * np.pi * rpx**2
        checked += 1
    assert checked >= 5


def test_intensity_follows_structure_factor_and_debye_waller():
    """Thin crystal at the zone axis: disk-centre intensity ratio of two reflections equals
    the ratio of |F|^2 sinc^2 (independent check of gamma, volume, DW, Ewald curvature)."""
    a, ps, t, sig = 4.0, 0.01, 15.0, 0.1  # t in Å
    img = mc.imaging.simulate_cbed(
        "fcc",
        (1, 0, 0),
        a,
        0.0,
        shape=(301, 301),
        reciprocal_pixel_size=ps,
        convergence_mrad=0.3,
        thickness_nm=t / 10,
        thermal_sigma=sig,
    )
    lam = mc.imaging.electron_wavelength(300.0)
    gamma = 1 + 300 / 510.99895
    for hkl in [(0, 2, 0), (0, 2, 2), (0, 4, 0)]:
        refl = zolz_reflections("fcc", (1, 0, 0), 8)
        row = refl[np.all(refl[:, :3] == hkl, axis=1)][0]
        gx, gy = row[3] / a, row[4] / a
        gn = math.hypot(gx, gy)
        r, c = 150 + gy / ps, 150 + gx / ps
        assert abs(r - round(r)) < 1e-6 and abs(c - round(c)) < 1e-6  # pixel at disk centre
        F = gamma * structure_factor("fcc", hkl, 29, gn, sig)
        s = -0.5 * lam * gn**2  # incident along the axis at the disk centre
        expect = (lam * abs(F) / a**3) ** 2 * (np.sin(np.pi * t * s) / (np.pi * s)) ** 2
        assert img[round(r), round(c)] == pytest.approx(expect, rel=1e-9)


def test_noise_statistics_and_seed():
    kw = dict(shape=(64, 64), reciprocal_pixel_size=0.05, thickness_nm=1.0, background=0.5)
    clean = mc.imaging.simulate_cbed("bcc", (1, 1, 0), 3.0, **kw)
    a = mc.imaging.simulate_cbed("bcc", (1, 1, 0), 3.0, dose=40.0, seed=3, **kw)
    b = mc.imaging.simulate_cbed("bcc", (1, 1, 0), 3.0, dose=40.0, seed=3, **kw)
    c = mc.imaging.simulate_cbed("bcc", (1, 1, 0), 3.0, dose=40.0, seed=4, **kw)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    counts = a * 40.0
    np.testing.assert_allclose(counts, np.round(counts), atol=1e-9)  # integer counts
    bgmask = clean == 0.5
    assert bgmask.sum() > 1000
    x = counts[bgmask]  # Poisson(20): mean 20, variance 20
    assert abs(x.mean() - 20) < 0.5 and abs(x.var() - 20) < 2.5
    rn = mc.imaging.simulate_cbed("bcc", (1, 1, 0), 3.0, read_noise=0.1, seed=1, **kw)
    assert abs((rn - clean)[bgmask].std() - 0.1) < 0.01


def test_tilt_breaks_symmetry_and_rotation_turns_pattern():
    kw = dict(shape=(81, 81), reciprocal_pixel_size=0.04, thickness_nm=6.0, convergence_mrad=1.5)
    p0 = mc.imaging.simulate_cbed("fcc", (1, 0, 0), 3.6, **kw)
    np.testing.assert_allclose(p0, np.rot90(p0), atol=1e-12)  # 4-fold on the zone axis
    pt = mc.imaging.simulate_cbed("fcc", (1, 0, 0), 3.6, tilt_mrad=(3.0, 0.0), **kw)
    assert np.abs(pt - np.rot90(pt)).max() > 1e-3
    p90 = mc.imaging.simulate_cbed("fcc", (1, 1, 0), 3.6, 90.0, **kw)
    p0b = mc.imaging.simulate_cbed("fcc", (1, 1, 0), 3.6, 0.0, **kw)
    # +90° from +x towards +y (rows): (x, y) -> (-y, x), i.e. out[r, c] = in[80 - c, r]
    np.testing.assert_allclose(p90, np.rot90(p0b, k=-1), atol=1e-9)


@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(prototype="bct"), "prototype"),
        (dict(zone_axis=(1, 0)), "zone_axis"),
        (dict(prototype="hcp", zone_axis=(1, 1, 1, 0)), "U \\+ V \\+ T"),
        (dict(lattice_constant=0.0), "lattice_constant"),
        (dict(lattice_constant=float("nan")), "lattice_constant"),
        (dict(reciprocal_pixel_size=-0.1), "reciprocal_pixel_size"),
        (dict(reciprocal_pixel_size=float("inf")), "reciprocal_pixel_size"),
        (dict(rotation_deg=float("nan")), "rotation_deg"),
        (dict(thermal_sigma=-0.01), "thermal_sigma"),
        (dict(dose=-5.0), "dose"),
        (dict(dose=0.0), "dose"),
        (dict(thickness_nm=0.0), "thickness_nm"),
        (dict(convergence_mrad=0.0), "convergence_mrad"),
        (dict(beam_energy_keV=-1.0), "beam_energy_keV"),
        (dict(background=-1.0), "background"),
        (dict(read_noise=-1.0), "read_noise"),
        (dict(tilt_mrad=(1.0,)), "tilt_mrad"),
        (dict(tilt_mrad=(1.0, float("nan"))), "tilt_mrad"),
        (dict(atomic_number=0), "atomic_number"),
        (dict(atomic_number=2.5), "atomic_number"),
        (dict(center=(1.0, float("nan"))), "center"),
        (dict(shape=(0, 10)), "shape"),
        (dict(shape=(10, 10, 10)), "shape"),
        (dict(dtype=np.int32), "dtype"),
        (dict(reciprocal_pixel_size=5.0), "Miller indices"),
    ],
)
def test_bad_input(kw, match):
    args = dict(prototype="fcc", zone_axis=(1, 1, 0), lattice_constant=3.6)
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        mc.imaging.simulate_cbed(**args)


def test_huge_shape_is_memory_error_before_allocating():
    with pytest.raises(MemoryError):
        mc.imaging.simulate_cbed("fcc", (1, 0, 0), 3.6, shape=(1 << 15, 1 << 15))


def test_kernel_rejects_bad_tables():
    refl, atoms, vol = cbed_motif("fcc", (1, 0, 0), 4, 29)
    p = cbed_params(3.6, 0.0, 0.05, (10.0, 10.0))[None]
    off = np.array([0, len(refl)], np.int64)
    aoff = np.array([0, len(atoms)], np.int64)
    one = np.zeros(1, np.int64)
    r = RENDER[np.float64]
    with pytest.raises(ValueError, match="motif_index"):
        r(refl, off, atoms, aoff, np.array([vol]), np.ones(1, np.int64), p, 8, 8, 0)
    bad = atoms.copy()
    bad[0, 3] = 0.0
    with pytest.raises(ValueError, match="atomic numbers"):
        r(refl, off, bad, aoff, np.array([vol]), one, p, 8, 8, 0)
    with pytest.raises(ValueError, match="volumes"):
        r(refl, off, atoms, aoff, np.array([-1.0]), one, p, 8, 8, 0)
    q = p.copy()
    q[0, 7] = 0.5
    with pytest.raises(ValueError, match="gamma"):
        r(refl, off, atoms, aoff, np.array([vol]), one, q, 8, 8, 0)
    with pytest.raises(ValueError, match="params"):
        r(refl, off, atoms, aoff, np.array([vol]), one, p[:, :5], 8, 8, 0)
    with pytest.raises(ValueError, match="refl_offsets"):
        r(refl, np.array([0, 3], np.int64), atoms, aoff, np.array([vol]), one, p, 8, 8, 0)
