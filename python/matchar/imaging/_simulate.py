"""HAADF-STEM image simulation of crystals seen along a zone axis.

The crystallography (projected 2-D cell and its atomic columns) is worked out here with
ASE and cached per (prototype, zone axis); the rendering of the images is the C++ kernel
``matchar._core.imaging.render_haadf_*``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .. import _core
from .._deprecation import renamed_parameters
from .._validation import check_float, check_int

PROTOTYPES = ("fcc", "bcc", "hcp", "diamond")

#: The 12 (prototype, zone axis) classes of the crystal classifier: the 10 AI-STEM classes
#: plus diamond [100] and [110]. hcp axes are four-index Miller-Bravais tuples.
ZONE_AXES: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("fcc", (1, 0, 0)),
    ("fcc", (1, 1, 0)),
    ("fcc", (1, 1, 1)),
    ("fcc", (2, 1, 1)),
    ("bcc", (1, 0, 0)),
    ("bcc", (1, 1, 0)),
    ("bcc", (1, 1, 1)),
    ("hcp", (0, 0, 0, 1)),
    ("hcp", (1, 0, -1, 0)),
    ("hcp", (2, -1, -1, 0)),
    ("diamond", (1, 0, 0)),
    ("diamond", (1, 1, 0)),
)

_HCP_C_OVER_A = math.sqrt(8.0 / 3.0)

#: Largest |index| of a zone axis: a higher-index axis projects the crystal onto a 2-D
#: lattice of columns far finer than any image resolves.
MAX_ZONE_INDEX = 1000
#: Largest beam energy (keV) and convergence semi-angle (mrad) the simulators take.
MAX_KV = 1e4
MAX_MRAD = 1e3
#: Largest lattice constant (Å) the simulators take.
MAX_LENGTH = 1e4
#: Largest |origin| component (Å) of simulate_haadf: positions stay exact to ~1e-7 Å.
MAX_ORIGIN = 1e9
#: Largest dose (electrons per pixel): beyond it the shot noise is negligible (use None)
#: and dose x intensity could overflow.
MAX_DOSE = 1e15
#: Largest background and read noise, in units of the image's (or beam's) intensity.
MAX_RELATIVE = 1e6
_Z_EXPONENT = 1.7


@dataclass(frozen=True)
class ProjectedCell:
    """Projected 2-D cell of a crystal along a zone axis, for lattice constant 1.

    Attributes
    ----------
    a1, a2 : numpy.ndarray, shape (2,), float64
        In-plane lattice vectors (units of the lattice constant); ``a1`` is the shortest
        projected lattice vector and lies along +x.
    columns : numpy.ndarray, shape (n_columns, 3), float64
        Per column: fractional position (fx, fy) in the (a1, a2) cell and the number of
        atoms per unit length of the column (per lattice constant).
    symmetry_order : int
        Rotational symmetry order n of the projected pattern's power spectrum (|FFT|):
        an in-plane rotation is defined modulo 360/n degrees.
    frame : numpy.ndarray, shape (3, 2), float64, or None
        Projection of a Cartesian 3-D vector (conventional-cell axes) onto the in-plane
        (x, y) frame of ``a1``, ``a2``: ``v @ frame``.
    """

    a1: np.ndarray
    a2: np.ndarray
    columns: np.ndarray
    symmetry_order: int
    frame: np.ndarray | None = None


def normalize_zone_axis(prototype: str, zone_axis: Sequence[int]) -> tuple[int, ...]:
    """Check a (prototype, zone axis) pair; return the axis as a tuple of ints.

    hcp accepts three-index [uvw] or four-index [UVTW] (with U + V + T = 0) tuples and
    returns the four-index form; cubic prototypes need three indices.

    Examples
    --------
    >>> normalize_zone_axis("hcp", (2, 1, 0))
    (1, 0, -1, 0)
    """
    if not isinstance(prototype, str) or prototype not in PROTOTYPES:
        raise ValueError(f"prototype must be one of {PROTOTYPES}, got {prototype!r}")
    expected = (
        f"zone_axis must be a tuple of integers in [-{MAX_ZONE_INDEX}, {MAX_ZONE_INDEX}], "
        f"got {zone_axis!r}"
    )
    try:
        if isinstance(zone_axis, (str, bytes)):
            raise TypeError
        axis = tuple(
            check_int(v, "zone_axis", low=-MAX_ZONE_INDEX, high=MAX_ZONE_INDEX) for v in zone_axis
        )
    except (TypeError, ValueError) as exc:
        raise ValueError(expected) from exc
    if not any(axis):
        raise ValueError("zone_axis must not be (0, 0, 0)")
    if prototype == "hcp":
        if len(axis) == 4:
            if axis[0] + axis[1] + axis[2] != 0:
                raise ValueError(f"a four-index zone_axis needs U + V + T = 0, got {axis}")
            u, v, w = axis[0] - axis[2], axis[1] - axis[2], axis[3]
        elif len(axis) == 3:
            u, v, w = axis
        else:
            raise ValueError(f"hcp zone_axis needs 3 or 4 indices, got {axis}")
        big_u, big_v = 2 * u - v, 2 * v - u
        big_t, big_w = -(big_u + big_v), 3 * w
        g = math.gcd(math.gcd(abs(big_u), abs(big_v)), math.gcd(abs(big_t), abs(big_w)))
        return (big_u // g, big_v // g, big_t // g, big_w // g)
    if len(axis) != 3:
        raise ValueError(f"{prototype} zone_axis needs 3 indices, got {axis}")
    g = math.gcd(math.gcd(abs(axis[0]), abs(axis[1])), abs(axis[2]))
    return tuple(v // g for v in axis)


def _primitive(prototype: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(conventional cell rows, primitive cell rows, basis Cartesian positions), a = 1."""
    if prototype == "hcp":
        c = _HCP_C_OVER_A
        cell = np.array([[0.5, -math.sqrt(3) / 2, 0.0], [0.5, math.sqrt(3) / 2, 0.0], [0, 0, c]])
        frac = np.array([[1 / 3, 2 / 3, 0.25], [2 / 3, 1 / 3, 0.75]])
        return cell, cell, frac @ cell
    conv = np.eye(3)
    if prototype == "bcc":
        prim = 0.5 * np.array([[-1.0, 1, 1], [1, -1, 1], [1, 1, -1]])
        basis = np.zeros((1, 3))
    else:
        prim = 0.5 * np.array([[0.0, 1, 1], [1, 0, 1], [1, 1, 0]])
        basis = np.zeros((1, 3)) if prototype == "fcc" else np.array([[0, 0, 0], [0.25] * 3])
    return conv, prim, basis


def _symmetry_order(a1: np.ndarray, a2: np.ndarray, columns: np.ndarray) -> int:
    """Rotational order of |structure factor|^2 on the projected reciprocal lattice."""
    A = np.stack([a1, a2])
    B = 2 * np.pi * np.linalg.inv(A).T  # rows b1, b2 with a_i . b_j = 2 pi delta_ij
    hk = np.array([(h, k) for h in range(-8, 9) for k in range(-8, 9)], dtype=float)
    g = hk @ B
    gmax = np.sort(np.linalg.norm(g, axis=1))[min(len(g) - 1, 60)]
    keep = np.linalg.norm(g, axis=1) <= gmax
    hk, g = hk[keep], g[keep]
    phase = np.exp(2j * np.pi * (hk @ columns[:, :2].T))
    inten = np.abs(phase @ columns[:, 2]) ** 2
    for n in (6, 4, 3, 2):
        t = 2 * np.pi / n
        R = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
        gr = g @ R.T
        ok = True
        for vec, val in zip(gr, inten):
            d = np.linalg.norm(g - vec, axis=1)
            j = int(np.argmin(d))
            if d[j] > 1e-6 * max(1.0, np.linalg.norm(vec)) or abs(inten[j] - val) > 1e-6 * (
                1 + abs(val)
            ):
                ok = False
                break
        if ok:
            return n
    return 1


def projected_cell(prototype: str, zone_axis: Sequence[int]) -> ProjectedCell:
    """Projected 2-D cell and atomic columns of a crystal seen along ``zone_axis``.

    Parameters
    ----------
    prototype : {"fcc", "bcc", "hcp", "diamond"}
        Crystal prototype (hcp with the ideal c/a = sqrt(8/3)).
    zone_axis : sequence of int
        Viewing direction [uvw] in the conventional cell (hcp: [uvw] or [UVTW]), indices
        in [-1000, 1000].

    Returns
    -------
    ProjectedCell
        Lattice vectors and columns for lattice constant 1 (see the class).

    Examples
    --------
    >>> cell = projected_cell("fcc", (1, 0, 0))
    >>> round(float(np.linalg.norm(cell.a1)), 3), cell.symmetry_order
    (0.5, 4)
    """
    return _projected_cell(prototype, normalize_zone_axis(prototype, zone_axis))


@functools.lru_cache(maxsize=64)
def _projected_cell(prototype: str, axis: tuple[int, ...]) -> ProjectedCell:
    """:func:`projected_cell` of a normalized zone axis (cached)."""
    conv, prim, basis = _primitive(prototype)
    if prototype == "hcp":
        u, v, w = axis[0] - axis[2], axis[1] - axis[2], axis[3]
        d = np.array([u, v, w], dtype=float) @ conv
    else:
        d = np.array(axis, dtype=float) @ conv
    z = d / np.linalg.norm(d)
    # An orthonormal in-plane frame (x, y) perpendicular to z.
    trial = np.array([1.0, 0, 0]) if abs(z[0]) < 0.9 else np.array([0, 1.0, 0])
    x = trial - (trial @ z) * z
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    P = np.stack([x, y], axis=1)  # 3 x 2 projector
    pv = prim @ P  # projected primitive vectors
    rng = range(-6, 7)
    cand = np.array([i * pv[0] + j * pv[1] + k * pv[2] for i in rng for j in rng for k in rng])
    norms = np.linalg.norm(cand, axis=1)
    cand, norms = cand[norms > 1e-8], norms[norms > 1e-8]
    order = np.argsort(norms, kind="stable")
    cand, norms = cand[order], norms[order]
    b1 = cand[0]
    cross = np.abs(b1[0] * cand[:, 1] - b1[1] * cand[:, 0])
    area = cross[cross > 1e-8].min()
    b2 = cand[np.flatnonzero(np.abs(cross - area) < 1e-8 * max(1, area))[0]]
    # Rotate so that b1 lies along +x and b2 has positive y.
    ang = math.atan2(b1[1], b1[0])
    R = np.array([[math.cos(-ang), -math.sin(-ang)], [math.sin(-ang), math.cos(-ang)]])
    b1, b2 = R @ b1, R @ b2
    if b2[1] < 0:
        b2 = -b2
    # Atoms per unit length of a column: period t = primitive volume / 2-D cell area.
    volume = abs(np.linalg.det(prim))
    period = volume / area
    pos2 = (basis @ P) @ R.T
    frac = np.linalg.solve(np.stack([b1, b2], axis=1), pos2.T).T % 1.0
    frac[np.abs(frac - 1.0) < 1e-9] = 0.0
    cols: list[list[float]] = []
    for f in frac:
        for c in cols:
            dd = (np.array(c[:2]) - f + 0.5) % 1.0 - 0.5
            if np.all(np.abs(dd) < 1e-6):
                c[2] += 1.0 / period
                break
        else:
            cols.append([float(f[0]), float(f[1]), 1.0 / period])
    columns = np.array(cols)
    return ProjectedCell(b1, b2, columns, _symmetry_order(b1, b2, columns), P @ R.T)


@renamed_parameters(voltage_kv="beam_energy_keV")
def probe_sigma(
    beam_energy_keV: float = 300.0, convergence_mrad: float = 25.0, source_fwhm: float = 0.7
) -> float:
    """Gaussian standard deviation (Å) approximating a STEM probe.

    The aberration-free probe's Airy intensity has FWHM 0.51 λ / α (λ the relativistic
    electron wavelength, α the convergence semi-angle); the Gaussian has the FWHM of
    that disc added in quadrature to the effective source size ``source_fwhm``.

    Parameters
    ----------
    beam_energy_keV : float
        Beam energy in keV (the accelerating voltage in kV), in (0, 1e4]. Was
        ``voltage_kv``, deprecated.
    convergence_mrad : float
        Convergence semi-angle in mrad, in (0, 1000].
    source_fwhm : float
        Effective source size (FWHM, Å, >= 0) blurring the diffraction-limited probe.

    Returns
    -------
    float
        Standard deviation in Å.

    Examples
    --------
    >>> round(probe_sigma(300.0, 25.0, 0.0), 3)
    0.171
    """
    beam_energy_keV = check_float(
        beam_energy_keV, "beam_energy_keV", low=0.0, high=MAX_KV, low_open=True
    )
    convergence_mrad = check_float(
        convergence_mrad, "convergence_mrad", low=0.0, high=MAX_MRAD, low_open=True
    )
    source_fwhm = check_float(source_fwhm, "source_fwhm (Å)", low=0.0)
    v = beam_energy_keV * 1e3
    lam = 12.2643 / math.sqrt(v * (1 + 0.97845e-6 * v))  # Å
    fwhm = 0.51 * lam / (convergence_mrad * 1e-3)
    return math.hypot(fwhm, source_fwhm) / (2 * math.sqrt(2 * math.log(2)))


def _rotation_matrix(deg: float) -> np.ndarray:
    t = math.radians(deg)
    return np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])


def haadf_params(
    cell: ProjectedCell,
    lattice_constant: float,
    rotation_deg: float,
    pixel_size: float,
    *,
    origin: tuple[float, float] = (0.0, 0.0),
    probe: float = 0.35,
    thermal_sigma: float = 0.05,
    background: float = 0.1,
    dose: float | None = None,
    read_noise: float = 0.0,
    jitter: float = 0.0,
    drift: tuple[float, float] = (0.0, 0.0),
) -> np.ndarray:
    """One row of the renderer's parameter table (see ``render_haadf`` in C++)."""
    R = _rotation_matrix(rotation_deg)
    a1 = R @ cell.a1 * lattice_constant
    a2 = R @ cell.a2 * lattice_constant
    return np.array(
        [
            a1[0],
            a1[1],
            a2[0],
            a2[1],
            origin[0],
            origin[1],
            pixel_size,
            probe,
            thermal_sigma,
            background,
            0.0 if dose is None else dose,
            read_noise,
            jitter,
            drift[0],
            drift[1],
        ],
        dtype=np.float64,
    )


def column_weights(cell: ProjectedCell, lattice_constant: float, atomic_number: int) -> np.ndarray:
    """Columns (fx, fy, weight) with weight = atoms per Å x Z^1.7."""
    cols = cell.columns.copy()
    cols[:, 2] = cols[:, 2] / lattice_constant * float(atomic_number) ** _Z_EXPONENT
    return cols


@renamed_parameters(rotation="rotation_deg", voltage_kv="beam_energy_keV")
def simulate_haadf(
    prototype: str,
    zone_axis: Sequence[int],
    lattice_constant: float,
    rotation_deg: float = 0.0,
    shape: tuple[int, int] = (256, 256),
    pixel_size: float = 0.12,
    dose: float | None = None,
    thermal_sigma: float = 0.05,
    seed: int | None = None,
    *,
    atomic_number: int = 29,
    beam_energy_keV: float = 300.0,
    convergence_mrad: float = 25.0,
    source_fwhm: float = 0.7,
    background: float = 0.1,
    read_noise: float = 0.0,
    scan_jitter: float = 0.0,
    drift: tuple[float, float] = (0.0, 0.0),
    origin: tuple[float, float] | None = None,
    dtype: type = np.float64,
) -> np.ndarray:
    """Simulate an atomic-resolution HAADF-STEM image of a crystal along a zone axis.

    Incoherent imaging: every atomic column is a Gaussian of the probe width broadened by
    the thermal displacement, with integrated intensity proportional to Z^1.7 times the
    atoms per Å of the column; each column's centroid is displaced at random by
    N(0, (thermal_sigma / 2)^2) (a thin, ~4-atom column), the image is put on a mean-1
    scale over a constant background, then Poisson shot noise at ``dose`` electrons per
    pixel (at the mean intensity), Gaussian read noise, per-line scan jitter and linear
    drift are applied.

    Parameters
    ----------
    prototype : {"fcc", "bcc", "hcp", "diamond"}
        Crystal prototype (hcp with ideal c/a).
    zone_axis : tuple of int
        Viewing direction; hcp accepts (u, v, w) or Miller-Bravais (U, V, T, W).
    lattice_constant : float
        Cubic lattice constant a (hcp: the basal a), Å, in (0, 1e4], and at least the
        width of the probe broadened by ``thermal_sigma`` (a finer lattice would be a
        uniform image).
    rotation_deg : float
        In-plane rotation in degrees: the angle from the image +x axis (columns) towards
        +y (rows) of the shortest projected lattice vector. Was ``rotation``, deprecated.
    shape : (int, int)
        Image shape (rows, cols) in pixels, at most 2**28 pixels.
    pixel_size : float
        Å per pixel, > 0.
    dose : float or None
        Electrons per pixel at the mean intensity (Poisson noise), in (0, 1e15];
        None = noiseless.
    thermal_sigma : float
        RMS thermal displacement in Å, in [0, lattice_constant].
    seed : int or None
        Seed of the random numbers (thermal jitter, noise, scan jitter), in
        [0, 2**64 - 1]; None = fresh.
    atomic_number : int
        Z of the (single) element, 1-118; sets the absolute column weights.
    beam_energy_keV, convergence_mrad, source_fwhm : float
        Probe (see :func:`probe_sigma`): in (0, 1e4] keV, (0, 1000] mrad, >= 0 Å.
        ``beam_energy_keV`` was ``voltage_kv``, deprecated.
    background : float
        Constant background as a fraction of the mean column signal, in [0, 1e6].
    read_noise : float
        Gaussian read noise (standard deviation in units of the mean intensity), in
        [0, 1e6].
    scan_jitter : float
        Standard deviation (Å) of the per-scan-line x displacement, from 0 to the image
        extent ``max(shape) * pixel_size``.
    drift : (float, float)
        Linear drift (Å per scan line) in x and y, each within ± the image extent.
    origin : (float, float) or None
        Position (Å) of a lattice point in the image, each within ±1e9 Å; None = the
        image centre.
    dtype : numpy.float32 or numpy.float64
        Output dtype.

    Raises
    ------
    ValueError
        Naming the argument, for any value outside the ranges above (non-integral
        ``atomic_number``, ``shape`` or ``seed`` included).
    MemoryError
        For more than 2**28 pixels.

    Returns
    -------
    numpy.ndarray, shape ``shape``, ``dtype``
        The image, mean about 1.

    Examples
    --------
    >>> img = simulate_haadf("fcc", (1, 1, 0), 4.05, rotation_deg=10.0, shape=(64, 64),
    ...                      pixel_size=0.2, dose=500, seed=0)
    >>> img.shape, bool(abs(img.mean() - 1.0) < 0.1)
    ((64, 64), True)
    """
    zone = normalize_zone_axis(prototype, zone_axis)
    rows, cols = _check_shape(shape)
    a = check_float(lattice_constant, "lattice_constant (Å)", low=0.0, high=MAX_LENGTH,
                    low_open=True)  # fmt: skip
    rotation_deg = check_float(rotation_deg, "rotation_deg (degrees)")
    pixel_size = check_float(pixel_size, "pixel_size (Å)", low=0.0, low_open=True)
    dose = check_float(dose, "dose", low=0.0, high=MAX_DOSE, low_open=True, allow_none=True)
    thermal_sigma = check_float(thermal_sigma, "thermal_sigma (Å)", low=0.0)
    seed = check_int(seed, "seed", low=0, high=2**64 - 1, allow_none=True)
    z = check_int(atomic_number, "atomic_number", low=1, high=118)
    beam_energy_keV = check_float(
        beam_energy_keV, "beam_energy_keV", low=0.0, high=MAX_KV, low_open=True
    )
    convergence_mrad = check_float(
        convergence_mrad, "convergence_mrad", low=0.0, high=MAX_MRAD, low_open=True
    )
    source_fwhm = check_float(source_fwhm, "source_fwhm (Å)", low=0.0)
    background = check_float(background, "background", low=0.0, high=MAX_RELATIVE)
    read_noise = check_float(read_noise, "read_noise", low=0.0, high=MAX_RELATIVE)
    extent = max(rows, cols) * pixel_size
    scan_jitter = check_float(
        scan_jitter, f"scan_jitter (Å, at most the image extent {extent:g} Å)", low=0.0,
        high=extent,
    )  # fmt: skip
    drift = _check_pair(drift, "drift (Å per scan line)", bound=extent)
    if origin is not None:
        origin = _check_pair(origin, "origin (Å)", bound=MAX_ORIGIN)
    if np.dtype(dtype) not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
    probe = probe_sigma(beam_energy_keV, convergence_mrad, source_fwhm)
    if probe <= a:
        check_float(thermal_sigma, "thermal_sigma (Å, at most lattice_constant)", low=0.0, high=a)
    if math.hypot(probe, thermal_sigma) > a:
        raise ValueError(
            f"lattice_constant={a} Å is too fine for the probe: its width (sigma "
            f"{probe:.3g} Å from beam_energy_keV, convergence_mrad and source_fwhm, broadened by "
            f"thermal_sigma to {math.hypot(probe, thermal_sigma):.3g} Å) must be at most "
            "the lattice constant, beyond which the columns merge into a uniform image"
        )
    cell = projected_cell(prototype, zone)
    if origin is None:
        origin = (0.5 * (cols - 1) * pixel_size, 0.5 * (rows - 1) * pixel_size)
    params = haadf_params(
        cell,
        a,
        rotation_deg,
        pixel_size,
        origin=origin,
        probe=probe,
        thermal_sigma=thermal_sigma,
        background=background,
        dose=dose,
        read_noise=read_noise,
        jitter=scan_jitter,
        drift=drift,
    )[None, :]
    columns = column_weights(cell, a, z)
    if seed is None:
        seed = int(np.random.SeedSequence().generate_state(1, np.uint64)[0])
    out = _core.imaging.render_haadf(
        columns,
        np.array([0, len(columns)], dtype=np.int64),
        np.zeros(1, dtype=np.int64),
        params,
        rows,
        cols,
        int(seed) % (1 << 64),
        dtype,
    )
    return out[0]


def _check_shape(shape: Sequence[int]) -> tuple[int, int]:
    """``shape`` as (rows, cols) of positive ints; MemoryError past 2**28 pixels."""
    try:
        items = tuple(shape)
    except TypeError:
        items = ()
    if len(items) != 2:
        raise ValueError(f"shape must be a pair (rows, cols) of positive ints, got {shape!r}")
    rows = check_int(items[0], "shape[0] (rows)", low=1)
    cols = check_int(items[1], "shape[1] (cols)", low=1)
    if rows * cols > 1 << 28:
        raise MemoryError(f"shape {shape!r} is too large (more than 2^28 pixels)")
    return rows, cols


def _check_pair(
    value: Sequence[float], name: str, bound: float | None = None
) -> tuple[float, float]:
    """``value`` as a pair of finite floats, within ``[-bound, bound]`` when given."""
    try:
        items = tuple(value)
    except TypeError:
        items = ()
    if len(items) != 2:
        raise ValueError(f"{name} must be a pair of numbers, got {value!r}")
    low = None if bound is None else -bound
    return (
        check_float(items[0], f"{name}[0]", low=low, high=bound),
        check_float(items[1], f"{name}[1]", low=low, high=bound),
    )
