"""What the crystal classifier returns: one image's prediction (:class:`CrystalPrediction`)
and the sliding-window maps (:class:`CrystalMap`), with their plots."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np


def _label(prototype: str, zone_axis: tuple[int, ...]) -> str:
    return f"{prototype}[{''.join(str(v) for v in zone_axis)}]"


@dataclass(frozen=True)
class CrystalPrediction:
    """Prediction for one image (all its windows pooled).

    Attributes
    ----------
    prototype : str
        "fcc", "bcc", "hcp" or "diamond".
    zone_axis : tuple of int
        Zone axis (hcp: four-index Miller-Bravais).
    probabilities : numpy.ndarray, shape (n_classes,), float64
        Class probabilities (mean over the Monte-Carlo samples), in the order of
        ``CrystalClassifier.classes``.
    lattice_constant : float
        Lattice constant a in Å (hcp: basal a) for the predicted class.
    rotation_deg : float
        In-plane rotation in degrees, in [0, 360 / n) with n the zone axis's rotational
        symmetry order (see :func:`matchar.imaging.simulate_haadf`). ``rotation`` is a
        deprecated alias.
    uncertainty : float
        Mutual information (nats) between the class and the Monte-Carlo sample (ensemble
        head and dropout mask); 0 = the samples agree, up to log(n_classes). From a HAADF
        image alone, each look-alike group counts as one class here (the training prior,
        not the samples, splits it; ``CrystalClassifier.lookalike_prior``).
    """

    prototype: str
    zone_axis: tuple[int, ...]
    probabilities: np.ndarray
    lattice_constant: float
    rotation_deg: float
    uncertainty: float

    @property
    def rotation(self) -> float:
        """Deprecated alias of ``rotation_deg``."""
        _warn_rotation()
        return self.rotation_deg

    def _named_probabilities(self, classes: Any) -> tuple[list[str], np.ndarray]:
        """Class labels (``classes``, default the shipped model's) and the probabilities
        as float64, checked to have one label per probability."""
        if classes is None:
            from ._classifier import CrystalClassifier

            classes = CrystalClassifier.default().classes
        names = list(classes)
        p = np.asarray(self.probabilities, dtype=np.float64)
        if len(names) != p.size:
            raise ValueError(f"classes must have {p.size} entries, got {len(names)}")
        return names, p

    def lookalikes(
        self, classes: Any = None, min_probability: float = 0.05
    ) -> list[tuple[str, tuple[int, ...], float, float]]:
        """The classes that look the same as the predicted one up to scale.

        From the image alone a window shows the spacing of its columns, not the lattice
        constant: bcc [100] at a = 2.87 Å and fcc [100] at a = 4.06 Å give the same
        square of columns 2.03 Å apart. A given ``lattice_constant`` separates them.

        Parameters
        ----------
        classes : sequence of str, optional
            Class labels in the order of ``probabilities`` (default:
            ``CrystalClassifier.default().classes``).
        min_probability : float
            Leave out look-alikes less probable than this (0-1).

        Returns
        -------
        list of (prototype, zone_axis, probability, lattice_constant)
            The other members of the predicted class's look-alike group, most probable
            first, each with the lattice constant in Å at which it shows the same column
            spacing as the prediction. Empty when the class has no look-alike.

        Examples
        --------
        >>> import matchar as mc
        >>> img = mc.imaging.simulate_haadf("bcc", (1, 0, 0), 2.87, dose=500, seed=0)
        >>> p = mc.imaging.CrystalClassifier.default().predict(img, 0.12)
        >>> sorted({p.prototype} | {m[0] for m in p.lookalikes(min_probability=0)})
        ['bcc', 'diamond', 'fcc']
        """
        from ._lookalike import LOOKALIKE_GROUPS, column_spacing

        if not (isinstance(min_probability, (int, float)) and 0.0 <= min_probability <= 1.0):
            raise ValueError(f"min_probability must be in [0, 1], got {min_probability!r}")
        names, p = self._named_probabilities(classes)
        me = (self.prototype, tuple(self.zone_axis))
        group = next((g for g in LOOKALIKE_GROUPS if me in g), ())
        out = []
        for proto, zone in group:
            label = _label(proto, zone)
            if (proto, zone) == me or label not in names:
                continue
            prob = float(p[names.index(label)])
            if prob >= min_probability:
                a = self.lattice_constant * column_spacing(*me) / column_spacing(proto, zone)
                out.append((proto, zone, prob, float(a)))
        return sorted(out, key=lambda t: -t[2])

    def plot(self, ax: Any = None, classes: Any = None) -> Any:
        """Bar chart of the class probabilities, the predicted class highlighted.

        Parameters
        ----------
        ax : matplotlib Axes, optional
        classes : sequence of str, optional
            Class labels (default: ``CrystalClassifier.default().classes``).

        Returns
        -------
        matplotlib Axes
        """
        if ax is None:
            import matplotlib.pyplot as plt

            _, ax = plt.subplots(figsize=(6, 3))
        names, p = self._named_probabilities(classes)
        best = int(np.argmax(p))
        colors = ["C1" if i == best else "C0" for i in range(p.size)]
        ax.bar(np.arange(p.size), p, color=colors)
        ax.set_xticks(np.arange(p.size))
        ax.set_xticklabels(names, rotation=60, ha="right", fontsize=7)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("probability")
        ax.set_title(
            f"{_label(self.prototype, self.zone_axis)}, a = {self.lattice_constant:.2f} Å, "
            f"rotation {self.rotation_deg:.1f}°, MI {self.uncertainty:.3f}",
            fontsize=9,
        )
        return ax


def _warn_rotation() -> None:
    warnings.warn(
        "rotation is deprecated and will be removed in the next release: use rotation_deg "
        "(the same value, in degrees)",
        FutureWarning,
        stacklevel=3,
    )


@dataclass(frozen=True)
class CrystalMap:
    """Sliding-window classification maps on the window grid (H', W').

    Attributes
    ----------
    prototype : numpy.ndarray, shape (H', W'), object (str)
    zone_axis : numpy.ndarray, shape (H', W'), object (tuple of int)
    class_index : numpy.ndarray, shape (H', W'), int64
        Index into ``classes``.
    probabilities : numpy.ndarray, shape (H', W', n_classes), float32
    lattice_constant : numpy.ndarray, shape (H', W'), float32, Å
    rotation_deg : numpy.ndarray, shape (H', W'), float32, degrees
        (``rotation`` is a deprecated alias)
    uncertainty : numpy.ndarray, shape (H', W'), float32
        Mutual information (nats), as :attr:`CrystalPrediction.uncertainty`.
    centers : numpy.ndarray, shape (H', W', 2), float64
        Window centres (row, col) in pixels of the input image.
    classes : tuple of str
        Class labels such as "fcc[110]".
    window, stride : int
        Window side and step in input-image pixels.
    """

    prototype: np.ndarray
    zone_axis: np.ndarray
    class_index: np.ndarray
    probabilities: np.ndarray
    lattice_constant: np.ndarray
    rotation_deg: np.ndarray
    uncertainty: np.ndarray
    centers: np.ndarray
    classes: tuple[str, ...]
    window: int
    stride: int

    @property
    def rotation(self) -> np.ndarray:
        """Deprecated alias of ``rotation_deg``."""
        _warn_rotation()
        return self.rotation_deg

    def plot(self, image: Any = None, fig: Any = None, pixel_size: float | None = None) -> Any:
        """The class map (with the image when given), the lattice-constant map and the
        uncertainty (mutual information) map, on the window grid.

        Parameters
        ----------
        image : array_like, shape (H, W), optional
            The classified image, drawn first.
        fig : matplotlib Figure, optional
        pixel_size : float, optional
            Å per pixel of the classified image: scale bars on every panel (the maps'
            cells are ``stride`` image pixels); without it, axes in pixels.

        Returns
        -------
        matplotlib.figure.Figure
        """
        from .._plotting import (
            add_colorbar,
            class_colorbar,
            class_colormap,
            constrained,
            new_figure,
            set_title,
            style_map_axes,
        )

        panels = 3 if image is None else 4
        fig = new_figure((4.4 * panels, 4.2)) if fig is None else constrained(fig)
        axes = fig.subplots(1, panels)
        grid_ps = None if pixel_size is None else float(pixel_size) * self.stride
        width = self.class_index.shape[1]
        i = 0
        if image is not None:
            img = np.asarray(image)
            im = axes[0].imshow(img, cmap="gray")
            add_colorbar(fig, im, axes[0], "intensity (a.u.)")
            style_map_axes(axes[0], pixel_size, img.shape[1])
            set_title(axes[0], "image")
            i = 1
        cmap, norm = class_colormap(len(self.classes), "tab20")
        axes[i].imshow(self.class_index, cmap=cmap, norm=norm, interpolation="nearest")
        class_colorbar(fig, axes[i], self.classes, cmap="tab20")
        set_title(axes[i], "class")
        im = axes[i + 1].imshow(self.lattice_constant, cmap="viridis")
        add_colorbar(fig, im, axes[i + 1], "lattice constant (Å)")
        set_title(axes[i + 1], "lattice constant")
        im = axes[i + 2].imshow(self.uncertainty, cmap="magma")
        add_colorbar(fig, im, axes[i + 2], "mutual information (nats)")
        set_title(axes[i + 2], "uncertainty")
        for a in axes[i:]:
            style_map_axes(a, grid_ps, width)
        return fig
