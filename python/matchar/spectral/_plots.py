"""Matplotlib views of fitted decompositions (matplotlib is imported only when plotting)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._plotting import (
    add_colorbar,
    constrained,
    new_figure,
    set_title,
    style_axes,
    style_map_axes,
)


def _energy(energy: Any, n_channels: int, unit: str | None = "keV") -> tuple[np.ndarray, str]:
    """The x axis of spectra: channel indices, or an (offset, scale) pair / an array in
    ``unit`` (keV by default; "eV" for EELS); an (offset, scale, unit) triple names its
    own unit."""
    if isinstance(energy, tuple) and len(energy) == 3 and isinstance(energy[2], str):
        unit = energy[2]
    label = f"energy ({unit})" if unit else "energy"
    if energy is None:
        return np.arange(n_channels), "channel"
    if isinstance(energy, tuple) and len(energy) in (2, 3):
        offset, scale = float(energy[0]), float(energy[1])
        return offset + scale * np.arange(n_channels), label
    e = np.asarray(energy, dtype=np.float64)
    if e.shape != (n_channels,):
        raise ValueError(
            f"energy must be (offset, scale) or an array of {n_channels} values, got shape "
            f"{e.shape}"
        )
    return e, label


def signal_energy(axes: Any) -> tuple[float, float, str] | None:
    """(offset, scale, unit) of a fitted signal's spectral axis (see ``axes_of``) when it
    is calibrated in eV or keV, else None."""
    if not axes or not axes.get("signal"):
        return None
    a = axes["signal"][-1]
    unit = str(a.get("units") or "").strip()
    if unit not in ("eV", "keV"):
        return None
    return float(a["offset"]), float(a["scale"]), unit


def signal_pixel_size(axes: Any) -> float | None:
    """Å per pixel of a fitted signal's (y, x) navigation axes (see ``axes_of``) when both
    are calibrated in a length unit and square, else None."""
    nm = pixel_size_nm(axes.get("navigation") if axes else None)
    return None if nm is None else 10.0 * nm


def _check_maps(maps: Any, k: int) -> np.ndarray | None:
    if maps is None:
        return None
    m = np.asarray(maps)
    if m.ndim not in (2, 3) or m.shape[-1] != k:
        raise ValueError(f"maps must have shape (N, {k}) or (H, W, {k}), got {m.shape}")
    return m


def _show_map(
    fig: Any, ax: Any, img: np.ndarray, label: str, pixel_size: float | None, cmap: str
) -> None:
    """A 2-D map with its colorbar and scale bar, or a 1-D map as a line profile."""
    if img.ndim == 2:
        im = ax.imshow(img, cmap=cmap, interpolation="nearest")
        add_colorbar(fig, im, ax, label)
        style_map_axes(ax, pixel_size, img.shape[1])
    else:
        ax.plot(img, lw=0.8)
        style_axes(ax, "pixel", label)


def plot_components(
    components: np.ndarray,
    maps: Any = None,
    energy: Any = None,
    titles: list[str] | None = None,
    fig: Any = None,
    energy_unit: str | None = "keV",
    *,
    map_label: str = "abundance (a.u.)",
    spectrum_label: str = "intensity (a.u.)",
    pixel_size: float | None = None,
    loss: tuple[np.ndarray, np.ndarray] | None = None,
    loss_label: str = "loss",
) -> Any:
    """One column per component: its map (top, when given) and its spectrum (bottom).

    Parameters
    ----------
    components : ndarray, shape (K, C)
    maps : array_like, shape (N, K) or (H, W, K), optional
        Cube maps are drawn as images (with a colorbar), (N, K) maps as line profiles.
    energy : (offset, scale), (offset, scale, unit) or array of shape (C,), optional
        Channel energies in ``energy_unit`` (or the triple's unit, e.g.
        ``(meta["energy_offset"], meta["energy_scale"], meta["energy_unit"])``).
    titles : list of K str, optional
    fig : matplotlib Figure, optional
    energy_unit : str, default "keV"
        The unit of ``energy`` on the axis label (e.g. "eV" for EELS).
    map_label : str, default "abundance (a.u.)"
        What the map values are (the colorbars' label).
    spectrum_label : str, default "intensity (a.u.)"
        The spectra's y label.
    pixel_size : float, optional
        Å per pixel of the maps, for a scale bar; None: pixel axes.
    loss : (iterations, values), optional
        A loss history, drawn in a last column of its own.
    loss_label : str, default "loss"

    Returns
    -------
    matplotlib.figure.Figure
    """
    comp = np.asarray(components)
    k = comp.shape[0]
    m = _check_maps(maps, k)
    x, xlabel = _energy(energy, comp.shape[1], energy_unit)
    rows = 1 if m is None else 2
    has_loss = loss is not None and len(loss[1]) > 1
    cols = k + int(has_loss)
    if fig is None:
        fig = new_figure((3.0 * cols, 2.8 * rows))
    constrained(fig)
    gs = fig.add_gridspec(rows, cols)
    # every panel first, then the colorbars: fig.axes lists maps, spectra, loss in order
    map_axes = [fig.add_subplot(gs[0, i]) for i in range(k)] if m is not None else []
    spec_axes = [fig.add_subplot(gs[rows - 1, i]) for i in range(k)]
    loss_ax = fig.add_subplot(gs[:, k]) if has_loss else None
    for i in range(k):
        title = titles[i] if titles is not None else f"component {i}"
        if m is not None:
            _show_map(fig, map_axes[i], m[..., i], map_label, pixel_size, "viridis")
            set_title(map_axes[i], title)
        ax = spec_axes[i]
        ax.plot(x, comp[i], lw=0.8)
        style_axes(ax, xlabel, spectrum_label if i == 0 else None)
        if m is None:
            set_title(ax, title)
    if loss_ax is not None:
        it, values = loss
        loss_ax.semilogy(it, values, lw=0.8)
        style_axes(loss_ax, "iteration", loss_label)
        set_title(loss_ax, "loss history")
    return fig


def plot_scree(explained_variance_ratio: np.ndarray, ax: Any = None) -> Any:
    """Explained-variance ratio per component on a log scale (the scree plot).

    Parameters
    ----------
    explained_variance_ratio : ndarray, shape (K,)
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes
    """
    if ax is None:
        ax = new_figure((4, 3)).subplots()
    r = np.asarray(explained_variance_ratio, dtype=np.float64)
    ax.semilogy(np.arange(r.size), r, "o-", ms=4)
    style_axes(ax, "component", "explained variance ratio")
    set_title(ax, "scree plot")
    return ax


# Lengths -> nm, for scale bars.
_TO_NM = {
    "nm": 1.0,
    "å": 0.1,
    "a": 0.1,
    "angstrom": 0.1,
    "pm": 1e-3,
    "µm": 1e3,
    "um": 1e3,
    "mm": 1e6,
    "m": 1e9,
}


def pixel_size_nm(axes: Any) -> float | None:
    """nm per pixel from (y, x) navigation axes ``[{scale, units}, ...]`` when both are
    calibrated in a length unit and square (within 1 %), else None."""
    if not axes or len(axes) != 2:
        return None
    sizes = []
    for a in axes:
        factor = _TO_NM.get(str(a.get("units") or "").strip().lower())
        scale = a.get("scale")
        if factor is None or scale is None or not np.isfinite(scale) or scale <= 0:
            return None
        sizes.append(float(scale) * factor)
    return sizes[0] if np.isclose(sizes[0], sizes[1], rtol=1e-2) else None


def plot_decomposition(
    components: np.ndarray,
    maps: np.ndarray,
    energy: Any = None,
    *,
    energy_unit: str | None = "keV",
    titles: list[str] | None = None,
    map_label: str = "counts per pixel",
    pixel_nm: float | None = None,
    residual_map: np.ndarray | None = None,
    loss_history: np.ndarray | None = None,
    loss_iterations: np.ndarray | None = None,
    loss_label: str = "loss",
) -> Any:
    """The figure of a decomposition: per component its map (with a colorbar in
    ``map_label`` and, when ``pixel_nm`` is known, a scale bar) over its spectrum; a last
    column with the residual map (when given) over the loss history, each in its own
    axes, so that no panel covers another's labels.

    Parameters
    ----------
    components : ndarray, shape (K, C)
    maps : ndarray, shape (H, W, K) or (N, K)
    energy : (offset, scale) or ndarray (C,), optional
        Channel energies in ``energy_unit``.
    energy_unit : str, default "keV"
    titles : list of K str, optional
    map_label : str
        What the map values are (the colorbar's label).
    pixel_nm : float, optional
        Pixel size (nm) for a scale bar; None: the axes show pixel indices.
    residual_map : ndarray, shape (H, W) or (N,), optional
    loss_history, loss_iterations : ndarray, optional
        The loss per evaluated iteration.
    loss_label : str

    Returns
    -------
    matplotlib.figure.Figure
    """
    comp = np.asarray(components)
    k = comp.shape[0]
    m = _check_maps(maps, k)
    x, xlabel = _energy(energy, comp.shape[1], energy_unit)
    extra = residual_map is not None or (loss_history is not None and len(loss_history) > 1)
    cols = k + int(extra)
    fig = new_figure((3.0 * cols, 5.4))
    axes = fig.subplots(2, cols, squeeze=False)
    pixel_size = None if pixel_nm is None else 10.0 * float(pixel_nm)

    for i in range(k):
        title = titles[i] if titles is not None else f"component {i}"
        _show_map(fig, axes[0, i], m[..., i], map_label, pixel_size, "viridis")
        set_title(axes[0, i], title)
        style_axes(axes[1, i], xlabel, "fraction of counts per channel" if i == 0 else None)
        axes[1, i].plot(x, comp[i], lw=0.8)
    if extra:
        ax_r, ax_l = axes[0, k], axes[1, k]
        if residual_map is not None:
            residual = np.asarray(residual_map)
            _show_map(fig, ax_r, residual, "Poisson deviance", pixel_size, "viridis")
            set_title(ax_r, "residual")
        else:
            ax_r.set_axis_off()
        if loss_history is not None and len(loss_history) > 1:
            it = np.arange(len(loss_history)) if loss_iterations is None else loss_iterations
            ax_l.semilogy(it, loss_history, lw=0.8)
            style_axes(ax_l, "iteration", loss_label)
            set_title(ax_l, "loss history")
        else:
            ax_l.set_axis_off()
    return fig
