"""The result of a segmentation and its pixel-level steps: the contrast normalisation
before the descriptor, the labels interpolated from the descriptor grid to every pixel
and the region boundaries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import ndimage

from .._validation import check_float
from ._correlation import CONSTANT_IMAGE, finite_rescaled


def _check_pixel_size(pixel_size: float | None) -> None:
    check_float(pixel_size, "pixel_size (Å)", low=0.0, low_open=True, allow_none=True)


#: The largest |value| that the float32 contrast normalisation takes as it is (outside
#: it, the image is scaled exactly by a power of two: its squares would overflow or
#: lose precision in float32; the normalised image does not depend on the scale).
_FLOAT32_SAFE_PEAK = (2.0**-40, 2.0**40)


def _local_contrast(image: np.ndarray, sigma: float) -> np.ndarray:
    """``(image - G(image)) / sqrt(G((image - G(image))²))`` with G a Gaussian of
    ``sigma`` pixels, in float32 (three image-sized buffers at most): every area gets
    unit local contrast, so a patch that straddles a boundary between a bright,
    high-contrast phase and a dim one is not dominated by the bright one in the Pearson
    correlations."""
    image = finite_rescaled(image, "image", _FLOAT32_SAFE_PEAK, constant=CONSTANT_IMAGE)
    img = image.astype(np.float32)  # a copy: the caller's array is never modified
    img -= ndimage.gaussian_filter(img, sigma, mode="reflect")
    sd = ndimage.gaussian_filter(np.square(img), sigma, mode="reflect")
    np.sqrt(sd, out=sd)
    top = float(sd.max())
    if not top > 0:
        raise ValueError(CONSTANT_IMAGE)
    np.maximum(sd, np.float32(1e-6 * top), out=sd)
    img /= sd
    return img


@dataclass
class Segmentation:
    """The result of :func:`~matchar.imaging.segment` and
    :meth:`~matchar.imaging.Segmenter.predict`.

    Attributes
    ----------
    labels : numpy.ndarray, shape (H, W), int64
        Region of every image pixel, ``0 .. n_regions - 1``; the same shape as the image.
        Labels are ordered by the size of the regions in the frame the segmenter was
        fitted on (0 = largest), ties by the first pixel in raster order.
    n_regions : int
        Number of regions (clusters) of the fitted model.
    boundaries : numpy.ndarray, shape (H, W), bool
        True on pixels whose right or lower neighbour has another label.
    lattice_vectors : list of numpy.ndarray, shape (2, 2) each
        Per region, the two shortest lattice vectors as rows ``(dy, dx)`` (a reduced
        basis, from the peaks of the region's masked autocorrelation), in Å when
        ``pixel_size`` was given, else pixels; rows of NaN when a region shows no
        lattice (or is absent from the frame).
    misorientation : dict of (int, int) -> float
        For every pair of touching regions ``(i, j)``, ``i < j``: the smallest rotation
        (degrees) that maps a shortest lattice vector of one onto one of the same length
        (within 10 %) of the other; NaN when no lengths match (different phases).
    grid_labels : numpy.ndarray, shape (H', W'), int64
        Labels on the descriptor grid (see :func:`~matchar.imaging.local_correlation_map`).
    units : str
        ``"Å"`` or ``"px"``: the unit of ``lattice_vectors``.
    pixel_size : float or None
        Pixel size in Å when it was given (used by :meth:`plot` for the scale bar).
    """

    labels: np.ndarray
    n_regions: int
    boundaries: np.ndarray
    lattice_vectors: list[np.ndarray]
    misorientation: dict[tuple[int, int], float]
    grid_labels: np.ndarray
    units: str = "px"
    pixel_size: float | None = None

    def plot(
        self,
        image: ArrayLike | None = None,
        ax: Any = None,
        alpha: float = 0.35,
        *,
        pixel_size: float | None = None,
    ) -> Any:
        """The labels over the image (when given), with the region boundaries in black,
        a colorbar naming every region and a scale bar (Å or nm) when the pixel size is
        known (else pixel axes).

        Parameters
        ----------
        image : array_like, shape (H, W), optional
            The segmented image, drawn in grey below the labels.
        ax : matplotlib Axes, optional
        alpha : float, default 0.35
            Opacity of the label colours over the image, in [0, 1].
        pixel_size : float, optional
            Å per pixel, for the scale bar (default: the one given to the segmenter).

        Returns
        -------
        matplotlib Axes

        Example
        -------
        >>> import numpy as np, matchar as mc
        >>> img, truth = mc.datasets.bicrystal(15.0, shape=(128, 128), seed=0)
        >>> ax = mc.imaging.segment(img, n_regions=2).plot(img)
        """
        from .._plotting import class_colorbar, class_colormap, new_axes, set_title, style_map_axes

        alpha = check_float(alpha, "alpha", low=0.0, high=1.0)
        _check_pixel_size(pixel_size)
        if pixel_size is None:
            pixel_size = self.pixel_size
        if ax is None:
            ax = new_axes((5.5, 4.8))
        if image is not None:
            img = np.asarray(image)
            if img.shape != self.labels.shape:
                raise ValueError(
                    f"image must have the labels' shape {self.labels.shape}, got {img.shape}"
                )
            ax.imshow(img, cmap="gray")
        names = [f"region {i}" for i in range(self.n_regions)]
        cmap, norm = class_colormap(self.n_regions)
        ax.imshow(
            self.labels,
            cmap=cmap,
            norm=norm,
            alpha=alpha if image is not None else 1.0,
            interpolation="nearest",
        )
        edge = np.ma.masked_where(~self.boundaries, self.boundaries)
        ax.imshow(edge, cmap="gray_r", vmin=0, vmax=1, alpha=0.9, interpolation="nearest")
        set_title(ax, f"{self.n_regions} regions")
        class_colorbar(ax.figure, ax, names, label="region")
        style_map_axes(ax, pixel_size, self.labels.shape[1])
        return ax


def _upsample_scores(
    scores: np.ndarray, shape: tuple[int, int], origin: tuple[float, float], stride: int
) -> np.ndarray:
    """Full-resolution labels: the cluster scores (Hg, Wg, k) interpolated bilinearly to
    every pixel (nearest grid value beyond the grid), then the best cluster per pixel.

    Grid point (i, j) sits at pixel (origin[0] + i stride, origin[1] + j stride).
    """
    gy = np.clip((np.arange(shape[0]) - origin[0]) / stride, 0, scores.shape[0] - 1)
    gx = np.clip((np.arange(shape[1]) - origin[1]) / stride, 0, scores.shape[1] - 1)
    y0 = np.minimum(np.floor(gy).astype(np.intp), scores.shape[0] - 2 if scores.shape[0] > 1 else 0)
    x0 = np.minimum(np.floor(gx).astype(np.intp), scores.shape[1] - 2 if scores.shape[1] > 1 else 0)
    y1 = np.minimum(y0 + 1, scores.shape[0] - 1)
    x1 = np.minimum(x0 + 1, scores.shape[1] - 1)
    wx = (gx - x0)[None, :, None]
    labels = np.empty(shape, dtype=np.int64)
    # Blocks of rows keep the (rows, W, k) temporaries small on large images.
    block = max(1, (1 << 22) // max(1, shape[1] * scores.shape[2]))
    for r0 in range(0, shape[0], block):
        rows = slice(r0, min(shape[0], r0 + block))
        wy = (gy[rows] - y0[rows])[:, None, None]
        top = scores[y0[rows]][:, x0] * (1 - wx) + scores[y0[rows]][:, x1] * wx
        bottom = scores[y1[rows]][:, x0] * (1 - wx) + scores[y1[rows]][:, x1] * wx
        labels[rows] = np.argmax(top * (1 - wy) + bottom * wy, axis=-1)
    return labels


def _boundaries(labels: np.ndarray) -> np.ndarray:
    b = np.zeros(labels.shape, dtype=bool)
    b[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    b[:-1, :] |= labels[:-1, :] != labels[1:, :]
    return b
