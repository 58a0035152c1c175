"""The EDX X-ray model: :class:`EDXModel`, a physical dictionary for spectrum images.

``EDXModel`` builds G (C channels x (n_elements + n_background)) from xraylib's atomic
data, for :class:`matchar.spectral.PhysicsNMF`; the EELS counterpart,
``ReferenceModel``, is in ``_reference.py``. The atomic data and the detector and
absorption physics are in ``_edx_physics.py``, the file metadata, energy axis and summed
spectrum in ``_edx_spectrum.py``, the element proposal in ``_elements.py``; this module
re-exports their public names.

Kept as one module over 600 lines because it is one class: EDXModel, whose docstrings
(the model, its parameters, and the element proposal's algorithm) are half of it.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import erf

from .._moved import forward_private
from .._validation import check_float, check_int
from . import _edx_physics, _edx_spectrum
from ._edx_physics import _MIN_LINE_KEV, _shell_lines
from ._edx_physics import DEFAULT_BEAM_ENERGY_KEV as DEFAULT_BEAM_ENERGY_KEV
from ._edx_physics import DEFAULT_RESOLUTION_EV as DEFAULT_RESOLUTION_EV
from ._edx_physics import DEFAULT_WINDOW as DEFAULT_WINDOW
from ._edx_physics import DETECTOR_ELEMENTS as DETECTOR_ELEMENTS
from ._edx_physics import MAX_BACKGROUND as MAX_BACKGROUND
from ._edx_physics import MAX_RESOLUTION_EV as MAX_RESOLUTION_EV
from ._edx_physics import MIN_RESOLUTION_EV as MIN_RESOLUTION_EV
from ._edx_physics import atomic_number as atomic_number
from ._edx_physics import check_detector as check_detector
from ._edx_physics import detector_efficiency as detector_efficiency
from ._edx_physics import fwhm_keV as fwhm_keV
from ._edx_physics import ionization_cross_section as ionization_cross_section
from ._edx_physics import sample_absorption as sample_absorption
from ._edx_physics import take_off_angle as take_off_angle
from ._edx_spectrum import _poisson_fit as _poisson_fit
from ._edx_spectrum import _summed_spectrum as _summed_spectrum
from ._edx_spectrum import edx_metadata as edx_metadata
from ._edx_spectrum import is_signal as is_signal
from ._edx_spectrum import parse_energy_axis as parse_energy_axis


class EDXModel:
    """Modelled X-ray spectra of elements plus a bremsstrahlung basis, as a matrix G.

    Column ``e < n_elements`` of ``G`` is the spectrum one atom of element e contributes
    (up to one constant common to all elements): for every shell s of the K, L and M
    families with its edge below the beam energy and every line l of that shell,
    ``Q_s(E0) * omega_s * R_l * eff(E_l)`` (ionisation cross-section, fluorescence yield,
    radiative rate, detector efficiency) times a Gaussian of width ``FWHM(E_l)``
    integrated over each channel. The last ``n_background`` columns are the
    bremsstrahlung terms ``(E0 - E)^j / E * eff(E)``, j = 1..n_background (Kramers j=1,
    Lifshin j=2), each normalised to unit sum. ``eff`` is the detector efficiency times,
    with ``thickness_nm > 0``, the film's self-absorption (:meth:`transmission`); by
    default the thin-film approximation (no absorption). No secondary fluorescence in the
    sample, no Coster-Kronig transfers, no escape/sum peaks.

    Parameters
    ----------
    elements : sequence of str or None, default None
        Element symbols ("Fe", "O", ...). ``None``: with ``data``, proposed from its
        peaks (see :meth:`propose_elements`), the metadata's elements (``Sample.elements``)
        kept as ``known`` ones; without ``data``, the metadata's elements. Elements of the
        metadata with no X-ray line on the axis are left out with a warning naming them.
    energy_axis : (offset_keV, scale_keV, n_channels) or 1-D array or None
        Channel energies ``offset + scale * i`` (keV). ``None`` reads it from
        ``metadata`` (or a signal), converted to keV from the file's unit (eV or keV).
    beam_energy_keV : float or None, default None
        Incident electron energy E0. ``None``: the metadata's beam energy, else
        ``DEFAULT_BEAM_ENERGY_KEV`` (200 keV).
    resolution_eV : float or None, default None
        Detector FWHM at Mn K-alpha (5.899 keV), 121.4 eV (the Fano limit of the width
        formula) to 10000 eV. ``None``: the metadata's
        ``Detector.EDS.energy_resolution_MnKa``, else ``DEFAULT_RESOLUTION_EV`` (130 eV).
    n_background : int, default 2
        Number of bremsstrahlung columns, 0 (none) to ``MAX_BACKGROUND`` (10).
    window : sequence of (formula, density g/cm^3, thickness um)
        Detector window layers, see :func:`detector_efficiency` (densities > 0,
        thicknesses >= 0).
    dead_layer_um, crystal_um : float
        Detector Si dead layer (>= 0) and crystal thickness (> 0), um.
    thickness_nm : float, default 0.0
        Film thickness (>= 0) for self-absorption of the X-rays on their way out
        (:func:`sample_absorption`, applied to lines and bremsstrahlung alike); 0 is the
        thin-film approximation (no absorption).
    density_g_cm3 : float, optional
        Film density (g/cm^3, > 0), required when ``thickness_nm > 0``.
    sample_composition : dict of str to float, optional
        Atomic fractions of the film for its attenuation (default: equal fractions of
        ``elements``).
    takeoff_deg : float or None, default None
        Detector take-off angle (degrees, in (0, 90]). ``None``: from the metadata's
        detector elevation and azimuth and stage tilt (:func:`take_off_angle`), else 20.
    low_cut_keV : float, default 0.15
        Channels below this energy (the detector's zero/noise peak) are outside the model:
        ``fit_channels`` is False there and PhysicsNMF leaves them out of the fit.
    data : array_like (N, C)/(H, W, C)/(C,) or a HyperSpy signal, optional
        Used to propose elements when ``elements is None`` (summed in blocks, never
        copied to float64 whole) and, for a signal, as ``metadata``.
    metadata : dict or HyperSpy signal, optional
        The file's settings, read by :func:`edx_metadata`: the metadata dict of
        :func:`matchar.io.load_spectrum_image` (energy axis in the file's unit, beam
        energy, detector angles, resolution, elements). What the user passes wins; the
        metadata win over the defaults.

    Attributes
    ----------
    G : ndarray, shape (C, n_elements + n_background), float64
    elements : list of str
    energy : ndarray, shape (C,)
        Channel energies (keV).
    yields : ndarray, shape (n_elements,)
        Column sums of the element part of G before the common scaling (relative counts
        per atom); G's element columns are ``yield-weighted per atom / max(yields)``.
    lines : list of dict
        Every modelled line: element, family, shell, line (IUPAC), energy_keV, weight.
    fit_channels : ndarray of bool, shape (C,)
    beam_energy_keV, resolution_eV, takeoff_deg : float
        The values used (the user's, the metadata's or the defaults).
    from_metadata : list of str
        Which of energy_axis, beam_energy_keV, takeoff_deg, resolution_eV and elements
        came from the metadata.
    n_elements, n_background : int

    Raises
    ------
    ValueError
        Unknown element symbols, duplicate elements, an energy axis covering no line of
        an element, a beam energy below all the edges of an element, bad parameters.

    Example
    -------
    >>> import matchar as mc
    >>> model = mc.spectral.EDXModel(["Fe", "O"], energy_axis=(0.0, 0.01, 1024))
    >>> model.G.shape
    (1024, 4)

    From a microscope file of yours (``map.bcf``; none ships with matchar, so this part
    is not run), the metadata give the axis, beam energy, angles and elements:

    >>> cube, energy, meta = mc.io.load_spectrum_image("map.bcf")      # doctest: +SKIP
    >>> model = mc.spectral.EDXModel(metadata=meta)   # axis, kV, angles, elements  # doctest: +SKIP
    """

    def __init__(
        self,
        elements: Sequence[str] | None = None,
        energy_axis: Any = None,
        beam_energy_keV: float | None = None,
        *,
        resolution_eV: float | None = None,
        n_background: int = 2,
        window: Sequence[tuple[str, float, float]] = DEFAULT_WINDOW,
        dead_layer_um: float = 0.03,
        crystal_um: float = 450.0,
        low_cut_keV: float = 0.15,
        thickness_nm: float = 0.0,
        density_g_cm3: float | None = None,
        sample_composition: dict[str, float] | None = None,
        takeoff_deg: float | None = None,
        data: Any = None,
        metadata: Any = None,
    ) -> None:
        if metadata is None and data is not None and is_signal(data):
            metadata = data
        file: dict[str, Any] = {}
        if metadata is not None:
            n_ch = getattr(data, "shape", (None,))[-1] if data is not None else None
            file = edx_metadata(metadata, n_ch)
        #: The settings read from the file's metadata (the others are the user's or the
        #: defaults): a subset of energy_axis, beam_energy_keV, takeoff_deg,
        #: resolution_eV, elements.
        self.from_metadata: list[str] = []

        def pick(name: str, given: Any, default: Any) -> Any:
            if given is not None:
                return given
            if file.get(name) is not None:
                self.from_metadata.append(name)
                return file[name]
            return default

        self.thickness_nm = check_float(thickness_nm, "thickness_nm", low=0.0)
        self.density_g_cm3 = check_float(
            density_g_cm3, "density_g_cm3", low=0.0, low_open=True, allow_none=True
        )
        self.sample_composition = sample_composition
        self.takeoff_deg = check_float(
            pick("takeoff_deg", takeoff_deg, 20.0), "takeoff_deg", low=0.0, high=90.0, low_open=True
        )
        if self.thickness_nm > 0 and density_g_cm3 is None:
            raise ValueError("density_g_cm3 is required with thickness_nm > 0")
        if sample_composition is not None:  # checks the composition
            sample_absorption([1.0], sample_composition, 1.0, 0.0, self.takeoff_deg)
        if energy_axis is not None and file.get("energy_axis") and file["energy_unit"] == "eV":
            # the file's own axis in eV (what load_spectrum_image returns) is not keV
            off, sc, _ = parse_energy_axis(energy_axis)
            f_off, f_sc, _ = file["energy_axis"]
            if abs(sc - 1e3 * f_sc) <= 1e-6 * abs(sc) and abs(off - 1e3 * f_off) <= abs(sc):
                raise ValueError(
                    "energy_axis is the file's axis in eV; EDXModel takes keV: leave "
                    "energy_axis=None to read it from metadata= (converted), or divide by 1000"
                )
        energy_axis = pick("energy_axis", energy_axis, None)
        if energy_axis is None:
            raise ValueError(
                "energy_axis is required (or pass metadata= from load_spectrum_image, or a "
                "HyperSpy signal as data=)"
            )
        self.offset, self.scale, n = parse_energy_axis(energy_axis)
        self.energy = self.offset + self.scale * np.arange(n, dtype=np.float64)
        self.beam_energy_keV = check_float(
            pick("beam_energy_keV", beam_energy_keV, DEFAULT_BEAM_ENERGY_KEV),
            "beam_energy_keV",
            low=0.0,
            low_open=True,
        )
        self.resolution_eV = check_float(
            pick("resolution_eV", resolution_eV, DEFAULT_RESOLUTION_EV),
            "resolution_eV (FWHM at Mn K-alpha)",
            low=MIN_RESOLUTION_EV,
            high=MAX_RESOLUTION_EV,
        )
        self.n_background = check_int(n_background, "n_background", low=0, high=MAX_BACKGROUND)
        self.window, self.dead_layer_um, self.crystal_um = check_detector(
            window, dead_layer_um, crystal_um
        )
        self.low_cut_keV = check_float(low_cut_keV, "low_cut_keV")
        self.fit_channels = self.energy >= self.low_cut_keV
        if not self.fit_channels.any():
            raise ValueError(f"energy_axis: no channel above low_cut_keV={low_cut_keV}")

        file_elements = file.get("elements")
        if elements is None and file_elements:
            self.from_metadata.append("elements")
        if elements is None:
            if data is not None:
                found = self.propose_elements(data, known=file_elements)
                elements = [p["element"] for p in found]
                if not elements:
                    raise ValueError("elements: no element could be identified in data's peaks")
            elif file_elements:
                elements = self._on_axis(file_elements)
                if not elements:
                    raise ValueError(
                        f"elements: none of the metadata's elements {file_elements} has an "
                        "X-ray line on the energy axis; name the elements"
                    )
            else:
                raise ValueError(
                    "elements=None needs data= to propose elements from (or metadata= "
                    "that lists them)"
                )
        if isinstance(elements, str):
            elements = [elements]
        elements = list(elements)
        if not elements:
            raise ValueError("elements must name at least one element")
        if len(set(elements)) != len(elements):
            raise ValueError(f"elements contains duplicates: {elements}")
        self.elements = elements
        self.atomic_numbers = [atomic_number(el) for el in elements]
        self._build()

    # -- construction -----------------------------------------------------------------
    def _on_axis(self, elements: Sequence[str], stacklevel: int = 3) -> list[str]:
        """The elements with an X-ray line on this axis; a warning names the others."""
        keep, out = [], []
        for el in elements:
            Z = atomic_number(el)
            (keep if self._column(Z, el) is not None else out).append(el)
        if out:
            warnings.warn(
                f"EDXModel: known element(s) {', '.join(out)} have no X-ray line excited "
                f"at {self.beam_energy_keV:g} keV on the energy axis [{self.energy[0]:.3f}, "
                f"{self.energy[-1]:.3f}] keV above low_cut_keV={self.low_cut_keV:g}: left "
                "out of the model",
                UserWarning,
                stacklevel=stacklevel,
            )
        return keep

    def efficiency(self, energy_keV: ArrayLike) -> np.ndarray:
        """Detector efficiency of this model at ``energy_keV`` (see detector_efficiency).

        Example
        -------
        >>> m = EDXModel(["Si"], (0.0, 0.01, 512))
        >>> m.efficiency([1.74]).shape
        (1,)
        """
        return detector_efficiency(energy_keV, self.window, self.dead_layer_um, self.crystal_um)

    def transmission(self, energy_keV: ArrayLike) -> np.ndarray:
        """Detector efficiency times the film's self-absorption at ``energy_keV``.

        The absorption (:func:`sample_absorption`) is 1 for ``thickness_nm == 0`` (the
        thin-film default); its composition is ``sample_composition`` or, when that is
        None, equal atomic fractions of the model's elements (none while elements are
        being proposed, before they are known).

        Example
        -------
        >>> m = EDXModel(["Ti", "O"], (0.0, 0.01, 1024), thickness_nm=100, density_g_cm3=4.2)
        >>> t = m.transmission([0.525]) / m.efficiency([0.525])
        >>> bool(0 < t[0] < 1)
        True
        """
        eff = self.efficiency(energy_keV)
        comp = self.sample_composition
        if comp is None and getattr(self, "elements", None):
            comp = {el: 1.0 for el in self.elements}
        if self.thickness_nm == 0 or comp is None:
            return eff
        return eff * sample_absorption(
            energy_keV, comp, self.density_g_cm3, self.thickness_nm, self.takeoff_deg
        )

    def _element_lines(self, Z: int, symbol: str) -> list[dict[str, Any]]:
        lines = []
        lo = self.energy[0] - 0.5 * self.scale
        hi = self.energy[-1] + 0.5 * self.scale
        for family, shell, name, energy, edge, rate, omega in _shell_lines(Z):
            q = ionization_cross_section(edge, shell, self.beam_energy_keV)
            if q <= 0:
                continue
            sigma = float(fwhm_keV(energy, self.resolution_eV)) / 2.3548200450309493
            if energy + 4 * sigma < max(lo, self.low_cut_keV) or energy - 4 * sigma > hi:
                continue
            lines.append(
                dict(
                    element=symbol,
                    family=family,
                    shell=shell,
                    line=name,
                    energy_keV=energy,
                    edge_keV=edge,
                    weight=q * omega * rate,
                    sigma_keV=sigma,
                )
            )
        return lines

    def _build(self) -> None:
        cols = []
        self.lines = []
        for Z, symbol in zip(self.atomic_numbers, self.elements):
            all_lines = _shell_lines(Z)
            if not all_lines:
                raise ValueError(f"elements: {symbol} has no X-ray lines above {_MIN_LINE_KEV} keV")
            if min(t[4] for t in all_lines) >= self.beam_energy_keV:
                raise ValueError(
                    f"beam_energy_keV={self.beam_energy_keV} is below every edge of {symbol} "
                    f"(lowest {min(t[4] for t in all_lines):.3f} keV): it emits no X-rays"
                )
            col = self._column(Z, symbol)
            if col is None:
                raise ValueError(
                    f"energy_axis [{self.energy[0]:.3f}, {self.energy[-1]:.3f}] keV covers no "
                    f"X-ray line of {symbol} excited at {self.beam_energy_keV} keV, or the "
                    "detector (window, dead_layer_um) and the sample (thickness_nm) absorb "
                    "all of them"
                )
            lines = self._last_lines
            cols.append(col)
            self.lines.extend(lines)
        elem = np.stack(cols, axis=1)
        self.yields = elem.sum(axis=0)
        elem /= self.yields.max()
        bg = self.bremsstrahlung()
        self.G = np.ascontiguousarray(np.concatenate([elem, bg], axis=1))
        self.n_elements = len(self.elements)

    def bremsstrahlung(self) -> np.ndarray:
        """The bremsstrahlung columns, shape (C, n_background), each summing to 1.

        Example
        -------
        >>> EDXModel(["Si"], (0.0, 0.01, 512)).bremsstrahlung().shape
        (512, 2)
        """
        E = self.energy
        ok = self.fit_channels & (E > 0) & (E < self.beam_energy_keV)
        eff = np.zeros_like(E)
        eff[ok] = self.transmission(E[ok])
        out = np.zeros((E.size, self.n_background))
        for j in range(1, self.n_background + 1):
            b = np.zeros_like(E)
            # (E0 - E)^j / E with E0^j divided out (the column is normalised anyway):
            # no overflow for any beam energy and power
            x = 1.0 - E[ok] / self.beam_energy_keV
            b[ok] = x**j / E[ok] * eff[ok]
            s = b.sum()
            out[:, j - 1] = b / s if s > 0 else b
        return out

    # -- element identification ------------------------------------------------------
    def _column(self, Z: int, symbol: str) -> np.ndarray | None:
        """Unscaled G column of one element on this axis (None if it has no line here)."""
        lines = self._element_lines(Z, symbol)
        if not lines:
            return None
        half = 0.5 * self.scale
        edges = np.concatenate([self.energy - half, [self.energy[-1] + half]])
        eff = self.transmission([ln["energy_keV"] for ln in lines])
        col = np.zeros(self.energy.size)
        for ln, e in zip(lines, eff):
            ln["weight"] *= float(e)
            z = (edges - ln["energy_keV"]) / (ln["sigma_keV"] * math.sqrt(2.0))
            col += ln["weight"] * 0.5 * np.diff(erf(z))
        col[~self.fit_channels] = 0.0
        self._last_lines = lines
        return col if col.any() else None

    def background_basis(self, knot_keV: float = 1.0) -> np.ndarray:
        """Flexible bremsstrahlung basis for peak finding, shape (C, n_cols), unit-sum columns.

        Each bremsstrahlung column (see :meth:`bremsstrahlung`; a flat one if
        ``n_background == 0``) times each cubic B-spline of a uniform knot grid of spacing
        ``knot_keV`` over the fitted channels: non-negative combinations follow a
        background whose shape departs smoothly from Kramers/Lifshin (sample absorption,
        detector details) on a scale of ``knot_keV``, much broader than an X-ray peak.
        ``knot_keV`` must be at least one channel width; ``knot_keV=inf`` gives the plain
        bremsstrahlung columns.

        Example
        -------
        >>> m = EDXModel(["Si"], (0.0, 0.01, 1024))
        >>> B = m.background_basis(2.0)
        >>> B.shape[0], bool(np.allclose(B.sum(axis=0), 1.0))
        (1024, True)
        """
        from scipy.interpolate import BSpline

        keep = self.fit_channels
        base = self.bremsstrahlung().T if self.n_background else [keep / keep.sum()]
        knot_keV = check_float(
            knot_keV, "knot_keV", low=self.scale, allow_inf=True
        )  # one knot per channel at most
        if not np.isfinite(knot_keV):
            return np.stack(list(base), axis=1)
        lo, hi = float(self.energy[keep][0]), float(self.energy[-1])
        knots = np.arange(lo - 3 * knot_keV, hi + 4 * knot_keV, knot_keV)
        cols = []
        for b in base:
            for i in range(knots.size - 4):
                s = np.nan_to_num(
                    BSpline.basis_element(knots[i : i + 5], extrapolate=False)(self.energy)
                )
                c = b * s
                if c.sum() > 0:
                    cols.append(c / c.sum())
        return np.stack(cols, axis=1)

    def propose_elements(
        self,
        data: ArrayLike,
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
    ) -> list[dict[str, Any]]:
        """Elements whose X-ray lines explain the peaks of the summed spectrum of ``data``.

        A greedy, model-based search on the summed spectrum x (fitted channels only),
        judged by the Poisson deviance ``D`` of non-negative Poisson regressions (KL
        multiplicative updates), then a test per element with false-discovery control:

        1. the background is the bremsstrahlung, or the flexible bremsstrahlung basis of
           :meth:`background_basis` (``knot_keV``), either with steps of free size at the
           K edges of window, coating and dead-layer materials (C, N, O, Al, Si), when the
           data need them (below); the ``known`` elements (e.g. the signal's metadata)
           are in the fit from the start.
           With ``artefacts``, every fit also holds two artefact columns built from the
           element lines fitted so far (:func:`~matchar.spectral._elements.artefact_columns`):
           the Si escape peaks (each line above the Si K edge, 1.740 keV lower, scaled
           by the Si escape fraction) and the pile-up peaks (every pair of strong lines at
           the sum of their energies, scaled by the product of their intensities), each
           with a free non-negative amplitude, so that neither is taken for an element;
        2. the channel with the largest residual significance
           ``(x - fit) / sqrt(fit + (model_error * m)^2)`` (sums over half the FWHM
           at that energy; m the largest such fitted sum within one FWHM: Poisson noise
           plus a relative model error, so that the shoulders of a strong peak whose
           shape the model does not follow exactly are not taken for peaks) is the next
           peak, if that exceeds ``min_significance``; the first FWHM above
           ``low_cut_keV`` (the zero peak's tail) holds no peaks;
        3. every candidate element with a line of >= 10 % of its strongest line within
           ``max(FWHM / 2, 2 channels)`` of the peak is fitted with its whole G column
           (all its K, L and M lines with the model's fixed ratios) and its deviance drop
           ``dD`` recorded. The candidates are taken by decreasing ``dD`` while ``dD >=
           min_significance**2 * (1 + model_error^2 * m)`` and ``dD`` exceeds by as much
           the best drop from changing one line of an element already in (its size by
           up to ``1 / family_tolerance`` times, its width by -20 % to +40 %, its
           position by a quarter FWHM; lines within 1.5 FWHM of the peak: a line ratio,
           resolution or calibration a little off is not a new element); the first one
           whose line families are consistent with the data is proposed. Consistency (with
           ``family_check``): the element's lines are merged into resolvable peaks
           (lines within one FWHM), each fitted with its own amplitude; a companion peak
           (K-beta of a K-alpha, L-beta/L-gamma of an L-alpha, the L family of an M peak)
           must show at least ``family_tolerance`` times the counts the peak's amplitude
           predicts, else the deficit in standard deviations (Poisson plus model error)
           is computed and an element with a deficit above ``family_z`` is rejected.
           Companions of another family at lower energy (L lines below a K peak) are
           not required: a thick specimen absorbs them more than the thin-film model
           says. If no candidate passes, the peak's channels are masked;
        4. repeat until no significant peak is left or ``max_elements`` are proposed;
        5. false discoveries: with the final fit, each element found gets the drop-one
           deviance ``dD`` (fit without it against the fit with everything), every other
           candidate the score statistic of adding it; each gives ``z = sqrt(dD / (1 +
           model_error^2 m))`` and the one-sided p-value ``p = 0.5 P(chi2_1 > z^2)``
           (a non-negative amplitude). Benjamini-Hochberg q-values are taken over all
           the candidates with a line on the axis (about 90 by default) and the known
           elements left out; while an element found has ``q > fdr``, the one with the
           largest p leaves and the tests are redone.

        The search runs first with the plain bremsstrahlung columns; the flexible
        background, then the flexible background with the edge steps (with
        ``knot_keV=inf``: the plain one with the edge steps), replaces them (and the
        search is redone) only if, with the elements found, it lowers the deviance by
        more than its extra columns' count plus ``min_significance`` standard deviations
        of a chi-square with that many degrees of freedom.

        Parameters
        ----------
        data : array_like, shape (C,), (N, C) or (H, W, C)
            Counts on this model's energy axis.
        known : sequence of str, optional
            Elements known to be present (e.g. ``metadata.Sample.elements``): fitted from
            the start and returned first, each with its own deviance drop, whatever its
            significance.
        min_significance : float, default 6.0
            Peaks below this many Poisson standard deviations, and elements whose deviance
            drop is below its square, are not proposed.
        max_elements : int, default 20
            Most elements proposed from the peaks (``known`` not counted), 0 to 200.
        candidates : sequence of str, optional
            Elements to consider (default Be..U).
        knot_keV : float, default 1.0
            Knot spacing of the flexible background, at least one channel width (``inf``:
            the plain bremsstrahlung only, no test).
        model_error : float, default 0.02
            Relative error allowed for the model's counts (peak shapes, line ratios).
        fdr : float, default 0.01
            Benjamini-Hochberg level over the candidate elements, in (0, 1]; 1 keeps
            every element the search found.
        family_check : bool, default True
            Reject elements whose companion lines are missing (step 3).
        family_tolerance : float, default 0.5
            Fraction (0 to 1) of a companion peak's predicted counts it must reach.
        family_z : float, default 5.0
            Deficit (standard deviations) above which an element is rejected.
        artefacts : bool, default True
            Fit escape and pile-up peaks of the fitted lines (step 1).
        detector_elements : sequence of str or None, default ``DETECTOR_ELEMENTS``
            Elements whose lines often come from the detector, grid or holder (C, Al,
            Si, Ni, Cu, Mo, Au). When ``known`` is given, one of them found in the peaks
            and not known is returned with ``source="detector/holder"``.

        Returns
        -------
        list of dict
            One per element, known ones first then in the order found: element, source
            ("known", "peaks" or "detector/holder"), line (the line nearest the peak, or
            the strongest line for a known element), energy_keV (that line's energy),
            peak_keV (None for a known element), significance (of the peak; ``sqrt(dD)``
            for a known element), deviance_gain ``dD`` (when found; for a known element
            the drop-one one), z, p_value and q_value of step 5 (q_value None for a known
            element), detector_line (whether the element is in ``detector_elements``).

        Example
        -------
        >>> import numpy as np
        >>> m = EDXModel(["Fe", "Cu"], (0.0, 0.01, 1024))
        >>> counts = np.random.default_rng(0).poisson(1e5 * m.G.sum(1))
        >>> sorted(p["element"] for p in m.propose_elements(counts))
        ['Cu', 'Fe']
        """
        from ._elements import propose_elements

        return propose_elements(
            self,
            data,
            known=known,
            min_significance=min_significance,
            max_elements=max_elements,
            candidates=candidates,
            knot_keV=knot_keV,
            model_error=model_error,
            fdr=fdr,
            family_check=family_check,
            family_tolerance=family_tolerance,
            family_z=family_z,
            artefacts=artefacts,
            detector_elements=detector_elements,
        )

    def __repr__(self) -> str:
        return (
            f"EDXModel({self.elements}, energy_axis=({self.offset:g}, {self.scale:g}, "
            f"{self.energy.size}), beam_energy_keV={self.beam_energy_keV:g})"
        )


def __getattr__(name: str) -> Any:
    """Names defined elsewhere, under this module's name as well (older import paths and
    pickles refer to ``matchar.spectral._edx``): ``ReferenceModel`` from its own module, and
    the private helpers of ``_edx_physics`` and ``_edx_spectrum``."""
    if name == "ReferenceModel":
        from ._reference import ReferenceModel

        return ReferenceModel
    return _forward(name)


_forward = forward_private(__name__, _edx_physics, _edx_spectrum)
