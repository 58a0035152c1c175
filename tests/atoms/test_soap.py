"""matchar.atoms.SOAP: featomic's regression data, a SciPy reference, invariances, errors."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
from scipy.special import factorial, gamma, hyp1f1, lpmv

import matchar as mc
from matchar import _core

ase = pytest.importorskip("ase")
from ase.build import bulk, molecule  # noqa: E402

# ----------------------------------------------------------------------------------------
# SciPy reference: the featomic convention written out directly (slow, small systems).
# ----------------------------------------------------------------------------------------


def ref_radial(r, l, rc, nmax, sig):
    """R_nl(r): Gaussian density x Loewdin-orthonormal GTOs, through scipy's hyp1f1."""
    sn = np.array([rc * max(np.sqrt(n), 1) / nmax for n in range(nmax)])
    S = np.zeros((nmax, nmax))
    for a in range(nmax):
        for b in range(nmax):
            s1, s2, p = sn[a], sn[b], 0.5 * (3 + a + b)
            S[a, b] = (
                (0.5 / s1**2 + 0.5 / s2**2) ** (-p)
                / (s1**a * s2**b)
                * gamma(p)
                / ((s1 * s2) ** 1.5 * np.sqrt(gamma(a + 1.5) * gamma(b + 1.5)))
            )
    norm = np.sqrt(2 / (sn ** (2 * np.arange(nmax) + 3) * gamma(np.arange(nmax) + 1.5)))
    e, V = np.linalg.eigh(S)
    ortho = V @ np.diag(e**-0.5) @ V.T @ np.diag(norm)
    c, g = 1 / (2 * sig**2), 1 / (2 * sn**2)
    raw = np.empty(nmax)
    for n in range(nmax):
        a, b = 0.5 * (n + l + 3), l + 1.5
        z = (c * r) ** 2 / (c + g[n])
        raw[n] = gamma(a) / gamma(b) * hyp1f1(a, b, z) * (c + g[n]) ** (-a)
    raw *= (np.pi / sig**2) ** 0.75 * np.exp(-c * r * r) * (c * r) ** l
    return ortho @ raw


def ref_ylm(l, v):
    """Real spherical harmonics, Wikipedia's real form (no Condon-Shortley phase)."""
    x, y, z = v / np.linalg.norm(v)
    th, ph = np.arccos(np.clip(z, -1, 1)), np.arctan2(y, x)
    out = []
    for m in range(-l, l + 1):
        am = abs(m)
        N = np.sqrt((2 * l + 1) / (4 * np.pi) * factorial(l - am) / factorial(l + am))
        P = lpmv(am, l, np.cos(th)) * (-1) ** am  # scipy includes the phase: remove it
        if m == 0:
            out.append(N * P)
        elif m > 0:
            out.append(np.sqrt(2) * N * P * np.cos(m * ph))
        else:
            out.append(np.sqrt(2) * N * P * np.sin(am * ph))
    return np.array(out)


def ref_expansion(numbers, positions, species, rc, nmax, lmax, sig, width, scaling=None):
    """c[i, lm, a, n] for a non-periodic structure, all pairs by brute force.

    ``scaling=(r0, c, m)`` multiplies each neighbour by c / (c + (r / r0)**m).
    """

    def fc(r):
        u = 1.0 if scaling is None else scaling[1] / (scaling[1] + (r / scaling[0]) ** scaling[2])
        if r <= rc - width:
            return u
        return 0.0 if r >= rc else u * 0.5 * (1 + np.cos(np.pi * (r - rc + width) / width))

    n_at = len(numbers)
    C = np.zeros((n_at, (lmax + 1) ** 2, len(species), nmax))
    self_term = ref_radial(0.0, 0, rc, nmax, sig) / np.sqrt(4 * np.pi)
    for i in range(n_at):
        C[i, 0, species.index(numbers[i])] += self_term
        for j in range(n_at):
            v = positions[j] - positions[i]
            r = np.linalg.norm(v)
            if i == j or r >= rc:
                continue
            a = species.index(numbers[j])
            for l in range(lmax + 1):
                C[i, l * l : (l + 1) ** 2, a] += fc(r) * np.outer(
                    ref_ylm(l, v), ref_radial(r, l, rc, nmax, sig)
                )
    return C


def ref_power_spectrum(C, lmax):
    """p^{ab}_{l n1 n2} = s_ab (-1)^l / sqrt(2l+1) sum_m c^a_{n1 lm} c^b_{n2 lm}, a <= b."""
    n_env, _, S, _ = C.shape
    rows = []
    for i in range(n_env):
        row = []
        for a in range(S):
            for b in range(a, S):
                for l in range(lmax + 1):
                    blk = C[i, l * l : (l + 1) ** 2]
                    p = blk[:, a].T @ blk[:, b] * (-1) ** l / np.sqrt(2 * l + 1)
                    row.append((p * (np.sqrt(2) if a != b else 1.0)).ravel())
        rows.append(np.concatenate(row))
    return np.array(rows)


def rattled_molecule(seed=0):
    rng = np.random.default_rng(seed)
    mol = molecule("CH3CH2OH")
    mol.positions += rng.normal(scale=0.05, size=mol.positions.shape)
    return mol


# ----------------------------------------------------------------------------------------
# featomic's own regression data
# ----------------------------------------------------------------------------------------


def load_featomic(shared_data, name):
    with open(shared_data / f"featomic-{name}-values-input.json") as fh:
        inp = json.load(fh)
    with gzip.open(shared_data / f"featomic-{name}-values.npy.gz") as fh:
        values = np.load(fh)
    hyp = inp["hyperparameters"]
    assert hyp["basis"]["radial"]["type"] == "Gto"
    assert hyp["cutoff"]["smoothing"]["type"] == "ShiftedCosine"
    assert hyp["density"]["type"] == "Gaussian"
    system = inp["systems"][0]
    assert not any(system["cell"])  # non-periodic
    frame = ase.Atoms(numbers=system["types"], positions=system["positions"], pbc=False)
    soap_kwargs = dict(
        cutoff=hyp["cutoff"]["radius"],
        max_radial=hyp["basis"]["radial"]["max_radial"] + 1,  # featomic counts from 0
        max_angular=hyp["basis"]["max_angular"],
        atomic_width=hyp["density"]["width"],
        smoothing=hyp["cutoff"]["smoothing"]["width"],
        species=sorted(set(system["types"])),
    )
    return frame, soap_kwargs, values


# The stored data carry 10 significant digits and featomic's own 1F1/Gamma evaluation
# carries ~1e-10 absolute noise; we match to ~1e-10 of the data's scale.
def assert_matches_reference(X, ref, rel=1e-8):
    assert X.shape == ref.shape
    scale = np.abs(ref).max()
    err = np.abs(X - ref).max() / scale
    assert err <= rel, f"max |X - ref| / max |ref| = {err:.3e}"


@pytest.mark.parametrize("exact_radial", [True, False])
def test_featomic_power_spectrum_regression(shared_data, exact_radial):
    frame, kw, ref = load_featomic(shared_data, "soap-power-spectrum")
    soap = mc.atoms.SOAP(**kw, exact_radial=exact_radial)
    X, samples = soap.compute([frame], return_samples=True)
    assert_matches_reference(X, ref, rel=1e-9)
    # rows are atoms in order
    np.testing.assert_array_equal(samples[:, 1], np.arange(len(frame)))


@pytest.mark.parametrize("exact_radial", [True, False])
def test_featomic_spherical_expansion_regression(shared_data, exact_radial):
    frame, kw, ref = load_featomic(shared_data, "spherical-expansion")
    soap = mc.atoms.SOAP(**kw, exact_radial=exact_radial)
    C = soap.spherical_expansion([frame])
    assert_matches_reference(C.reshape(len(frame), -1), ref, rel=1e-9)


def test_featomic_expansion_residual_is_featomics_own(shared_data):
    """Where matchar and featomic's stored expansion differ by more than 1e-8 relative
    (entries below ~1% of the largest), an independent SciPy evaluation of the same
    convention sides with matchar: the residual is featomic's 1F1 noise (~1e-10 of the
    scale), not a convention difference."""
    frame, kw, ref = load_featomic(shared_data, "spherical-expansion")
    C = mc.atoms.SOAP(**kw, exact_radial=True).spherical_expansion([frame]).reshape(len(frame), -1)
    R = ref_expansion(
        list(frame.numbers),
        frame.positions,
        kw["species"],
        kw["cutoff"],
        kw["max_radial"],
        kw["max_angular"],
        kw["atomic_width"],
        kw["smoothing"],
    ).reshape(len(frame), -1)
    scale = np.abs(R).max()
    big = np.abs(R) > 1e-3 * scale

    def rel(a, b, mask):
        return (np.abs(a - b)[mask] / np.abs(b[mask])).max()

    assert rel(C, R, big) < 1e-10  # matchar vs SciPy, elementwise
    assert rel(C, ref, np.abs(ref) > 1e-2 * scale) < 1e-8  # vs featomic where it is accurate
    # featomic vs SciPy shows the same residual as featomic vs matchar
    np.testing.assert_allclose(ref - R, ref - C, rtol=0, atol=1e-12 * scale)


def test_featomic_power_spectrum_float32(shared_data):
    frame, kw, ref = load_featomic(shared_data, "soap-power-spectrum")
    X = mc.atoms.SOAP(**kw, dtype=np.float32).compute([frame])
    assert X.dtype == np.float32
    assert_matches_reference(X.astype(np.float64), ref, rel=1e-6)


def test_matches_featomic_on_periodic_crystal():
    """The peer itself, when installed (bench extra): a periodic, rattled cell."""
    featomic = pytest.importorskip("featomic")
    rng = np.random.default_rng(11)
    at = bulk("NaCl", "rocksalt", a=5.64, cubic=True)
    at.positions += rng.normal(scale=0.1, size=at.positions.shape)
    calc = featomic.SoapPowerSpectrum(
        cutoff={"radius": 4.5, "smoothing": {"type": "ShiftedCosine", "width": 0.5}},
        density={"type": "Gaussian", "width": 0.3},
        basis={
            "type": "TensorProduct",
            "max_angular": 4,
            "radial": {"type": "Gto", "max_radial": 5},
            "spline_accuracy": None,
        },
    )
    d = calc.compute(at)
    d = d.keys_to_samples("center_type").keys_to_properties(["neighbor_1_type", "neighbor_2_type"])
    samples = np.asarray(d.block().samples.values)
    ref = np.asarray(d.block().values)[np.lexsort((samples[:, 1], samples[:, 0]))]
    X = mc.atoms.SOAP(4.5, 6, 4, 0.3, 0.5, species=[11, 17]).compute(at)
    assert_matches_reference(X, ref, rel=1e-8)


# ----------------------------------------------------------------------------------------
# Against the SciPy reference (no shared data needed)
# ----------------------------------------------------------------------------------------


def test_spherical_harmonics_match_scipy():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(20, 3))
    v = np.vstack([v, [[0, 0, 1], [0, 0, -1], [1, 0, 0]]])
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    L = 10
    Y = _core.atoms.real_spherical_harmonics(L, v)
    ref = np.array([np.concatenate([ref_ylm(l, x) for l in range(L + 1)]) for x in v])
    np.testing.assert_allclose(Y, ref, rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("exact", [True, False])
@pytest.mark.parametrize("sig", [0.4, 0.15])  # 0.15: z up to ~500, asymptotic 1F1 branch
def test_radial_integral_matches_scipy(exact, sig):
    rc, nmax, lmax = 5.0, 6, 5
    r = np.array([0.0, 1e-7, 0.37, 1.0, 2.2, 3.1, 3.9, 4.5, 4.99])
    R = _core.atoms.gto_radial_integral(rc, nmax, lmax, sig, exact, r)
    ref = np.array(
        [np.concatenate([ref_radial(x, l, rc, nmax, sig) for l in range(lmax + 1)]) for x in r]
    )
    np.testing.assert_allclose(R, ref, rtol=0, atol=1e-9 * np.abs(ref).max())


@pytest.mark.parametrize(
    ("rc", "nmax", "lmax", "sig"),
    [(5.5, 8, 8, 0.3), (5.0, 8, 6, 0.5), (4.0, 12, 10, 0.2), (6.0, 6, 4, 0.8)],
)
def test_spline_close_to_exact_on_dense_grid(rc, nmax, lmax, sig):
    r = np.linspace(0, rc, 2003)
    exact = _core.atoms.gto_radial_integral(rc, nmax, lmax, sig, True, r)
    spline = _core.atoms.gto_radial_integral(rc, nmax, lmax, sig, False, r)
    assert np.abs(spline - exact).max() <= 1e-10 * np.abs(exact).max()


@pytest.mark.parametrize("exact_radial", [True, False])
def test_expansion_and_power_spectrum_match_scipy_reference(exact_radial):
    mol = rattled_molecule(1)
    species = [1, 6, 8]
    rc, nmax, lmax, sig, width = 3.5, 4, 3, 0.35, 0.7
    soap = mc.atoms.SOAP(rc, nmax, lmax, sig, width, species, exact_radial=exact_radial)
    C = soap.spherical_expansion(mol)
    ref_C = ref_expansion(list(mol.numbers), mol.positions, species, rc, nmax, lmax, sig, width)
    np.testing.assert_allclose(C, ref_C, rtol=0, atol=1e-9 * np.abs(ref_C).max())
    X = soap.compute(mol)
    # The power spectrum contraction, in NumPy, from the expansion matchar returns.
    np.testing.assert_allclose(X, ref_power_spectrum(C, lmax), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("scaling", [(2.0, 1.0, 4.0), (1.5, 0.5, 2.5)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_radial_scaling_matches_numpy_reference(scaling, dtype):
    mol = rattled_molecule(3)
    species = [1, 6, 8]
    rc, nmax, lmax, sig, width = 4.0, 4, 3, 0.3, 0.5
    soap = mc.atoms.SOAP(rc, nmax, lmax, sig, width, species, radial_scaling=scaling, dtype=dtype)
    C = soap.spherical_expansion(mol)
    ref_C = ref_expansion(
        list(mol.numbers), mol.positions, species, rc, nmax, lmax, sig, width, scaling
    )
    np.testing.assert_allclose(C, ref_C, rtol=0, atol=1e-9 * np.abs(ref_C).max())
    X = soap.compute(mol)
    assert X.dtype == dtype
    tol = 1e-9 if dtype == np.float64 else 1e-6
    ref_X = ref_power_spectrum(ref_C, lmax)
    np.testing.assert_allclose(X, ref_X, rtol=tol, atol=tol * np.abs(ref_X).max())
    # Without scaling the features differ (the option is really applied).
    assert not np.allclose(X, mc.atoms.SOAP(rc, nmax, lmax, sig, width, species).compute(mol))


def test_float32_output_matches_float64():
    mol = rattled_molecule(2)
    X64 = mc.atoms.SOAP(4.0, 5, 4).compute(mol)
    X32 = mc.atoms.SOAP(4.0, 5, 4, dtype="float32").compute(mol)
    assert X32.dtype == np.float32
    np.testing.assert_allclose(X32, X64, rtol=1e-5, atol=1e-7 * np.abs(X64).max())


# ----------------------------------------------------------------------------------------
# Invariances and periodicity
# ----------------------------------------------------------------------------------------


def random_rotation(rng):
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    return q


def test_rotation_translation_and_permutation_invariance():
    rng = np.random.default_rng(3)
    mol = rattled_molecule(3)
    soap = mc.atoms.SOAP(4.5, 6, 6)
    X = soap.compute(mol)
    rot = mol.copy()
    rot.positions = mol.positions @ random_rotation(rng).T + [3.0, -1.0, 7.5]
    np.testing.assert_allclose(soap.compute(rot), X, rtol=1e-10, atol=1e-12 * np.abs(X).max())
    perm = rng.permutation(len(mol))
    Xp = soap.compute(mol[perm])
    np.testing.assert_allclose(Xp, X[perm], rtol=1e-10, atol=1e-12 * np.abs(X).max())
    # a mirror image has the same power spectrum too (it is O(3)-invariant)
    mir = mol.copy()
    mir.positions[:, 0] *= -1
    np.testing.assert_allclose(soap.compute(mir), X, rtol=1e-10, atol=1e-12 * np.abs(X).max())


def rattled_bulk(seed, cubic=True):
    rng = np.random.default_rng(seed)
    at = bulk("NaCl", "rocksalt", a=5.64, cubic=cubic)
    at.positions += rng.normal(scale=0.1, size=at.positions.shape)
    return at


@pytest.mark.parametrize("cubic", [True, False])  # False: a triclinic 2-atom cell < cutoff
def test_periodic_cell_matches_supercell(cubic):
    at = rattled_bulk(4, cubic)
    soap = mc.atoms.SOAP(5.0, 4, 4, species=[11, 17])
    X = soap.compute(at)
    sc = at.repeat((2, 3, 2))
    Xs = soap.compute(sc)
    np.testing.assert_allclose(Xs, np.tile(X, (12, 1)), rtol=1e-9, atol=1e-12 * np.abs(X).max())


def test_tiny_triclinic_cell_matches_brute_force_cluster():
    # One atom in a skewed cell much smaller than the cutoff: its environment is the
    # lattice, which a large non-periodic cluster cut from it reproduces exactly.
    cell = np.array([[2.1, 0.0, 0.0], [0.9, 2.3, 0.0], [0.4, -0.7, 2.6]])
    at = ase.Atoms("Cu", positions=[[0.3, 0.2, 0.1]], cell=cell, pbc=True)
    soap = mc.atoms.SOAP(4.0, 4, 3)
    X = soap.compute(at)
    n = 6
    grid = np.array(
        [[i, j, k] for i in range(-n, n + 1) for j in range(-n, n + 1) for k in range(-n, n + 1)]
    )
    pos = at.positions[0] + grid @ cell
    keep = np.linalg.norm(pos - at.positions[0], axis=1) < 4.0 + 1e-9
    cluster = ase.Atoms(numbers=[29] * int(keep.sum()), positions=pos[keep])
    centre = int(np.argmin(np.linalg.norm(cluster.positions - at.positions[0], axis=1)))
    Xc = soap.compute(cluster)[centre]
    np.testing.assert_allclose(X[0], Xc, rtol=1e-9, atol=1e-12 * np.abs(X).max())


def test_slab_mixed_pbc_and_vacuum_equivalence():
    rng = np.random.default_rng(5)
    slab = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((1, 1, 2))
    slab.positions += rng.normal(scale=0.05, size=slab.positions.shape)
    slab.pbc = [True, True, False]
    soap = mc.atoms.SOAP(4.0, 4, 3)
    X = soap.compute(slab)
    big = slab.repeat((2, 2, 1))
    np.testing.assert_allclose(
        soap.compute(big), np.tile(X, (4, 1)), rtol=1e-9, atol=1e-12 * np.abs(X).max()
    )
    # non-periodic molecule == the same molecule periodic in a cell with lots of vacuum
    mol = rattled_molecule(6)
    soap = mc.atoms.SOAP(4.0, 4, 3)
    X0 = soap.compute(mol)
    boxed = mol.copy()
    boxed.cell = np.diag([30.0, 31.0, 32.0])
    boxed.pbc = True
    np.testing.assert_allclose(soap.compute(boxed), X0, rtol=1e-10, atol=1e-14)


def test_slab_and_wire_with_zero_non_periodic_vectors():
    from ase.build import fcc111

    rng = np.random.default_rng(9)
    slab = fcc111("Pt", size=(2, 2, 3), vacuum=None)  # cell c = 0, pbc = (T, T, F)
    slab.positions += rng.normal(scale=0.05, size=slab.positions.shape)
    assert not slab.cell[2].any() and list(slab.pbc) == [True, True, False]
    soap = mc.atoms.SOAP(5.0, 4, 3)
    X = soap.compute(slab)
    boxed = slab.copy()
    boxed.cell[2] = [0.3, -0.2, 40.0]  # a real (skewed) vector, still non-periodic
    np.testing.assert_allclose(soap.compute(boxed), X, rtol=1e-10, atol=1e-14)
    wire_cell = [[0, 0, 0], [0, 0, 0], [1.3, 0.4, 2.2]]  # only c is periodic
    wire = ase.Atoms("Pt", positions=[[0.1, 0.2, 0.3]], cell=wire_cell, pbc=[False, False, True])
    Xw = soap.compute(wire)
    chain = ase.Atoms(
        "Pt" * 21, positions=wire.positions[0] + np.arange(-10, 11)[:, None] * wire.cell[2]
    )
    np.testing.assert_allclose(Xw[0], soap.compute(chain)[10], rtol=1e-10, atol=1e-14)


# ----------------------------------------------------------------------------------------
# API: labels, centres, normalisation, chunking, threads
# ----------------------------------------------------------------------------------------


def test_labels_centers_and_feature_layout():
    frames = [molecule("H2O"), molecule("CH4"), molecule("NH3")]
    soap = mc.atoms.SOAP(4.0, 3, 2, species=["H", "C", "N", "O"])
    X, samples = soap.compute(frames, return_samples=True)
    assert X.shape == (3 + 5 + 4, 10 * 3 * 9)
    np.testing.assert_array_equal(samples[:, 0], [0] * 3 + [1] * 5 + [2] * 4)
    np.testing.assert_array_equal(samples[:3, 1], [0, 1, 2])
    np.testing.assert_array_equal(samples[:3, 2], [8, 1, 1])
    labels = soap.feature_labels()
    assert labels.shape == (X.shape[1], 6)
    assert (labels[:, 0] == 0).all()
    assert (labels[:, 1] <= labels[:, 2]).all()
    # featomic's order: pairs, then l, then n1, then n2
    keys = labels[:, 1:]
    assert [tuple(k) for k in keys] == sorted(tuple(k) for k in keys)
    # species absent from a frame give exact zeros
    h2o = X[0]
    assert np.all(h2o[(labels[:, 1] == 6) | (labels[:, 2] == 6)] == 0)
    Xh, samples = soap.compute(frames, centers=["H"], return_samples=True)
    np.testing.assert_array_equal(Xh, X[soap_rows_with(X, soap, frames, 1)])
    assert set(samples[:, 2]) == {1}


def soap_rows_with(X, soap, frames, z):
    numbers = np.concatenate([f.numbers for f in frames])
    return numbers == z


def test_normalize_and_chunked_callback_and_out():
    frames = [rattled_molecule(s) for s in range(5)]
    soap = mc.atoms.SOAP(4.0, 4, 3, species=[1, 6, 8])
    X = soap.compute(frames)
    Xn = mc.atoms.SOAP(4.0, 4, 3, species=[1, 6, 8], normalize=True).compute(frames)
    np.testing.assert_allclose(Xn, X / np.linalg.norm(X, axis=1, keepdims=True), rtol=1e-12)
    seen = []
    soap.compute(frames, chunk_size=2, callback=lambda row, F, s: seen.append((row, F, s)))
    assert [r for r, _, _ in seen] == [0, 18, 36]
    np.testing.assert_array_equal(np.concatenate([F for _, F, _ in seen]), X)
    assert seen[1][2][0, 0] == 2  # frame indices are global
    out = np.empty_like(X)
    res = soap.compute(frames, chunk_size=3, out=out)
    np.testing.assert_array_equal(out, X)
    assert res is not None and np.shares_memory(res, out)
    # an iterator (like ase.io.iread) is consumed chunk by chunk
    seen.clear()
    none, samples = soap.compute(
        iter(frames),
        chunk_size=2,
        callback=lambda r, F, s: seen.append((r, F, s)),
        return_samples=True,
    )
    assert none is None
    np.testing.assert_array_equal(np.concatenate([F for _, F, _ in seen]), X)
    np.testing.assert_array_equal(np.concatenate([s for _, _, s in seen]), samples)
    np.testing.assert_array_equal(soap.compute(f for f in frames), X)
    with pytest.raises(ValueError, match="frames is empty"):
        soap.compute(iter([]), chunk_size=2)
    with pytest.raises(ValueError, match="out has 10 rows"):
        soap.compute(frames, out=np.empty((10, X.shape[1])))
    # the compiled core checks an out it is handed, too
    calc = soap._core()[0]
    args, samples = soap._prepare(frames[:1], None)
    with pytest.raises(ValueError, match="out must be a writeable C-contiguous"):
        calc.power_spectrum(*args, samples[:, :2].copy(), False, np.float64, np.empty((9, 3)))
    with pytest.raises(ValueError, match="out must be a writeable C-contiguous"):
        calc.power_spectrum(
            *args, samples[:, :2].copy(), False, np.float64, np.empty((9, X.shape[1]), np.float32)
        )


def test_pairs_compress_and_several_cutoffs():
    frames = [rattled_molecule(s) for s in range(3)]
    full = mc.atoms.SOAP(4.0, 4, 3, species=["H", "C", "O"])
    X = full.compute(frames)
    labels = full.feature_labels()
    # pair selection == the matching columns of the full layout
    sel = mc.atoms.SOAP(4.0, 4, 3, species=["H", "C", "O"], pairs=[("O", "H"), ("C", "C")])
    Xs = sel.compute(frames)
    keep = ((labels[:, 1] == 1) & (labels[:, 2] == 8)) | ((labels[:, 1] == 6) & (labels[:, 2] == 6))
    np.testing.assert_array_equal(Xs, X[:, keep])
    np.testing.assert_array_equal(sel.feature_labels(), labels[keep])
    assert sel.n_features == Xs.shape[1]
    # compressed same-species blocks keep every dot product
    comp = mc.atoms.SOAP(4.0, 4, 3, species=["H", "C", "O"], compress=True)
    Xc = comp.compute(frames)
    assert Xc.shape[1] == comp.n_features == len(comp.feature_labels()) < X.shape[1]
    np.testing.assert_allclose(Xc @ Xc.T, X @ X.T, rtol=1e-12)
    lc = comp.feature_labels()
    same = lc[:, 1] == lc[:, 2]
    assert (lc[same, 4] <= lc[same, 5]).all()
    diag = same & (lc[:, 4] == lc[:, 5])
    cols = [np.flatnonzero((labels[:, 1:] == row[1:]).all(axis=1))[0] for row in lc[diag]]
    np.testing.assert_array_equal(Xc[:, diag], X[:, cols])
    # several cutoffs: one block per cutoff, side by side
    multi = mc.atoms.SOAP([3.0, 4.0], 4, 3, species=["H", "C", "O"])
    Xm = multi.compute(frames)
    X3 = mc.atoms.SOAP(3.0, 4, 3, species=["H", "C", "O"]).compute(frames)
    np.testing.assert_array_equal(Xm, np.hstack([X3, X]))
    assert multi.n_features == Xm.shape[1]
    np.testing.assert_array_equal(multi.feature_labels()[:, 0], np.repeat([0, 1], X.shape[1]))
    Xmn = mc.atoms.SOAP([3.0, 4.0], 4, 3, species=["H", "C", "O"], normalize=True).compute(frames)
    np.testing.assert_allclose(Xmn, Xm / np.linalg.norm(Xm, axis=1, keepdims=True), rtol=1e-12)
    with pytest.raises(ValueError, match="pairs name species"):
        mc.atoms.SOAP(4.0, species=["H"], pairs=[("H", "O")])
    with pytest.raises(ValueError, match="pairs must hold"):
        mc.atoms.SOAP(4.0, species=["H"], pairs=["HH"])


def test_threads_give_identical_results():
    frames = [rattled_bulk(s) for s in range(3)]
    soap = mc.atoms.SOAP(5.0, 6, 4)
    before = mc.get_num_threads()
    try:
        mc.set_num_threads(1)
        X1 = soap.compute(frames)
        mc.set_num_threads(2)
        X2 = soap.compute(frames)
    finally:
        mc.set_num_threads(before)
    np.testing.assert_array_equal(X1, X2)


def test_isolated_atom_has_only_the_self_term():
    soap = mc.atoms.SOAP(3.0, 4, 3, species=[1, 8])
    X = soap.compute(ase.Atoms("O", positions=[[0, 0, 0]]))
    labels = soap.feature_labels()
    self_block = (labels[:, 1] == 8) & (labels[:, 2] == 8) & (labels[:, 3] == 0)
    assert np.all(X[0, ~self_block] == 0)
    assert np.abs(X[0, self_block]).max() > 0


def test_pickle_round_trip():
    import pickle

    mol = rattled_molecule(8)
    soap = mc.atoms.SOAP(4.0, 3, 2)
    X = soap.compute(mol)
    again = pickle.loads(pickle.dumps(soap))
    np.testing.assert_array_equal(again.compute(mol), X)
    np.testing.assert_array_equal(again.species_, soap.species_)


def test_inputs_not_modified():
    mol = rattled_molecule(7)
    before = mol.positions.copy()
    mc.atoms.SOAP(4.0, 3, 2).compute(mol)
    np.testing.assert_array_equal(mol.positions, before)


# ----------------------------------------------------------------------------------------
# Bad input
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(cutoff=0.0), "cutoff"),
        (dict(cutoff=-1.0), "cutoff"),
        (dict(cutoff=float("nan")), "cutoff"),
        (dict(max_radial=0), "max_radial"),
        (dict(max_radial=2.5), "max_radial"),
        (dict(max_angular=21), "max_angular"),
        (dict(max_angular=-1), "max_angular"),
        (dict(atomic_width=0.0), "atomic_width"),
        (dict(smoothing=-0.1), "smoothing"),
        (dict(cutoff=3.0, smoothing=4.0), "smoothing"),
        (dict(radial_scaling=(0.0, 1.0, 4.0)), "radial_scaling"),
        (dict(radial_scaling=(2.0, -1.0, 4.0)), "radial_scaling"),
        (dict(radial_scaling=(2.0, 1.0, float("nan"))), "radial_scaling"),
        (dict(radial_scaling=(2.0, 1.0)), "radial_scaling"),
        (dict(species=["Xx"]), "species"),
        (dict(species=[0]), "species"),
        (dict(dtype=np.int32), "dtype"),
    ],
)
def test_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        mc.atoms.SOAP(**kwargs)


def test_bad_frames():
    soap = mc.atoms.SOAP(3.0, 3, 2, species=["H", "O"])
    with pytest.raises(ValueError, match="frames is empty"):
        soap.compute([])
    with pytest.raises(ValueError, match=r"frames\[1\] is empty"):
        soap.compute([molecule("H2O"), ase.Atoms()])
    with pytest.raises(ValueError, match=r"frames\[3\] is empty"):  # global index in chunks
        soap.compute([molecule("H2O")] * 3 + [ase.Atoms()], chunk_size=2)
    with pytest.raises(ValueError, match=r"atomic number 6.*not in species"):
        soap.compute([molecule("H2O"), molecule("CH4")])
    with pytest.raises(ValueError, match=r"frames\[0\] must be an ase.Atoms"):
        soap.compute([np.zeros((3, 3))])
    bad = molecule("H2O")
    bad.positions[1, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        soap.compute(bad)
    close = ase.Atoms("H2", positions=[[0, 0, 0], [0, 0, 5e-4]])
    with pytest.raises(ValueError, match="closer than"):
        soap.compute(close)
    flat = ase.Atoms("H", positions=[[0, 0, 0]], cell=[[1, 0, 0], [0, 1, 0], [0, 0, 0]], pbc=True)
    with pytest.raises(ValueError, match="zero volume"):
        soap.compute(flat)
    with pytest.raises(ValueError, match="out must"):
        soap.compute(molecule("H2O"), out=np.empty((3, 5)))
    with pytest.raises(ValueError, match="centers"):
        soap.compute(molecule("H2O"), centers=["Qq"])


def test_huge_output_raises_memory_error_before_allocating():
    soap = mc.atoms.SOAP(3.0, 12, 20, species=list(range(1, 90)))
    frames = [ase.Atoms("H", positions=[[0, 0, 0]])] * 2000
    with pytest.raises(MemoryError, match="SOAP power spectrum output"):
        soap.compute(frames)


def test_ctrl_c_interrupts_a_long_computation(ctrl_c):
    # ~10 s or more of work in one C++ call (157,216 atoms, 10 Å cutoff); SIGINT ends it.
    ctrl_c(
        """
        import ase.build, matchar as mc
        atoms = ase.build.bulk("Cu", "fcc", a=3.6, cubic=True).repeat((34, 34, 34))
        soap = mc.atoms.SOAP(10.0, 4, 6, species=[29], dtype="float32")
        soap.compute(ase.build.bulk("Cu", "fcc", a=3.6))  # builds the tables
        """,
        "soap.compute(atoms)",
        wait=1.5,
        env={"OMP_NUM_THREADS": "1"},
    )


@pytest.mark.parametrize("cutoff", [3.0, (2.5, 4.0)])
def test_compute_atoms_matches_compute_rows(cutoff):
    import ase.build

    crystal = ase.build.bulk("NaCl", "rocksalt", a=5.64).repeat((2, 2, 2))
    crystal.rattle(0.05, seed=1)
    mol = ase.build.molecule("CH3OH")
    soap = mc.atoms.SOAP(cutoff=cutoff, max_radial=3, max_angular=2, species=[1, 6, 8, 11, 17])
    full, samples = soap.compute([crystal, mol], return_samples=True)
    rows = {tuple(s[:2]): k for k, s in enumerate(samples)}
    pairs = np.array([[1, 3], [0, 5], [0, 0], [1, 0]])
    X = soap.compute_atoms([crystal, mol], pairs)
    np.testing.assert_allclose(X, full[[rows[tuple(p)] for p in pairs]], rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match="outside the frames"):
        soap.compute_atoms([crystal, mol], [[1, 6]])
    with pytest.raises(ValueError, match=r"\(n, 2\) integer"):
        soap.compute_atoms([crystal, mol], [1, 2])


def test_power_spectrum_same_at_every_cpu_level():
    # SOAP's per-centre loops have a copy per x86-64 level in builds not made for the host
    # (MATCHAR_ARCH=portable); every copy must give the baseline's features. Sums run in
    # another order (FMA, vector width): relative 1e-12 of the largest feature.
    info = _core.build_info()
    frames = [bulk("NaCl", "rocksalt", a=5.64, cubic=True).repeat((2, 2, 2)), molecule("CH3OH")]
    for f in frames[1:]:
        f.center(vacuum=4.0)
    soap = mc.atoms.SOAP(cutoff=4.5, species=["H", "C", "O", "Na", "Cl"], max_angular=6)
    ref = None
    for level in info["cpu_levels"]:
        if level not in info["cpu_levels_supported"]:
            continue
        _core._set_cpu_level(level)
        try:
            X = soap.compute(frames)
        finally:
            _core._set_cpu_level("")
        if ref is None:
            ref = X
        np.testing.assert_allclose(X, ref, rtol=0, atol=1e-12 * np.abs(ref).max())
    assert ref is not None and np.abs(ref).max() > 0


def test_samples_returned_per_call_from_threads_and_samples_attribute_deprecated():
    """One calculator shared by threads: every call gets the samples of its own frames;
    the old ``samples_`` attribute still answers (the last call's) with a FutureWarning."""
    from concurrent.futures import ThreadPoolExecutor

    soap = mc.atoms.SOAP(3.0, 3, 2, species=["H", "C", "N", "O"])
    jobs = [[molecule("H2O")], [molecule("CH4"), molecule("NH3")], [molecule("CH3OH")]] * 4
    expected = [soap.compute(f, return_samples=True)[1] for f in jobs]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda f: soap.compute(f, return_samples=True)[1], jobs))
    for e, g in zip(expected, got):
        np.testing.assert_array_equal(g, e)
    _, last = soap.compute(jobs[1], return_samples=True)
    with pytest.warns(FutureWarning, match="return_samples=True"):
        np.testing.assert_array_equal(soap.samples_, last)
    C, samples = soap.spherical_expansion(jobs[0], return_samples=True)
    assert len(C) == len(samples) == 3
    with pytest.raises(AttributeError), pytest.warns(FutureWarning):
        _ = mc.atoms.SOAP(3.0, 3, 2, species=["H"]).samples_
