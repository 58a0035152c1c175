"""Kinematic convergent-beam electron diffraction (CBED) patterns at a zone axis.

The crystallography (which reflections lie in the zero-order Laue zone, the conventional
cell's atoms) is worked out here and cached per (prototype, zone axis); structure
factors and the disks are computed by the C++ kernel ``matchar._core.imaging.render_cbed_*``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np

from .. import _core
from .._deprecation import Renamed, renamed_parameters
from .._validation import check_float, check_int
from ._simulate import (
    _HCP_C_OVER_A,
    MAX_DOSE,
    MAX_KV,
    MAX_LENGTH,
    MAX_MRAD,
    MAX_RELATIVE,
    _check_pair,
    _check_shape,
    _primitive,
    normalize_zone_axis,
    projected_cell,
)

_FCC = np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])

#: Fractional coordinates of the atoms of each prototype's conventional cell.
_CONVENTIONAL_BASIS = {
    "fcc": _FCC,
    "bcc": np.array([[0, 0, 0], [0.5, 0.5, 0.5]]),
    "diamond": np.concatenate([_FCC, _FCC + 0.25]),
    "hcp": np.array([[1 / 3, 2 / 3, 0.25], [2 / 3, 1 / 3, 0.75]]),
}

#: Reflections out to this |g| (1/Å) deplete the direct beam even when their disks fall
#: outside the pattern (beyond it f(g)^2 has dropped below ~1e-4 of its value at g = 0.5).
G_DEPLETION = 4.0


def _angstrom_to_nm(thickness: float) -> float:
    return thickness / 10.0


# Enumerating more Miller indices than this per axis means a pattern reaching absurdly
# far into reciprocal space (a caller error, not a diffraction pattern).
_MAX_INDEX = 200


@renamed_parameters(voltage_kv="beam_energy_keV")
def electron_wavelength(beam_energy_keV: float) -> float:
    """Relativistic electron wavelength in Å.

    Parameters
    ----------
    beam_energy_keV : float
        Beam energy in keV (the accelerating voltage in kV), in (0, 1e4]. Was
        ``voltage_kv``, deprecated.

    Returns
    -------
    float
        lambda = h / sqrt(2 m0 e V (1 + e V / (2 m0 c^2))), Å.

    Examples
    --------
    >>> round(electron_wavelength(300.0), 5)
    0.01969
    """
    beam_energy_keV = check_float(
        beam_energy_keV, "beam_energy_keV", low=0.0, high=MAX_KV, low_open=True
    )
    v = beam_energy_keV * 1e3
    return 12.2643 / math.sqrt(v * (1 + 0.97845e-6 * v))


def _gamma(beam_energy_keV: float) -> float:
    """Relativistic mass ratio 1 + eV / (m0 c^2)."""
    return 1.0 + beam_energy_keV / 510.99895


def conventional_cell(prototype: str) -> tuple[np.ndarray, np.ndarray]:
    """(cell rows, fractional atom positions) of the conventional cell for a = 1."""
    conv = _primitive(prototype)[0]
    return conv, _CONVENTIONAL_BASIS[prototype]


@functools.lru_cache(maxsize=256)
def zolz_reflections(prototype: str, zone_axis: tuple[int, ...], g_max: int) -> np.ndarray:
    """Reflections of the zero-order Laue zone with |g| <= g_max (units of 1/a).

    Parameters
    ----------
    prototype : {"fcc", "bcc", "hcp", "diamond"}
    zone_axis : tuple of int
        As for :func:`normalize_zone_axis`.
    g_max : int
        Largest |g| a, an integer (callers round up).

    Returns
    -------
    numpy.ndarray, shape (n, 5), float64
        Rows (h, k, l, gx, gy): Miller indices in the conventional cell (hcp: three-index
        (hkl) of the hexagonal cell) and the reciprocal vector in the in-plane frame of
        :func:`projected_cell` (``a1`` along +x) for a = 1, sorted by |g|; (000) excluded,
        forbidden reflections included (their structure factor vanishes).

    Examples
    --------
    >>> r = zolz_reflections("fcc", (1, 0, 0), 2)
    >>> r[0, :3].tolist(), round(float(np.hypot(*r[0, 3:])), 6)
    ([0.0, -1.0, 0.0], 1.0)
    """
    axis = normalize_zone_axis(prototype, zone_axis)
    cell = projected_cell(prototype, axis)
    conv, _ = conventional_cell(prototype)
    if prototype == "hcp":
        uvw = np.array([axis[0] - axis[2], axis[1] - axis[2], axis[3]])
    else:
        uvw = np.array(axis)
    recip = np.linalg.inv(conv).T  # rows b_i with a_i . b_j = delta_ij
    bounds = [math.ceil(g_max * float(np.linalg.norm(a))) for a in conv]
    if max(bounds) > _MAX_INDEX:
        raise ValueError(
            f"the pattern reaches |g| = {g_max}/a: more than {_MAX_INDEX} Miller indices "
            "per axis (is reciprocal_pixel_size in 1/Å per pixel?)"
        )
    h, k, l = np.meshgrid(*(np.arange(-b, b + 1) for b in bounds), indexing="ij")
    hkl = np.stack([h.ravel(), k.ravel(), l.ravel()], axis=1)
    hkl = hkl[(hkl @ uvw == 0) & np.any(hkl != 0, axis=1)]
    g3 = hkl @ recip
    norm = np.linalg.norm(g3, axis=1)
    keep = norm <= g_max + 1e-9
    hkl, g3, norm = hkl[keep], g3[keep], norm[keep]
    g2 = g3 @ cell.frame  # in-plane: g . axis = 0, so nothing is lost
    order = np.lexsort((np.arctan2(g2[:, 1], g2[:, 0]), np.round(norm, 9)))
    return np.concatenate([hkl[order].astype(np.float64), g2[order]], axis=1)


def cbed_motif(
    prototype: str, zone_axis: tuple[int, ...], g_max: int, atomic_number: int
) -> tuple[np.ndarray, np.ndarray, float]:
    """(reflections, atoms (x, y, z, Z), cell volume for a = 1) for the C++ kernel."""
    conv, frac = conventional_cell(prototype)
    atoms = np.concatenate([frac, np.full((len(frac), 1), float(atomic_number))], axis=1)
    return zolz_reflections(prototype, zone_axis, g_max), atoms, abs(np.linalg.det(conv))


def cbed_params(
    lattice_constant: float,
    rotation_deg: float,
    reciprocal_pixel_size: float,
    center: tuple[float, float],
    *,
    beam_energy_keV: float = 300.0,
    convergence_mrad: float = 2.0,
    thickness_nm: float = 3.0,
    thermal_sigma: float = 0.05,
    tilt_mrad: tuple[float, float] = (0.0, 0.0),
    background: float = 0.0,
    dose: float | None = None,
    read_noise: float = 0.0,
    g_max: float | None = None,
) -> np.ndarray:
    """One row of the kernel's parameter table (see ``render_cbed`` in C++; the kernel
    takes the thickness in Å).

    ``g_max`` (1/Å) defaults to the larger of :data:`G_DEPLETION` and the reach of a
    pattern whose direct beam is at ``center`` and that extends as far on the other side.
    """
    lam = electron_wavelength(beam_energy_keV)
    if g_max is None:
        far = (round(2 * center[1]) + 1, round(2 * center[0]) + 1)
        radius = convergence_mrad * 1e-3 / lam
        g_max = max(G_DEPLETION, pattern_reach(far, reciprocal_pixel_size, center, radius))
    return np.array(
        [
            lattice_constant,
            rotation_deg,
            reciprocal_pixel_size,
            center[0],
            center[1],
            convergence_mrad * 1e-3 / lam,
            lam,
            _gamma(beam_energy_keV),
            thickness_nm * 10.0,
            thermal_sigma,
            tilt_mrad[0] * 1e-3 / lam,
            tilt_mrad[1] * 1e-3 / lam,
            background,
            0.0 if dose is None else dose,
            read_noise,
            g_max,
        ],
        dtype=np.float64,
    )


def pattern_reach(
    shape: tuple[int, int], reciprocal_pixel_size: float, center, disk_radius: float
) -> float:
    """Largest |g| (1/Å) whose disk can touch a pattern of ``shape``."""
    rows, cols = shape
    dx = max(abs(center[0]), abs(cols - 1 - center[0]))
    dy = max(abs(center[1]), abs(rows - 1 - center[1]))
    return math.hypot(dx, dy) * reciprocal_pixel_size + disk_radius + reciprocal_pixel_size


@renamed_parameters(
    rotation="rotation_deg",
    pixel_size="reciprocal_pixel_size",
    voltage_kv="beam_energy_keV",
    thickness=Renamed("thickness_nm", _angstrom_to_nm, "thickness was in Å: divided by 10"),
)
def simulate_cbed(
    prototype: str,
    zone_axis: Sequence[int],
    lattice_constant: float,
    rotation_deg: float = 0.0,
    shape: tuple[int, int] = (96, 96),
    reciprocal_pixel_size: float = 0.04,
    dose: float | None = None,
    thermal_sigma: float = 0.05,
    seed: int | None = None,
    *,
    atomic_number: int = 29,
    beam_energy_keV: float = 300.0,
    convergence_mrad: float = 2.0,
    thickness_nm: float = 3.0,
    tilt_mrad: tuple[float, float] = (0.0, 0.0),
    background: float = 0.0,
    read_noise: float = 0.0,
    center: tuple[float, float] | None = None,
    dtype: type = np.float64,
) -> np.ndarray:
    """Simulate a kinematic convergent-beam electron diffraction pattern at a zone axis.

    Every reflection g of the zero-order Laue zone (g perpendicular to the zone axis) is a
    disk of radius alpha / lambda (convergence semi-angle over the relativistic
    wavelength) centred at g. Inside it, the pixel at k sees the incident direction
    K = k - g (+ the crystal tilt) and the kinematic intensity
    ``(lambda |F_g| / V)^2 sin^2(pi T s) / (pi s)^2`` with excitation error
    s = -(lambda / 2)(2 K . g + g^2) (Ewald-sphere curvature and tilt) and thickness T;
    the direct disk holds 1 minus the diffracted intensities of all reflections out to
    ``|g|`` = 4 1/Å or the pattern's edge (clipped at 0). F_g is the
    kinematic structure factor sum_j gamma f(Z, g) exp(-2 pi^2 sigma^2 g^2)
    exp(2 pi i g . r_j) over the conventional cell, with f the Born scattering factor of
    the Thomas-Fermi-Moliere atom (a Z-based approximation) and the Debye-Waller factor
    of the thermal displacement sigma. Then a constant background, Poisson shot noise at
    ``dose`` electrons per pixel (at intensity 1, the incident beam) and Gaussian read
    noise.

    Parameters
    ----------
    prototype : {"fcc", "bcc", "hcp", "diamond"}
        Crystal prototype (hcp with ideal c/a).
    zone_axis : tuple of int
        Beam direction; hcp accepts (u, v, w) or Miller-Bravais (U, V, T, W).
    lattice_constant : float
        Cubic lattice constant a (hcp: the basal a), Å, in (0, 1e4].
    rotation_deg : float
        In-plane rotation in degrees, the same convention as
        :func:`simulate_haadf` (the crystal turned from +x towards +y, rows): the pattern
        turns with it. Was ``rotation``, deprecated.
    shape : (int, int)
        Pattern shape (rows, cols) in pixels, at most 2**28 pixels.
    reciprocal_pixel_size : float
        Calibration in 1/Å per pixel (reciprocal space; g = 1/d), > 0. At 300 keV,
        1 mrad = 0.0508 1/Å. Was ``pixel_size``, deprecated.
    dose : float or None
        Electrons per pixel at intensity 1 (the direct disk), in (0, 1e15];
        None = noiseless.
    thermal_sigma : float
        RMS thermal displacement (Å, one direction) of the Debye-Waller factor, in
        [0, lattice_constant].
    seed : int or None
        Seed of the noise, in [0, 2**64 - 1]; None = fresh.
    atomic_number : int
        Z of the (single) element, 1-103.
    beam_energy_keV : float
        Beam energy in keV (the accelerating voltage in kV) for the wavelength and gamma,
        in (0, 1e4]. Was ``voltage_kv``, deprecated.
    convergence_mrad : float
        Convergence semi-angle (mrad), in (0, 1000]: disk radius alpha / lambda.
    thickness_nm : float
        Specimen thickness T in nm, > 0. Was ``thickness`` in Å, deprecated (an old
        value is divided by 10).
    tilt_mrad : (float, float)
        Crystal tilt off the zone axis (mrad) along x and y: moves the excitation errors
        (the intensities), not the disks.
    background : float
        Constant background (units of the incident intensity), in [0, 1e6].
    read_noise : float
        Gaussian read noise (standard deviation, same units), in [0, 1e6].
    center : (float, float) or None
        Direct-beam position (x = column, y = row) in pixels; None = the pattern centre.
    dtype : numpy.float32 or numpy.float64
        Output dtype.

    Returns
    -------
    numpy.ndarray, shape ``shape``, ``dtype``
        The pattern; the incident beam has intensity 1.

    Examples
    --------
    >>> p = simulate_cbed("fcc", (1, 0, 0), 3.6, shape=(65, 65), reciprocal_pixel_size=0.05)
    >>> p.shape, float(p[32, 32]) < 1.0  # the direct beam, depleted by diffraction
    ((65, 65), True)
    """
    zone = normalize_zone_axis(prototype, zone_axis)
    rows, cols = _check_shape(shape)
    a = check_float(lattice_constant, "lattice_constant (Å)", low=0.0, high=MAX_LENGTH,
                    low_open=True)  # fmt: skip
    ps = check_float(
        reciprocal_pixel_size, "reciprocal_pixel_size (1/Å per pixel)", low=0.0, low_open=True
    )
    rot = check_float(rotation_deg, "rotation_deg (degrees)")
    sigma = check_float(
        thermal_sigma, "thermal_sigma (Å, at most lattice_constant)", low=0.0, high=a
    )
    kev = check_float(beam_energy_keV, "beam_energy_keV", low=0.0, high=MAX_KV, low_open=True)
    alpha = check_float(convergence_mrad, "convergence_mrad", low=0.0, high=MAX_MRAD, low_open=True)
    t = check_float(thickness_nm, "thickness_nm", low=0.0, low_open=True)
    bg = check_float(background, "background", low=0.0, high=MAX_RELATIVE)
    rn = check_float(read_noise, "read_noise", low=0.0, high=MAX_RELATIVE)
    dose = check_float(dose, "dose", low=0.0, high=MAX_DOSE, low_open=True, allow_none=True)
    seed = check_int(seed, "seed", low=0, high=2**64 - 1, allow_none=True)
    tilt = _check_pair(tilt_mrad, "tilt_mrad")
    z = check_int(atomic_number, "atomic_number", low=1, high=103)
    if np.dtype(dtype) not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
    if center is None:
        center = (0.5 * (cols - 1), 0.5 * (rows - 1))
    center = _check_pair(center, "center (x, y) in pixels")
    params = cbed_params(
        a, rot, ps, center, beam_energy_keV=kev, convergence_mrad=alpha, thickness_nm=t,
        thermal_sigma=sigma, tilt_mrad=tilt, background=bg, dose=dose, read_noise=rn,
    )[None, :]  # fmt: skip
    reach = max(pattern_reach((rows, cols), ps, center, params[0, 5]), G_DEPLETION)
    params[0, 15] = reach
    if reach * a * (_HCP_C_OVER_A if prototype == "hcp" else 1.0) > _MAX_INDEX:
        raise ValueError(
            f"the pattern reaches |g| = {reach:.3g} 1/Å from the direct beam "
            f"(reciprocal_pixel_size="
            f"{ps} 1/Å per pixel, center={center}, disk radius {params[0, 5]:.3g} 1/Å from "
            f"convergence_mrad={alpha}): more than {_MAX_INDEX} Miller indices per axis at "
            f"lattice_constant={a} Å (is reciprocal_pixel_size in 1/Å per pixel, and the "
            "direct beam "
            "near the pattern?)"
        )
    refl, atoms, volume = cbed_motif(prototype, zone, math.ceil(reach * a), z)
    if seed is None:
        seed = int(np.random.SeedSequence().generate_state(1, np.uint64)[0])
    out = _core.imaging.render_cbed(
        refl,
        np.array([0, len(refl)], dtype=np.int64),
        atoms,
        np.array([0, len(atoms)], dtype=np.int64),
        np.array([volume]),
        np.zeros(1, dtype=np.int64),
        params,
        rows,
        cols,
        int(seed) % (1 << 64),
        dtype,
    )
    return out[0]
