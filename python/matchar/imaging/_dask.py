"""Dask task graphs for images too large for one process: the local correlation map
(``dask.array.map_overlap``) and the segmentation (descriptor, PCA and clustering per
block, the model fitted on a subsample). Public through :mod:`matchar.distributed`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .._optional import require_dask
from .._threads import single_threaded_sklearn, task_threads
from .._validation import check_int
from . import _correlation
from ._correlation import default_shifts
from ._segment import Segmenter

__all__ = ["LazySegmentation", "local_correlation_map", "segment"]


def _dask():
    return require_dask("matchar.distributed")


def _image_chunks(chunks: Any) -> int | tuple[int, int] | None:
    """``chunks`` of a NumPy image: None, a positive integer, or two of them."""
    if chunks is None:
        return None
    if isinstance(chunks, (tuple, list)):
        if len(chunks) != 2:
            raise ValueError(f"chunks must be an integer or a (rows, columns) pair, got {chunks!r}")
        return tuple(check_int(c, "chunks", low=1) for c in chunks)  # type: ignore[return-value]
    return check_int(chunks, "chunks", low=1)


@task_threads
def _lcm_block(block: np.ndarray, patch: int, window: int, shifts: np.ndarray) -> np.ndarray:
    return _correlation.local_correlation_map(block, patch, window, shifts=shifts)[0]


def local_correlation_map(
    image: Any,
    patch: int = 20,
    window: int = 20,
    n_shifts: int = 100,
    *,
    shifts: Any = None,
    chunks: Any = None,
) -> tuple[Any, np.ndarray]:
    """:func:`matchar.imaging.local_correlation_map` of a large image, chunk by chunk.

    Each chunk is extended by a halo of ``patch + window`` pixels
    (``dask.array.map_overlap``, no padding at the image border) and its own pixels'
    correlation maps are computed in C++; the output covers the same pixels as the
    in-memory function and agrees with it to float32 rounding (each chunk is
    mean-centred on its own, which the Pearson correlation does not see).

    Parameters
    ----------
    image : numpy.ndarray or dask.array.Array, shape (H, W)
        Intensity image (float or integer counts).
    patch, window, n_shifts : int
        As :func:`matchar.imaging.local_correlation_map` (stride 1 only).
    shifts : array_like of int, shape (S, 2), optional
        Explicit shifts; default :func:`matchar.imaging.default_shifts`.
    chunks : int or (int, int), optional
        Chunk shape for a NumPy ``image`` (positive integers; default 1024 x 1024); a dask
        image keeps its chunks, merged where one is smaller than the halo.

    Returns
    -------
    maps : dask.array.Array, shape (H - 2m, W - 2m, S), float32, m = patch + window
    shifts : numpy.ndarray, shape (S, 2), int32

    Example
    -------
    >>> import numpy as np, matchar.distributed as mcd
    >>> img = np.random.default_rng(0).random((200, 180))
    >>> maps, s = mcd.local_correlation_map(img, patch=5, window=5, n_shifts=12, chunks=64)
    >>> maps.shape, s.shape
    ((180, 160, 12), (12, 2))
    """
    _, da = _dask()
    patch = check_int(patch, "patch", low=1)
    window = check_int(window, "window", low=1)
    n_shifts = check_int(n_shifts, "n_shifts", low=1)
    chunks = _image_chunks(chunks)
    S = (
        default_shifts(int(window), int(n_shifts))
        if shifts is None
        else np.ascontiguousarray(shifts, dtype=np.int32)
    )
    if S.ndim != 2 or S.shape[1] != 2 or S.shape[0] == 0:
        raise ValueError(f"shifts must have shape (S, 2), got {S.shape}")
    if np.abs(S).max() > window:
        raise ValueError(f"every shift must lie within +-window = {window}")
    img = (
        image if hasattr(image, "dask") else da.from_array(np.asarray(image), chunks=chunks or 1024)
    )
    if img.ndim != 2:
        raise ValueError(f"image must be 2-D (H, W), got shape {img.shape}")
    m = int(patch) + int(window)
    if min(img.shape) <= 2 * m:
        raise ValueError(
            f"both image sides must exceed 2 (patch + window) = {2 * m}, got {img.shape}"
        )
    # Every chunk must hold at least the halo (dask's rule) and, at the borders, more than
    # it (the border chunks lose m pixels of output).
    new_chunks = []
    for axis_chunks, size in zip(img.chunks, img.shape):
        c = max(max(axis_chunks), 2 * m + 1)
        new_chunks.append(c if c < size else size)
    if any(min(ch) <= m for ch in img.chunks) or any(max(ch) < 2 * m + 1 for ch in img.chunks):
        img = img.rechunk(tuple(new_chunks))
        # a short last chunk is merged into its neighbour
        fixed = []
        for ch in img.chunks:
            ch = list(ch)
            if len(ch) > 1 and ch[-1] <= m:
                ch[-2] += ch.pop()
            fixed.append(tuple(ch))
        img = img.rechunk(tuple(fixed))
    out_chunks = []
    for ch in img.chunks:
        sizes = list(ch)
        sizes[0] -= m
        sizes[-1] -= m
        out_chunks.append(tuple(sizes))
    maps = da.map_overlap(
        _lcm_block,
        img,
        depth=m,
        boundary="none",
        trim=False,
        new_axis=2,
        chunks=(*out_chunks, (S.shape[0],)),
        dtype=np.float32,
        meta=np.empty((0, 0, 0), np.float32),
        patch=int(patch),
        window=int(window),
        shifts=S,
    )
    return maps, S


# -- segmentation of a large image ------------------------------------------------------------
@dataclass
class LazySegmentation:
    """The result of :func:`segment`: labels as dask arrays, the model fitted.

    Attributes
    ----------
    labels : dask.array.Array, shape (H, W), int64
        Region of every pixel, ``0 .. n_regions - 1``, ordered as
        :class:`matchar.imaging.Segmentation` orders them (by region size on the
        descriptor grid, 0 = largest; ties by the first grid point in raster order).
    grid_labels : dask.array.Array, shape (H', W'), int64
        Labels on the descriptor grid (step ``stride``).
    n_regions : int
    segmenter : matchar.imaging.Segmenter
        The fitted PCA and clustering (``pca_``, ``model_``, ``label_map_``, ...);
        ``segmenter.predict`` segments further in-memory frames with the same model.
    """

    labels: Any
    grid_labels: Any
    n_regions: int
    segmenter: Any


def _axis_chunks(n_grid: int, target: int, min_size: int) -> list[tuple[int, int]]:
    """Split range(n_grid) into consecutive [a, b) of about `target`, each >= min_size
    (a short last piece joins its neighbour)."""
    size = max(int(target), int(min_size), 1)
    bounds = [(a, min(n_grid, a + size)) for a in range(0, n_grid, size)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < min_size:
        a, _ = bounds[-2]
        bounds[-2:] = [(a, n_grid)]
    return bounds


@task_threads
def _lcm_grid_block(block, crop, seg, n_rows, n_cols):
    """The segmenter's descriptor of one slab: ``block`` is the slab extended by the
    contrast-normalisation halo (clipped at the image edges, where the in-memory filter
    reflects too); ``crop`` = (top, left, height, width) of the slab inside it."""
    block = seg.contrast_normalised(np.asarray(block))
    t, l, h, w = crop
    maps = seg.correlation_maps(block[t : t + h, l : l + w])
    if maps.shape[:2] != (n_rows, n_cols):  # a broken slab would shift the grid
        raise RuntimeError(
            f"internal error: descriptor block {maps.shape[:2]} != ({n_rows}, {n_cols})"
        )
    return maps


@task_threads
def _feature_block(maps, pca):
    h, w, s = maps.shape
    return pca.transform(maps.reshape(-1, s)).reshape(h, w, -1)


def _smooth_block(z, sig):
    from scipy import ndimage

    return ndimage.gaussian_filter(z, sigma=(sig, sig, 0), mode="nearest")


@task_threads
def _score_block(z, seg):
    h, w, c = z.shape
    with single_threaded_sklearn():
        return seg.label_scores(seg.cluster_scores(z.reshape(-1, c))).reshape(h, w, -1)


def _grid_label_block(scores):
    return np.argmax(scores, axis=-1).astype(np.int64)


def _label_counts(grid, row0, col0, n_cols, k):
    """(counts per label, first raster index per label on the global grid)."""
    counts = np.bincount(grid.ravel(), minlength=k)
    first = np.full(k, np.iinfo(np.int64).max, dtype=np.int64)
    flat = grid.ravel()
    rows, cols = np.divmod(np.arange(flat.size), grid.shape[1])
    raster = (rows + row0) * n_cols + (cols + col0)
    np.minimum.at(first, flat, raster)
    return counts, first


def _upsample_block(scores, ys, xs, g0, h0, origin, stride, n_grid):
    """_upsample_scores for pixel rows ys / columns xs from a slab of the score grid that
    starts at grid point (g0, h0): the same arithmetic on global indices."""

    def axis(pix, o, n, start):
        g = np.clip((pix - o) / stride, 0, n - 1)
        lo = np.minimum(np.floor(g).astype(np.intp), n - 2 if n > 1 else 0)
        hi = np.minimum(lo + 1, n - 1)
        return g, lo - start, hi - start, lo

    gy, y0, y1, y0g = axis(ys, origin[0], n_grid[0], g0)
    gx, x0, x1, x0g = axis(xs, origin[1], n_grid[1], h0)
    wy = (gy - y0g)[:, None, None]
    wx = (gx - x0g)[None, :, None]
    top = scores[y0][:, x0] * (1 - wx) + scores[y0][:, x1] * wx
    bottom = scores[y1][:, x0] * (1 - wx) + scores[y1][:, x1] * wx
    return np.argmax(top * (1 - wy) + bottom * wy, axis=-1)


def segment(
    image: Any,
    n_regions: int | None = None,
    *,
    chunks: Any = None,
    fit_size: int = 200_000,
    **kwargs: Any,
) -> LazySegmentation:
    """:func:`matchar.imaging.segment` of an image too large for one process.

    1. Local correlation maps on the descriptor grid (step ``stride``), one task per
       block of the grid: each task reads its pixels plus a halo of ``patch + window``
       (no padding at the image border), so the grid is the in-memory one.
    2. PCA fitted on ``fit_size`` grid points (a seeded random subsample; all points
       when the grid has fewer) and applied per block; Gaussian smoothing of the
       features with ``dask.array.map_overlap`` (``mode="nearest"`` at the border, as
       in memory).
    3. Clustering (k-means or Gaussian mixture, the number of regions chosen as
       :class:`~matchar.imaging.Segmenter` does when ``n_regions`` is None) fitted on
       the same subsample of smoothed features; cluster scores per block; labels
       ordered by region size over the whole grid.
    4. Full-resolution labels per block by bilinear interpolation of the scores between
       grid points (a one-point halo of the score grid).

    On an image whose grid has at most ``fit_size`` points the model is fitted on the
    same points as in memory, and the labels equal those of
    :func:`matchar.imaging.segment` up to float32 rounding of the descriptor (each
    block is mean-centred on its own), which can flip a pixel only where two clusters
    score equally. Lattice vectors and misorientations (which need whole regions) are
    not computed: run :func:`matchar.imaging.lattice_vectors` on crops.

    Parameters
    ----------
    image : numpy.ndarray or dask.array.Array, shape (H, W)
        HAADF intensity (float or integer counts); both sides must exceed
        ``2 (patch + window)``.
    n_regions : int, optional
        Number of regions; None chooses it on the subsample.
    chunks : int, optional
        Pixels per block side (default: the dask image's largest chunk, or 1024 for a
        NumPy image); rounded to whole grid steps.
    fit_size : int, default 200000
        Grid points the PCA and the clustering are fitted on.
    **kwargs
        :class:`~matchar.imaging.Segmenter` parameters (``patch``, ``window``,
        ``n_shifts``, ``stride``, ``n_components``, ``smoothing``, ``method``,
        ``max_regions``, ``min_silhouette``, ``random_state``). ``symmetry=True`` is not
        supported here.

    Returns
    -------
    LazySegmentation
        ``labels`` (H, W) and ``grid_labels`` (H', W') as int64 dask arrays,
        ``n_regions``, the fitted ``segmenter``.

    Raises
    ------
    ValueError
        Bad parameters, an image that is not 2-D or too small, NaN/inf pixels.
    NotImplementedError
        ``symmetry=True``.

    Example
    -------
    >>> import matchar.distributed as mcd
    >>> from matchar import datasets
    >>> img, _ = datasets.bicrystal(25.0, shape=(160, 160), spacing=8, dose=100, seed=0)
    >>> res = mcd.segment(img, 2, patch=12, window=12, n_shifts=60, chunks=64)
    >>> res.labels.shape, res.n_regions
    ((160, 160), 2)
    """
    dask, da = _dask()
    seg = Segmenter(n_regions, **kwargs)
    seg.check_params()
    if seg.symmetry:
        raise NotImplementedError(
            "symmetry=True is not supported by matchar.distributed.segment; use "
            "matchar.imaging.segment on an image that fits in memory"
        )
    fit_size = check_int(fit_size, "fit_size", low=2, high=None)
    chunks = check_int(chunks, "chunks (pixels)", low=1, allow_none=True)
    img = image if hasattr(image, "dask") else np.asarray(image)
    if img.ndim != 2:
        raise ValueError(f"image must be 2-D (H, W), got shape {img.shape}")
    if np.dtype(img.dtype).kind not in "biuf":
        raise ValueError(f"image must hold real numbers, got dtype {img.dtype}")
    patch, window, stride = int(seg.patch), int(seg.window), int(seg.stride)
    m = patch + window
    H, W = (int(v) for v in img.shape)
    if min(H, W) <= 2 * m:
        raise ValueError(f"both image sides must exceed 2 (patch + window) = {2 * m}, got {(H, W)}")
    if not hasattr(img, "dask"):
        img = da.from_array(img, chunks=chunks or 1024)
    target = int(chunks) if chunks is not None else max(max(c) for c in img.chunks)
    seg.shifts_ = default_shifts(window, seg.n_shifts)
    shifts = seg.shifts_
    Hg, Wg = -(-(H - 2 * m) // stride), -(-(W - 2 * m) // stride)
    sig = float(seg.smoothing) / stride
    radius = int(4.0 * sig + 0.5) if sig > 0 else 0
    min_grid = max(2, radius + 1)
    rows = _axis_chunks(Hg, -(-target // stride), min_grid)
    cols = _axis_chunks(Wg, -(-target // stride), min_grid)
    grid_chunks = (tuple(b - a for a, b in rows), tuple(b - a for a, b in cols))

    # 1. descriptor grid, block by block (pixel slab = grid block + halo m)
    task = dask.delayed(_lcm_grid_block, pure=True)
    # contrast normalisation: two Gaussian filters in a row need twice their radius
    halo = 2 * int(4.0 * float(seg.contrast_sigma) + 0.5) + 1 if seg.contrast_sigma > 0 else 0

    def slab(ga, gb, ha, hb):
        y0, y1 = ga * stride, (gb - 1) * stride + 2 * m + 1
        x0, x1 = ha * stride, (hb - 1) * stride + 2 * m + 1
        ey0, ey1, ex0, ex1 = (
            max(0, y0 - halo),
            min(H, y1 + halo),
            max(0, x0 - halo),
            min(W, x1 + halo),
        )
        return img[ey0:ey1, ex0:ex1], (y0 - ey0, x0 - ex0, y1 - y0, x1 - x0)

    blocks = [
        [
            da.from_delayed(
                task(*slab(ga, gb, ha, hb), seg, gb - ga, hb - ha),
                shape=(gb - ga, hb - ha, shifts.shape[0]),
                dtype=np.float32,
            )
            for ha, hb in cols
        ]
        for ga, gb in rows
    ]
    maps = da.concatenate([da.concatenate(r, axis=1) for r in blocks], axis=0)
    n_grid = Hg * Wg
    rng = np.random.default_rng(seg.random_state)
    if n_grid <= fit_size:
        sub = None
    else:
        idx = np.sort(rng.choice(n_grid, size=int(fit_size), replace=False))
        sub = np.divmod(idx, Wg)

    def sample(arr):
        if sub is None:
            out = arr.compute()
        else:
            out = arr.vindex[sub[0], sub[1]].compute()
        return out.reshape(-1, out.shape[-1])

    # 2. PCA on the subsample, features and smoothing per block
    from sklearn.decomposition import PCA

    if sub is None:  # maps are computed once and reused as in memory
        maps = da.from_array(maps.compute(), chunks=(*grid_chunks, shifts.shape[0]))
    X = sample(maps)
    n_comp = min(int(seg.n_components), X.shape[1], X.shape[0])
    with single_threaded_sklearn():
        seg.pca_ = PCA(n_components=n_comp, random_state=seg.random_state).fit(X)
    probe = seg.pca_.transform(np.zeros((1, X.shape[1]), dtype=X.dtype))
    feats = maps.map_blocks(
        _feature_block,
        seg.pca_,
        chunks=(*grid_chunks, (n_comp,)),
        dtype=probe.dtype,
        meta=np.empty((0, 0, 0), probe.dtype),
    )
    if sig > 0:
        feats = feats.map_overlap(
            _smooth_block,
            depth={0: radius, 1: radius, 2: 0},
            boundary="nearest",
            sig=sig,
            dtype=probe.dtype,
            meta=np.empty((0, 0, 0), probe.dtype),
        )
    # 3. clustering on the same subsample
    if sub is None:
        feats = da.from_array(feats.compute(), chunks=(*grid_chunks, (n_comp,)))
    Z = sample(feats)
    with single_threaded_sklearn():
        seg.model_ = seg.fit_clusters(Z)
    k = seg.model_.n_clusters if seg.method == "kmeans" else seg.model_.n_components
    seg.label_map_ = np.arange(k, dtype=np.int64)  # model order while counting
    seg.n_regions_ = k
    probe_s = _score_block(np.zeros((1, 1, n_comp), probe.dtype), seg)
    raw_scores = feats.map_blocks(
        _score_block,
        seg,
        chunks=(*grid_chunks, (k,)),
        dtype=probe_s.dtype,
        meta=np.empty((0, 0, 0), probe_s.dtype),
    )
    raw_scores = raw_scores.persist()
    raw = raw_scores.map_blocks(
        _grid_label_block, drop_axis=2, dtype=np.int64, meta=np.empty((0, 0), np.int64)
    )
    count = dask.delayed(_label_counts, pure=True)
    parts = dask.compute(
        *[
            count(raw.blocks[i, j], ga, ha, Wg, k)
            for i, (ga, _) in enumerate(rows)
            for j, (ha, _) in enumerate(cols)
        ]
    )
    sizes = np.sum([p[0] for p in parts], axis=0)
    first = np.min([p[1] for p in parts], axis=0)
    # Deterministic label order, as Segmenter: by size on the grid, ties by first point.
    order = sorted(range(k), key=lambda c: (-sizes[c], first[c]))
    seg.label_map_ = np.empty(k, dtype=np.int64)
    seg.label_map_[order] = np.arange(k)
    label_map = seg.label_map_
    grid_labels = raw.map_blocks(lambda b: label_map[b], dtype=np.int64)
    scores = raw_scores.map_blocks(
        lambda b: seg.label_scores(b.reshape(-1, k)).reshape(b.shape), dtype=probe_s.dtype
    )

    # 4. full-resolution labels: pixel rows / columns owned by each grid block
    origin = seg.grid_origin()

    def owners(n_pix, o, n, bounds):
        g = np.clip((np.arange(n_pix) - o) / stride, 0, n - 1)
        lo = np.minimum(np.floor(g).astype(np.intp), n - 2 if n > 1 else 0)
        return [np.flatnonzero((lo >= a) & (lo < b)) for a, b in bounds]

    own_y, own_x = owners(H, origin[0], Hg, rows), owners(W, origin[1], Wg, cols)
    up = dask.delayed(_upsample_block, pure=True)
    label_blocks = [
        [
            da.from_delayed(
                up(
                    scores[ga : min(gb + 1, Hg), ha : min(hb + 1, Wg)],
                    own_y[i],
                    own_x[j],
                    ga,
                    ha,
                    origin,
                    stride,
                    (Hg, Wg),
                ),
                shape=(len(own_y[i]), len(own_x[j])),
                dtype=np.int64,
            )
            for j, (ha, hb) in enumerate(cols)
        ]
        for i, (ga, gb) in enumerate(rows)
    ]
    labels = da.block(label_blocks)
    return LazySegmentation(labels=labels, grid_labels=grid_labels, n_regions=int(k), segmenter=seg)
