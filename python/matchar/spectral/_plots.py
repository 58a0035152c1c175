"""Matplotlib views of fitted decompositions (matplotlib is imported only when plotting)."""

from __future__ import annotations

from typing import Any

import numpy as np


def _energy(energy: Any, n_channels: int) -> tuple[np.ndarray, str]:
    """The x axis of spectra: channel indices, or an (offset, scale) pair / an array in keV."""
    if energy is None:
        return np.arange(n_channels), "channel"
    if isinstance(energy, tuple) and len(energy) in (2, 3):
        offset, scale = float(energy[0]), float(energy[1])
        return offset + scale * np.arange(n_channels), "energy (keV)"
    e = np.asarray(energy, dtype=np.float64)
    if e.shape != (n_channels,):
        raise ValueError(
            f"energy must be (offset, scale) or an array of {n_channels} values, got shape "
            f"{e.shape}"
        )
    return e, "energy (keV)"


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
) -> Any:
    """One column per component: its map (top, when given) and its spectrum (bottom).

    Parameters
    ----------
    components : ndarray, shape (K, C)
    maps : array_like, shape (N, K) or (H, W, K), optional
        Cube maps are drawn as images, (N, K) maps as line profiles.
    energy : (offset_keV, scale_keV) or array of shape (C,), optional
    titles : list of K str, optional
    fig : matplotlib Figure, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    comp = np.asarray(components)
    k = comp.shape[0]
    m = _check_maps(maps, k)
    x, xlabel = _energy(energy, comp.shape[1])
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
