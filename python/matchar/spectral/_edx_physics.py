"""X-ray physics and atomic data of the EDX model: xraylib access and each element's
line table, ionisation cross-sections, the detector's efficiency and peak width, the
film's self-absorption and the take-off angle."""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from .._optional import require
from .._validation import check_choice, check_float

# Shells of the K, L and M families and their number of electrons (filled shells).
_FAMILIES = {"K": ("K",), "L": ("L1", "L2", "L3"), "M": ("M1", "M2", "M3", "M4", "M5")}
_SHELL_ELECTRONS = {"K": 2, "L1": 2, "L2": 2, "L3": 4, "M1": 2, "M2": 2, "M3": 4, "M4": 4, "M5": 6}
_LINE_RE = re.compile(r"^(K|L[1-3]|M[1-5])(L[1-3]|M[1-5]|N[1-7]|O[1-7]|P[1-5]|Q[1-3])_LINE$")
_E_MN_KA_EV = 5898.7  # Mn K-alpha, where detector resolutions are quoted
_FANO_SLOPE_EV = 2.5  # FWHM^2 = FWHM_Mn^2 + 2.5 eV * (E - E_MnKa) (Fiori & Newbury 1978)
_MIN_LINE_KEV = 0.1  # lines below are not modelled (beyond xraylib's attenuation tables)
_MIN_RATE = 1e-3  # radiative rates below are dropped
#: Default detector: polymer window (0.3 um, C-based) with a 30 nm Al coating, 30 nm Si
#: dead layer, 450 um Si crystal. Layers are (formula, density g/cm^3, thickness um).
DEFAULT_WINDOW = (("C8H8", 1.05, 0.3), ("Al", 2.70, 0.03))
#: Most bremsstrahlung columns an EDXModel builds (Kramers j=1, Lifshin j=2, ...): higher
#: powers add columns that are nearly collinear with the last ones.
MAX_BACKGROUND = 10
#: Beam energy (keV) and detector resolution (FWHM at Mn K-alpha, eV) when neither the
#: user nor the file's metadata give one.
DEFAULT_BEAM_ENERGY_KEV = 200.0
DEFAULT_RESOLUTION_EV = 130.0
#: Largest detector resolution (FWHM at Mn K-alpha, eV) accepted: beyond any
#: energy-dispersive detector (peaks wider than a few keV cover the whole spectrum).
MAX_RESOLUTION_EV = 10_000.0
#: The Fano limit of the width formula: FWHM_MnKa^2 must exceed 2.5 eV * 5898.7 eV.
MIN_RESOLUTION_EV = math.sqrt(_FANO_SLOPE_EV * _E_MN_KA_EV)
#: Elements whose lines often come from the detector, grid or holder (see
#: :meth:`EDXModel.propose_elements`).
DETECTOR_ELEMENTS = ("C", "Al", "Si", "Ni", "Cu", "Mo", "Au")


def check_detector(
    window: Any, dead_layer_um: Any, crystal_um: Any
) -> tuple[tuple[tuple[str, float, float], ...], float, float]:
    """(window layers, dead layer, crystal) validated: every layer a (formula xraylib
    knows, density > 0 g/cm^3, thickness >= 0 um), dead layer >= 0 um, crystal > 0 um (all
    finite), so that the efficiency is a fraction in [0, 1]."""
    xl = _xraylib()
    try:
        layers = list(window)
    except TypeError:
        raise ValueError(
            f"window must be a sequence of (formula, density g/cm^3, thickness um), got {window!r}"
        ) from None
    out = []
    for i, layer in enumerate(layers):
        if isinstance(layer, str) or not hasattr(layer, "__len__") or len(layer) != 3:
            raise ValueError(
                f"window[{i}] must be a (formula, density g/cm^3, thickness um) triple, "
                f"got {layer!r}"
            )
        formula, rho, um = layer
        if not isinstance(formula, str):
            raise ValueError(f"window[{i}]: the formula must be a string, got {formula!r}")
        try:
            xl.CS_Total_CP(formula, 10.0)
        except ValueError:
            raise ValueError(
                f"window[{i}]: {formula!r} is not a chemical formula xraylib knows"
            ) from None
        rho = check_float(rho, f"window[{i}] density (g/cm^3)", low=0.0, low_open=True)
        um = check_float(um, f"window[{i}] thickness (um)", low=0.0)
        out.append((formula, rho, um))
    dead = check_float(dead_layer_um, "dead_layer_um", low=0.0)
    crystal = check_float(crystal_um, "crystal_um", low=0.0, low_open=True)
    return tuple(out), dead, crystal


def _xraylib():
    return require("xraylib", "edx", "EDXModel")


@functools.cache
def _shell_lines(Z: int) -> tuple[tuple[str, str, str, float, float, float, float], ...]:
    """(family, shell, line name, line keV, edge keV, radiative rate, fluorescence yield)."""
    xl = _xraylib()
    out = []
    for name in dir(xl):
        m = _LINE_RE.match(name)
        if not m:
            continue
        shell = m.group(1)
        family = shell[0]
        try:
            rate = xl.RadRate(Z, getattr(xl, name))
            energy = xl.LineEnergy(Z, getattr(xl, name))
            edge = xl.EdgeEnergy(Z, getattr(xl, f"{shell}_SHELL"))
            omega = xl.FluorYield(Z, getattr(xl, f"{shell}_SHELL"))
        except ValueError:
            continue
        rate, energy, edge, omega = float(rate), float(energy), float(edge), float(omega)
        if rate < _MIN_RATE or energy < _MIN_LINE_KEV or omega <= 0:
            continue
        out.append((family, shell, name[:-5], energy, edge, rate, omega))
    out.sort(key=lambda t: t[3])
    return tuple(out)


def atomic_number(symbol: str) -> int:
    """Atomic number of an element symbol ("Fe" -> 26); ValueError for unknown symbols."""
    if not isinstance(symbol, str):
        raise ValueError(f"elements: expected element symbols (str), got {symbol!r}")
    xl = _xraylib()
    try:
        return int(xl.SymbolToAtomicNumber(symbol))
    except ValueError:
        raise ValueError(f"elements: unknown element {symbol!r} (not a chemical symbol)") from None


def ionization_cross_section(edge_keV: float, shell: str, beam_energy_keV: float) -> float:
    """Relative electron-impact ionisation cross-section of a shell (Bethe form).

    ``Q = n_s ln(U) / (U E_c^2)`` with ``U = E0 / E_c`` the overvoltage, ``E_c`` the edge
    energy (keV) and ``n_s`` the electrons in the shell (Bethe 1930 with Powell's
    ``b_s = c_s = 1``); 0 for ``U <= 1``. Only ratios between shells and elements matter
    in G (one common constant is divided out).

    Example
    -------
    >>> round(ionization_cross_section(7.112, "K", 200.0), 6)
    0.004691
    """
    edge_keV = check_float(edge_keV, "edge_keV", low=0.0, low_open=True)
    beam_energy_keV = check_float(beam_energy_keV, "beam_energy_keV", low=0.0, low_open=True)
    check_choice(shell, "shell", tuple(_SHELL_ELECTRONS))
    U = beam_energy_keV / edge_keV
    if U <= 1.0:
        return 0.0
    return _SHELL_ELECTRONS[shell] * math.log(U) / (U * edge_keV**2)


def detector_efficiency(
    energy_keV: ArrayLike,
    window: Sequence[tuple[str, float, float]] = DEFAULT_WINDOW,
    dead_layer_um: float = 0.03,
    crystal_um: float = 450.0,
) -> np.ndarray:
    """Fraction of X-rays of each energy detected by a Si drift detector.

    ``eff(E) = prod_layers exp(-mu_l(E) rho_l t_l) * exp(-mu_Si rho_Si t_dead)
    * (1 - exp(-mu_Si rho_Si t_crystal))`` with mass attenuation coefficients
    ``mu`` (cm^2/g) from xraylib (``CS_Total_CP``). Energies below 0.1 keV get 0.

    Parameters
    ----------
    energy_keV : array_like of float
        Photon energies (keV).
    window : sequence of (formula, density g/cm^3, thickness um)
        Window layers (default: 0.3 um polymer + 30 nm Al); ``()`` for windowless.
        Densities > 0, thicknesses >= 0, finite.
    dead_layer_um, crystal_um : float
        Si dead layer (>= 0) and sensitive thickness (> 0), um.

    Returns
    -------
    ndarray of float64, same shape as ``energy_keV``, values in [0, 1].

    Example
    -------
    >>> eff = detector_efficiency([0.525, 6.4, 30.0])
    >>> bool(eff[0] < eff[1]) and bool(eff[2] < eff[1])
    True
    """
    xl = _xraylib()
    window, dead_layer_um, crystal_um = check_detector(window, dead_layer_um, crystal_um)
    E = np.asarray(energy_keV, dtype=np.float64)
    flat = E.reshape(-1)
    out = np.zeros(flat.shape)
    for i, e in enumerate(flat):
        if not np.isfinite(e) or e < _MIN_LINE_KEV:
            continue
        t = 1.0
        for formula, rho, um in window:
            t *= math.exp(-xl.CS_Total_CP(formula, float(e)) * rho * um * 1e-4)
        mu_si = xl.CS_Total(14, float(e)) * 2.33
        t *= math.exp(-mu_si * dead_layer_um * 1e-4) * (1.0 - math.exp(-mu_si * crystal_um * 1e-4))
        out[i] = t
    return out.reshape(E.shape)


def fwhm_keV(energy_keV: ArrayLike, resolution_eV: float = 130.0) -> np.ndarray:
    """Detector peak width: ``FWHM(E)^2 = FWHM_MnKa^2 + 2.5 eV (E - 5898.7 eV)``.

    ``resolution_eV`` (the FWHM at Mn K-alpha) must lie in [121.4, 10000] eV.

    Example
    -------
    >>> float(np.round(fwhm_keV(5.8987), 4))
    0.13
    """
    resolution_eV = check_float(
        resolution_eV, "resolution_eV", low=MIN_RESOLUTION_EV, high=MAX_RESOLUTION_EV
    )
    E = np.asarray(energy_keV, dtype=np.float64) * 1000.0
    sq = resolution_eV**2 + _FANO_SLOPE_EV * (E - _E_MN_KA_EV)
    return np.sqrt(np.maximum(sq, 1.0)) / 1000.0


def sample_absorption(
    energy_keV: ArrayLike,
    composition: dict[str, float],
    density_g_cm3: float,
    thickness_nm: float,
    takeoff_deg: float = 20.0,
) -> np.ndarray:
    """Fraction of X-rays generated uniformly through a film that leave it to the detector.

    ``A(E) = (1 - exp(-chi)) / chi`` with ``chi = mu(E) rho t / sin(takeoff)``, ``mu`` the
    mass attenuation coefficient (cm^2/g) of the film, ``sum_i w_i mu_i(E)`` over its
    elements' weight fractions ``w_i`` (from the atomic fractions and xraylib's atomic
    weights; ``mu_i`` from xraylib ``CS_Total``). 1 for ``thickness_nm == 0`` and below
    0.1 keV (beyond the model).

    Parameters
    ----------
    energy_keV : array_like of float
        Photon energies (keV).
    composition : dict of str to float
        Atomic fractions (or amounts) of the film's elements; normalised here.
    density_g_cm3 : float
        Film density (g/cm^3), > 0.
    thickness_nm : float
        Film thickness (nm), >= 0.
    takeoff_deg : float or None, default None
        Detector take-off angle (degrees, in (0, 90]). ``None``: from the metadata's
        detector elevation and azimuth and stage tilt (:func:`take_off_angle`), else 20.

    Returns
    -------
    ndarray of float64, same shape as ``energy_keV``, values in (0, 1].

    Example
    -------
    >>> a = sample_absorption([0.525, 4.51], {"Ti": 1, "O": 2}, 4.2, 100.0)
    >>> bool(a[0] < a[1] < 1.0)
    True
    """
    xl = _xraylib()
    if not isinstance(composition, dict) or not composition:
        raise ValueError(f"sample_composition must be a non-empty dict, got {composition!r}")
    zs = [atomic_number(el) for el in composition]
    x = np.array([check_float(v, f"sample_composition[{k!r}]") for k, v in composition.items()])
    if (x < 0).any() or not 0 < x.sum() < np.inf:
        raise ValueError("sample_composition: fractions must be finite, >= 0, not all 0")
    density_g_cm3 = check_float(density_g_cm3, "density_g_cm3", low=0.0, low_open=True)
    thickness_nm = check_float(thickness_nm, "thickness_nm", low=0.0)
    takeoff_deg = check_float(takeoff_deg, "takeoff_deg", low=0.0, high=90.0, low_open=True)
    w = x * np.array([xl.AtomicWeight(z) for z in zs])
    w /= w.sum()
    E = np.asarray(energy_keV, dtype=np.float64)
    flat = E.reshape(-1)
    out = np.ones(flat.shape)
    path = density_g_cm3 * thickness_nm * 1e-7 / math.sin(math.radians(takeoff_deg))
    if path == 0:
        return out.reshape(E.shape)
    for i, e in enumerate(flat):
        if not np.isfinite(e) or e < _MIN_LINE_KEV:
            continue
        mu = sum(wi * xl.CS_Total(z, float(e)) for wi, z in zip(w, zs))
        chi = mu * path
        out[i] = -math.expm1(-chi) / chi if chi > 0 else 1.0
    return out.reshape(E.shape)


def take_off_angle(tilt_deg: float, azimuth_deg: float, elevation_deg: float) -> float:
    """X-ray take-off angle (degrees) of a detector over a tilted specimen.

    ``asin(-cos(a) cos(b) cos(c) + sin(a) sin(c))`` with ``a = 90 deg + tilt``, ``b`` the
    detector's azimuth (0 = perpendicular to the tilt axis) and ``c`` its elevation
    (Schaffer et al., Ultramicroscopy 107, 587 (2007); HyperSpy/exspy's convention: the
    specimen faces the detector when positively tilted).

    Example
    -------
    >>> round(take_off_angle(0.0, 45.0, 18.0), 6)
    18.0
    >>> round(take_off_angle(10.0, 45.0, 22.0), 3)
    28.866
    """
    a = math.radians(90.0 + float(tilt_deg))
    b = math.radians(float(azimuth_deg))
    c = math.radians(float(elevation_deg))
    s = -math.cos(a) * math.cos(b) * math.cos(c) + math.sin(a) * math.sin(c)
    # rounded: cos(90 deg) is 6e-17 in floating point, not 0
    return round(math.degrees(math.asin(max(-1.0, min(1.0, s)))), 9)


@functools.cache
def _symbol(Z: int) -> str:
    return str(_xraylib().AtomicNumberToSymbol(Z))
