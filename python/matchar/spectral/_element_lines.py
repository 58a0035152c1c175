"""The lines of a candidate element against the data, for the element proposal: the Si
escape and pile-up artefact columns of the fitted lines, resolvable line groups, and the
line-family deficit test (missing or excess companion peaks)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.special import erf

from ._edx_physics import _xraylib, fwhm_keV
from ._edx_spectrum import _poisson_fit

if TYPE_CHECKING:  # pragma: no cover
    from ._edx import EDXModel

#: Si K-alpha (keV): an Si detector's escape peak sits this far below its parent line.
SI_KA_KEV = 1.740
#: Si K edge (keV): only lines above it make escape peaks.
SI_K_EDGE_KEV = 1.839
_SIGMA_PER_FWHM = 1.0 / 2.3548200450309493
# Shells whose lines the deficit test requires: the model has no Coster-Kronig
# transfers, so it overstates the L1, L2 (and M1-M3) lines and understates L3, M4, M5
_MAIN_SHELLS = ("K", "L3", "M4", "M5")


def _gauss(model: EDXModel, energy_keV: float, sigma_keV: float) -> np.ndarray:
    """A unit-area Gaussian line at ``energy_keV`` integrated over each channel (C,)."""
    half = 0.5 * model.scale
    edges = np.concatenate([model.energy - half, [model.energy[-1] + half]])
    z = (edges - energy_keV) / (sigma_keV * math.sqrt(2.0))
    g = 0.5 * np.diff(erf(z))
    g[~model.fit_channels] = 0.0
    return g


def _sigma(model: EDXModel, energy_keV: float) -> float:
    return float(fwhm_keV(max(energy_keV, 0.0), model.resolution_eV)) * _SIGMA_PER_FWHM


def si_escape_fraction(energy_keV: float) -> float:
    """Fraction of photons of ``energy_keV`` absorbed in an Si detector whose Si K
    fluorescence photon escapes (Reed & Ware 1972, normal incidence):
    ``0.5 omega_K (1 - 1/r) [1 - (mu_K / mu_E) ln(1 + mu_E / mu_K)]`` with ``omega_K``
    the Si K fluorescence yield, ``r`` the K jump ratio, ``mu_E`` and ``mu_K`` Si's mass
    attenuation at the photon energy and at Si K-alpha (xraylib). 0 below the Si K edge.

    Example
    -------
    >>> 0.005 < si_escape_fraction(2.0) < 0.03, si_escape_fraction(1.5)
    (True, 0.0)
    """
    if energy_keV <= SI_K_EDGE_KEV:
        return 0.0
    xl = _xraylib()
    omega = xl.FluorYield(14, xl.K_SHELL)
    r = xl.JumpFactor(14, xl.K_SHELL)
    mu_e = xl.CS_Total(14, float(energy_keV))
    mu_k = xl.CS_Total(14, SI_KA_KEV)
    return float(0.5 * omega * (1.0 - 1.0 / r) * (1.0 - mu_k / mu_e * math.log1p(mu_e / mu_k)))


def artefact_columns(
    model: EDXModel, elements: Sequence[tuple[str, np.ndarray, list]], amplitudes: np.ndarray
) -> list[np.ndarray]:
    """Escape-peak and pile-up (sum-peak) columns of the fitted element lines, shape (C,) each.

    Every line l of the elements, with fitted intensity ``I_l = a_e * weight_l`` (counts),
    makes an Si escape peak ``I_l * si_escape_fraction(E_l)`` at ``E_l - 1.740 keV``; every
    pair of the 30 strongest lines (a line with itself included) a sum peak ``I_l * I_m``
    at ``E_l + E_m`` (random coincidences: proportional to the product of the rates). Each
    peak has the detector's width at its own energy. The two columns (escape, pile-up)
    enter the fit with free non-negative amplitudes; all-zero columns are left out.

    Parameters
    ----------
    model : EDXModel
        The energy axis, resolution and fitted channels.
    elements : sequence of (symbol, column (C,), lines)
        Element columns and their lines (dicts with ``energy_keV`` and ``weight``, as
        ``EDXModel.lines``).
    amplitudes : ndarray, shape (n_elements,)
        Fitted amplitude of each element column.

    Returns
    -------
    list of ndarray, each shape (C,), unit sum
    """
    E, w = [], []
    for (_, _, lines), a in zip(elements, amplitudes):
        for ln in lines:
            E.append(ln["energy_keV"])
            w.append(float(a) * ln["weight"])
    out: list[np.ndarray] = []
    if not E:
        return out
    E_arr, w_arr = np.asarray(E), np.asarray(w)
    if not (w_arr > 0).any():
        return out
    lo, hi = float(model.energy[0]), float(model.energy[-1])
    esc = np.zeros(model.energy.size)
    for e, i in zip(E_arr, w_arr):
        f = si_escape_fraction(e) if i > 0 else 0.0
        if f > 0 and lo <= e - SI_KA_KEV <= hi:
            esc += i * f * _gauss(model, e - SI_KA_KEV, _sigma(model, e - SI_KA_KEV))
    pile = np.zeros(model.energy.size)
    top = np.argsort(w_arr)[::-1][:30]
    top = top[w_arr[top] >= 1e-3 * w_arr.max()]
    for a, i in enumerate(top):
        for j in top[a:]:
            s = E_arr[i] + E_arr[j]
            if lo <= s <= hi:
                pair = w_arr[i] * w_arr[j] * (1.0 if i == j else 2.0)
                pile += pair * _gauss(model, s, _sigma(model, s))
    for col in (esc, pile):
        if col.sum() > 0:
            out.append(col / col.sum())
    return out


def _line_groups(model: EDXModel, lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Lines merged into resolvable peaks: lines closer than one FWHM share a group."""
    order = sorted(lines, key=lambda ln: ln["energy_keV"])
    groups: list[list[dict[str, Any]]] = []
    for ln in order:
        if groups:
            prev = groups[-1][-1]["energy_keV"]
            if ln["energy_keV"] - prev <= _sigma(model, ln["energy_keV"]) / _SIGMA_PER_FWHM:
                groups[-1].append(ln)
                continue
        groups.append([ln])
    out = []
    for g in groups:
        w = np.array([ln["weight"] for ln in g])
        col = sum(ln["weight"] * _gauss(model, ln["energy_keV"], ln["sigma_keV"]) for ln in g)
        strongest = g[int(np.argmax(w))]
        out.append(
            dict(
                lines=[ln["line"] for ln in g],
                family=strongest["family"],
                shell=strongest["shell"],
                energy_keV=float(np.average([ln["energy_keV"] for ln in g], weights=w)),
                column=col,
            )
        )
    return out


def family_deficit(
    model: EDXModel,
    spec: np.ndarray,
    keep: np.ndarray,
    cols: list[np.ndarray],
    coef: np.ndarray,
    lines: list[dict[str, Any]],
    peak_line: str,
    model_error: float,
    tolerance: float,
) -> tuple[float, str | None]:
    """How strongly the data contradict an element's fixed line ratios (missing or
    excess companion peaks).

    The element's lines are merged into resolvable peaks (groups of lines within one
    FWHM) and fitted with one free non-negative amplitude each, next to ``cols`` (the
    background, the elements already in and the artefacts). With ``b`` the amplitudes and
    ``S_g`` a group's modelled counts per unit amplitude, a companion group g of the group
    holding ``peak_line`` should show at least ``tolerance * b_main * S_g`` counts; the
    deficit is ``z_g = (tolerance * b_main * S_g - b_g * S_g) / sqrt(F_g + (model_error
    F_g)^2 + 1)``, F_g the fitted counts within one FWHM of the group, for companions
    whose strongest line is of a K, L3, M4 or M5 shell. Companions of another family at
    lower energy than the peak (an L family below a K peak: absorbed in a thick specimen
    far more than the model's thin film says) are tested only for a TEM beam (>= 60
    keV) and above 1 keV. A companion at >= 1 keV holding more counts than the peak
    and more than ``b_main * S_g / tolerance``, by ``z`` standard deviations (with the
    peak amplitude's error), is an excess: the element explains another peak.

    Parameters
    ----------
    model : EDXModel
    spec : ndarray, shape (C,)
        Summed counts.
    keep : ndarray of bool, shape (C,)
        Fitted channels.
    cols : list of ndarray, each shape (C,)
        Columns already in the fit (background, elements, artefacts).
    coef : ndarray, shape (len(cols),)
        Their fitted amplitudes (the start of the free-group fit).
    lines : list of dict
        The candidate's lines (``energy_keV``, ``weight``, ``sigma_keV``, ``family``,
        ``shell``, ``line``).
    peak_line : str
        The line (IUPAC name) nearest the peak that proposed the candidate.
    model_error : float
        Relative model error (as in propose_elements).
    tolerance : float
        The fraction of a companion's predicted counts it must show (0 to 1).

    Returns
    -------
    (z, group) : (float, str or None)
        The largest deficit or excess in standard deviations (0 when no companion is
        tested) and its group's lines with "missing" or "in excess".
    """
    groups = _line_groups(model, lines)
    main = next((k for k, g in enumerate(groups) if peak_line in g["lines"]), None)
    if main is None or len(groups) < 2:
        return 0.0, None
    G = np.stack([g["column"] for g in groups], 1)
    B = np.hstack([np.stack(cols, 1), G])[keep]
    start = np.concatenate([coef, np.full(len(groups), 1.0)])
    start[-len(groups) :] = max(float(spec[keep].sum()) * 1e-3, 1.0) / np.maximum(
        G[keep].sum(0), 1e-300
    )
    fit, _, c = _poisson_fit(spec[keep], B, n_iter=300, start=start, return_coef=True)
    full = np.zeros(spec.size)
    full[keep] = fit
    b = c[-len(groups) :]
    S = G[keep].sum(0)
    worst, which = 0.0, None
    e_main, fam_main = groups[main]["energy_keV"], groups[main]["family"]
    # a TEM (beam >= 60 keV) specimen is thin: its lines above 1 keV are hardly absorbed
    thin = model.beam_energy_keV >= 60.0

    def window_counts(k: int) -> float:
        fw = _sigma(model, groups[k]["energy_keV"]) / _SIGMA_PER_FWHM
        return float(full[np.abs(model.energy - groups[k]["energy_keV"]) <= fw].sum())

    main_signal = b[main] * S[main]
    # relative variance of the main peak's amplitude (Poisson counts under it)
    rel_main = (window_counts(main) + 1.0) / max(main_signal, 1e-12) ** 2
    for k, g in enumerate(groups):
        if k == main:
            continue
        F = window_counts(k)
        noise = F + (model_error * F) ** 2 + 1.0
        seen = b[k] * S[k]
        # excess: a companion with more counts than the peak itself and far above what
        # the peak predicts (the element explains another peak, not this one)
        pred = b[main] * S[k] / max(tolerance, 1e-12)
        z_ex = (seen - pred) / math.sqrt(noise + pred**2 * rel_main)
        if seen < main_signal or g["energy_keV"] < 1.0:
            z_ex = -np.inf
        z_def = -np.inf
        if g["shell"] in _MAIN_SHELLS and (
            g["family"] == fam_main or g["energy_keV"] > e_main or (thin and g["energy_keV"] >= 1.0)
        ):
            z_def = (tolerance * b[main] * S[k] - seen) / math.sqrt(noise)
        z = max(z_ex, z_def)
        if z > worst:
            kind = "missing" if z_def >= z_ex else "in excess"
            worst, which = float(z), "+".join(g["lines"]) + " " + kind
    return worst, which
