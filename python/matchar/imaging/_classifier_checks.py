"""Checks of what the crystal classifier reads (modality, HAADF images and their pixel
size, CBED patterns and their calibration, model-scale windows), the resampling to the
model's pixel size, and the warnings that point at the user's call."""

from __future__ import annotations

import math
import os
import sys
import warnings
from typing import Any

import numpy as np
import scipy.ndimage

from .._arrays import as_array
from ._correlation import finite_rescaled
from ._features import _HANN, CBED_RADII, MODEL_PIXEL_SIZE, MODEL_WINDOW
from ._refine import (
    LATTICE_SIGNIFICANCE,
    first_order_peak,
    peak_directions_spread,
    plausible_spacings,
    power_spectra,
)

#: Smallest angle (degrees) between the directions of an image's strong FFT peaks for a
#: 2-D lattice: every crystal of the classes gives at least 60 (renderer, abTEM and real
#: images: 60-90), fringes of one direction about 0.
MIN_DIRECTIONS_SPREAD = 20.0

#: Pixel sizes (Å) outside this range give a warning; outside PIXEL_SIZE_LIMITS an error.
PIXEL_SIZE_WARN = (0.06, 0.4)
PIXEL_SIZE_LIMITS = (0.02, 1.0)
#: CBED calibrations (1/Å per pixel): a warning outside the first range (around the
#: trained 0.03-0.045), an error outside the second (disks unresolved, or a pattern
#: reaching too little of reciprocal space to hold several reflections).
CBED_PIXEL_SIZE_WARN = (0.015, 0.06)
CBED_PIXEL_SIZE_LIMITS = (0.003, 0.2)
_MODALITIES = ("haadf", "cbed")
#: HAADF images and windows whose largest |value| is outside this range are scaled
#: exactly by a power of two first: the windows are standardized in float32, where their
#: squares would overflow (or the 1e-6 guard against flat windows would dominate).
HAADF_SAFE_PEAK = (2.0**-10, 2.0**40)
#: CBED patterns are read on an absolute scale (units of the incident beam): values
#: beyond this overflow the float32 features.
CBED_MAX_INTENSITY = 1e30

#: This subpackage's folder: warnings point at the first caller outside it.
_HERE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _warn(message: str, category: type[Warning] = UserWarning) -> None:
    """A warning pointing at the first caller outside ``matchar.imaging`` (the user's
    call of predict or classify_map, however deep it is raised)."""
    level, frame = 1, sys._getframe(0)
    while frame is not None and frame.f_code.co_filename.startswith(_HERE):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


def _calibration(pixel_size: Any, reciprocal_pixel_size: Any, modality: str, what: str) -> Any:
    """The calibration of ``what``'s input: ``pixel_size`` (Å per pixel) for a HAADF
    image, ``reciprocal_pixel_size`` (1/Å per pixel) for CBED. ``pixel_size`` with
    ``modality="cbed"`` is the deprecated spelling of ``reciprocal_pixel_size``."""
    if _check_modality(modality) == "haadf":
        if reciprocal_pixel_size is not None:
            raise ValueError(
                "reciprocal_pixel_size is the calibration of CBED patterns (modality='cbed'); "
                "a HAADF image takes pixel_size (Å per pixel)"
            )
        if pixel_size is None:
            raise TypeError(f"{what}() needs pixel_size (Å per pixel of the image)")
        return pixel_size
    if pixel_size is None:
        if reciprocal_pixel_size is None:
            raise TypeError(
                f"{what}(..., modality='cbed') needs reciprocal_pixel_size (1/Å per pixel)"
            )
        return reciprocal_pixel_size
    if reciprocal_pixel_size is not None:
        raise TypeError(
            f"{what}() got both pixel_size and reciprocal_pixel_size: a CBED pattern's "
            "calibration is reciprocal_pixel_size (1/Å per pixel)"
        )
    _warn(
        f"{what}(..., pixel_size, modality='cbed') is deprecated and will be removed in the "
        "next release: pass the CBED calibration (1/Å per pixel) as reciprocal_pixel_size=...",
        FutureWarning,
    )
    return pixel_size


def _positive(value: Any, name: str, unit: str) -> float:
    """A calibration as a finite float > 0, or a ValueError naming it and its unit."""
    try:
        ps = float(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a number ({unit}), got {value!r}") from exc
    if not (math.isfinite(ps) and ps > 0):
        raise ValueError(f"{name} must be a finite number > 0 ({unit}), got {ps!r}")
    return ps


def _check_modality(modality: str) -> str:
    if modality not in _MODALITIES:
        raise ValueError(f"modality must be 'haadf' or 'cbed', got {modality!r}")
    return modality


def _check_pattern(
    pattern, reciprocal_pixel_size: float, ndim: int = 2
) -> tuple[np.ndarray, float]:
    """Validate CBED pattern(s) (last two axes) and the calibration in 1/Å per pixel."""
    name = "pattern" if ndim == 2 else "patterns"
    img = as_array(pattern, name, ndim=ndim)
    if not np.all(np.isfinite(img)):
        raise ValueError(f"{name} contains NaN or inf pixels")
    peak = float(np.abs(img).max()) if img.size else 0.0
    if peak > CBED_MAX_INTENSITY:
        raise ValueError(
            f"{name} holds values up to {peak:.3g}: CBED intensities are in units of the "
            f"incident beam (the direct disk about 1) and must stay below "
            f"{CBED_MAX_INTENSITY:g} (the features are computed in float32)"
        )
    ps = _positive(reciprocal_pixel_size, "reciprocal_pixel_size", "1/Å per pixel")
    lo, hi = CBED_PIXEL_SIZE_LIMITS
    if not lo <= ps <= hi:
        raise ValueError(
            f"reciprocal_pixel_size={ps} 1/Å per pixel is far outside the range the CBED "
            f"classifier supports ({lo}-{hi}; CBED calibrations are reciprocal: 1/Å per "
            "pixel, g = 1/d; trained at 0.03-0.045)"
        )
    h, w = img.shape[-2:]
    half = 0.5 * min(h, w) * ps
    if half < 0.6:
        raise ValueError(
            f"{name} of shape {img.shape[-2:]} at reciprocal_pixel_size={ps} reaches only "
            f"{half:.2f} 1/Å from the centre: at least 0.6 1/Å (a few reflections) is needed"
        )
    wlo, whi = CBED_PIXEL_SIZE_WARN
    if not wlo <= ps <= whi or half < 0.8 * CBED_RADII[-1]:
        warnings.warn(
            f"reciprocal_pixel_size={ps} 1/Å per pixel with a {h}x{w} pattern (reaching "
            f"{half:.2f} 1/Å) is outside what the CBED classifier was trained on (0.03-0.045 "
            f"1/Å per pixel, patterns reaching {CBED_RADII[-1]} 1/Å): predictions may be "
            "unreliable",
            UserWarning,
            stacklevel=3,
        )
    return img, ps


def _check_image(image, pixel_size: float, modality: str) -> tuple[np.ndarray, float]:
    """A HAADF image and its pixel size (Å), or with ``modality="cbed"`` a CBED pattern
    and its calibration (1/Å per pixel, passed as ``pixel_size``)."""
    if _check_modality(modality) == "cbed":
        return _check_pattern(image, pixel_size)
    img = finite_rescaled(as_array(image, "image", ndim=2), "image", HAADF_SAFE_PEAK)
    ps = _positive(pixel_size, "pixel_size", "Å per pixel")
    lo, hi = PIXEL_SIZE_LIMITS
    if not lo <= ps <= hi:
        raise ValueError(
            f"pixel_size={ps} Å is far outside the range the classifier supports "
            f"({lo}-{hi} Å; trained at {MODEL_PIXEL_SIZE} Å with columns 0.9-4.4 Å apart): "
            "atomic columns would be unresolved or the window would hold under a unit cell"
        )
    wlo, whi = PIXEL_SIZE_WARN
    if not wlo <= ps <= whi:
        warnings.warn(
            f"pixel_size={ps} Å is outside {wlo}-{whi} Å: the image is resampled to "
            f"{MODEL_PIXEL_SIZE} Å per pixel and predictions may be unreliable",
            UserWarning,
            stacklevel=3,
        )
    return img, ps


def _resample(img: np.ndarray, pixel_size: float) -> np.ndarray:
    """Resample to the model pixel size (linear; Gaussian anti-aliasing when shrinking)."""
    zoom = pixel_size / MODEL_PIXEL_SIZE
    x = np.asarray(img, dtype=np.float32)
    if abs(zoom - 1.0) < 1e-6:
        return x.copy()
    if zoom < 1.0:
        # anti-aliasing before shrinking: sigma (input pixels) grows with the shrink factor
        x = scipy.ndimage.gaussian_filter(x, sigma=0.5 * math.sqrt(1.0 / zoom - 1.0))
    return scipy.ndimage.zoom(x, zoom, order=1, prefilter=False, grid_mode=False)


def _refuse_constant(img: np.ndarray) -> None:
    if img.min() == img.max():
        raise ValueError("image is constant: a flat image shows no crystal to classify")


def _check_windows(windows: Any) -> np.ndarray:
    """Model-scale windows (N, 64, 64): finite, each scaled by a power of two into
    :data:`HAADF_SAFE_PEAK` when outside it (the features standardize every window)."""
    w = as_array(windows, "windows", ndim=3, allow_empty=True)
    if w.shape[1:] != (MODEL_WINDOW, MODEL_WINDOW):
        raise ValueError(
            f"windows must have shape (N, {MODEL_WINDOW}, {MODEL_WINDOW}), got {w.shape}"
        )
    if len(w) == 0:
        return w
    peak = np.maximum(np.abs(w.min(axis=(1, 2))), np.abs(w.max(axis=(1, 2))))
    bad = np.flatnonzero(~np.isfinite(peak))
    if len(bad):
        raise ValueError(
            f"windows contain NaN or infinite values ({len(bad)} of {len(w)} windows, the "
            f"first at index {bad[0]})"
        )
    lo, hi = HAADF_SAFE_PEAK
    out = (peak > 0) & ((peak < lo) | (peak > hi))
    if out.any():
        e = np.where(out, np.frexp(peak)[1], 0)
        w = np.ldexp(w, -e[:, None, None]).astype(w.dtype, copy=False)
    return w


def _standardized(win: np.ndarray) -> np.ndarray:
    """Windows (N, wm, wm) as float32, each with mean 0 and standard deviation 1."""
    x = win.astype(np.float32) - win.mean(axis=(1, 2), keepdims=True)
    x /= x.std(axis=(1, 2), keepdims=True) + np.float32(1e-6)
    return x


def _pad_windows(win: np.ndarray, standardized: bool = False) -> np.ndarray:
    """Standardize + taper windows smaller than the model's, then zero-pad them: the
    windows whose power spectra :func:`refine_lattice` fits (one Hann taper over the
    window's own field). ``standardized``: ``win`` is :func:`_standardized` already."""
    n, wm = win.shape[0], win.shape[1]
    x = win.copy() if standardized else _standardized(win)
    h = np.hanning(wm + 2)[1:-1].astype(np.float32)
    x *= np.outer(h, h)
    out = np.zeros((n, MODEL_WINDOW, MODEL_WINDOW), np.float32)
    o = (MODEL_WINDOW - wm) // 2
    out[:, o : o + wm, o : o + wm] = x
    return out


def _network_windows(win: np.ndarray, standardized: bool = False) -> np.ndarray:
    """Windows smaller than the model's, shape (N, wm, wm), as the network reads them:
    shape (N, 64, 64), zero-padded, such that the features' own taper of the 64-pixel
    field (``polar_features``: mean removed, then a Hann taper) leaves exactly one Hann
    taper over the window's own field, as on a 64-pixel window. ``standardized``:
    ``win`` is :func:`_standardized` already.

    :func:`_pad_windows` tapers the field, and the features would taper it again: the
    taper of a 12 Å window would then be 5 Å wide at half height instead of 6 Å (a 16 Å
    window's: 8 Å), and of a shape the network never saw. Here the field's taper is
    divided by the features' taper over it, and the field is offset so that the padded
    window's mean is zero (the features remove it before their taper)."""
    n, wm = win.shape[0], win.shape[1]
    x = win.copy() if standardized else _standardized(win)
    o = (MODEL_WINDOW - wm) // 2
    h = np.hanning(wm + 2)[1:-1]
    t = np.outer(h, h) / _HANN[o : o + wm, o : o + wm].astype(np.float64)
    x -= (np.einsum("nij,ij->n", x, t) / t.sum()).astype(np.float32)[:, None, None]
    out = np.zeros((n, MODEL_WINDOW, MODEL_WINDOW), np.float32)
    out[:, o : o + wm, o : o + wm] = x * t.astype(np.float32)
    return out


#: Smallest tile (Å) in which :func:`tile_spacings` looks for the first-order peak.
TILE_ANGSTROM = 20.0
#: The tiles speak for an implausible whole-image spacing only where it would lie this many
#: frequency bins from the origin of a tile's spectrum (nearer, a tile may miss it).
TILE_MIN_BINS = 4


def tile_spacings(img: np.ndarray, ps: float) -> tuple[np.ndarray, float]:
    """First-order spacings (Å) of the tiles of an image, 2 x 2 tiles of at least
    ``TILE_ANGSTROM`` a side, for the tiles that show a lattice, and the tiles' shorter
    side in Å; empty (and 0) when the image is too small to tile. A tile lies mostly
    inside one grain, where the whole image's spectrum also holds the peaks of its grain
    boundaries: a boundary of period p (a coincidence-site lattice, a twin's structural
    units) is a row of points at 1/p along it, often closer to the origin than any
    lattice peak."""
    n = 2
    if min(img.shape) * ps < n * TILE_ANGSTROM:
        return np.empty(0), 0.0
    H, W = img.shape
    th, tw = H // n, W // n
    tiles = np.stack(
        [img[i * th : (i + 1) * th, j * tw : (j + 1) * tw] for i in range(n) for j in range(n)]
    )
    spec = power_spectra(tiles)
    out = [first_order_peak(spec[t : t + 1], (th, tw), ps) for t in range(len(tiles))]
    found = np.array([d for d, ratio in out if ratio >= LATTICE_SIGNIFICANCE])
    return found, min(th, tw) * ps


def shows_lattice(
    clf: Any, spec: np.ndarray, shape: tuple[int, int], ps: float, what: str,
    probabilities: np.ndarray | None = None, image: np.ndarray | None = None,
) -> bool:  # fmt: skip
    """Whether the power spectrum (1, H, W//2+1) of an image shows lattice peaks for the
    classes of classifier ``clf``, in more than one direction (not fringes of one
    direction, :data:`MIN_DIRECTIONS_SPREAD`); warns when it does not (naming the class given
    ``probabilities``), or when its first-order spacing fits no class, unless the
    ``image`` itself, given, vouches for the scale: the median first-order spacing of its
    tiles (:func:`tile_spacings`) lies within the classes' range, and the tiles could
    have shown the whole image's spacing (``TILE_MIN_BINS`` frequency bins from the
    origin). Grain boundaries add peaks of their own to the whole image's spectrum."""
    spacing, ratio = first_order_peak(spec, shape, ps)
    if probabilities is None:
        verdict = "the classes and lattice constants of its windows mean nothing"
    else:
        best = int(np.argmax(probabilities))
        verdict = (
            f"the class ({clf.classes[best]}, p = {probabilities[best]:.2f}) and the "
            "lattice constant mean nothing"
        )
    if ratio < LATTICE_SIGNIFICANCE:
        _warn(
            f"{what} shows no lattice: its strongest FFT peak (at {spacing:.2f} Å) is only "
            f"{ratio:.0f} times the background, where an atomic-resolution image of a "
            f"crystal gives over {LATTICE_SIGNIFICANCE:.0f} (noise, an amorphous or "
            f"blurred region, or a pixel size far from the true one); {verdict}"
        )
        return False
    if peak_directions_spread(spec, shape, ps) < MIN_DIRECTIONS_SPREAD:
        _warn(
            f"{what} shows fringes of one direction only (its strong FFT peaks, the first "
            f"at {spacing:.2f} Å, lie on one line through the origin), not the columns of "
            f"a 2-D lattice (stripes, a line grating, or scan noise); {verdict}"
        )
        return False
    a_range = tuple(clf.metadata.get("lattice_constant_range", (2.5, 5.4)))
    lo, hi = plausible_spacings(tuple(zip(clf._protos, clf._zones)), a_range)

    def plausible(d: float) -> bool:
        return lo / 1.25 <= d <= 1.25 * hi

    if not plausible(spacing):
        tiles, side = tile_spacings(image, ps) if image is not None else (np.empty(0), 0.0)
        seen = TILE_MIN_BINS * spacing <= side
        # the tiles' lattice, within the classes' own range (no slack), vouches for the scale
        if len(tiles) and seen and lo <= float(np.median(tiles)) <= hi:
            return True
        _warn(
            f"the first-order lattice peak of {what}'s FFT is at a spacing of "
            f"{spacing:.2f} Å, outside the {lo:.2f}-{hi:.2f} Å of the first-order "
            f"spacings of every class at lattice constants "
            f"{a_range[0]:g}-{a_range[1]:g} Å (what the network knows): check "
            f"pixel_size ({ps:g} Å per pixel)"
        )
    return True
