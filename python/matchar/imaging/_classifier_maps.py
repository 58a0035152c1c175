"""Sliding-window crystal maps: the windows of a HAADF image classified on a grid (with
the lattice constant measured per window), the patterns of a 4-D STEM scan, and the
function :func:`classify_map`."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from .._threads import get_num_threads
from .._validation import check_int

if TYPE_CHECKING:
    from ._classifier import CrystalClassifier
from ._classifier_checks import (
    _check_pattern,
    _network_windows,
    _pad_windows,
    _refuse_constant,
    _resample,
    _standardized,
    _warn,
    shows_lattice,
)
from ._classifier_results import CrystalMap
from ._features import MODEL_PIXEL_SIZE, MODEL_WINDOW
from ._lattice_prior import LATTICE_TOLERANCE, _given_text, _prior_deviation, warn_prior
from ._refine import power_spectra, refine_lattice

#: Smallest windows (Å) whose classes hold on real images from the image alone, and with
#: the lattice constant given.
WINDOW_ALONE_MIN = 12.0
WINDOW_GIVEN_MIN = 10.0


def grid_windows(r: np.ndarray, shape, wm: int, sm: int, pixel_size: float | None = None):
    """Windows of side wm every sm pixels of the resampled image r (of an image of
    ``shape`` at ``pixel_size`` Å, which the error message speaks in when given)."""
    hm, wmx = r.shape
    if hm < wm or wmx < wm:
        need = math.ceil(wm * MODEL_PIXEL_SIZE * 10) / 10
        ps = MODEL_PIXEL_SIZE if pixel_size is None else float(pixel_size)
        raise ValueError(
            f"image of shape {tuple(shape)} is smaller than one window ({need} Å = "
            f"{math.ceil(need / ps - 1e-9)} pixels at {ps:g} Å per pixel) in at least "
            "one direction"
        )
    ys = np.arange(0, hm - wm + 1, sm)
    xs = np.arange(0, wmx - wm + 1, sm)
    view = np.lib.stride_tricks.sliding_window_view(r, (wm, wm))
    return view[ys[:, None], xs[None, :]], ys, xs


def haadf_map(
    clf: Any,
    img: np.ndarray,
    ps: float,
    window: int | None,
    stride: int | None,
    batch_size: int,
    lattice_constant: Any,
    lattice_tolerance: float,
) -> CrystalMap:
    """:meth:`CrystalClassifier.classify_map` of a checked HAADF image ``img`` at ``ps``
    Å per pixel, by the HAADF classifier ``clf``."""
    prior = clf._prior(lattice_constant, lattice_tolerance)
    fov = MODEL_WINDOW * MODEL_PIXEL_SIZE / ps  # input pixels of one model window
    if window is None:
        window = round(fov)
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)):
        raise TypeError(f"window must be an int (pixels), got {type(window).__name__}")
    window = check_int(window, "window (pixels)", low=1)
    if not 0.5 * fov - 1 <= window <= fov + 1:
        raise ValueError(
            f"window={window} pixels must cover {0.5 * fov:.0f}-{fov:.0f} pixels at "
            f"pixel_size={ps} Å (8-16 Å, the network's field of view is 16 Å)"
        )
    if stride is None:
        stride = max(1, window // 4)
    stride = check_int(stride, "stride (pixels)", low=1)
    # Measured on AI-STEM's real Fe [100] grain (docs/imaging_cnn.md): the [100] group
    # in 94% of 12 Å windows from the image alone, 45% at 10 Å and 3% at 8 Å; with the
    # lattice constant given, bcc [100] in 97% at 10 Å and 40% at 8 Å.
    if window < round(WINDOW_ALONE_MIN / ps) and (
        prior is None or window < round(WINDOW_GIVEN_MIN / ps)
    ):
        reliable = (
            f"{WINDOW_ALONE_MIN:g} Å, or {WINDOW_GIVEN_MIN:g} Å with lattice_constant= given"
            if prior is None
            else f"{WINDOW_GIVEN_MIN:g} Å"
        )
        _warn(
            f"windows of {window * ps:.1f} Å ({window} pixels) misread real images: "
            f"their classes are unreliable under {reliable}"
        )
    H, W = img.shape
    if H < window or W < window:
        raise ValueError(
            f"image of shape {(H, W)} is smaller than one window ({window} "
            f"pixels = {window * ps:.1f} Å)"
        )
    _refuse_constant(img)
    r = _resample(img, ps)
    scale = ps / MODEL_PIXEL_SIZE
    wm = min(MODEL_WINDOW, round(window * scale))
    rows = np.arange(0, H - window + 1, stride)
    cols = np.arange(0, W - window + 1, stride)
    y0 = np.clip(np.round(rows * scale).astype(np.int64), 0, r.shape[0] - wm)
    x0 = np.clip(np.round(cols * scale).astype(np.int64), 0, r.shape[1] - wm)
    if r.shape[0] < wm or r.shape[1] < wm:
        raise ValueError(f"image of shape {(H, W)} is smaller than one window")
    view = np.lib.stride_tricks.sliding_window_view(r, (wm, wm))
    n_r, n_c = len(rows), len(cols)
    C = len(clf.classes)
    k = np.empty(n_r * n_c, np.int64)
    prob = np.empty((n_r * n_c, C), np.float32)
    lat = np.empty(n_r * n_c, np.float32)
    rot = np.empty(n_r * n_c, np.float32)
    unc = np.empty(n_r * n_c, np.float32)
    flat_y = np.repeat(y0, n_c)
    flat_x = np.tile(x0, n_r)
    measured = np.zeros(n_r * n_c, bool)
    misfit = np.zeros(n_r * n_c, bool)
    excluded = 0  # windows moved to a class the prior excludes
    spec = power_spectra(img[None], workers=get_num_threads())
    refine = shows_lattice(clf, spec, img.shape, ps, "the image", image=img)
    g, sep = clf._reflections()
    threads = get_num_threads()
    for s in range(0, n_r * n_c, batch_size):
        sl = slice(s, s + batch_size)
        win = view[flat_y[sl], flat_x[sl]]
        if wm < MODEL_WINDOW:
            x = _standardized(win)
            out = clf.predict_windows(_network_windows(x, standardized=True), batch_size)
            if refine:
                win = _pad_windows(x, standardized=True)
        else:
            out = clf.predict_windows(win, batch_size)
        sm = clf._summarize(out, prior, warn_misfit=False)
        if refine:
            # Per window on the model-scale windows the network read: one batched
            # FFT, the same 16 Å field of view (finer bins would need larger windows).
            p = power_spectra(win, workers=threads, taper=wm == MODEL_WINDOW)
            ks = sm["class"]
            am, found, off = refine_lattice(
                p, (MODEL_WINDOW, MODEL_WINDOW), MODEL_PIXEL_SIZE, g[ks], sep[ks],
                sm["lattice_constant"], sm["rotation_deg"], field=wm * MODEL_PIXEL_SIZE,
                return_misfit=True,
            )  # fmt: skip
            sm["lattice_constant"] = am
            if prior is not None and off.any():
                # windows whose prior-favoured class misses their peaks: the class
                # the window shows, where it fits (see predict)
                idx = np.flatnonzero(off)
                s0 = clf._summarize({key: v[idx] for key, v in out.items()}, None)
                k0 = s0["class"]
                am0, found0, off0 = refine_lattice(
                    p[idx], (MODEL_WINDOW, MODEL_WINDOW), MODEL_PIXEL_SIZE, g[k0],
                    sep[k0], s0["lattice_constant"], s0["rotation_deg"],
                    field=wm * MODEL_PIXEL_SIZE, return_misfit=True,
                )  # fmt: skip
                sw = (k0 != ks[idx]) & (found0 >= 2) & ~off0
                j = idx[sw]
                s0["lattice_constant"] = am0
                for key in ("class", "probabilities", "rotation_deg", "uncertainty",
                            "lattice_constant"):  # fmt: skip
                    sm[key][j] = s0[key][sw]
                found[j] = found0[sw]
                excluded += int(np.isnan(_prior_deviation(am0[sw], k0[sw], prior)).sum())
            measured[sl] = found >= 2
        k[sl], prob[sl], misfit[sl] = sm["class"], sm["probabilities"], sm["misfit"]
        lat[sl], rot[sl], unc[sl] = sm["lattice_constant"], sm["rotation_deg"], sm["uncertainty"]
    if excluded:
        _warn(
            f"{excluded} of {n_r * n_c} windows show a class of a prototype the given "
            f"{_given_text(lattice_constant, None)} excludes (with its lattice constant "
            "measured from the image): the classes it allows do not fit their FFT peaks; "
            "check the pixel size or the material"
        )
    if prior is not None:
        warn_prior(clf._protos, lat, k, measured, misfit, prior, lattice_constant)
    k = k.reshape(n_r, n_c)
    protos = np.array(clf._protos, dtype=object)[k]
    zones = np.empty(len(clf._zones), dtype=object)
    for i, z in enumerate(clf._zones):
        zones[i] = z
    centers = np.stack(
        np.meshgrid(rows + (window - 1) / 2, cols + (window - 1) / 2, indexing="ij"), axis=-1
    ).astype(np.float64)
    return CrystalMap(
        prototype=protos,
        zone_axis=zones[k],
        class_index=k,
        probabilities=prob.reshape(n_r, n_c, C),
        lattice_constant=lat.reshape(n_r, n_c),
        rotation_deg=rot.reshape(n_r, n_c),
        uncertainty=unc.reshape(n_r, n_c),
        centers=centers,
        classes=clf.classes,
        window=window,
        stride=stride,
    )


def cbed_map(
    clf: Any, data, reciprocal_pixel_size, window, stride, batch_size, **prior_kw: Any
) -> CrystalMap:
    """Maps over the scan grid of a 4-D STEM data set (one CBED pattern per position)."""
    if window is not None or stride is not None:
        raise ValueError(
            "window and stride do not apply to modality='cbed': every scan position's "
            "pattern is classified (pass them as None)"
        )
    arr, ps = _check_pattern(data, reciprocal_pixel_size, ndim=4)
    n_r, n_c, h, w = arr.shape
    clf = clf._for("cbed")
    s = clf.predict_patterns(arr.reshape(n_r * n_c, h, w), ps, batch_size=batch_size, **prior_kw)
    k = s["class"].reshape(n_r, n_c)
    zones = np.empty(len(clf._zones), dtype=object)
    for i, z in enumerate(clf._zones):
        zones[i] = z
    centers = np.stack(np.meshgrid(np.arange(n_r), np.arange(n_c), indexing="ij"), -1)
    return CrystalMap(
        prototype=np.array(clf._protos, dtype=object)[k],
        zone_axis=zones[k],
        class_index=k,
        probabilities=s["probabilities"].reshape(n_r, n_c, -1).astype(np.float32),
        lattice_constant=s["lattice_constant"].reshape(n_r, n_c).astype(np.float32),
        rotation_deg=s["rotation_deg"].reshape(n_r, n_c).astype(np.float32),
        uncertainty=s["uncertainty"].reshape(n_r, n_c).astype(np.float32),
        centers=centers.astype(np.float64),
        classes=clf.classes,
        window=1,
        stride=1,
    )


def classify_map(
    image,
    pixel_size: float | None = None,
    window: int | None = None,
    stride: int | None = None,
    *,
    modality: str = "haadf",
    reciprocal_pixel_size: float | None = None,
    classifier: CrystalClassifier | None = None,
    batch_size: int = 2048,
    lattice_constant: Any = None,
    lattice_tolerance: float = LATTICE_TOLERANCE,
) -> CrystalMap:
    """Sliding-window crystal classification maps with uncertainty.

    The image is resampled to the network's 0.25 Å per pixel, cut into windows of
    ``window`` pixels every ``stride`` pixels, and each window is classified; the
    uncertainty map is the mutual information over the Monte-Carlo samples (from a
    HAADF image alone, with each look-alike group as one class), high at interfaces,
    defects and amorphous regions.

    With ``modality="cbed"``, ``image`` is a 4-D STEM data set of shape
    (scan rows, scan cols, H, W), one CBED pattern per probe position,
    ``reciprocal_pixel_size`` its calibration in 1/Å per pixel, ``window`` and ``stride``
    must be None, and the maps are on the scan grid (``centers`` holds the scan indices).

    Parameters
    ----------
    image : array_like, shape (H, W)
        HAADF image (finite values); for CBED, shape (Y, X, H, W).
    pixel_size : float
        Å per pixel of a HAADF ``image`` (0.02-1.0; a warning outside 0.06-0.4).
    window : int or None
        Window side in pixels of ``image``: from 8 Å to 16 Å worth of pixels; None = 16 Å
        (the network's field of view; smaller windows are zero-padded). Smaller windows
        draw finer interface maps, but their uncertainty rises less at boundaries, and
        under 12 Å they misread real images (docs/imaging_cnn.md, the real Fe image):
        windows under 12 Å without ``lattice_constant``, or under 10 Å with it, warn.
    stride : int or None
        Step between windows in pixels of ``image``; None = window // 4.
    modality : {"haadf", "cbed"}
        HAADF image or 4-D STEM stack of CBED patterns.
    reciprocal_pixel_size : float
        For CBED (and only CBED), the calibration in 1/Å per pixel (0.003-0.2; a warning
        outside 0.015-0.06). Passing it as ``pixel_size`` with ``modality="cbed"`` is
        deprecated.
    classifier : CrystalClassifier or None
        None = :meth:`CrystalClassifier.default`.
    batch_size : int
        Windows per network call, >= 1 (memory: about 50 kB per window).
    lattice_constant, lattice_tolerance
        What you know of the lattice constant (Å) and its relative tolerance: see
        :meth:`CrystalClassifier.predict`.

    Returns
    -------
    CrystalMap
        Maps of shape (H', W') = ((H - window) // stride + 1, (W - window) // stride + 1).

    Examples
    --------
    >>> import matchar as mc
    >>> img = mc.imaging.simulate_haadf("hcp", (0, 0, 0, 1), 3.2, shape=(160, 160),
    ...                                 pixel_size=0.2, dose=1000, seed=0)
    >>> m = mc.imaging.classify_map(img, 0.2, stride=16)
    >>> m.uncertainty.shape, m.prototype[0, 0]
    ((6, 6), 'hcp')
    """
    if classifier is None:
        from ._classifier import CrystalClassifier

        classifier = CrystalClassifier.default()
    return classifier.classify_map(
        image,
        pixel_size,
        window,
        stride,
        modality=modality,
        reciprocal_pixel_size=reciprocal_pixel_size,
        batch_size=batch_size,
        lattice_constant=lattice_constant,
        lattice_tolerance=lattice_tolerance,
    )
