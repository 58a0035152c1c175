"""Element proposal for EDX spectra: greedy likelihood-ratio search with line-family
consistency, escape and pile-up artefacts, window-edge steps in the background,
detector/holder labels and Benjamini-Hochberg control of false discoveries over the
candidate elements.

:meth:`matchar.spectral.EDXModel.propose_elements` is the public entry point; this
module holds its implementation: the greedy search, the background bases and the
false-discovery control. The escape and pile-up columns and the line-family test are in
``_element_lines.py``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.ndimage import maximum_filter1d
from scipy.special import erf
from scipy.stats import chi2

from .._moved import forward_private
from .._validation import check_float, check_int
from . import _element_lines
from ._edx_physics import (
    DETECTOR_ELEMENTS,
    _shell_lines,
    _symbol,
    atomic_number,
    fwhm_keV,
)
from ._edx_spectrum import _poisson_fit, _summed_spectrum
from ._element_lines import _SIGMA_PER_FWHM, _gauss, _sigma
from ._element_lines import SI_K_EDGE_KEV as SI_K_EDGE_KEV
from ._element_lines import SI_KA_KEV as SI_KA_KEV
from ._element_lines import artefact_columns as artefact_columns
from ._element_lines import family_deficit as family_deficit
from ._element_lines import si_escape_fraction as si_escape_fraction

if TYPE_CHECKING:  # pragma: no cover
    from ._edx import EDXModel


def _bh(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values) of ``p`` (n,)."""
    n = p.size
    if n == 0:
        return p
    order = np.argsort(p)
    q = p[order] * n / np.arange(1, n + 1)
    q = np.minimum.accumulate(q[::-1])[::-1]
    out = np.empty(n)
    out[order] = np.minimum(q, 1.0)
    return out


def _p_value(gain: float, counts: float, model_error: float) -> tuple[float, float]:
    """(z, p) of a deviance drop ``gain`` for one non-negative amplitude: ``gain`` divided by
    ``1 + model_error^2 * counts`` (the model-error inflation), then the boundary
    chi-square ``0.5 chi2_1`` (half the time an absent element's best amplitude is 0)."""
    d = max(gain, 0.0) / (1.0 + model_error**2 * max(counts, 0.0))
    if d <= 0:
        return 0.0, 1.0
    return math.sqrt(d), float(0.5 * chi2.sf(d, 1))


class _Search:
    """State of one greedy search on one background basis."""

    def __init__(self, model: EDXModel, spec: np.ndarray, opts: dict[str, Any]) -> None:
        self.model, self.spec, self.o = model, spec, opts
        self.keep = model.fit_channels.copy()
        fwhm_ch = np.maximum(1, np.round(fwhm_keV(model.energy, model.resolution_eV) / model.scale))
        self.win = int(fwhm_ch.max())
        # windows follow the detector width at each energy: half an FWHM for the sums
        # (at least 3 channels), one FWHM on either side for the largest nearby sum
        self.half = np.maximum(1, np.round(fwhm_ch / 4)).astype(int)
        self.reach = fwhm_ch.astype(int)
        self.trace: list = []
        # the detector's zero (noise) peak tails into the first FWHM above the low cut
        cut = model.low_cut_keV
        self.zero_tail = model.energy < cut + _sigma(model, cut) / _SIGMA_PER_FWHM

    def fit(self, basis, elems, n_iter=300):
        """Fit background + elements, then again with the artefacts of that fit."""
        keep, spec = self.keep, self.spec
        n_bg = self.n_bg = basis.shape[1]
        cols = [*basis.T, *(c for _, c, _ in elems)]
        f, d, c = _poisson_fit(spec[keep], np.stack(cols, 1)[keep], n_iter=n_iter, return_coef=True)
        arts = []
        if self.o["artefacts"] and elems:
            arts = artefact_columns(self.model, elems, c[n_bg:])
            if arts:
                cols += arts
                start = np.concatenate([c, np.full(len(arts), 1e-6 * max(spec.sum(), 1.0))])
                f, d, c = _poisson_fit(
                    spec[keep], np.stack(cols, 1)[keep], n_iter=n_iter, start=start,
                    return_coef=True,
                )  # fmt: skip
        return cols, f, d, c

    def ratio_gain(self, elems, coef, cols, fit, pe, tol) -> float:
        """The largest deviance drop from changing one line of an element already in,
        by what the model may plausibly have wrong: its size (a line within ``tol`` of
        ``pe`` raised by up to ``1 / family_tolerance - 1`` times), its width (up to 40 %
        wider or 20 % narrower) or its position (up to a quarter FWHM), for the lines
        within 1.5 FWHM of ``pe`` (the detector's resolution, its calibration)."""
        m, spec, keep = self.model, self.spec, self.keep
        x = spec[keep]
        f0 = np.maximum(fit, 1e-12)
        pos = x > 0

        def deviance(f: np.ndarray) -> float:
            f = np.maximum(f, 1e-12)
            return 2.0 * float(np.sum(x[pos] * np.log(x[pos] / f[pos])) - x.sum() + f.sum())

        def best_step(col: np.ndarray, lo: float, hi: float) -> float:
            # the Poisson likelihood's maximum along f0 + t col, t in [lo, hi] (Newton)
            t = 0.0
            for _ in range(20):
                f = np.maximum(f0 + t * col, 1e-12)
                grad = float(col @ (x / f - 1.0))
                hess = float(col @ (col * x / f**2)) + 1e-300
                t = min(max(t + grad / hess, lo), hi)
            return d0 - deviance(f0 + t * col)

        d0 = deviance(f0)
        fw = _sigma(m, pe) / _SIGMA_PER_FWHM
        best = 0.0
        cap = 1.0 / max(self.o["family_tolerance"], 1e-12) - 1.0
        for j, (_, _, lines) in enumerate(elems):
            a = float(coef[self.n_bg + j])
            if a <= 0:
                continue
            for ln in lines:
                e, s, w = ln["energy_keV"], ln["sigma_keV"], a * ln["weight"]
                if abs(e - pe) > 1.5 * fw:
                    continue
                g = _gauss(m, e, s)[keep]
                if abs(e - pe) <= tol:
                    best = max(best, best_step(w * g, 0.0, cap))
                wide = w * (_gauss(m, e, 1.4 * s)[keep] - g)
                best = max(best, best_step(wide, -0.5, 1.0))
                d = 0.25 * s / _SIGMA_PER_FWHM
                shift = w * 0.5 * (_gauss(m, e + d, s)[keep] - _gauss(m, e - d, s)[keep])
                best = max(best, best_step(shift, -1.0, 1.0))
        return best

    def where(self, col: np.ndarray, full: np.ndarray, local: np.ndarray) -> int:
        """The channel where ``col`` stands out most from the fit's noise and model error."""
        noise = np.sqrt(np.maximum(full + (self.o["model_error"] * local) ** 2, 1.0))
        return int(np.argmax(np.where(self.keep, col, 0.0) / noise))

    def window_sum(self, x: np.ndarray) -> np.ndarray:
        """Sums of ``x`` over half an FWHM around each channel (C,)."""
        cs = np.concatenate([[0.0], np.cumsum(x)])
        i = np.arange(x.size)
        lo = np.clip(i - self.half, 0, x.size)
        hi = np.clip(i + self.half + 1, 0, x.size)
        return cs[hi] - cs[lo]

    def local_counts(self, full: np.ndarray) -> np.ndarray:
        """The largest window sum of the fit within one FWHM of each channel (C,)."""
        model = self.window_sum(full)
        out = np.empty_like(model)
        for r in np.unique(self.reach):
            sel = self.reach == r
            out[sel] = maximum_filter1d(model, size=2 * int(r) + 1)[sel]
        return out

    def run(self, basis: np.ndarray, known_cols: list) -> tuple[list, list]:
        """The greedy search (steps 2-4 of EDXModel.propose_elements)."""
        m, o, spec, keep = self.model, self.o, self.spec, self.keep
        C = m.energy.size
        elems = list(known_cols)
        have = {el for el, _, _ in elems}
        cols, fit, dev, coef = self.fit(basis, elems)
        masked = np.zeros(C, dtype=bool)
        found: list[dict[str, Any]] = []
        rejected: dict[str, str] = {}
        for _ in range(4 * o["max_elements"]):
            if len(found) >= o["max_elements"]:
                break
            full = np.zeros(C)
            full[keep] = fit
            local = self.local_counts(full)
            resid = self.window_sum(spec - full)
            model_sum = self.window_sum(full)
            z = resid / np.sqrt(np.maximum(model_sum + (o["model_error"] * local) ** 2, 1.0))
            z[~keep | masked | self.zero_tail] = -np.inf
            i = int(np.argmax(z))
            if not np.isfinite(z[i]) or z[i] < o["min_significance"]:
                break
            pe = float(m.energy[i])
            fw_pe = _sigma(m, pe) / _SIGMA_PER_FWHM
            tol = max(0.5 * fw_pe, 2 * m.scale)
            tried = []
            for el, Z in o["cand"].items():
                if el in have or not any(abs(t[3] - pe) <= tol for t in _shell_lines(Z)):
                    continue
                col = m._column(Z, el)
                if col is None:
                    continue
                lines = m._last_lines
                top = max(ln["weight"] for ln in lines)
                near = [
                    (abs(ln["energy_keV"] - pe), ln["line"], ln["energy_keV"])
                    for ln in lines
                    if ln["weight"] >= 0.1 * top and abs(ln["energy_keV"] - pe) <= tol
                ]
                if not near:
                    continue
                start = np.append(coef, 0.0)
                start[-1] = max(float((spec[keep] - fit).clip(0).sum()), 1.0) / max(
                    col[keep].sum(), 1e-300
                )
                B = np.stack([*cols, col], 1)[keep]
                _, d2 = _poisson_fit(spec[keep], B, n_iter=150, start=start)
                tried.append((dev - d2, el, col, lines, min(near)))
            need = o["min_significance"] ** 2 * (1.0 + o["model_error"] ** 2 * float(local[i]))
            tried.sort(key=lambda t: -t[0])
            # a peak that a line of an element already in explains with its ratio off by
            # up to 1 / family_tolerance is that element's, not a new one's
            gain_ratio = self.ratio_gain(elems, coef, cols, fit, pe, tol) if tried else 0.0
            self.trace.append(
                (
                    round(pe, 3),
                    round(float(z[i]), 1),
                    round(need, 1),
                    [(t[1], round(t[0], 1)) for t in tried[:4]],
                )
            )
            chosen = None
            for gain, el, col, lines, near in tried[:4]:
                if gain < need or gain - gain_ratio < need:
                    break
                if o["family_check"]:
                    deficit, group = family_deficit(
                        m, spec, keep, cols, coef, lines, near[1], o["model_error"],
                        o["family_tolerance"],
                    )  # fmt: skip
                    if deficit > o["family_z"]:
                        rejected.setdefault(
                            el, f"{group} ({deficit:.1f} sd) for a peak at {pe:.3f} keV"
                        )
                        continue
                chosen = (gain, el, col, lines, near)
                break
            if chosen is None:
                half = max(1, round(0.5 * fw_pe / m.scale))
                lo, hi = max(0, i - half), min(C, i + half + 1)
                masked[lo:hi] = True
                continue
            gain, el, col, lines, (_, name, e_line) = chosen
            elems.append((el, col, lines))
            have.add(el)
            cols, fit, dev, coef = self.fit(basis, elems)
            found.append(
                dict(
                    element=el,
                    source="peaks",
                    line=name,
                    energy_keV=e_line,
                    peak_keV=pe,
                    significance=float(z[i]),
                    deviance_gain=float(gain),
                )
            )
        self.rejected = rejected
        return found, elems

    def tests(self, basis, elems, cand) -> tuple[list, list]:
        """Drop-one likelihood-ratio tests of the elements in ``elems`` and score tests
        of every other candidate against the final fit: (z, p, dD) per element, (p,) per
        other candidate."""
        m, o, spec, keep = self.model, self.o, self.spec, self.keep
        cols, fit, dev, coef = self.fit(basis, elems)
        n_bg = basis.shape[1]
        full = np.zeros(m.energy.size)
        full[keep] = fit
        local = self.local_counts(full)
        out = []
        for j, (_, col, _) in enumerate(elems):
            rest = [c for k, c in enumerate(cols) if k != n_bg + j]
            start = np.delete(coef, n_bg + j)
            _, d_wo = _poisson_fit(spec[keep], np.stack(rest, 1)[keep], n_iter=300, start=start)
            gain = max(d_wo - dev, 0.0)
            counts = float(local[self.where(col, full, local)])
            z, p = _p_value(gain, counts, o["model_error"])
            out.append((z, p, gain))
        # score test (the LRT's first-order equivalent, one pass) for every candidate
        # that is not in: sum g (x/f - 1) over sqrt(sum g^2 / f), g its column
        others = []
        have = {el for el, _, _ in elems}
        f = np.maximum(fit, 1e-12)
        for el, Z in cand.items():
            if el in have:
                continue
            col = m._column(Z, el)
            if col is None:
                continue
            g = col[keep]
            u = float(g @ (spec[keep] / f - 1.0))
            info = float(g @ (g / f))
            gain = u * u / info if (u > 0 and info > 0) else 0.0
            counts = float(local[self.where(col, full, local)])
            others.append(_p_value(gain, counts, o["model_error"])[1])
        return out, others


#: K edges (keV) of the materials of detector windows and their coatings (C, N, O, Al)
#: and of the Si dead layer, where the background's transmission steps.
WINDOW_EDGES_KEV = (0.284, 0.410, 0.543, 1.560, 1.839)


def _with_edges(model: EDXModel, basis: np.ndarray) -> np.ndarray:
    """``basis`` plus each bremsstrahlung column times each segment between the window
    edges (smoothed by the detector width): a step of any size at each edge."""
    E = model.energy
    inside = [e for e in WINDOW_EDGES_KEV if E[0] < e < E[-1]]
    if not inside:
        return basis
    brems = model.bremsstrahlung().T if model.n_background else [model.fit_channels * 1.0]
    steps = [0.5 * (1 + erf((E - e) / (_sigma(model, e) * math.sqrt(2.0)))) for e in inside]
    bounds = [np.ones_like(E), *steps, np.zeros_like(E)]
    cols = []
    for b in brems:
        for j in range(len(bounds) - 1):
            c = b * (bounds[j] - bounds[j + 1])
            if c.sum() > 0:
                cols.append(c / c.sum())
    return np.column_stack([basis, *cols])


def _columns(model: EDXModel, elements: Sequence[str]) -> list[tuple[str, np.ndarray, list]]:
    """(symbol, G column (C,), lines) of each element with a line on the axis."""
    out = []
    for el in elements:
        col = model._column(atomic_number(el), el)
        if col is not None:
            out.append((el, col, model._last_lines))
    return out


def propose_elements(
    model: EDXModel,
    data: Any,
    *,
    known: Sequence[str] | None = None,
    min_significance: float = 6.0,
    max_elements: int = 20,
    candidates: Sequence[str] | None = None,
    knot_keV: float = 1.0,
    model_error: float = 0.02,
    fdr: float = 0.01,
    family_check: bool = True,
    family_tolerance: float = 0.5,
    family_z: float = 5.0,
    artefacts: bool = True,
    detector_elements: Sequence[str] | None = DETECTOR_ELEMENTS,
    return_details: bool = False,
) -> Any:
    """Implementation of :meth:`EDXModel.propose_elements` (see its docstring for the
    method and every parameter but ``return_details``).

    Parameters
    ----------
    model : EDXModel
        Energy axis (keV), resolution, beam energy and detector of the data.
    data : array_like, shape (C,), (N, C) or (H, W, C)
        Counts on ``model``'s energy axis.
    return_details : bool, default False
        Also return a dict: ``rejected`` (element -> why the family test or the FDR
        removed it), ``background`` (which background basis the search kept),
        ``n_tests`` (how many candidates the Benjamini-Hochberg step counted) and
        ``trace`` (each peak visited: energy keV, significance, the deviance needed,
        the best candidates with their deviance drops).

    Returns
    -------
    list of dict, or (list of dict, dict) with ``return_details``
    """
    min_significance = check_float(min_significance, "min_significance", low=0.0)
    max_elements = check_int(max_elements, "max_elements", low=0, high=200)
    knot_keV = check_float(knot_keV, "knot_keV", low=0.0, low_open=True, allow_inf=True)
    model_error = check_float(model_error, "model_error", low=0.0)
    fdr = check_float(fdr, "fdr", low=0.0, high=1.0, low_open=True)
    family_tolerance = check_float(family_tolerance, "family_tolerance", low=0.0, high=1.0)
    family_z = check_float(family_z, "family_z", low=0.0)
    C = model.energy.size
    spec = _summed_spectrum(data, C)
    if candidates is None:
        candidates = [_symbol(z) for z in range(4, 93)]
    cand = {el: atomic_number(el) for el in candidates}
    known = [] if known is None else ([known] if isinstance(known, str) else list(known))
    known_given = bool(known)
    known = model._on_axis(known, stacklevel=4)
    detector = set(detector_elements or ())
    for el in detector:
        atomic_number(el)
    opts = dict(
        cand=cand,
        min_significance=min_significance,
        max_elements=max_elements,
        model_error=model_error,
        family_check=bool(family_check),
        family_tolerance=family_tolerance,
        family_z=family_z,
        artefacts=bool(artefacts),
    )
    known_cols = _columns(model, known)
    search = _Search(model, spec, opts)
    basis = model.background_basis(np.inf)
    found, elems = search.run(basis, known_cols)
    background = "bremsstrahlung"
    # richer backgrounds only where the data need them: likelihood-ratio tests against
    # the current one, with the elements found (then the search is redone)
    richer = []
    if np.isfinite(knot_keV):
        flex = model.background_basis(knot_keV)
        richer.append((flex, f"flexible ({knot_keV:g} keV knots)"))
        richer.append((_with_edges(model, flex), f"flexible ({knot_keV:g} keV knots) + edges"))
    else:
        richer.append((_with_edges(model, basis), "bremsstrahlung + edges"))
    for cand_basis, label in richer:
        if cand_basis.shape[1] <= basis.shape[1]:
            continue
        _, _, d_old, _ = search.fit(basis, elems, n_iter=1000)
        _, _, d_new, _ = search.fit(cand_basis, elems, n_iter=1000)
        extra = cand_basis.shape[1] - basis.shape[1]
        if d_old - d_new > extra + min_significance * np.sqrt(2.0 * extra):
            basis, background = cand_basis, label
            found, elems = search.run(basis, known_cols)
    # false discoveries: drop-one tests of the elements found, score tests of the other
    # candidates, Benjamini-Hochberg over all the candidates; an element found with
    # q > fdr leaves and the tests are redone
    n_known = len(known_cols)
    for _ in range(max_elements + 1):
        stats, others = search.tests(basis, elems, cand)
        p_found = np.array([s[1] for s in stats[n_known:]])
        q = _bh(np.concatenate([p_found, np.asarray(others, dtype=float)]))[: p_found.size]
        bad = [k for k in range(p_found.size) if q[k] > fdr]
        if not bad:
            break
        worst = max(bad, key=lambda k: p_found[k])
        search.rejected.setdefault(
            found[worst]["element"], f"q = {q[worst]:.3g} > fdr = {fdr:g} after the others"
        )
        del found[worst]
        del elems[n_known + worst]
    out = []
    for j, (el, _, lines) in enumerate(known_cols):
        z, p, gain = stats[j]
        top = max(lines, key=lambda ln: ln["weight"])
        out.append(
            dict(
                element=el,
                source="known",
                line=top["line"],
                energy_keV=top["energy_keV"],
                peak_keV=None,
                significance=float(np.sqrt(gain)),
                deviance_gain=float(gain),
                z=z,
                p_value=p,
                q_value=None,
                detector_line=el in detector,
            )
        )
    for k, prop in enumerate(found):
        z, p, gain = stats[n_known + k]
        el = prop["element"]
        if known_given and el in detector:
            prop["source"] = "detector/holder"
        prop.update(z=z, p_value=p, q_value=float(q[k]), detector_line=el in detector)
        out.append(prop)
    if return_details:
        return out, dict(
            trace=search.trace,
            rejected=dict(search.rejected),
            background=background,
            n_tests=p_found.size + len(others),
        )
    return out


#: The private helpers moved to ``_element_lines``, under this module's name as well.
__getattr__ = forward_private(__name__, _element_lines)
