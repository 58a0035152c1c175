"""The library's plotting style: scale bars, colorbars, axis labels and font sizes.

Every plot function and method draws through these helpers, so that all figures share
one look: maps carry a scale bar in Å or nm when the pixel size is known (pixel axes
labelled "px" otherwise), every image has a colorbar whose label names its unit (or
"counts" / "a.u."), class maps have a colorbar naming every class, no text is smaller
than :data:`MIN_FONT_SIZE` and new figures use constrained layout so that nothing
overlaps. matplotlib is imported only inside the functions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

#: Smallest font size (points) of any text in a figure.
MIN_FONT_SIZE = 8.0
#: Tick labels, legends, annotations and colorbar ticks.
SMALL_FONT_SIZE = 8.0
#: Axis labels, colorbar labels and scale-bar labels.
LABEL_FONT_SIZE = 9.0
#: Axes titles.
TITLE_FONT_SIZE = 10.0


def nice_length(target: float) -> float:
    """The largest length ``1, 2 or 5 × 10^k`` not above ``target`` (``target > 0``)."""
    if not (math.isfinite(target) and target > 0):
        raise ValueError(f"target must be a positive finite length, got {target!r}")
    exp = math.floor(math.log10(target))
    base = target / 10**exp
    step = 5 if base >= 5 else 2 if base >= 2 else 1
    return float(step * 10**exp)


def scale_bar_length(
    pixel_size_angstrom: float | None, image_width_px: float, fraction: float = 0.25
) -> tuple[float, str]:
    """A round scale-bar length about ``fraction`` of the image width.

    Parameters
    ----------
    pixel_size_angstrom : float or None
        Å per pixel; None gives a bar in pixels.
    image_width_px : float
        Width of the shown image in pixels.
    fraction : float, default 0.25
        Target length as a fraction of the width (the bar is at most this long).

    Returns
    -------
    length_px : float
        The bar's length in pixels.
    label : str
        Its length with the unit: Å below 1 nm, nm from 1 nm up, "px" without a pixel
        size.
    """
    width = float(image_width_px)
    if not (math.isfinite(width) and width > 0):
        raise ValueError(f"image_width_px must be positive, got {image_width_px!r}")
    if pixel_size_angstrom is None:
        length = nice_length(max(fraction * width, 1.0))
        return length, f"{length:g} px"
    pixel = float(pixel_size_angstrom)
    if not (math.isfinite(pixel) and pixel > 0):
        raise ValueError(f"pixel_size_angstrom must be positive, got {pixel_size_angstrom!r}")
    angstrom = nice_length(fraction * width * pixel)
    if angstrom >= 10.0:
        label = f"{angstrom / 10.0:g} nm"
    else:
        label = f"{angstrom:g} Å"
    return angstrom / pixel, label


def add_scale_bar(
    ax: Any,
    pixel_size_angstrom: float | None,
    image_width_px: float,
    *,
    loc: str = "lower left",
    color: str = "white",
    fraction: float = 0.25,
) -> Any:
    """Draw a scale bar of a round length on an image axes.

    The image must be drawn in pixel coordinates (``imshow`` without ``extent``). The
    bar is an ``AnchoredSizeBar`` (white with a black outline: legible on any colormap).

    Parameters
    ----------
    ax : matplotlib.axes.Axes
    pixel_size_angstrom : float or None
        Å per pixel; None draws a bar in pixels.
    image_width_px : float
        Width of the shown image in pixels (of the crop, when cropped).
    loc : str, default "lower left"
        Where the bar sits (a matplotlib legend location).
    color : str, default "white"
    fraction : float, default 0.25
        Bar length as a fraction of the image width, at most.

    Returns
    -------
    mpl_toolkits.axes_grid1.anchored_artists.AnchoredSizeBar
    """
    import matplotlib.patheffects as pe
    from matplotlib.font_manager import FontProperties
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    length_px, label = scale_bar_length(pixel_size_angstrom, image_width_px, fraction)
    bar = AnchoredSizeBar(
        ax.transData,
        length_px,
        label,
        loc,
        pad=0.4,
        borderpad=0.3,
        sep=3,
        color=color,
        frameon=False,
        size_vertical=max(0.5, 0.012 * float(image_width_px)),
        fontproperties=FontProperties(size=LABEL_FONT_SIZE, weight="bold"),
    )
    outline = [pe.withStroke(linewidth=2.0, foreground="black")]
    bar.txt_label._text.set_path_effects(outline)
    for patch in bar.size_bar.get_children():
        patch.set_edgecolor("black")
        patch.set_linewidth(0.6)
    ax.add_artist(bar)
    return bar


def style_map_axes(ax: Any, pixel_size_angstrom: float | None, image_width_px: float) -> Any:
    """A map's axes: a scale bar (Å or nm) and no ticks when the pixel size is known,
    else pixel axes labelled "x (px)" and "y (px)".

    Returns
    -------
    AnchoredSizeBar or None
        The scale bar, when drawn.
    """
    if pixel_size_angstrom is None:
        ax.set_xlabel("x (px)", fontsize=LABEL_FONT_SIZE)
        ax.set_ylabel("y (px)", fontsize=LABEL_FONT_SIZE)
        ax.tick_params(labelsize=SMALL_FONT_SIZE)
        return None
    ax.set_xticks([])
    ax.set_yticks([])
    return add_scale_bar(ax, pixel_size_angstrom, image_width_px)


def add_colorbar(fig: Any, mappable: Any, ax: Any, label: str, **kwargs: Any) -> Any:
    """A colorbar next to ``ax`` with a label (its unit, or "counts" / "a.u.").

    Parameters
    ----------
    fig : matplotlib Figure or SubFigure
    mappable : matplotlib.cm.ScalarMappable
        E.g. what ``imshow`` returned.
    ax : matplotlib.axes.Axes
        The axes the colorbar belongs to (space is taken from it).
    label : str
        Must not be empty.
    **kwargs
        Passed to ``fig.colorbar`` (e.g. ``shrink``).

    Returns
    -------
    matplotlib.colorbar.Colorbar
    """
    if not str(label).strip():
        raise ValueError("a colorbar needs a label (its unit, or 'counts' / 'a.u.')")
    kwargs.setdefault("shrink", 0.85)
    cb = fig.colorbar(mappable, ax=ax, **kwargs)
    cb.set_label(label, fontsize=LABEL_FONT_SIZE)
    cb.ax.tick_params(labelsize=SMALL_FONT_SIZE)
    return cb


def class_colormap(n_classes: int, cmap: Any = None) -> tuple[Any, Any]:
    """A discrete colormap of ``n_classes`` colours and its norm (class i at value i).

    Parameters
    ----------
    n_classes : int
    cmap : str or Colormap, optional
        Default "tab10" (up to 10 classes), else "tab20". A listed colormap gives its
        first colours; a continuous one is sampled evenly.

    Returns
    -------
    cmap : matplotlib.colors.ListedColormap
    norm : matplotlib.colors.BoundaryNorm
        Use both for the class image, so that it matches :func:`class_colorbar`.
    """
    import matplotlib
    from matplotlib.colors import BoundaryNorm, ListedColormap

    n = int(n_classes)
    if n < 1:
        raise ValueError(f"n_classes must be >= 1, got {n_classes!r}")
    if cmap is None:
        cmap = "tab10" if n <= 10 else "tab20"
    base = matplotlib.colormaps[cmap] if isinstance(cmap, str) else cmap
    if isinstance(base, ListedColormap) and base.N >= n:
        colors = np.asarray(base.colors)[:n]
    else:
        colors = base(np.linspace(0.0, 1.0, n))
    listed = ListedColormap(colors, name=f"{getattr(base, 'name', 'classes')}_{n}")
    return listed, BoundaryNorm(np.arange(n + 1) - 0.5, n)


def class_colorbar(
    fig: Any,
    ax: Any,
    names: Sequence[str],
    cmap: Any = None,
    label: str = "class",
    **kwargs: Any,
) -> Any:
    """A colorbar that names every class: one colour block and tick label per class.

    Parameters
    ----------
    fig : matplotlib Figure or SubFigure
    ax : matplotlib.axes.Axes
        The class map's axes.
    names : sequence of str
        Class names, in class-index order (class i is drawn at value i).
    cmap : str or Colormap, optional
        As for :func:`class_colormap`; draw the class image with the same
        ``class_colormap(len(names), cmap)`` so that the colours match.
    label : str, default "class"
        The colorbar's label (what the classes are, e.g. "region" or "phase").
    **kwargs
        Passed to ``fig.colorbar``.

    Returns
    -------
    matplotlib.colorbar.Colorbar
    """
    from matplotlib.cm import ScalarMappable

    names = [str(s) for s in names]
    listed, norm = class_colormap(len(names), cmap)
    kwargs.setdefault("shrink", 0.85)
    cb = fig.colorbar(ScalarMappable(norm=norm, cmap=listed), ax=ax, **kwargs)
    cb.set_ticks(np.arange(len(names)))
    cb.set_ticklabels(names)
    cb.set_label(label, fontsize=LABEL_FONT_SIZE)
    cb.ax.tick_params(labelsize=SMALL_FONT_SIZE, length=0)
    cb.minorticks_off()
    return cb


def style_axes(ax: Any, xlabel: str | None = None, ylabel: str | None = None) -> Any:
    """Axis labels (when given) at :data:`LABEL_FONT_SIZE`, tick labels at
    :data:`SMALL_FONT_SIZE`; returns ``ax``."""
    if xlabel is not None:
        ax.set_xlabel(xlabel, fontsize=LABEL_FONT_SIZE)
    if ylabel is not None:
        ax.set_ylabel(ylabel, fontsize=LABEL_FONT_SIZE)
    ax.tick_params(which="both", labelsize=SMALL_FONT_SIZE)
    return ax


def set_title(ax: Any, title: str) -> None:
    """An axes title at :data:`TITLE_FONT_SIZE`."""
    ax.set_title(title, fontsize=TITLE_FONT_SIZE)


def new_figure(figsize: tuple[float, float]) -> Any:
    """A new figure with constrained layout."""
    import matplotlib.pyplot as plt

    return plt.figure(figsize=figsize, layout="constrained")


def new_axes(figsize: tuple[float, float]) -> Any:
    """One axes on a new figure with constrained layout."""
    return new_figure(figsize).subplots()


def constrained(fig: Any) -> Any:
    """Give a caller's figure constrained layout when it has no layout engine yet
    (SubFigures follow their parent); returns ``fig``."""
    if hasattr(fig, "get_layout_engine") and hasattr(fig, "set_layout_engine"):
        if fig.get_layout_engine() is None:
            fig.set_layout_engine("constrained")
    return fig
