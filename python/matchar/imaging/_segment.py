"""Unsupervised segmentation of atomic-resolution images into crystalline regions.

Left whole at about 630 lines on purpose: nearly all of it is one estimator,
:class:`Segmenter`, whose steps (contrast normalisation, correlation maps, clustering,
scores, labels) are public methods that one pipeline calls in turn and that share the
fitted state; moving some of them to a mixin in another module would hide them from the
API reference (autodoc documents a class's own members) without making any of them
simpler. What is not the estimator already lives beside it: the result and its
boundaries and contrast helpers in ``_segmentation``, the descriptors in
``_correlation``, ``_symmetry`` and ``_lattice``."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import ndimage

from .._threads import serialized, single_threaded_sklearn
from .._validation import check_choice, check_fitted, check_float, check_int
from ._correlation import (
    as_image,
    default_shifts,
    local_correlation_map,
)
from ._lattice import lattice_vectors as _region_lattice_vectors
from ._lattice import misorientation_deg as _misorientation_deg
from ._segmentation import (
    Segmentation,
    _boundaries,
    _check_pixel_size,
    _local_contrast,
    _upsample_scores,
)
from ._symmetry import symmetry_map

__all__ = ["Segmentation", "Segmenter", "segment"]


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
    shifts_ : numpy.ndarray, shape (S, 2), int32
        Shifts of the correlation maps (pixels): ``default_shifts(window, n_shifts)``.
    label_map_ : numpy.ndarray, shape (``n_regions_``,), int64
        Region label of each cluster of ``model_`` (labels ordered by region size).

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
    def _smallest_side(self) -> int:
        """Both sides of an image must exceed this many pixels: 2 * (patch + window)."""
        return 2 * (int(self.patch) + int(self.window))

    def _check_image(self, img: np.ndarray) -> int:
        """Check the image's size against the parameters before any work; return the
        number of points of the descriptor grid."""
        H, W = img.shape
        need = self._smallest_side()
        if H <= need or W <= need:
            raise ValueError(
                f"image of shape ({H}, {W}) is too small for patch={self.patch}, "
                f"window={self.window}: both sides must exceed 2 * (patch + window) = {need}"
            )
        for name in ("smoothing", "contrast_sigma"):
            sigma = float(getattr(self, name))
            if sigma > max(H, W):
                raise ValueError(
                    f"{name}={sigma!r} pixels exceeds the image's larger side ({max(H, W)} "
                    "pixels); a Gaussian that wide is flat over the image"
                )
        stride = int(self.stride)
        return -(-(H - need) // stride) * -(-(W - need) // stride)

    def _max_regions(self, shape: tuple[int, int], n_points: int) -> int:
        """``max_regions`` clamped to what the image can hold: at most one region per
        non-overlapping patch (``(2 patch + 1)²`` pixels) and per descriptor grid point,
        and at least 2."""
        side = 2 * int(self.patch) + 1
        patches = (shape[0] // side) * (shape[1] // side)
        return int(max(2, min(int(self.max_regions), patches, n_points)))

    def _descriptor(self, image: np.ndarray) -> np.ndarray:
        image = self.contrast_normalised(image)
        maps = self.correlation_maps(image)
        if self.symmetry:
            # Cropping by window - 1 puts the symmetry grid on the correlation-map grid.
            d = int(self.window) - 1
            H, W = image.shape
            sym, _ = symmetry_map(image[d : H - d, d : W - d], self.patch, self.stride)
            maps = np.concatenate([maps, sym], axis=-1)
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

    # -- pipeline steps ----------------------------------------------------------------
    # fit / predict run these on a whole image; matchar.distributed.segment runs them on
    # blocks of a large one.
    def check_params(self) -> None:
        """Check the constructor parameters (types and ranges) before any work.

        Raises
        ------
        ValueError
            A parameter of the wrong type or out of range, named in the message.
        """
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

    def contrast_normalised(self, image: np.ndarray) -> np.ndarray:
        """The image with unit local contrast, as the descriptor sees it.

        ``(image - G(image)) / sqrt(G((image - G(image))²))`` with ``G`` a Gaussian of
        ``contrast_sigma`` pixels (reflected at the border); the image itself when
        ``contrast_sigma`` is 0.

        Parameters
        ----------
        image : numpy.ndarray, shape (H, W)
            Intensity image (float or integer counts); not modified.

        Returns
        -------
        numpy.ndarray, shape (H, W)
            float32 (dimensionless) when normalised, else ``image``.

        Raises
        ------
        ValueError
            NaN/inf pixels or a constant image.
        """
        if self.contrast_sigma > 0:
            return _local_contrast(image, float(self.contrast_sigma))
        return image

    def correlation_maps(self, image: np.ndarray) -> np.ndarray:
        """The local correlation maps of an image on the descriptor grid.

        :func:`local_correlation_map` with ``patch``, ``window``, ``stride`` and the
        shifts ``shifts_``; with ``centred``, the mean of the maps of ``s`` and ``-s``.
        The symmetry descriptors (``symmetry=True``) are not included.

        Parameters
        ----------
        image : numpy.ndarray, shape (H, W)
            A contrast-normalised image (:meth:`contrast_normalised`); both sides must
            exceed ``2 (patch + window)``.

        Returns
        -------
        numpy.ndarray, shape (H', W', S), float32
            Pearson correlations in [-1, 1] per grid point and shift;
            ``H' = ceil((H - 2 (patch + window)) / stride)``, likewise ``W'``, ``S =
            len(shifts_)``. Grid point (0, 0) sits at pixel :meth:`grid_origin`.

        Notes
        -----
        Needs ``shifts_``: set by :meth:`fit`, or
        ``default_shifts(window, n_shifts)`` before a fit.
        """
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

    def fit_clusters(self, features: np.ndarray) -> Any:
        """Fit the clustering on PCA features; choose the number of regions if needed.

        With ``n_regions`` None the number is chosen as the class description says
        (silhouette and two-means separation, ``scores_`` and ``separation_`` set);
        otherwise ``n_regions`` clusters are fitted.

        Parameters
        ----------
        features : numpy.ndarray, shape (n_points, n_components)
            The smoothed PCA features of the grid points (or of a subsample of them).

        Returns
        -------
        sklearn.cluster.KMeans or sklearn.mixture.GaussianMixture
            The fitted model (``method``), to be stored as ``model_``.

        Raises
        ------
        ValueError
            ``n_regions`` larger than ``n_points``.
        """
        from sklearn.metrics import silhouette_score

        Z = features
        self.scores_: dict[int, float] = {}
        # fit clamps max_regions to what its image holds (see _max_regions).
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

    def cluster_scores(self, features: np.ndarray) -> np.ndarray:
        """The score of every point for every cluster of ``model_``: larger is more likely.

        Parameters
        ----------
        features : numpy.ndarray, shape (n_points, n_components)
            Smoothed PCA features.

        Returns
        -------
        numpy.ndarray, shape (n_points, n_clusters)
            Columns in the model's cluster order: minus the squared distance to each
            k-means centre (squared feature units), or the Gaussian mixture's posterior
            probabilities (``method="gmm"``).
        """
        if self.method == "kmeans":
            return -(self.model_.transform(features) ** 2)
        return self.model_.predict_proba(features)

    def label_scores(self, scores: np.ndarray) -> np.ndarray:
        """Cluster scores with their columns in region-label order (``label_map_``).

        Parameters
        ----------
        scores : numpy.ndarray, shape (n_points, n_clusters)
            :meth:`cluster_scores` output (model order).

        Returns
        -------
        numpy.ndarray, shape (n_points, n_regions)
            Column ``label_map_[c]`` holds cluster ``c``'s scores; a new array.
        """
        out = np.empty_like(scores)
        out[:, self.label_map_] = scores
        return out

    def grid_origin(self) -> tuple[float, float]:
        """The pixel position of descriptor grid point (0, 0).

        Grid point ``(i, j)`` sits at pixel ``(row + i stride, col + j stride)``: where
        its descriptor is centred (``patch + window`` from the image corner for the
        centred descriptor, half the mean shift further otherwise).

        Returns
        -------
        (float, float)
            Row and column, in pixels.
        """
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

        self.check_params()
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
        with single_threaded_sklearn():
            self.pca_ = PCA(n_components=n_comp, random_state=self.random_state).fit(X)
            Z = self._features(maps)
            self.model_ = self.fit_clusters(Z)
            raw = self.model_.predict(Z)
            scores = self.cluster_scores(Z)
        k = self.model_.n_clusters if self.method == "kmeans" else self.model_.n_components
        # Deterministic label order: by size in the fitting frame, ties by first pixel.
        sizes = np.bincount(raw, minlength=k)
        first = np.array([np.argmax(raw == c) if sizes[c] else len(raw) for c in range(k)])
        order = sorted(range(k), key=lambda c: (-sizes[c], first[c]))
        self.label_map_ = np.empty(k, dtype=np.int64)
        self.label_map_[order] = np.arange(k)
        self.n_regions_ = k
        grid = self.label_map_[raw].reshape(maps.shape[:2])
        scores = self.label_scores(scores)
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
        with single_threaded_sklearn():
            Z = self._features(maps)
            grid = self.label_map_[self.model_.predict(Z)].reshape(maps.shape[:2])
            scores = self.label_scores(self.cluster_scores(Z))
        return self._result(img, grid, scores.reshape(*maps.shape[:2], -1), pixel_size)

    def fit_predict(self, image: ArrayLike, pixel_size: float | None = None) -> Segmentation:
        """:meth:`fit` then :meth:`predict` on the same frame (descriptors computed once)."""
        _check_pixel_size(pixel_size)
        img, grid, scores = self._fit_grid(image)
        return self._result(img, grid, scores, pixel_size)

    def _result(
        self, img: np.ndarray, grid: np.ndarray, scores: np.ndarray, pixel_size: float | None
    ) -> Segmentation:
        labels = _upsample_scores(scores, img.shape, self.grid_origin(), int(self.stride))
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
