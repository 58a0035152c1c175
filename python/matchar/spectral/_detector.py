"""Refinement of an EDXModel's detector on the data (calibration, resolution, efficiency,
line ratios).

:func:`refine_detector` fits, on the summed spectrum of a spectrum image, the parameters
of the detector that the model otherwise takes from defaults or metadata, within physical
bounds, by Poisson maximum likelihood, and returns a :class:`RefinedEDXModel` built with
them plus a report of the values and their standard errors.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import minimize
from scipy.special import erf

from .._validation import check_choice, check_float, check_int
from ._edx import EDXModel
from ._edx_physics import _E_MN_KA_EV, MIN_RESOLUTION_EV, _xraylib
from ._edx_spectrum import _summed_spectrum

#: Mean energy per electron-hole pair in Si (eV) and 8 ln 2 (FWHM^2 per variance):
#: the peak width is ``FWHM^2 = noise^2 + 8 ln2 * F * 3.64 eV * E + (collection * E)^2``
#: (electronic noise, the Fano statistics of the charge, incomplete charge collection).
_PAIR_EV = 3.64
_FWHM2_PER_VAR = 8.0 * math.log(2.0)
_SIGMA_PER_FWHM = 1.0 / math.sqrt(_FWHM2_PER_VAR)
#: Physical bounds of the refined parameters (see :func:`refine_detector`).
FANO_BOUNDS = (0.05, 0.25)
NOISE_BOUNDS_EV = (0.0, 250.0)
GAIN_BOUNDS = (0.98, 1.02)
WINDOW_SCALE_BOUNDS = (0.0, 5.0)
DEAD_LAYER_BOUNDS_UM = (0.0, 0.5)
#: FWHM of incomplete charge collection per unit energy (eV per eV): 0 for an ideal
#: detector; 0.01 adds 100 eV in quadrature at 10 keV.
COLLECTION_BOUNDS = (0.0, 0.03)
RATIO_BOUNDS = (0.5, 2.0)
_GROUPS = ("K", "L", "M", "L1", "L2", "L3", "M1", "M2", "M3", "M4", "M5")
_PARAMS = (
    "offset_keV",
    "gain",
    "noise_eV",
    "fano",
    "window_scale",
    "dead_layer_um",
    "collection",
)


def _fwhm2_eV2(noise_eV: float, fano: float, collection: float, energy_eV: Any) -> Any:
    """FWHM^2 (eV^2) at ``energy_eV``: noise, Fano and charge-collection terms."""
    return noise_eV**2 + fano_slope_eV(fano) * energy_eV + (collection * energy_eV) ** 2


def fano_slope_eV(fano: float) -> float:
    """Slope ``8 ln2 * F * 3.64 eV`` of FWHM^2 (eV^2) against energy (eV) for Fano factor F.

    Example
    -------
    >>> round(fano_slope_eV(0.115), 3)
    2.321
    """
    return _FWHM2_PER_VAR * float(fano) * _PAIR_EV


class RefinedEDXModel(EDXModel):
    """An :class:`EDXModel` with a physical peak width and per-family line factors.

    The peak width is ``FWHM(E)^2 = noise_eV^2 + 8 ln2 * fano * 3.64 eV * E +
    (collection * E)^2`` (electronic noise, the Fano term and incomplete charge
    collection) instead of EDXModel's fixed slope, and the intensity of every
    line of family f (K, L, M) of element e is multiplied by ``line_scale[e][f]``
    (default 1). All other parameters are EDXModel's; :func:`refine_detector` builds one.

    Parameters
    ----------
    elements, energy_axis, beam_energy_keV
        As for :class:`EDXModel` (elements must be given).
    noise_eV : float
        Electronic-noise FWHM (eV), in ``NOISE_BOUNDS_EV``.
    fano : float
        Fano factor, in ``FANO_BOUNDS``.
    collection : float, default 0
        Charge-collection FWHM per unit energy (eV per eV), in ``COLLECTION_BOUNDS``.
    line_scale : dict of str to dict of str to float, optional
        ``{element: {family: factor}}``, factors > 0.
    **kwargs
        Other keyword arguments of :class:`EDXModel` (``window``, ``dead_layer_um``,
        ``n_background``, ...). ``resolution_eV`` is derived from noise and Fano.

    Attributes
    ----------
    resolution_eV : float
        FWHM at Mn K-alpha (eV) of the refined width, at least ``MIN_RESOLUTION_EV`` (the
        value EDXModel's element finder uses; ``resolution_mnka_eV`` is the exact one).
    noise_eV, fano, collection, resolution_mnka_eV : float
    line_scale : dict

    Example
    -------
    >>> m = RefinedEDXModel(["Fe"], (0.2, 0.01, 1000), 200.0, noise_eV=60.0, fano=0.115)
    >>> round(m.resolution_mnka_eV, 1)
    131.5
    """

    def __init__(
        self,
        elements: Any,
        energy_axis: Any,
        beam_energy_keV: float | None = None,
        *,
        noise_eV: float,
        fano: float,
        collection: float = 0.0,
        line_scale: dict[str, dict[str, float]] | None = None,
        **kwargs: Any,
    ) -> None:
        if elements is None:
            raise ValueError("RefinedEDXModel needs the elements")
        self.noise_eV = check_float(
            noise_eV, "noise_eV", low=NOISE_BOUNDS_EV[0], high=NOISE_BOUNDS_EV[1]
        )
        self.fano = check_float(fano, "fano", low=FANO_BOUNDS[0], high=FANO_BOUNDS[1])
        self.collection = check_float(
            collection, "collection", low=COLLECTION_BOUNDS[0], high=COLLECTION_BOUNDS[1]
        )
        scale: dict[str, dict[str, float]] = {}
        for el, fams in dict(line_scale or {}).items():
            scale[str(el)] = {}
            for fam, v in dict(fams).items():
                if fam not in _GROUPS:
                    raise ValueError(
                        f"line_scale[{el!r}]: keys must be families (K, L, M) or shells "
                        f"(L1-L3, M1-M5), got {fam!r}"
                    )
                scale[str(el)][fam] = check_float(
                    v, f"line_scale[{el!r}][{fam!r}]", low=0.0, low_open=True
                )
        self.line_scale = scale
        self.resolution_mnka_eV = math.sqrt(
            _fwhm2_eV2(self.noise_eV, self.fano, self.collection, _E_MN_KA_EV)
        )
        kwargs["resolution_eV"] = max(self.resolution_mnka_eV, MIN_RESOLUTION_EV)
        super().__init__(elements, energy_axis, beam_energy_keV, **kwargs)

    def fwhm_keV(self, energy_keV: ArrayLike) -> np.ndarray:
        """Refined peak FWHM (keV) at ``energy_keV``:
        ``sqrt(noise^2 + 8ln2 F 3.64 eV E + (collection E)^2)``.

        Example
        -------
        >>> m = RefinedEDXModel(["Fe"], (0.2, 0.01, 1000), 200.0, noise_eV=60.0, fano=0.115)
        >>> float(np.round(m.fwhm_keV(0.0), 3))
        0.06
        """
        E = np.maximum(np.asarray(energy_keV, dtype=np.float64) * 1000.0, 0.0)
        sq = _fwhm2_eV2(self.noise_eV, self.fano, self.collection, E)
        return np.sqrt(np.maximum(sq, 1.0)) / 1000.0

    def _element_lines(self, Z: int, symbol: str) -> list[dict[str, Any]]:
        lines = super()._element_lines(Z, symbol)
        fams = self.line_scale.get(symbol, {})
        for ln in lines:
            ln["sigma_keV"] = float(self.fwhm_keV(ln["energy_keV"])) * _SIGMA_PER_FWHM
            ln["weight"] *= fams.get(ln["shell"], fams.get(ln["family"], 1.0))
        return lines


def _layer_attenuation(energy: np.ndarray, window: Any) -> tuple[np.ndarray, np.ndarray]:
    """(sum over window layers of mu rho t, mu_Si rho_Si per um) at ``energy`` (keV)."""
    xl = _xraylib()
    a_w = np.zeros(energy.size)
    mu_si = np.zeros(energy.size)
    for i, e in enumerate(energy):
        if not np.isfinite(e) or e < 0.1:
            a_w[i] = np.inf
            continue
        a_w[i] = sum(xl.CS_Total_CP(f, float(e)) * rho * um * 1e-4 for f, rho, um in window)
        mu_si[i] = xl.CS_Total(14, float(e)) * 2.33 * 1e-4
    return a_w, mu_si


class _Problem:
    """The summed-spectrum model m(theta, c) = D(theta) c on the fitted channels."""

    def __init__(self, model: EDXModel, x: np.ndarray, by: str = "family") -> None:
        self.model = model
        self.keep = np.asarray(model.fit_channels, dtype=bool) & (model.energy > 0)
        self.x = x[self.keep]
        self.idx = np.flatnonzero(self.keep).astype(np.float64)
        self.n = model.energy.size
        groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for Z, el in zip(model.atomic_numbers, model.elements):
            for ln in EDXModel._element_lines(model, Z, el):
                groups.setdefault((el, ln[by]), []).append(ln)
        self.groups = list(groups)
        E = np.array([ln["energy_keV"] for g in groups.values() for ln in g])
        self.line_E = E
        self.line_w = np.array([ln["weight"] for g in groups.values() for ln in g])
        self.line_group = np.concatenate(
            [np.full(len(g), j) for j, g in enumerate(groups.values())]
        ).astype(int)
        self.a_w, self.mu_si = _layer_attenuation(E, model.window)
        eff0 = model.efficiency(E)
        self.sample = np.where(eff0 > 0, model.transmission(E) / np.maximum(eff0, 1e-300), 1.0)
        Ec = model.energy
        ok = self.keep & (Ec < model.beam_energy_keV)
        self.brems_ok = ok
        self.c_aw, self.c_mu = _layer_attenuation(Ec[ok], model.window)
        eff_c = model.efficiency(Ec[ok])
        self.c_sample = np.where(
            eff_c > 0, model.transmission(Ec[ok]) / np.maximum(eff_c, 1e-300), 1.0
        )
        base = model.offset, model.scale
        self.offset0, self.scale0 = base
        self.theta0 = np.array(
            [
                0.0,
                1.0,
                math.sqrt(max(model.resolution_eV**2 - 2.5 * _E_MN_KA_EV, 0.0)),
                2.5 / (_FWHM2_PER_VAR * _PAIR_EV),
                1.0,
                model.dead_layer_um,
                0.0,
            ]
        )

    def efficiency(self, a_w: np.ndarray, mu_si: np.ndarray, theta: np.ndarray) -> np.ndarray:
        w, dead = theta[4], theta[5]
        crystal = self.model.crystal_um
        with np.errstate(invalid="ignore", over="ignore"):
            out = np.exp(-w * a_w - mu_si * dead) * -np.expm1(-mu_si * crystal)
        return np.nan_to_num(out)

    def design(self, theta: np.ndarray) -> np.ndarray:
        """D(theta): (fitted channels, n_groups + n_background)."""
        d0, g, noise, fano = theta[:4]
        collection = math.sqrt(max(theta[6], 0.0))  # theta holds its square
        m = self.model
        scale = m.scale * g
        lo = m.offset + d0 + scale * (self.idx - 0.5)
        edges = np.concatenate([lo, [lo[-1] + scale]])
        # channels are contiguous above the low cut, so the edges are those of each channel
        fw2 = _fwhm2_eV2(noise, fano, collection, self.line_E * 1000.0)
        sig = np.sqrt(np.maximum(fw2, 1.0)) / 1000.0 * _SIGMA_PER_FWHM
        amp = self.line_w * self.efficiency(self.a_w, self.mu_si, theta) * self.sample
        z = (edges[None, :] - self.line_E[:, None]) / (sig[:, None] * math.sqrt(2.0))
        prof = 0.5 * np.diff(erf(z), axis=1) * amp[:, None]  # (lines, channels)
        cols = np.zeros((len(self.groups), prof.shape[1]))
        np.add.at(cols, self.line_group, prof)
        # bremsstrahlung (E0 - E)^j / E * eff(E), on the nominal channel energies
        Ec = m.energy[self.brems_ok]
        effc = self.efficiency(self.c_aw, self.c_mu, theta) * self.c_sample
        bg = []
        for j in range(1, m.n_background + 1):
            b = np.zeros(self.n)
            b[self.brems_ok] = (1.0 - Ec / m.beam_energy_keV) ** j / Ec * effc
            b = b[self.keep]
            bg.append(b / max(b.sum(), 1e-300))
        return np.concatenate([cols.T, np.stack(bg, axis=1)] if bg else [cols.T], axis=1)


def _deviance(x: np.ndarray, f: np.ndarray) -> float:
    f = np.maximum(f, 1e-12)
    pos = x > 0
    return 2.0 * float(np.sum(x[pos] * np.log(x[pos] / f[pos])) - x.sum() + f.sum())


def _coef(x: np.ndarray, D: np.ndarray, c: np.ndarray, n_iter: int) -> np.ndarray:
    """Non-negative Poisson regression x ~ D c (KL multiplicative updates from c)."""
    s = np.maximum(D.sum(axis=0), 1e-300)
    c = np.maximum(c, 1e-12)
    for _ in range(n_iter):
        c = c * (D.T @ (x / np.maximum(D @ c, 1e-12))) / s
    return c


def refine_detector(
    model: EDXModel,
    data: Any,
    *,
    ratio_bounds: tuple[float, float] = RATIO_BOUNDS,
    ratios: str = "family",
    n_rounds: int = 6,
) -> tuple[RefinedEDXModel, dict[str, Any]]:
    """Fit the detector of ``model`` on the summed spectrum of ``data``.

    The summed spectrum ``x`` (C,) is modelled on the fitted channels as
    ``sum_{e,f} c_ef * lines_ef(theta) + sum_j b_j * brems_j(theta)``: every line of family
    f (K, L, M) of element e with xraylib's intensity (as in :class:`EDXModel`) times the
    detector efficiency, a Gaussian integrated over each channel; the bremsstrahlung
    columns of the model times the efficiency. The nonlinear parameters ``theta`` are

    - ``offset_keV`` (shift of the channel energies, +-max(50 eV, 5 channels)) and ``gain``
      (factor on the keV per channel, ``GAIN_BOUNDS``): the data's channel i is at
      ``offset + offset_keV + gain * scale * i``;
    - ``noise_eV`` (electronic noise FWHM, ``NOISE_BOUNDS_EV``), ``fano`` (Fano factor,
      ``FANO_BOUNDS``) and ``collection`` (incomplete charge collection, FWHM per unit
      energy, ``COLLECTION_BOUNDS``): ``FWHM(E)^2 = noise^2 + 8 ln2 * fano * 3.64 eV * E
      + (collection * E)^2``;
    - ``window_scale`` (factor on every window layer's thickness,
      ``WINDOW_SCALE_BOUNDS``) and ``dead_layer_um`` (Si dead layer,
      ``DEAD_LAYER_BOUNDS_UM``);

    the linear ones ``c, b >= 0``. The Poisson deviance is minimised by alternating
    multiplicative updates of ``c, b`` and L-BFGS-B on ``theta`` (``n_rounds`` rounds).
    Per element, each family's (or shell's, ``ratios="shell"``) line factor is ``c_ef``
    over the element's brightest family's (1 for that one), clipped to ``ratio_bounds``.
    Standard errors are from the Poisson Fisher information at the optimum (all
    parameters, linear ones included; Poisson noise only, not model error).

    Parameters
    ----------
    model : EDXModel
        Elements, energy axis, beam energy and nominal detector.
    data : array_like (N, C), (H, W, C) or (C,), scipy.sparse, dask or a HyperSpy signal
        Counts on ``model``'s energy axis (summed over pixels in blocks).
    ratio_bounds : (float, float), default (0.5, 2.0)
        Bounds of the per-family line factors, 0 < low <= 1 <= high.
    ratios : {"family", "shell"}, default "family"
        One line factor per family (K, L, M) of each element, or per ionised shell (K,
        L1-L3, M1-M5: the L-alpha/L-beta and M-alpha/M-beta balance too).
    n_rounds : int, default 6
        Alternations of the linear and nonlinear steps, 1 to 100.

    Returns
    -------
    refined : RefinedEDXModel
        ``model`` rebuilt with the refined axis, width, window, dead layer and line factors.
    report : dict
        ``offset_keV``, ``gain``, ``noise_eV``, ``fano``, ``window_scale``,
        ``dead_layer_um``, ``collection``, ``resolution_mnka_eV`` (FWHM at Mn K-alpha,
        eV): the values;
        ``stderr``: their standard errors (same keys); ``line_scale``:
        ``{element: {family: factor}}``; ``line_scale_stderr``; ``deviance_before``,
        ``deviance_after`` (Poisson deviance of the summed spectrum with the nominal and
        the refined detector, both with their own best c, b); ``n_channels_fitted``;
        ``at_bounds``: the parameters that ended at a bound.

    Raises
    ------
    ValueError
        ``model`` not an EDXModel, a channel count different from the model's, negative or
        non-finite counts, data with no counts on the fitted channels, bad bounds.

    Example
    -------
    >>> import numpy as np, matchar as mc
    >>> m = mc.spectral.EDXModel(["Fe", "O"], (0.2, 0.01, 900), 200.0)
    >>> x = np.random.default_rng(0).poisson(m.G @ [2e5, 2e5, 5e5, 5e5])
    >>> refined, rep = mc.spectral.refine_detector(m, x)
    >>> abs(rep["offset_keV"]) < 0.005
    True
    """
    if not isinstance(model, EDXModel):
        raise ValueError(f"model must be an EDXModel, got {type(model).__name__}")
    lo_r, hi_r = (float(v) for v in ratio_bounds)
    if not (0 < lo_r <= 1 <= hi_r < np.inf):
        raise ValueError(f"ratio_bounds must satisfy 0 < low <= 1 <= high, got {ratio_bounds}")
    n_rounds = check_int(n_rounds, "n_rounds", low=1, high=100)
    check_choice(ratios, "ratios", ("family", "shell"))
    x_all = _summed_spectrum(data, model.energy.size)
    prob = _Problem(model, x_all, ratios)
    x = prob.x
    if not x.sum() > 0:
        raise ValueError("data has no counts on the model's fitted channels: nothing to refine")
    shift = max(0.05, 5 * model.scale)
    bounds = [
        (-shift, shift),
        GAIN_BOUNDS,
        NOISE_BOUNDS_EV,
        FANO_BOUNDS,
        WINDOW_SCALE_BOUNDS,
        DEAD_LAYER_BOUNDS_UM,
        (COLLECTION_BOUNDS[0] ** 2, COLLECTION_BOUNDS[1] ** 2),  # its square: see below
    ]
    theta = np.clip(prob.theta0, [b[0] for b in bounds], [b[1] for b in bounds])
    # theta in units where a step of 1 is a sensible change, for L-BFGS-B's gradients
    # (the collection term enters as its square, which FWHM^2 is linear in: at q = 0 the
    # deviance's derivative in q itself is 0, and L-BFGS-B would never leave it)
    unit = np.array([model.scale, 1e-3, 10.0, 0.01, 0.1, 0.01, 1e-5])
    D = prob.design(theta)
    c = np.full(D.shape[1], x.sum() / D.shape[1]) / np.maximum(D.sum(axis=0), 1e-300)
    c = _coef(x, D, c, 500)
    dev_before = _deviance(x, D @ c)

    def f(u: np.ndarray, c: np.ndarray) -> float:
        return _deviance(x, prob.design(u * unit) @ c)

    ub = [(b[0] / s, b[1] / s) for b, s in zip(bounds, unit)]
    for _ in range(n_rounds):
        res = minimize(
            f, theta / unit, args=(c,), method="L-BFGS-B", bounds=ub, options=dict(maxiter=40)
        )
        theta = res.x * unit
        D = prob.design(theta)
        c = _coef(x, D, c, 300)
    dev_after = _deviance(x, D @ c)

    # Fisher information of all parameters (theta numerically, c exactly)
    mfit = np.maximum(D @ c, 1e-12)
    J = np.empty((x.size, len(theta) + c.size))
    for k in range(len(theta)):
        h = 1e-3 * unit[k]
        tp, tm = theta.copy(), theta.copy()
        tp[k] = min(theta[k] + h, bounds[k][1])
        tm[k] = max(theta[k] - h, bounds[k][0])
        J[:, k] = (prob.design(tp) @ c - prob.design(tm) @ c) / max(tp[k] - tm[k], 1e-300)
    J[:, len(theta) :] = D
    active = np.concatenate([np.ones(len(theta), bool), c > 1e-9 * max(c.max(), 1e-300)])
    Ja = J[:, active]
    norm = np.maximum(np.linalg.norm(Ja, axis=0), 1e-300)  # columns of unit norm for pinv
    Js = Ja / norm
    cov = np.full((J.shape[1], J.shape[1]), np.nan)
    inv = np.linalg.pinv(Js.T @ (Js / mfit[:, None]), rcond=1e-12)
    cov[np.ix_(active, active)] = inv / np.outer(norm, norm)
    se = np.sqrt(np.maximum(np.diag(cov), 0.0))

    line_scale: dict[str, dict[str, float]] = {}
    line_se: dict[str, dict[str, float]] = {}
    counts = c[: len(prob.groups)] * D[:, : len(prob.groups)].sum(axis=0)
    for el in model.elements:
        js = [j for j, (e, _) in enumerate(prob.groups) if e == el]
        if len(js) < 2:
            continue
        ref = max(js, key=lambda j: counts[j])
        line_scale[el], line_se[el] = {}, {}
        for j in js:
            fam = prob.groups[j][1]
            r = c[j] / c[ref] if c[ref] > 0 else 1.0
            line_scale[el][fam] = float(np.clip(r, lo_r, hi_r))
            if j == ref:
                line_se[el][fam] = 0.0
                continue
            a, b = len(theta) + j, len(theta) + ref
            g = np.array([1.0 / c[ref], -c[j] / c[ref] ** 2])
            sub = cov[np.ix_([a, b], [a, b])]
            line_se[el][fam] = float(np.sqrt(max(g @ sub @ g, 0.0)))

    names = list(_PARAMS)
    report: dict[str, Any] = {n: float(v) for n, v in zip(names, theta)}
    q = math.sqrt(max(theta[6], 0.0))
    report["collection"] = q
    report["resolution_mnka_eV"] = math.sqrt(_fwhm2_eV2(theta[2], theta[3], q, _E_MN_KA_EV))
    report["stderr"] = {n: float(s) for n, s in zip(names, se[: len(theta)])}
    # delta method from q^2 to q (at q = 0: the q whose square is one standard error)
    se_q2 = report["stderr"]["collection"]
    report["stderr"]["collection"] = se_q2 / (2 * q) if q > 0 else math.sqrt(se_q2)
    report["line_scale"] = line_scale
    report["line_scale_stderr"] = line_se
    report["deviance_before"] = dev_before
    report["deviance_after"] = dev_after
    report["n_channels_fitted"] = int(x.size)
    report["at_bounds"] = [
        n
        for n, v, (lo, hi) in zip(names, theta, bounds)
        if abs(v - lo) <= 1e-6 * max(1.0, abs(lo)) or abs(v - hi) <= 1e-6 * max(1.0, abs(hi))
    ]

    window = tuple((fm, rho, um * theta[4]) for fm, rho, um in model.window)
    refined = RefinedEDXModel(
        list(model.elements),
        (model.offset + theta[0], model.scale * theta[1], model.energy.size),
        model.beam_energy_keV,
        noise_eV=theta[2],
        fano=theta[3],
        collection=q,
        line_scale=line_scale,
        n_background=model.n_background,
        window=window,
        dead_layer_um=theta[5],
        crystal_um=model.crystal_um,
        low_cut_keV=model.low_cut_keV,
        thickness_nm=model.thickness_nm,
        density_g_cm3=model.density_g_cm3,
        sample_composition=model.sample_composition,
        takeoff_deg=model.takeoff_deg,
    )
    refined.detector = report
    return refined, report
