"""Matplotlib views of fitted decompositions (matplotlib is imported only when plotting)."""

from __future__ import annotations

from typing import Any

import numpy as np


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


def _check_maps(maps: Any, k: int) -> np.ndarray | None:
    if maps is None:
        return None
    m = np.asarray(maps)
    if m.ndim not in (2, 3) or m.shape[-1] != k:
        raise ValueError(f"maps must have shape (N, {k}) or (H, W, {k}), got {m.shape}")
    return m


def plot_components(
    components: np.ndarray,
    maps: Any = None,
    energy: Any = None,
    titles: list[str] | None = None,
    fig: Any = None,
    energy_unit: str | None = "keV",
) -> Any:
    """One column per component: its map (top, when given) and its spectrum (bottom).

    Parameters
    ----------
    components : ndarray, shape (K, C)
    maps : array_like, shape (N, K) or (H, W, K), optional
        Cube maps are drawn as images, (N, K) maps as line profiles.
    energy : (offset, scale), (offset, scale, unit) or array of shape (C,), optional
        Channel energies in ``energy_unit`` (or the triple's unit, e.g.
        ``(meta["energy_offset"], meta["energy_scale"], meta["energy_unit"])``).
    titles : list of K str, optional
    fig : matplotlib Figure, optional
    energy_unit : str, default "keV"
        The unit of ``energy`` on the axis label (e.g. "eV" for EELS).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    comp = np.asarray(components)
    k = comp.shape[0]
    m = _check_maps(maps, k)
    x, xlabel = _energy(energy, comp.shape[1], energy_unit)
    rows = 1 if m is None else 2
    if fig is None:
        fig = plt.figure(figsize=(2.8 * k, 2.4 * rows))
    axes = fig.subplots(rows, k, squeeze=False)
    for i in range(k):
        title = titles[i] if titles is not None else f"component {i}"
        if m is not None:
            ax = axes[0, i]
            if m.ndim == 3:
                ax.imshow(m[..., i], cmap="viridis")
                ax.set_axis_off()
            else:
                ax.plot(m[:, i], lw=0.8)
                ax.set_xlabel("pixel")
            ax.set_title(title, fontsize=9)
        ax = axes[rows - 1, i]
        ax.plot(x, comp[i], lw=0.8)
        ax.set_xlabel(xlabel, fontsize=8)
        if m is None:
            ax.set_title(title, fontsize=9)
    if hasattr(fig, "tight_layout"):  # a Figure, not a SubFigure
        fig.tight_layout()
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
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(4, 3))
    r = np.asarray(explained_variance_ratio, dtype=np.float64)
    ax.semilogy(np.arange(r.size), r, "o-", ms=4)
    ax.set_xlabel("component")
    ax.set_ylabel("explained variance ratio")
    ax.set_title("scree plot", fontsize=9)
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


def _nice_length(target_nm: float) -> tuple[float, str, float]:
    """(length in nm, label, value in its unit): a 1/2/5 x 10^k length <= target."""
    exp = np.floor(np.log10(target_nm))
    base = target_nm / 10**exp
    step = 5 if base >= 5 else 2 if base >= 2 else 1
    nm = step * 10**exp
    for unit, factor in (("mm", 1e6), ("µm", 1e3), ("nm", 1.0), ("pm", 1e-3)):
        if nm >= factor:
            value = nm / factor
            return nm, f"{value:g} {unit}", value
    return nm, f"{nm * 1e3:g} pm", nm * 1e3


def add_scale_bar(ax: Any, pixel_nm: float, width_px: int, height_px: int) -> None:
    """A white bar of a round length (about a quarter of the image width) with its label,
    at the bottom left of an image axes."""
    from matplotlib.patches import Rectangle

    nm, label, _ = _nice_length(0.25 * width_px * pixel_nm)
    length_px = nm / pixel_nm
    x0, y0 = 0.05 * width_px - 0.5, 0.92 * height_px - 0.5
    thick = max(0.6, 0.025 * height_px)
    ax.add_patch(Rectangle((x0, y0), length_px, thick, color="white", ec="black", lw=0.4))
    ax.text(
        x0 + length_px / 2,
        y0 - 0.02 * height_px,
        label,
        color="white",
        ha="center",
        va="bottom",
        fontsize=7,
        path_effects=_outline(),
    )


def _outline() -> list[Any]:
    import matplotlib.patheffects as pe

    return [pe.withStroke(linewidth=1.5, foreground="black")]


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
    import matplotlib.pyplot as plt

    comp = np.asarray(components)
    k = comp.shape[0]
    m = _check_maps(maps, k)
    x, xlabel = _energy(energy, comp.shape[1], energy_unit)
    extra = residual_map is not None or (loss_history is not None and len(loss_history) > 1)
    cols = k + int(extra)
    fig = plt.figure(figsize=(3.0 * cols, 5.4), layout="constrained")
    axes = fig.subplots(2, cols, squeeze=False)

    def show_map(ax: Any, img: np.ndarray, title: str, label: str) -> None:
        if img.ndim == 2:
            h, w = img.shape
            im = ax.imshow(img, cmap="viridis", interpolation="nearest")
            bar = fig.colorbar(im, ax=ax, shrink=0.8)
            bar.set_label(label, fontsize=8)
            bar.ax.tick_params(labelsize=7)
            if pixel_nm is not None:
                add_scale_bar(ax, pixel_nm, w, h)
                ax.set_xticks([])
                ax.set_yticks([])
            else:
                ax.set_xlabel("x (pixel)", fontsize=8)
                ax.set_ylabel("y (pixel)", fontsize=8)
        else:
            ax.plot(img, lw=0.8)
            ax.set_xlabel("pixel", fontsize=8)
            ax.set_ylabel(label, fontsize=8)
        ax.set_title(title, fontsize=9)

    for i in range(k):
        title = titles[i] if titles is not None else f"component {i}"
        show_map(axes[0, i], m[..., i], title, map_label)
        ax = axes[1, i]
        ax.plot(x, comp[i], lw=0.8)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.set_ylabel("fraction of counts per channel", fontsize=7)
        ax.tick_params(labelsize=7)
    if extra:
        ax_r, ax_l = axes[0, k], axes[1, k]
        if residual_map is not None:
            show_map(ax_r, np.asarray(residual_map), "residual", "Poisson deviance")
        else:
            ax_r.set_axis_off()
        if loss_history is not None and len(loss_history) > 1:
            it = np.arange(len(loss_history)) if loss_iterations is None else loss_iterations
            ax_l.semilogy(it, loss_history, lw=0.8)
            ax_l.set_xlabel("iteration", fontsize=8)
            ax_l.set_ylabel(loss_label, fontsize=8)
            ax_l.set_title("loss history", fontsize=9)
            ax_l.tick_params(which="both", labelsize=7)
        else:
            ax_l.set_axis_off()
    return fig
