"""Unsupervised segmentation of atomic-resolution images into crystalline regions."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import ndimage

from .._threads import serialized
from .._validation import check_choice, check_fitted, check_float, check_int
from ._correlation import (
    CONSTANT_IMAGE,
    as_image,
    default_shifts,
    finite_rescaled,
    local_correlation_map,
)
from ._lattice import lattice_vectors as _region_lattice_vectors
from ._lattice import misorientation_deg as _misorientation_deg
from ._symmetry import symmetry_map


@dataclass
class Segmentation:
    """The result of :func:`segment` / :meth:`Segmenter.predict`.

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
        Labels on the descriptor grid (see :func:`local_correlation_map`).
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


@contextmanager
def _single_threaded_sklearn() -> Iterator[None]:
    """Run scikit-learn's OpenMP and BLAS code on one thread.

    scikit-learn ships its own OpenMP runtime; with matchar's runtime (and the BLAS
    pool) in the same process, the teams' spin-waiting threads fight over the cores
    (measured on 2 loaded cores: the real-image segmentation took 23 s instead of
    3.3 s). The clustering works on low-dimensional points, so one thread loses little.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


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


def _two_means_separation(km: Any, Z: np.ndarray) -> float:
    """Distance between the two k-means centres in pooled standard deviations of the
    points projected on the line through them."""
    u = km.cluster_centers_[1] - km.cluster_centers_[0]
    norm = float(np.linalg.norm(u))
    if not norm > 0:
        return 0.0
    t = Z @ (u / norm)
    lab = km.labels_
    n0, n1 = int(np.sum(lab == 0)), int(np.sum(lab == 1))
    if n0 < 2 or n1 < 2:
        return 0.0
    pooled = math.sqrt((np.var(t[lab == 0]) * n0 + np.var(t[lab == 1]) * n1) / (n0 + n1))
    return abs(float(t[lab == 1].mean() - t[lab == 0].mean())) / max(pooled, 1e-300)


def _boundaries(labels: np.ndarray) -> np.ndarray:
    b = np.zeros(labels.shape, dtype=bool)
    b[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    b[:-1, :] |= labels[:-1, :] != labels[1:, :]
    return b


class Segmenter:
    """Local correlation maps → PCA → clustering, fitted once and reused on other frames.

    Pipeline: local contrast normalisation (``contrast_sigma``);
    :func:`local_correlation_map` on a grid of step ``stride``, for the shifts ``s`` and
    ``-s`` averaged (``centred``); PCA to
    ``n_components``; a Gaussian smoothing of the PCA features over the grid (``sigma``
    ``smoothing`` pixels), which averages shot noise; k-means (``method="kmeans"``) or a
    Gaussian mixture (``method="gmm"``) from scikit-learn; labels upsampled to full
    resolution by bilinear interpolation of the cluster scores (negative squared distance
    to the k-means centres, or the mixture's posterior probabilities) between grid
    points, so boundaries are located more finely than ``stride``. The descriptor at
    ``p`` for shifts ``s`` in a half-plane compares ``p`` with ``p + s``, so it
    describes the area around ``p + mean(s)/2``; averaged with ``-s`` it is centred on
    ``p``. Grid points are placed where their descriptor is centred.

    **Choosing the number of regions** when ``n_regions`` is None (both methods): the
    silhouette score of k-means for ``k = 2 .. max_regions`` (fitted on a fixed
    subsample of at most 20000 grid points, scored on another of at most 2000), the
    largest wins and is refitted on all points. The image is one region if even the best
    silhouette is below ``min_silhouette``, or if the two k-means halves are less than
    ``min_separation`` pooled standard deviations apart along the line through their
    centres: the two halves of one Gaussian cloud are 2.66 apart (of a uniform one
    3.46), and splitting a single crystal's descriptors gives silhouettes up to 0.33 but
    separations of only 2.7–3.1 (measured), while two-region images gave 3.7–9.1 and the
    real HEA image 4.0. The BIC is not used: the smoothed
    descriptors of neighbouring grid points are strongly correlated and the boundary
    strips form real intermediate clusters, so the BIC kept falling up to
    ``max_regions`` on every two-region test image (also with the sample size
    corrected for the correlation).

    **k-means or Gaussian mixture**: ``method="gmm"`` fits a mixture with one shared
    ("tied") covariance, started from the k-means centres: a linear boundary like
    k-means but in the metric of the within-region scatter, which helps where the
    regions differ along a low-variance direction of the descriptor (stacking-fault
    bands: ARI 0.93–0.94 → 0.96–0.97) and hurts where the within-region scatter is
    itself structured (10° bicrystals with the default patch: 0.96–0.97 → 0.88, the
    boundary 5–10 px off). k-means is the default; see docs/imaging.md for the table.

    Parameters
    ----------
    n_regions : int, optional
        Number of regions; None chooses it (see above).
    patch, window, n_shifts : int
        Passed to :func:`local_correlation_map` (pixels; the lattice spacing should be
        well below ``window`` and ``patch``).
    stride : int, default 4
        Grid step of the descriptor, in pixels.
    n_components : int, default 8
        PCA components kept.
    smoothing : float, default 4.0
        Standard deviation, in pixels, of the Gaussian smoothing of the features;
        0 disables it; at most the image's larger side.
    method : {"kmeans", "gmm"}, default "kmeans"
        Clustering (see above); ``"gmm"`` gives posterior probabilities as scores.
    max_regions : int, default 6
        Largest number of regions tried when ``n_regions`` is None; clamped to what the
        image can hold: one region per non-overlapping ``(2 patch + 1)²`` patch and per
        descriptor grid point (at least 2 are tried).
    min_silhouette : float, default 0.3
        In [-1, 1].
    min_separation : float, default 3.5
        See *Choosing the number of regions*.
    random_state : int, default 0
        Seed of PCA, clustering and the silhouette subsample: results are reproducible.
    symmetry : bool, default False
        Append the rotation and mirror descriptors of :func:`symmetry_map` (2-, 3-, 4-,
        6-fold rotations, 8 mirror lines; disc radius ``patch``) to the correlation maps
        before the PCA. About 10x the cost of the correlation maps alone.
    centred : bool, default True
        Average the maps of ``s`` and ``-s`` (twice the correlation-map cost): the
        descriptor is centred on its pixel, which places boundaries symmetrically
        (stacking-fault band: mean boundary error 2.5 → 1.7 px, ARI 0.91 → 0.94).
    contrast_sigma : float, default 4.0
        Before the correlation maps, subtract a Gaussian-smoothed image (σ =
        ``contrast_sigma`` pixels) and divide by the local standard deviation over the
        same σ, so phases of different brightness or contrast weigh equally in a patch
        that straddles their boundary (two-phase image: boundary offset 5 → 3 px);
        0 disables it; at most the image's larger side. Choose σ of about a lattice
        spacing or less.

    Attributes
    ----------
    n_regions_ : int
    pca_ : sklearn.decomposition.PCA
    model_ : sklearn.cluster.KMeans or sklearn.mixture.GaussianMixture
    scores_ : dict of int -> float
        Silhouette for each k tried (empty when ``n_regions`` is given).
    separation_ : float
        Separation of the two k-means halves (only when ``n_regions`` is None).

    Example
    -------
    >>> import matchar as mc
    >>> from matchar import datasets
    >>> frame, truth = datasets.bicrystal(20.0, shape=(160, 160), spacing=8, dose=100, seed=1)
    >>> seg = mc.imaging.Segmenter(2, patch=12, window=12, n_shifts=60).fit(frame)
    >>> other, _ = datasets.bicrystal(20.0, shape=(160, 160), spacing=8, dose=100, seed=2)
    >>> seg.predict(other).labels.shape
    (160, 160)
    """

    def __init__(
        self,
        n_regions: int | None = None,
        *,
        patch: int = 20,
        window: int = 20,
        n_shifts: int = 100,
        stride: int = 4,
        n_components: int = 8,
        smoothing: float = 4.0,
        method: str = "kmeans",
        max_regions: int = 6,
        min_silhouette: float = 0.3,
        min_separation: float = 3.5,
        random_state: int = 0,
        symmetry: bool = False,
        centred: bool = True,
        contrast_sigma: float = 4.0,
    ) -> None:
        self.n_regions = n_regions
        self.patch = patch
        self.window = window
        self.n_shifts = n_shifts
        self.stride = stride
        self.n_components = n_components
        self.smoothing = smoothing
        self.method = method
        self.max_regions = max_regions
        self.min_silhouette = min_silhouette
        self.min_separation = min_separation
        self.random_state = random_state
        self.symmetry = symmetry
        self.centred = centred
        self.contrast_sigma = contrast_sigma

    # -- helpers -----------------------------------------------------------------------
    def _check_params(self) -> None:
        check_int(self.patch, "patch", low=1)
        check_int(self.window, "window", low=1)
        check_int(self.n_shifts, "n_shifts", low=1)
        check_int(self.stride, "stride", low=1)
        check_int(self.n_components, "n_components", low=1)
        check_int(self.max_regions, "max_regions", low=2)
        check_int(self.n_regions, "n_regions", low=1, allow_none=True)
        check_int(self.random_state, "random_state", low=0, high=2**32 - 1, allow_none=True)
        check_float(self.min_silhouette, "min_silhouette", low=-1.0, high=1.0)
        check_float(self.min_separation, "min_separation", low=0.0)
        check_choice(self.method, "method", ("kmeans", "gmm"))
        check_float(self.smoothing, "smoothing (pixels)", low=0.0)
        check_float(self.contrast_sigma, "contrast_sigma (pixels)", low=0.0)

    def _check_image(self, img: np.ndarray) -> int:
        """Check the image's size against the parameters before any work; return the
        number of points of the descriptor grid."""
        H, W = img.shape
        m = int(self.patch) + int(self.window)
        if H <= 2 * m or W <= 2 * m:
            raise ValueError(
                f"image of shape ({H}, {W}) is too small for patch={self.patch}, "
                f"window={self.window}: both sides must exceed 2 * (patch + window) = {2 * m}"
            )
        for name in ("smoothing", "contrast_sigma"):
            sigma = float(getattr(self, name))
            if sigma > max(H, W):
                raise ValueError(
                    f"{name}={sigma!r} pixels exceeds the image's larger side ({max(H, W)} "
                    "pixels); a Gaussian that wide is flat over the image"
                )
        stride = int(self.stride)
        return -(-(H - 2 * m) // stride) * -(-(W - 2 * m) // stride)

    def _max_regions(self, shape: tuple[int, int], n_points: int) -> int:
        """``max_regions`` clamped to what the image can hold: at most one region per
        non-overlapping patch (``(2 patch + 1)²`` pixels) and per descriptor grid point,
        and at least 2."""
        side = 2 * int(self.patch) + 1
        patches = (shape[0] // side) * (shape[1] // side)
        return int(max(2, min(int(self.max_regions), patches, n_points)))

    def _descriptor(self, image: np.ndarray) -> np.ndarray:
        if self.contrast_sigma > 0:
            image = _local_contrast(image, float(self.contrast_sigma))
        maps = self._correlation_maps(image)
        if self.symmetry:
            # Cropping by window - 1 puts the symmetry grid on the correlation-map grid.
            d = int(self.window) - 1
            H, W = image.shape
            sym, _ = symmetry_map(image[d : H - d, d : W - d], self.patch, self.stride)
            maps = np.concatenate([maps, sym], axis=-1)
        return maps

    def _correlation_maps(self, image: np.ndarray) -> np.ndarray:
        """The (centred) correlation maps of a contrast-normalised image."""
        maps, _ = local_correlation_map(
            image, self.patch, self.window, stride=self.stride, shifts=self.shifts_
        )
        if self.centred:
            # C(p, s) compares p with p + s, C(p, -s) with p - s: their mean describes
            # the area centred on p (the descriptor of the half-plane alone leans
            # towards the shifts and places boundaries off-centre).
            # The -s maps in four pieces: the extra memory is a quarter of the maps.
            step = -(-len(self.shifts_) // 4)
            for k in range(0, len(self.shifts_), step):
                maps[..., k : k + step] += local_correlation_map(
                    image,
                    self.patch,
                    self.window,
                    stride=self.stride,
                    shifts=-self.shifts_[k : k + step],
                )[0]
            maps *= 0.5
        return maps

    def _features(self, maps: np.ndarray) -> np.ndarray:
        Hg, Wg, S = maps.shape
        Z = self.pca_.transform(maps.reshape(-1, S)).reshape(Hg, Wg, -1)
        if self.smoothing > 0:
            sig = self.smoothing / self.stride
            Z = ndimage.gaussian_filter(Z, sigma=(sig, sig, 0), mode="nearest")
        return Z.reshape(Hg * Wg, -1)

    def _kmeans(self, k: int, n_init: int = 10):
        from sklearn.cluster import KMeans

        return KMeans(n_clusters=k, n_init=n_init, random_state=self.random_state)

    def _fit_model(self, k: int, Z: np.ndarray):
        """The final model with k clusters on all points."""
        km = self._kmeans(k).fit(Z)
        if self.method == "kmeans":
            return km
        from sklearn.mixture import GaussianMixture

        # One covariance shared by all components ("tied"), started from the k-means
        # centres. Per-component ("full") covariances fit the shape of the smoothed
        # descriptor cloud of one region (elongated by the boundary strip and by the
        # lattice phase under the patch) and then claim parts of a neighbouring region:
        # measured ARI 0.35-0.70 on stacking faults, twins and low-dose bicrystals where
        # "tied" gives 0.94-1.0 (docs/imaging.md).
        return GaussianMixture(
            n_components=k,
            covariance_type="tied",
            means_init=km.cluster_centers_,
            random_state=self.random_state,
        ).fit(Z)

    def _choose(self, Z: np.ndarray):
        from sklearn.metrics import silhouette_score

        self.scores_: dict[int, float] = {}
        # _fit_grid clamps max_regions to what the image holds (see _max_regions).
        kmax = int(min(getattr(self, "_kmax", self.max_regions), len(Z)))
        if self.n_regions is not None:
            k = int(self.n_regions)
            if k > len(Z):
                raise ValueError(
                    f"n_regions={k} exceeds the {len(Z)} descriptor grid points of the image"
                )
            return self._fit_model(k, Z)
        rng = np.random.default_rng(self.random_state)
        # Candidates are fitted on a subsample (speed); the winner is refitted on all.
        fit_sub = rng.choice(len(Z), size=min(20000, len(Z)), replace=False)
        sub = rng.choice(len(Z), size=min(2000, len(Z)), replace=False)
        best = None
        self.separation_ = _two_means_separation(
            self._kmeans(2, n_init=3).fit(Z[fit_sub]), Z[fit_sub]
        )
        for k in range(2, kmax + 1):
            lab = self._kmeans(k, n_init=3).fit(Z[fit_sub]).predict(Z[sub])
            if len(np.unique(lab)) < 2:
                continue
            self.scores_[k] = float(silhouette_score(Z[sub], lab))
            if best is None or self.scores_[k] > self.scores_[best]:
                best = k
        if (
            best is None
            or self.scores_[best] < self.min_silhouette
            or self.separation_ < self.min_separation
        ):
            best = 1
        return self._fit_model(best, Z)

    def _scores(self, Z: np.ndarray) -> np.ndarray:
        """Per grid point and cluster (model order): larger is more likely."""
        if self.method == "kmeans":
            return -(self.model_.transform(Z) ** 2)
        return self.model_.predict_proba(Z)

    def _reorder(self, raw: np.ndarray) -> np.ndarray:
        """Cluster columns -> label columns."""
        out = np.empty_like(raw)
        out[:, self.label_map_] = raw
        return out

    def _origin(self) -> tuple[float, float]:
        # The descriptor at p compares p with p + s: it describes the area around
        # p + mean(s) / 2 (the shifts fill a half-plane), so grid points sit there;
        # the centred descriptor (+s and -s) describes the area around p.
        m = float(self.patch + self.window)
        if self.centred:
            return m, m
        half = self.shifts_.mean(axis=0) / 2
        return m + float(half[0]), m + float(half[1])

    # -- public ------------------------------------------------------------------------
    @serialized
    def fit(self, image: ArrayLike) -> Segmenter:
        """Learn the PCA and the clusters from one frame.

        Parameters
        ----------
        image : array_like, shape (H, W)
            Intensity image (float or integer, e.g. uint16 HAADF).

        Returns
        -------
        self : Segmenter
        """
        self._fit_grid(image)
        return self

    def _fit_grid(self, image: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        from sklearn.decomposition import PCA

        self._check_params()
        img = as_image(image)
        n_points = self._check_image(img)
        if self.n_regions is not None and int(self.n_regions) > n_points:
            raise ValueError(
                f"n_regions={self.n_regions} exceeds the {n_points} descriptor grid points of "
                f"the image of shape {img.shape}"
            )
        self._kmax = self._max_regions(img.shape, n_points)
        self.shifts_ = default_shifts(self.window, self.n_shifts)
        maps = self._descriptor(img)
        X = maps.reshape(-1, maps.shape[-1])
        n_comp = min(int(self.n_components), X.shape[1], X.shape[0])
        with _single_threaded_sklearn():
            self.pca_ = PCA(n_components=n_comp, random_state=self.random_state).fit(X)
            Z = self._features(maps)
            self.model_ = self._choose(Z)
            raw = self.model_.predict(Z)
            scores = self._scores(Z)
        k = self.model_.n_clusters if self.method == "kmeans" else self.model_.n_components
        # Deterministic label order: by size in the fitting frame, ties by first pixel.
        sizes = np.bincount(raw, minlength=k)
        first = np.array([np.argmax(raw == c) if sizes[c] else len(raw) for c in range(k)])
        order = sorted(range(k), key=lambda c: (-sizes[c], first[c]))
        self.label_map_ = np.empty(k, dtype=np.int64)
        self.label_map_[order] = np.arange(k)
        self.n_regions_ = k
        grid = self.label_map_[raw].reshape(maps.shape[:2])
        scores = self._reorder(scores)
        return img, grid, scores.reshape(*maps.shape[:2], -1)

    @serialized
    def predict(self, image: ArrayLike, pixel_size: float | None = None) -> Segmentation:
        """Segment a frame with the fitted model.

        Parameters
        ----------
        image : array_like, shape (H, W)
            A frame of the same kind as the one fitted (same magnification).
        pixel_size : float, optional
            Pixel size in Å; lattice vectors are then reported in Å.

        Returns
        -------
        Segmentation
        """
        check_fitted(self, "model_")
        _check_pixel_size(pixel_size)
        img = as_image(image)
        self._check_image(img)
        maps = self._descriptor(img)
        with _single_threaded_sklearn():
            Z = self._features(maps)
            grid = self.label_map_[self.model_.predict(Z)].reshape(maps.shape[:2])
            scores = self._reorder(self._scores(Z))
        return self._result(img, grid, scores.reshape(*maps.shape[:2], -1), pixel_size)

    def fit_predict(self, image: ArrayLike, pixel_size: float | None = None) -> Segmentation:
        """:meth:`fit` then :meth:`predict` on the same frame (descriptors computed once)."""
        _check_pixel_size(pixel_size)
        img, grid, scores = self._fit_grid(image)
        return self._result(img, grid, scores, pixel_size)

    def _result(
        self, img: np.ndarray, grid: np.ndarray, scores: np.ndarray, pixel_size: float | None
    ) -> Segmentation:
        labels = _upsample_scores(scores, img.shape, self._origin(), int(self.stride))
        scale = 1.0 if pixel_size is None else float(pixel_size)
        vectors = []
        for region in range(self.n_regions_):
            v = _region_lattice_vectors(img, labels == region, max_length=2 * self.window)
            vectors.append(v * scale)
        misorientation = {}
        pairs = set()
        for a, b in ((labels[:, :-1], labels[:, 1:]), (labels[:-1, :], labels[1:, :])):
            diff = a != b
            for i, j in zip(a[diff].tolist(), b[diff].tolist()):
                pairs.add((min(i, j), max(i, j)))
        for i, j in sorted(pairs):
            misorientation[(i, j)] = _misorientation_deg(vectors[i], vectors[j])
        return Segmentation(
            labels=labels,
            n_regions=self.n_regions_,
            boundaries=_boundaries(labels),
            lattice_vectors=vectors,
            misorientation=misorientation,
            grid_labels=grid,
            units="px" if pixel_size is None else "Å",
            pixel_size=None if pixel_size is None else float(pixel_size),
        )


def segment(
    image: ArrayLike,
    n_regions: int | None = None,
    pixel_size: float | None = None,
    **kwargs: Any,
) -> Segmentation:
    """Segment an atomic-resolution STEM image into crystalline regions, unsupervised.

    Local correlation maps (translational periodicity) → PCA → k-means or Gaussian
    mixture; see :class:`Segmenter` for the pipeline, the keyword arguments and how the
    number of regions is chosen when ``n_regions`` is None.

    Parameters
    ----------
    image : array_like, shape (H, W)
        HAADF intensity (float, or integers such as uint16). Both sides must exceed
        ``2 (patch + window)``.
    n_regions : int, optional
        Number of regions; None chooses it automatically.
    pixel_size : float, optional
        Pixel size in Å; the lattice vectors are then in Å.
    **kwargs
        Passed to :class:`Segmenter` (``patch``, ``window``, ``n_shifts``, ``stride``,
        ``n_components``, ``smoothing``, ``method``, ``max_regions``,
        ``min_silhouette``, ``min_separation``, ``random_state``, ``symmetry``, ``centred``,
        ``contrast_sigma``).

    Returns
    -------
    Segmentation
        ``.labels`` (H, W) int64, ``.n_regions``, ``.boundaries``,
        ``.lattice_vectors``, ``.misorientation``.

    Example
    -------
    >>> import matchar as mc
    >>> from matchar import datasets
    >>> image, truth = datasets.bicrystal(25.0, shape=(160, 160), spacing=8, dose=100, seed=0)
    >>> seg = mc.imaging.segment(image, n_regions=2, patch=12, window=12, n_shifts=60)
    >>> seg.labels.shape, seg.n_regions
    ((160, 160), 2)
    """
    return Segmenter(n_regions, **kwargs).fit_predict(image, pixel_size)
