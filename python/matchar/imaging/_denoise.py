"""Segmentation-guided denoising of atomic-resolution images: a per-region Bragg filter
(local Fourier estimate on the region's reciprocal lattice) plus a Poisson-aware local
correction wherever the image departs from its lattice (defects, boundaries).

The estimation of a region's reciprocal lattice from its Fourier transform (noise floor,
reflections, basis refinement, superlattices) lives in ``_denoise_lattice``."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import fft as sfft
from scipy import ndimage

from .._validation import check_float
from ._correlation import as_image
from ._denoise_lattice import (
    _noise_floor,
    _refine_basis,
    _reflections,
    _superlattice,
    _Window,
)
from ._segment import Segmentation, segment

__all__ = ["DenoiseResult", "denoise"]


@dataclass
class DenoiseResult:
    """The result of :func:`denoise`.

    Attributes
    ----------
    denoised : numpy.ndarray, shape (H, W), float64
        The denoised image, in the units of the input (counts for a counting detector);
        never negative.
    residual : numpy.ndarray, shape (H, W), float64
        ``image - denoised``: noise where the filter did its job; structure that shows
        up here (atoms, edges) is signal the filter removed and should be inspected.
    lattice : numpy.ndarray, shape (H, W), float64
        The lattice-only estimate (per-region Bragg filter, blended across boundaries).
    correction : numpy.ndarray, shape (H, W), float64
        Weight in [0, 1] of the local correction added to ``lattice``: near 0 in perfect
        crystal, near 1 where the image departs significantly from its region's lattice
        (point defects, boundaries, regions without a lattice).
    segmentation : Segmentation
        The segmentation used (computed when none was given).
    reflections : list of numpy.ndarray, shape (n, 4) each
        Per region, the reflections kept: rows ``(h, k, g_y, g_x)`` with ``g`` in cycles
        per pixel (refined reciprocal lattice, harmonics included); empty for a region
        without a lattice.
    gain : float
        Detector gain used by the noise model (variance = gain × mean): 1 for counts;
        estimated from the noise floor of the image's spectrum unless given.
    noise_scale : float
        Residual energy over the modelled noise energy (median over the image), by which
        the local correction rescales its noise model: about 1 for Poisson counts that
        follow their lattice; larger for scan-correlated noise or a detector offset.
        NaN without the local correction.
    pixel_size : float or None
        Pixel size in Å, when known (used by :meth:`plot` for the scale bar).
    """

    denoised: np.ndarray
    residual: np.ndarray
    lattice: np.ndarray
    correction: np.ndarray
    segmentation: Segmentation
    reflections: list[np.ndarray]
    gain: float
    noise_scale: float = math.nan
    pixel_size: float | None = None

    def plot(
        self,
        image: ArrayLike,
        fig: Any = None,
        crop: tuple[slice, slice] | None = None,
        *,
        pixel_size: float | None = None,
    ):
        """Noisy image, denoised image and residual side by side, with a scale bar (Å or
        nm when the pixel size is known, else pixel axes) and colorbars (counts).

        Parameters
        ----------
        image : array_like, shape (H, W)
            The image that was denoised.
        fig : matplotlib Figure, optional
            Figure to draw in (three axes are added); a new one by default.
        crop : (slice, slice), optional
            Region of the images to show, e.g. ``(slice(0, 256), slice(0, 256))``.
        pixel_size : float, optional
            Å per pixel, for the scale bar (default: the attribute ``pixel_size``).

        Returns
        -------
        matplotlib Figure
        """
        from .._plotting import add_colorbar, constrained, new_figure, set_title, style_map_axes

        if pixel_size is None:
            pixel_size = self.pixel_size
        img = np.asarray(image, dtype=np.float64)
        if img.shape != self.denoised.shape:
            raise ValueError(
                f"image must have the denoised image's shape {self.denoised.shape}, got {img.shape}"
            )
        crop = crop or (slice(None), slice(None))
        panels = [
            ("noisy", img[crop]),
            ("denoised", self.denoised[crop]),
            ("residual (noisy − denoised)", self.residual[crop]),
        ]
        if fig is None:
            fig = new_figure((13.5, 4.6))
        constrained(fig)
        axes = fig.subplots(1, 3)
        unit = "counts (e⁻)" if abs(self.gain - 1) < 0.1 else "detector units"
        lo, hi = np.percentile(self.denoised[crop], [0.5, 99.5])
        r = float(np.percentile(np.abs(self.residual[crop]), 99.5)) or 1.0
        for ax, (title, data) in zip(axes, panels):
            if title.startswith("residual"):
                im = ax.imshow(data, cmap="RdBu_r", vmin=-r, vmax=r, interpolation="nearest")
            else:
                im = ax.imshow(data, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
            set_title(ax, title)
            add_colorbar(fig, im, ax, unit)
            style_map_axes(ax, pixel_size, data.shape[1])
        return fig


def _check_counts(image: ArrayLike) -> np.ndarray:
    """A float64 copy of a 2-D, finite, non-negative, non-empty image."""
    arr = np.asarray(image)
    if arr.ndim != 2:
        raise ValueError(f"image must be a 2-D array (H, W), got ndim={arr.ndim}")
    if arr.size == 0:
        raise ValueError(f"image must not be empty, got shape {arr.shape}")
    img = as_image(arr).astype(np.float64, copy=True)
    if not np.isfinite(img).all():
        raise ValueError("image has NaN or infinite pixels; denoise needs finite counts")
    if img.min() < 0:
        raise ValueError(
            f"image has negative pixels (min {img.min():g}); denoise models Poisson counts "
            "(electrons per pixel): subtract no offset, or clip a dark-subtracted image at 0"
        )
    return img


def _lattice_px(seg: Segmentation, pixel_size: float | None) -> list[np.ndarray]:
    """Per region, the lattice vectors in pixels (NaN rows when no lattice, or when the
    two vectors are collinear or shorter than 1 pixel: not a lattice to filter with)."""
    if seg.units != "px" and pixel_size is None:
        raise ValueError(
            "the segmentation's lattice vectors are in Å: pass pixel_size (Å) to denoise"
        )
    scale = 1.0 if seg.units == "px" else float(pixel_size)
    out = []
    for v in seg.lattice_vectors:
        try:
            V = np.asarray(v, dtype=np.float64).reshape(2, 2) / scale
        except (TypeError, ValueError):
            raise ValueError(
                f"segmentation.lattice_vectors must be (2, 2) arrays, got {v!r}"
            ) from None
        ok = bool(np.isfinite(V).all())
        if ok:  # lengths by hypot and bounded before the determinant: nothing overflows
            lengths = np.hypot(V[:, 0], V[:, 1])
            ok = 1.0 <= lengths.min() and lengths.max() <= 1e6
            ok = ok and abs(np.linalg.det(V)) > 1e-3 * lengths.prod()
        out.append(V if ok else np.full((2, 2), np.nan))
    return out


def _gaussian_kernel_ft(shape: tuple[int, int], sigma_k: float) -> np.ndarray:
    ky = sfft.fftfreq(shape[0])[:, None]
    kx = sfft.fftfreq(shape[1])[None, :]
    return np.exp(-(ky**2 + kx**2) / (2 * sigma_k**2))


def denoise(
    image: ArrayLike,
    segmentation: Segmentation | None = None,
    pixel_size: float | None = None,
    *,
    cells: float = 3.0,
    correction: bool = True,
    strength: float = 1.5,
    boundary_width: float | None = None,
    gain: float | None = None,
    progress: bool = False,
    **segment_kwargs: Any,
) -> DenoiseResult:
    """Denoise an atomic-resolution STEM image region by region, using each region's
    lattice, while keeping defects and boundaries.

    1. Segment the image (:func:`segment`) unless a segmentation is given.
    2. Per crystalline region: a Bragg filter restricted to the region. The region's
       reciprocal lattice (from its lattice vectors, refined on the peaks of its Fourier
       transform) gives the reflections, harmonics included, each kept with a Wiener
       weight (signal power against the Poisson noise power through a Gaussian window);
       the filtered image is a *local* Fourier estimate: a normalised convolution over
       the region's own pixels with a Gaussian envelope of ``cells`` lattice spacings,
       i.e. an average over lattice translations (sub-pixel exact) that never mixes in
       another region. Averaging raw counts keeps the estimate unbiased at any dose.
       Each connected piece of a region is filtered on its own (the two sides of a
       lamella are translated against each other), from its pixels less a margin of
       half a spacing; its lattice vectors are refined by geometric phase analysis.
    3. Within a spacing of a boundary, each pixel goes to the piece whose lattice fits
       it best; the pieces' estimates are blended with Gaussian-smoothed indicators
       (no ringing).
    4. Local correction (Poisson-aware): the residual ``image − lattice`` is smoothed at
       the scale of an atomic column and added back with a weight that is near 0 where
       its local energy is what the noise (Poisson, variance = gain × lattice estimate,
       calibrated on the image: ``noise_scale``) would give and near 1 where it is
       significantly larger: point defects, boundaries, a region without a lattice stay
       visible.

    See ``docs/denoising.md`` for the measured quality and speed against BM3D.

    Parameters
    ----------
    image : array_like, shape (H, W)
        HAADF intensity, ideally in detector counts (electrons per pixel); integers such
        as uint16 welcome. Finite and non-negative; never modified.
    segmentation : Segmentation, optional
        From :func:`segment` on this image; computed (with ``segment_kwargs``) when None.
    pixel_size : float, optional
        Pixel size in Å: needed when the segmentation's lattice vectors are in Å; shown
        by :meth:`DenoiseResult.plot`.
    cells : float, default 3
        Standard deviation of the Gaussian envelope of the lattice averaging, in lattice
        spacings (mean length of the two lattice vectors), in [0.25, 100]: larger
        averages more unit cells (stronger denoising, less tolerant of lattice
        distortion). Capped at half the image's longer side.
    correction : bool, default True
        Apply the local correction (step 4); False returns the lattice-only estimate,
        which erases point defects.
    strength : float, default 1.5
        How much residual energy, in units of the expected noise energy, is attributed
        to noise by the local correction; larger keeps less of the residual.
    boundary_width : float, optional
        Width (Gaussian sigma, pixels) of the blend between regions; default a quarter
        of the shortest lattice spacing.
    gain : float, optional
        Detector gain: noise variance = gain × mean. 1 for counts; None estimates it
        from the flat noise floor of the image's spectrum.
    progress : bool, default False
        Show a progress bar (tqdm) over the pieces of the regions.
    **segment_kwargs
        Passed to :func:`segment` when ``segmentation`` is None.

    Returns
    -------
    DenoiseResult
        ``.denoised`` and ``.residual`` (H, W) float64, plus the lattice estimate, the
        correction weight, the segmentation and the reflections used per region.

    Raises
    ------
    ValueError
        A non-2-D, empty, NaN/inf or negative image; a segmentation of another shape; an
        image in which no region shows a lattice (e.g. amorphous or pure noise).

    Example
    -------
    >>> import numpy as np, matchar as mc
    >>> clean, _ = mc.datasets.bicrystal(15.0, shape=(192, 192), seed=0)
    >>> noisy, _ = mc.datasets.bicrystal(15.0, shape=(192, 192), dose=2.0, seed=0)
    >>> result = mc.imaging.denoise(noisy)
    >>> truth = clean * 2.0 / clean.mean()
    >>> bool(np.abs(result.denoised - truth).mean() < 0.5 * np.abs(noisy - truth).mean())
    True
    """
    img = _check_counts(image)
    H, W = img.shape
    cells = check_float(cells, "cells (lattice spacings)", low=0.25, high=100.0)
    strength = check_float(strength, "strength", low=0.0, high=1e3)
    if pixel_size is not None:
        pixel_size = check_float(pixel_size, "pixel_size (Å)", low=0.0, high=1e6, low_open=True)
    if gain is not None:
        gain = check_float(gain, "gain", low=0.0, high=1e12, low_open=True)
    if boundary_width is not None:
        boundary_width = check_float(boundary_width, "boundary_width (pixels)", low=0.0, high=1e6)
    if img.max() == 0:
        raise ValueError("image is all zeros: no lattice to denoise")

    if segmentation is None:
        segmentation = segment(img, **segment_kwargs)
    elif segment_kwargs:
        raise ValueError(
            f"segment keyword arguments {sorted(segment_kwargs)} are only used when "
            "segmentation is None"
        )
    labels = np.asarray(segmentation.labels)
    if labels.shape != img.shape:
        raise ValueError(
            f"segmentation.labels must have the image's shape {img.shape}, got {labels.shape}"
        )
    if labels.dtype.kind not in "iu" or labels.min() < 0 or labels.max() >= segmentation.n_regions:
        raise ValueError(
            "segmentation.labels must be integers in [0, n_regions = "
            f"{segmentation.n_regions}), got {labels.dtype} in [{labels.min()}, {labels.max()}]"
        )
    if len(segmentation.lattice_vectors) != segmentation.n_regions:
        raise ValueError(
            f"segmentation.lattice_vectors must hold one (2, 2) basis per region "
            f"({segmentation.n_regions}), got {len(segmentation.lattice_vectors)}"
        )
    vectors = _lattice_px(segmentation, pixel_size)
    present = [r for r in range(segmentation.n_regions) if (labels == r).any()]
    # a lattice vector longer than half the image is not a lattice this image can show
    with_lattice = [
        r
        for r in present
        if np.isfinite(vectors[r]).all()
        and np.linalg.norm(vectors[r], axis=1).max() <= 0.5 * max(H, W)
    ]
    if not with_lattice:
        raise ValueError(
            "no lattice found: the segmentation found no lattice vectors in any region "
            "(amorphous, or pure noise); segmentation-guided denoising needs a crystalline "
            "region"
        )
    spacing = {r: float(np.linalg.norm(vectors[r], axis=1).mean()) for r in with_lattice}
    shortest = min(float(np.linalg.norm(vectors[r], axis=1).min()) for r in with_lattice)
    # an envelope wider than half the image averages nothing more: capped (and the FFTs
    # stay a few times the image)
    sigma_r = min(cells * max(spacing.values()), 0.5 * max(H, W))

    gain_given = gain is not None
    if gain is None:
        # the floor of the unpadded spectrum: zero padding would thin it
        gain = _noise_floor(sfft.rfft2(img, workers=-1), img.shape) / max(float(img.sum()), 1e-300)

    sigma_b = 0.25 * shortest if boundary_width is None else float(boundary_width)
    sigma_b = min(sigma_b, 0.5 * max(H, W))
    margin = 0.5 * shortest
    reflections: list[np.ndarray] = [np.zeros((0, 4)) for _ in range(segmentation.n_regions)]
    # each connected piece of a region on its own: the two sides of a lamella are the
    # same lattice, but usually translated against each other (a twin's stacking shift)
    pieces = []
    owner = np.zeros(img.shape, dtype=np.int64)  # index into pieces
    for r in present:
        parts, n = ndimage.label(labels == r)
        for i in range(1, n + 1):
            owner[parts == i] = len(pieces)
            pieces.append((r, parts == i))
    edge = np.zeros(img.shape, dtype=bool)
    edge[:, 1:] |= owner[:, 1:] != owner[:, :-1]
    edge[1:, :] |= owner[1:, :] != owner[:-1, :]
    to_boundary = (
        ndimage.distance_transform_edt(~edge) if edge.any() else np.full(img.shape, np.inf)
    )
    # each piece is filtered in its bounding box plus what the blending and the boundary
    # reassignment read around it (4 spacings); outside that its estimate is not used
    need = math.ceil(4 * max(spacing.values()))
    from tqdm.auto import tqdm

    estimates = []
    found: set[int] = set()
    for r, piece in tqdm(
        pieces, desc="denoise", unit="piece", **({} if progress else {"disable": True})
    ):
        # estimate from the piece less a margin: the segmentation's boundaries are only
        # good to a few pixels, and another lattice's pixels would leak into this one
        data = piece & (to_boundary > margin)
        if data.sum() < 0.25 * piece.sum():
            data = piece
        ys, xs = np.nonzero(piece)
        crop = (
            slice(max(ys.min() - need, 0), min(ys.max() + need + 1, H)),
            slice(max(xs.min() - need, 0), min(xs.max() + need + 1, W)),
        )
        basis = vectors[r] if r in with_lattice else None
        est_crop, rows = _piece_estimate(img[crop], data[crop], basis, gain, sigma_r)
        estimates.append((crop, est_crop))
        if len(rows):
            found.add(r)
            reflections[r] = rows if len(rows) > len(reflections[r]) else reflections[r]
    if not found:
        why = ""
        if gain_given:  # the user's gain (> 0) may leave no electrons to see a lattice in
            why = (
                f"; at the given gain, {gain:g} units per electron, the image holds "
                f"{float(img.mean()) / gain:.3g} electrons per pixel: check the gain"
            )
        raise ValueError(
            "no lattice found: no region of the image shows Bragg reflections above the "
            "noise (amorphous, or pure noise); segmentation-guided denoising needs a "
            "crystalline region" + why
        )
    if found != set(present):
        warnings.warn(
            f"regions {sorted(set(present) - found)} show no lattice (no reflections above "
            "the noise): they get the local (Poisson) smoothing only",
            RuntimeWarning,
            stacklevel=2,
        )
    owner = _assign_boundary_pixels(img, owner, to_boundary <= 2 * shortest, estimates, shortest)
    lattice = np.zeros_like(img)
    weight_sum = np.zeros_like(img)
    for i, (crop, est) in enumerate(estimates):
        w = (owner[crop] == i).astype(np.float64)
        if sigma_b > 0:
            w = ndimage.gaussian_filter(w, sigma_b, mode="nearest")
        lattice[crop] += w * est
        weight_sum[crop] += w
    lattice /= np.maximum(weight_sum, 1e-12)
    np.clip(lattice, 0.0, None, out=lattice)

    if correction:
        denoised, corr, noise_scale = _local_correction(img, lattice, gain, shortest, strength)
    else:
        denoised, corr, noise_scale = lattice.copy(), np.zeros_like(img), math.nan
    np.clip(denoised, 0.0, None, out=denoised)
    return DenoiseResult(
        denoised=denoised,
        residual=img - denoised,
        lattice=lattice,
        correction=corr,
        segmentation=segmentation,
        reflections=reflections,
        gain=float(gain),
        noise_scale=noise_scale,
        pixel_size=pixel_size,
    )


def _piece_estimate(
    img: np.ndarray, data: np.ndarray, vectors: np.ndarray | None, gain: float, sigma_r: float
) -> tuple[np.ndarray, np.ndarray]:
    """Lattice estimate (H, W) of one piece from its pixels ``data`` (bool), and the
    reflections kept (rows (h, k, g_y, g_x); none when ``vectors`` is None or no lattice
    stands out of the noise, and the estimate is then the local mean).

    Normalised convolution with the Gaussian envelope ``sigma_r`` (pixels): the local
    mean, plus the Wiener-weighted reflections of the image less its local mean."""
    H, W = img.shape
    pad = math.ceil(4.5 * sigma_r)  # wrap-around leakage below exp(-10)
    shape = (sfft.next_fast_len(H + pad, real=False), sfft.next_fast_len(W + pad, real=False))
    sigma_k = 1.0 / (2 * math.pi * sigma_r)
    G0 = _gaussian_kernel_ft(shape, sigma_k)[:, : shape[1] // 2 + 1]  # rfft half-plane
    m = data.astype(np.float64)
    # real transforms where no spectrum is measured (half the work)
    den = sfft.irfft2(sfft.rfft2(m, s=shape, workers=-1) * G0, s=shape, workers=-1)[:H, :W]
    floor = 1e-6 * den.max()
    F = sfft.rfft2(img * m, s=shape, workers=-1)
    est = sfft.irfft2(F * G0, s=shape, workers=-1)[:H, :W] / np.maximum(den, floor)
    del F
    if vectors is None:
        return est, np.zeros((0, 4))
    # the spectrum is measured on the piece less its local mean, tapered to 0 at its
    # edges: a hard edge's sinc tails would pass for reflections
    s = np.clip(2 * den / den.max() - 1, 0, 1) * m
    taper = s * s * (3 - 2 * s)
    F = sfft.fft2((img - est) * taper, s=shape, workers=-1)
    B = np.linalg.inv(vectors).T  # rows b1, b2: v_i . b_j = delta_ij
    N0 = gain * float((img * taper * taper).sum())
    area = float((taper * taper).sum())
    if area <= 0:
        return est, np.zeros((0, 4))
    B = _refine_basis(F, B, N0, sigma_k, taper > 0.5, area)
    window = _Window(shape, sigma_k)
    B = _superlattice(F, window, B, N0, area)
    rows, a = _reflections(F, window, B, N0, area)
    del F
    if len(rows) < 4 or np.linalg.matrix_rank(rows[:, :2]) < 2:
        return est, np.zeros((0, 4))  # no lattice stands out of the noise here
    # the reflections from the image less its local mean: at the edge of a piece the
    # mean's own spectrum (the edge's) would leak into them
    M = np.zeros(shape)
    for row, weight in zip(rows, a):
        idx, G = window.at(row[2:])
        M[idx] += weight * G
    F = sfft.rfft2((img - est) * m, s=shape, workers=-1)
    F *= M[:, : F.shape[1]]  # M holds g and -g: its half-plane suffices
    est += sfft.irfft2(F, s=shape, workers=-1)[:H, :W] / np.maximum(den, floor)
    return est, rows


def _assign_boundary_pixels(
    img: np.ndarray,
    owner: np.ndarray,
    near_boundary: np.ndarray,
    estimates: list[tuple[tuple[slice, slice], np.ndarray]],
    spacing: float,
) -> np.ndarray:
    """Index of the piece that owns every pixel: ``owner`` (the segmentation's), except
    on ``near_boundary``, where the piece whose lattice estimate fits the image best
    (squared residual smoothed over a third of a spacing) among the pieces within one
    spacing takes the pixel. The segmentation comes from a coarse grid; the lattices
    themselves say where each ends."""
    if len(estimates) < 2 or not near_boundary.any():
        return owner
    reach = max(1, round(spacing))
    sigma = 0.35 * spacing
    rows = np.nonzero(near_boundary.any(axis=1))[0]
    cols = np.nonzero(near_boundary.any(axis=0))[0]
    pad = reach + math.ceil(4 * sigma) + 1
    crop = (
        slice(max(rows[0] - pad, 0), rows[-1] + pad + 1),
        slice(max(cols[0] - pad, 0), cols[-1] + pad + 1),
    )
    best = np.full(owner[crop].shape, np.inf)
    choice = owner[crop].copy()
    for i, (box, est) in enumerate(estimates):
        # the part of the strip inside the piece's box (its estimate exists there)
        y0, y1 = max(crop[0].start, box[0].start), min(crop[0].stop, box[0].stop)
        x0, x1 = max(crop[1].start, box[1].start), min(crop[1].stop, box[1].stop)
        if y0 >= y1 or x0 >= x1:
            continue
        near = ndimage.maximum_filter(owner[y0:y1, x0:x1] == i, size=2 * reach + 1)
        if not near.any():
            continue
        sub = est[y0 - box[0].start : y1 - box[0].start, x0 - box[1].start : x1 - box[1].start]
        cost = ndimage.gaussian_filter((img[y0:y1, x0:x1] - sub) ** 2, sigma, mode="nearest")
        at = (
            slice(y0 - crop[0].start, y1 - crop[0].start),
            slice(x0 - crop[1].start, x1 - crop[1].start),
        )
        better = near & (cost < best[at])
        best[at][better] = cost[better]
        choice[at][better] = i
    result = owner.copy()
    zone = near_boundary[crop]
    result[crop][zone] = choice[zone]
    return result


def _local_correction(
    img: np.ndarray, lattice: np.ndarray, gain: float, spacing: float, strength: float
) -> tuple[np.ndarray, np.ndarray, float]:
    """lattice + c · S, S the residual smoothed at the column scale, c = max(0, 1 −
    strength · Var[S] / <S²>) with Var[S] the Poisson variance of S (gain × lattice)."""
    sigma_c = 0.1 * spacing
    sigma_e = 0.5 * spacing
    S = ndimage.gaussian_filter(img - lattice, sigma_c, mode="reflect")
    energy = ndimage.gaussian_filter(S * S, sigma_e, mode="reflect", truncate=3.0)
    # Var[S] = gain Σ G² λ, and G² = G(σ/√2) / (4π σ²) for a normalised G; smoothed
    # like the energy: one Gaussian of the combined width
    sigma_v = math.sqrt(sigma_e**2 + sigma_c**2 / 2)
    expected = ndimage.gaussian_filter(lattice, sigma_v, mode="reflect", truncate=3.0)
    expected *= gain / (4 * math.pi * sigma_c**2)
    # calibrate the noise model on the image itself: most of a crystal follows its
    # lattice, so the median ratio of residual energy to modelled noise is the noise's
    # true level (scan-correlated noise, detector offset or gain off the Poisson model)
    ratio = energy / np.maximum(expected, 1e-300)
    scale = float(np.clip(np.median(ratio), 0.25, 100.0))
    c = np.clip(1.0 - strength * scale * expected / np.maximum(energy, 1e-300), 0.0, 1.0)
    return lattice + c * S, c, scale
