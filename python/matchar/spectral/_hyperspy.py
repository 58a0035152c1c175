"""HyperSpy interplay: results as signals, and checks of ``s.decomposition(algorithm=...)``.

HyperSpy calls a scikit-learn-like ``algorithm`` with a plain (N, C) array, after its own
treatments: ``normalize_poissonian_noise=True`` (exspy's default for EDS-TEM signals)
divides the counts by ``sqrt(counts per pixel * counts per channel)`` and a float
``navigation_mask`` (exspy: 1.0) drops "vacuum" pixels. A Poisson (KL) NMF fed such data
no longer fits counts. :func:`hyperspy_decomposition_call` finds HyperSpy's
``decomposition`` frame on the call stack so that the estimators can say so.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any

import numpy as np

from ._edx import is_signal

_MAX_DEPTH = 12  # HyperSpy's decomposition calls fit_transform directly (depth 2-3)


def hyperspy_decomposition_call() -> dict[str, Any] | None:
    """The settings of the HyperSpy ``decomposition`` call that is running the caller, or
    None when the caller was not called from it.

    Returns
    -------
    dict or None
        ``{"signal", "normalize_poissonian_noise", "navigation_mask", "signal_mask"}`` as
        HyperSpy holds them in its frame (masks as passed, or as HyperSpy turned them into
        arrays or slices).
    """
    frame = sys._getframe(1)
    for _ in range(_MAX_DEPTH):
        frame = frame.f_back
        if frame is None:
            return None
        code = frame.f_code
        fname = code.co_filename.replace("\\", "/")
        if code.co_name == "decomposition" and "/hyperspy/learn/" in fname:
            loc = frame.f_locals
            return {
                "signal": loc.get("self"),
                "normalize_poissonian_noise": bool(loc.get("normalize_poissonian_noise")),
                "navigation_mask": loc.get("navigation_mask"),
                "signal_mask": loc.get("signal_mask"),
            }
    return None


def _masked(mask: Any) -> bool:
    if mask is None or isinstance(mask, slice):
        return False
    m = np.asarray(mask)
    return m.dtype != np.bool_ or bool(m.any())


def warn_hyperspy_treatments(name: str, call: dict[str, Any] | None, *, weighted: bool) -> None:
    """UserWarning when HyperSpy's treatments do not suit a count-based estimator.

    ``weighted``: the estimator weights the counts itself (KL NMF, Poisson PCA), so
    HyperSpy's Poisson normalisation would be applied twice or feed it non-counts.
    """
    if call is None:
        return
    if call["normalize_poissonian_noise"] and weighted:
        warnings.warn(
            f"{name} was called by HyperSpy's decomposition with "
            "normalize_poissonian_noise=True: HyperSpy divided the counts by "
            "sqrt(counts per pixel x counts per channel) before this estimator, which "
            "weights the counts itself, so it fits non-count data. Pass "
            "normalize_poissonian_noise=False and navigation_mask=None (exspy's EDS-TEM "
            "defaults are True and 1.0); see docs/spectral.md, HyperSpy",
            UserWarning,
            stacklevel=4,
        )
    if _masked(call["navigation_mask"]):
        warnings.warn(
            f"{name} was called by HyperSpy's decomposition with a navigation_mask: the "
            "masked pixels are left out of the fit and get NaN loadings. Pass "
            "navigation_mask=None to fit every pixel (exspy's EDS default 1.0 masks "
            "'vacuum' pixels)",
            UserWarning,
            stacklevel=4,
        )


def axes_of(signal: Any) -> dict[str, list[dict[str, Any]]]:
    """The navigation and signal axes of a HyperSpy signal as plain dicts (picklable).

    Returns
    -------
    dict
        ``{"navigation": [...], "signal": [...]}``, each axis ``{"name", "units",
        "scale", "offset", "size"}``, in NumPy order (slowest first).
    """
    am = signal.axes_manager
    try:  # HyperSpy's decomposition unfolds the navigation axes while it runs
        folding = signal.metadata._HyperSpy.Folding
        if folding.unfolded and folding.original_axes_manager is not None:
            am = folding.original_axes_manager
    except AttributeError:
        pass

    def desc(axes):
        out = []
        for a in axes:
            out.append(
                {
                    "name": str(a.name),
                    "units": str(a.units),
                    "scale": float(getattr(a, "scale", 1.0)),
                    "offset": float(getattr(a, "offset", 0.0)),
                    "size": int(a.size),
                }
            )
        return out[::-1]  # HyperSpy lists axes fastest first

    return {"navigation": desc(am.navigation_axes), "signal": desc(am.signal_axes)}


def _energy_axis(energy: Any, C: int) -> dict[str, Any] | None:
    """An (offset, scale[, unit]) pair/triple or a uniform (C,) array in keV -> axis dict."""
    if energy is None:
        return None
    if isinstance(energy, tuple) and len(energy) in (2, 3):
        unit = str(energy[2]) if len(energy) == 3 else "keV"
        return {"name": "Energy", "units": unit, "scale": float(energy[1]),
                "offset": float(energy[0]), "size": C}  # fmt: skip
    e = np.asarray(energy, dtype=np.float64)
    if e.shape != (C,) or C < 2:
        raise ValueError(
            f"energy must be (offset, scale[, unit]) or an array of {C} channel energies, "
            f"got shape {e.shape}"
        )
    step = np.diff(e)
    if not np.allclose(step, step[0], rtol=1e-6, atol=0):
        raise ValueError("energy must be uniformly spaced (HyperSpy's uniform axis)")
    return {"name": "Energy", "units": "keV", "scale": float(step[0]), "offset": float(e[0]),
            "size": C}  # fmt: skip


def _set_axis(axis: Any, desc: dict[str, Any]) -> None:
    axis.name, axis.units = desc["name"], desc["units"]
    axis.scale, axis.offset = desc["scale"], desc["offset"]


def to_signals(
    maps: Any,
    components: Any,
    *,
    reference: Any = None,
    axes: dict[str, list[dict[str, Any]]] | None = None,
    energy: Any = None,
    titles: tuple[str, str] = ("Loadings", "Factors"),
) -> tuple[Any, Any]:
    """(maps, components) as HyperSpy signals, with the data's axes where known.

    Parameters
    ----------
    maps : array_like, shape (H, W, K) or (N, K)
        Abundances or scores ((N, K) with N = H W of the reference's (H, W) scan is
        reshaped to it).
    components : array_like, shape (K, C)
        Component spectra (factors).
    reference : HyperSpy signal, optional
        The signal the data came from: its navigation axes label the maps, its signal
        axis the components. Wins over ``axes``.
    axes : dict, optional
        What :func:`axes_of` returns for that signal.
    energy : (offset, scale) or (offset, scale, unit) or array of shape (C,), optional
        Energy axis of the components (keV unless a unit is given); wins over the
        reference's signal axis.
    titles : (str, str)
        Titles of the two signals.

    Returns
    -------
    maps : hyperspy Signal2D, shape (K | H, W) (BaseSignal (K | N) for (N, K) maps)
        One map per component (the navigation axis indexes the components).
    components : hyperspy Signal1D, shape (K | C)

    Raises
    ------
    ImportError
        Without hyperspy.
    ValueError
        Shapes that do not match each other or the reference.
    """
    try:
        import hyperspy.api as hs
    except ImportError as err:
        raise ImportError("to_signals needs hyperspy: pip install hyperspy") from err
    A = np.asarray(maps)
    Hc = np.asarray(components)
    if Hc.ndim != 2 or A.ndim not in (2, 3) or A.shape[-1] != Hc.shape[0]:
        raise ValueError(
            f"maps (.., K) and components (K, C) do not match: {A.shape} and {Hc.shape}"
        )
    C = Hc.shape[1]
    if reference is not None:
        if not is_signal(reference):
            raise ValueError("reference must be a HyperSpy signal")
        axes = axes_of(reference)
    nav_in = (axes or {}).get("navigation")
    if nav_in and A.ndim == 2 and len(nav_in) == 2:
        shape = [a["size"] for a in nav_in]
        if shape[0] * shape[1] == A.shape[0]:  # (N, K) maps of an (H, W) scan, e.g.
            A = A.reshape(*shape, A.shape[1])  # HyperSpy's learning_results.loadings
    stack = np.moveaxis(A, -1, 0)
    m = hs.signals.Signal2D(stack) if stack.ndim == 3 else hs.signals.BaseSignal(stack)
    if stack.ndim == 2:
        m = m.transpose(signal_axes=1)
    spectra = hs.signals.Signal1D(Hc)
    m.metadata.General.title, spectra.metadata.General.title = titles
    for s in (m, spectra):
        ax = s.axes_manager.navigation_axes[0]
        ax.name = "Component index"
    if nav_in is not None and [a["size"] for a in nav_in] == list(A.shape[:-1]):
        # NumPy order (slowest first) on both sides; HyperSpy's signal_axes are fastest first
        for a_out, desc in zip(m.axes_manager.signal_axes[::-1], nav_in):
            _set_axis(a_out, desc)
    elif nav_in is not None and reference is not None:
        raise ValueError(
            f"maps of navigation shape {A.shape[:-1]} do not match the reference's "
            f"{tuple(a['size'] for a in nav_in)}"
        )
    sig = _energy_axis(energy, C)
    if sig is None and axes is not None and axes.get("signal"):
        s_in = axes["signal"][-1]
        if s_in["size"] == C:
            sig = s_in
        elif reference is not None:
            raise ValueError(f"components have {C} channels, the reference {s_in['size']}")
    if sig is not None:
        _set_axis(spectra.axes_manager.signal_axes[0], sig)
    return m, spectra
