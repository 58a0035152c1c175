"""Random simulated HAADF windows for training and evaluating the crystal classifier."""

from __future__ import annotations

import math

import numpy as np
import scipy.fft
import scipy.ndimage

from .. import _core
from .._deprecation import renamed_parameters
from ._features import MODEL_PIXEL_SIZE, MODEL_WINDOW
from ._simulate import ZONE_AXES, haadf_params, projected_cell

#: Lattice constants (Å) the classifier is trained on (AI-STEM/Yeo et al.'s range).
A_RANGE = (2.5, 5.4)
#: Extra pixels rendered on each side of a window before the nuisance model's blur.
_NUISANCE_MARGIN = 16


class WindowGenerator:
    """Random HAADF windows (64 x 64 at 0.25 Å per pixel) rendered by the C++ core.

    Parameters
    ----------
    seed : int
        Seed of the generator's random parameters and noise.
    nuisance : bool
        Render noise-free windows with a margin and pass them through
        :func:`microscope_nuisance` (mistilt blur, thickness and contamination fields,
        detector non-linearity, correlated noise, line offsets, coarse pixels,
        quantisation) instead of the renderer's own noise; the renderer's scan jitter and
        drift stay.
    overlap : float
        With ``nuisance``, the fraction of windows in which a second crystal overlaps the
        first in projection (:func:`overlap_crystals`: inclined grain or twin
        boundaries); the label stays the first, thicker crystal's. 0 (the default)
        leaves the generator's random stream as without it.
    grains : float
        With ``nuisance``, the fraction of windows that hold a second grain of the same
        crystal at another rotation (:func:`grain_mask`: one straight boundary or twin
        lamellae; for fcc [110] half of them at the Σ3 twin rotation, ±70.53°); the
        label is the crystal's, the rotation that of the grain covering most of the
        window. 0 (the default) leaves the random stream as without it.
    stacked : float
        With ``nuisance``, the fraction of windows in which a second grain of the same
        crystal at another rotation lies on top of the first along the beam (an inclined
        grain or twin boundary within the foil: the moiré of two orientations of one
        phase; for fcc [110] two thirds of them at the Σ3 twin rotation); thickness
        fraction U(0.15, 0.45), so the label's rotation is the thicker grain's. 0 (the
        default) leaves the random stream as without it.

    Examples
    --------
    >>> g = WindowGenerator(0)
    >>> img, cls, a, rot = g.sample(4)
    >>> img.shape, img.dtype
    ((4, 64, 64), dtype('float32'))
    """

    def __init__(
        self,
        seed: int,
        nuisance: bool = False,
        overlap: float = 0.0,
        grains: float = 0.0,
        stacked: float = 0.0,
    ) -> None:
        for name, v in (("overlap", overlap), ("grains", grains), ("stacked", stacked)):
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {v}")
            if v and not nuisance:
                raise ValueError(f"{name} needs nuisance=True (noise-free windows to combine)")
        self.grains = float(grains)
        self.grains_rng = np.random.default_rng([seed, 3_000_017])
        self.stacked = float(stacked)
        self.stacked_rng = np.random.default_rng([seed, 4_000_037])
        self.rng = np.random.default_rng(seed)
        self.nuisance = bool(nuisance)
        self.overlap = float(overlap)
        # its own stream, so that overlap=0 draws exactly what the generator drew before
        self.overlap_rng = np.random.default_rng([seed, 2_000_003])
        self.cells = [projected_cell(p, z) for p, z in ZONE_AXES]
        self.order = np.array([c.symmetry_order for c in self.cells])
        cols = [c.columns for c in self.cells]
        self.columns = np.concatenate(cols)
        self.offsets = np.concatenate([[0], np.cumsum([len(c) for c in cols])]).astype(np.int64)

    @renamed_parameters(rotation="rotation_deg")
    def sample(
        self,
        n: int,
        *,
        dose=None,
        distortion=None,
        classes=None,
        a=None,
        rotation_deg=None,
        thermal=None,
    ):
        """Draw ``n`` windows.

        Parameters left as None are drawn at random per window: class uniform over the 12
        classes, lattice constant a ~ U(2.5, 5.4) Å, rotation ~ U(0, 360)°, thermal
        sigma ~ U(0, 0.12) Å, dose log-uniform in 10-5000 e/pixel (15% noiseless), scan
        distortion delta = 0 (65%) or U(0, 0.07) (35%); always random: origin, probe sigma
        U(0.25, 0.45) Å, background U(0, 0.4), read noise U(0, 0.08). A scan distortion
        delta means a per-line x jitter of delta * a and a linear drift of +-delta pixels
        per line in x and y (a delta shear and a delta stretch).

        Returns
        -------
        images : numpy.ndarray, shape (n, 64, 64), float32
        classes : numpy.ndarray, shape (n,), int
        a : numpy.ndarray, shape (n,), float64, Å
        rotation_deg : numpy.ndarray, shape (n,), float64, degrees
        """
        rng = self.rng
        n_classes = len(self.cells)
        cls = rng.integers(0, n_classes, n) if classes is None else np.asarray(classes)
        a = rng.uniform(*A_RANGE, n) if a is None else np.asarray(a, dtype=float)
        rot = rng.uniform(0, 360, n) if rotation_deg is None else np.asarray(rotation_deg, float)
        thermal = rng.uniform(0.0, 0.12, n) if thermal is None else np.full(n, thermal)
        if dose is None:
            d = np.exp(rng.uniform(math.log(10), math.log(5000), n))
            d[rng.random(n) < 0.15] = 0.0
        else:
            d = np.full(n, float(dose))
        if distortion is None:
            dist = np.where(rng.random(n) < 0.35, rng.uniform(0, 0.07, n), 0.0)
        else:
            dist = np.full(n, float(distortion))
        params = np.empty((n, _core.imaging.HAADF_N_PARAMS))
        for i in range(n):
            ps = MODEL_PIXEL_SIZE
            sign = rng.choice([-1.0, 1.0], 2)
            params[i] = haadf_params(
                self.cells[cls[i]],
                a[i],
                rot[i],
                ps,
                origin=tuple(rng.uniform(0, 20, 2)),
                probe=rng.uniform(0.25, 0.6 if self.nuisance else 0.45),
                thermal_sigma=thermal[i],
                background=rng.uniform(0, 0.4),
                dose=0.0 if self.nuisance else d[i],
                read_noise=0.0 if self.nuisance else rng.uniform(0, 0.08),
                jitter=dist[i] * a[i],
                drift=(sign[0] * dist[i] * ps, sign[1] * dist[i] * ps),
            )
        seed = int(rng.integers(0, 2**63))
        size = MODEL_WINDOW + 2 * _NUISANCE_MARGIN if self.nuisance else MODEL_WINDOW
        img = self._render(cls, params, size, seed)
        if self.nuisance:
            if self.grains:
                img = self._grains(img, cls, a, rot)
            if self.stacked:
                img = self._stacked(img, cls, a, rot)
            if self.overlap:
                img = self._overlap(img)
            img = microscope_nuisance(img, rng, dose=d)
        return img, cls, a, rot

    def _render_clean(self, cls: np.ndarray, a: np.ndarray, rot: np.ndarray, size: int, rng=None):
        """Noise-free windows of ``cls`` (no scan distortion), size x size, float32."""
        rng = self.overlap_rng if rng is None else rng
        params = np.empty((len(cls), _core.imaging.HAADF_N_PARAMS))
        for i in range(len(cls)):
            params[i] = haadf_params(
                self.cells[cls[i]],
                a[i],
                rot[i],
                MODEL_PIXEL_SIZE,
                origin=tuple(rng.uniform(0, 20, 2)),
                probe=rng.uniform(0.25, 0.6),
                thermal_sigma=rng.uniform(0.0, 0.12),
                background=0.0,
                dose=0.0,
            )
        return self._render(cls, params, size, int(rng.integers(0, 2**63)))

    def _render(self, cls, params: np.ndarray, size: int, seed: int) -> np.ndarray:
        """The C++ renderer: windows (n, size, size) float32 of ``params`` rows."""
        cls = np.asarray(cls, dtype=np.int64)
        return _core.imaging.render_haadf(
            self.columns, self.offsets, cls, params, size, size, seed, np.float32
        )

    def _second_grains(self, rng, pick, cls, a, rot, size: int, twin_share: float):
        """Noise-free windows of the same crystals as ``pick`` at another rotation: a
        uniform fraction U(0.15, 0.85) of the symmetry step away, or, for fcc [110] with
        probability ``twin_share``, at the Σ3 twin rotation."""
        m = len(pick)
        c = np.asarray(cls)[pick]
        step = 360.0 / self.order[c]
        rot1 = np.asarray(rot, dtype=float)[pick]
        rot2 = rot1 + rng.uniform(0.15, 0.85, m) * step
        twin = (c == ZONE_AXES.index(("fcc", (1, 1, 0)))) & (rng.random(m) < twin_share)
        rot2[twin] = rot1[twin] + rng.choice([-1, 1], twin.sum()) * SIGMA3_TWIN_DEG
        return self._render_clean(c, np.asarray(a, dtype=float)[pick], rot2, size, rng)

    def _grains(self, img: np.ndarray, cls, a, rot) -> np.ndarray:
        rng = self.grains_rng
        n, size = len(img), img.shape[-1]
        pick = np.flatnonzero(rng.random(n) < self.grains)
        if not len(pick):
            return img
        second = self._second_grains(rng, pick, cls, a, rot, size, 0.5)
        out = img.copy()
        for j, i in enumerate(pick):
            mask = grain_mask(size, MODEL_WINDOW, rng)
            s2 = second[j] * (img[i].mean() / (second[j].mean() + 1e-12))
            out[i] = np.where(mask, s2, img[i])
        return out

    def _stacked(self, img: np.ndarray, cls, a, rot) -> np.ndarray:
        rng = self.stacked_rng
        n, size = len(img), img.shape[-1]
        pick = np.flatnonzero(rng.random(n) < self.stacked)
        if not len(pick):
            return img
        second = self._second_grains(rng, pick, cls, a, rot, size, 2.0 / 3.0)
        out = img.copy()
        out[pick] = stack_crystals(img[pick], second, rng.uniform(0.15, 0.45, len(pick)))
        return out

    def _overlap(self, img: np.ndarray) -> np.ndarray:
        rng = self.overlap_rng
        n, size = len(img), img.shape[-1]
        pick = np.flatnonzero(rng.random(n) < self.overlap)
        if not len(pick):
            return img
        m = len(pick)
        cls2 = rng.integers(0, len(self.cells), m)
        second = self._render_clean(cls2, rng.uniform(*A_RANGE, m), rng.uniform(0, 360, m), size)
        out = img.copy()
        out[pick] = overlap_crystals(img[pick], second, rng)
        return out


#: Rotation (degrees) between an fcc [110] projection and its Σ3 twin: the mirror across
#: the edge-on {111} plane, for the 2mm-symmetric projection a rotation by 2 arctan(1/√2).
SIGMA3_TWIN_DEG = float(np.degrees(2 * np.arctan(1 / np.sqrt(2))))


def grain_mask(size: int, window: int, rng: np.random.Generator) -> np.ndarray:
    """Where a second grain lies in a size x size window: one straight boundary (half of
    the masks) or parallel lamellae 3-15 Å wide every 10-40 Å (at ``MODEL_PIXEL_SIZE``,
    at least one crossing the centre window), in a random direction. The boundary
    gives the second grain U(0.1, 0.45) of the central ``window`` x ``window``, the
    lamellae at most half of it: the first grain always covers most of it.

    Returns
    -------
    numpy.ndarray, shape (size, size), bool
    """
    t = rng.uniform(0, np.pi)
    yy, xx = np.mgrid[0:size, 0:size] - (size - 1) / 2.0
    u = (np.cos(t) * xx + np.sin(t) * yy) * MODEL_PIXEL_SIZE  # Å across the boundaries
    lo = (size - window) // 2
    centre = u[lo : lo + window, lo : lo + window]
    share = rng.uniform(0.1, 0.45)
    if rng.random() < 0.5:
        return u > np.quantile(centre, 1.0 - share)
    period = rng.uniform(10.0, 40.0)
    width = float(np.clip(share * period, 3.0, 15.0))
    start = rng.uniform(centre.min(), centre.max() - width)  # one lamella in the window
    mask = np.mod(u - start, period) < width
    if mask[lo : lo + window, lo : lo + window].mean() > 0.5:
        mask = ~mask
    return mask


def overlap_crystals(first: np.ndarray, second: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Two crystals stacked along the beam, as at an inclined grain or twin boundary.

    HAADF intensity is, to first order, incoherent and adds along the beam, so the
    image of two stacked crystals is the sum of their images weighted by their
    thicknesses. The second crystal is, with equal probability, on a zone axis (a
    rendered window of a random class, lattice constant and rotation), off any zone
    axis with one family of lattice planes edge-on (one set of fringes, spacing
    U(1.2, 3.5) Å, random direction), or off axis with the planes unresolved (the
    rendered window blurred by 1-3 Å: thickness contrast only). Its thickness
    fraction is U(0.1, 0.45), so the first crystal, whose label the window keeps, is
    always the thicker one.

    Parameters
    ----------
    first, second : numpy.ndarray, shape (n, H, W), float32
        Noise-free windows (positive), at ``MODEL_PIXEL_SIZE`` Å per pixel.
    rng : numpy.random.Generator

    Returns
    -------
    numpy.ndarray, shape (n, H, W), float32
        ``(1 - w) first + w second'``, ``second'`` scaled to the first's mean.
    """
    first = np.asarray(first, dtype=np.float32)
    second = np.array(second, dtype=np.float32)
    n, h, w_ = first.shape
    kind = rng.integers(0, 3, n)
    yy, xx = np.mgrid[0:h, 0:w_].astype(np.float32) * np.float32(MODEL_PIXEL_SIZE)
    for i in range(n):
        if kind[i] == 1:
            d = rng.uniform(1.2, 3.5)
            t = rng.uniform(0, np.pi)
            phase = rng.uniform(0, 2 * np.pi)
            q = (np.cos(t) * xx + np.sin(t) * yy) * np.float32(2 * np.pi / d)
            second[i] = 1.0 + rng.uniform(0.3, 1.0) * np.cos(q + phase)
        elif kind[i] == 2:
            sigma = rng.uniform(1.0, 3.0) / MODEL_PIXEL_SIZE
            second[i] = scipy.ndimage.gaussian_filter(second[i], sigma, mode="wrap")
    return stack_crystals(first, second, rng.uniform(0.1, 0.45, n))


def stack_crystals(first: np.ndarray, second: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Two noise-free crystal images stacked along the beam: ``(1 - w) first + w second'``.

    HAADF intensity adds along the beam (incoherent to first order), so each crystal
    contributes in proportion to its thickness; ``second'`` is ``second`` scaled to the
    mean of ``first``.

    Parameters
    ----------
    first, second : numpy.ndarray, shape (n, H, W), float32
        Noise-free windows (positive).
    weight : numpy.ndarray, shape (n,)
        Thickness fraction w of the second crystal, in [0, 1].

    Returns
    -------
    numpy.ndarray, shape (n, H, W), float32
    """
    first = np.asarray(first, dtype=np.float32)
    second = np.asarray(second, dtype=np.float32)
    wt = np.asarray(weight, dtype=np.float32)[:, None, None]
    scale = first.mean(axis=(1, 2), keepdims=True) / (
        second.mean(axis=(1, 2), keepdims=True) + np.float32(1e-12)
    )
    return ((1 - wt) * first + wt * second * scale).astype(np.float32)


def _smooth_field(rng: np.random.Generator, n: int, size: int, scale_px: np.ndarray) -> np.ndarray:
    """Smooth random fields (n, size, size), zero mean, unit standard deviation: white noise
    low-passed by a Gaussian of ``scale_px`` pixels (one scale per field)."""
    ky = scipy.fft.fftfreq(size)[:, None]
    kx = scipy.fft.rfftfreq(size)[None, :]
    k2 = (ky**2 + kx**2).astype(np.float32)
    noise = rng.standard_normal((n, size, size), dtype=np.float32)
    spec = scipy.fft.rfft2(noise, workers=-1)
    spec *= np.exp(-2 * np.pi**2 * scale_px.astype(np.float32)[:, None, None] ** 2 * k2)
    f = scipy.fft.irfft2(spec, s=(size, size), workers=-1)
    f -= f.mean(axis=(1, 2), keepdims=True)
    f /= f.std(axis=(1, 2), keepdims=True) + np.float32(1e-12)
    return f


def microscope_nuisance(
    signal: np.ndarray,
    rng: np.random.Generator,
    *,
    pixel_size: float = MODEL_PIXEL_SIZE,
    dose: np.ndarray | None = None,
    effects: float = 1.0,
) -> np.ndarray:
    """What a microscope does to a noise-free rendered window, randomised per window.

    The renderer draws ideal columns; real HAADF images differ in ways that change the
    power spectrum the classifier reads (docs/imaging_cnn.md, the microscope nuisance
    model). Each window gets, independently, with the probability in brackets:

    * mistilt or astigmatism (0.5): an anisotropic Gaussian blur, sigma U(0.1, 1.0) Å
      along a random direction and U(0, 0.25) Å across it;
    * thickness and channelling contrast (0.5): the signal times 1 + A f, f a smooth
      random field (correlation length U(4, 16) Å), A ~ U(0, 0.4);
    * contamination, thickness ramps, amorphous layers (0.6): an additive smooth field
      (correlation length U(3, 20) Å) plus a linear ramp, U(0, 1.5) times the signal's
      standard deviation;
    * detector non-linearity (0.3): intensity**gamma, gamma ~ U(0.6, 1.6);
    * shot noise at ``dose`` electrons per pixel at the mean (log-uniform 5-5000 when
      None; 10% noiseless), Gaussian read noise U(0, 0.05) of the mean, and correlated
      (blurred, sigma U(0.5, 1.5) px) noise U(0, 0.3) of the signal's std (0.3);
    * scan-line offsets (0.3): one additive offset per row, N(0, U(0, 0.3) std);
    * a coarser acquisition pixel (0.35): averaged down by U(1.15, 1.8) and linearly
      upsampled back, as the classifier resamples an image taken at 0.29-0.45 Å/px;
    * quantisation with saturation (0.3): 16-256 levels between the 0.2 and 99.8
      percentiles, values beyond clipped.

    Parameters
    ----------
    signal : numpy.ndarray, shape (n, H, W), float32
        Noise-free windows (any positive scale), H = W >= 64; the output is the central
        64 x 64 (the margin keeps the blur free of wrap-around).
    rng : numpy.random.Generator
    pixel_size : float
        Å per pixel of ``signal``.
    dose : numpy.ndarray, shape (n,), optional
        Electrons per pixel at the mean intensity (0 = noiseless).
    effects : float
        Multiplies every probability above (0: shot and read noise only).

    Returns
    -------
    numpy.ndarray, shape (n, 64, 64), float32
    """
    x = np.array(signal, dtype=np.float32)
    n, size = len(x), x.shape[-1]
    m = MODEL_WINDOW
    lo = (size - m) // 2
    if not 0.0 <= effects <= 1.0 / 0.6:
        raise ValueError(f"effects must be in [0, {1 / 0.6:.3g}], got {effects}")
    u = rng.random((9, n))  # effect j when u[j] < its probability times ``effects``
    u = u / effects if effects > 0 else np.full_like(u, np.inf)
    # mistilt / astigmatism: anisotropic Gaussian in Fourier space (window has a margin)
    sel = np.flatnonzero(u[0] < 0.5)
    if sel.size:
        ky = (scipy.fft.fftfreq(size) / pixel_size)[:, None].astype(np.float32)  # 1/Å
        kx = (scipy.fft.rfftfreq(size) / pixel_size)[None, :].astype(np.float32)
        th = rng.uniform(0, np.pi, sel.size).astype(np.float32)[:, None, None]
        s_long = rng.uniform(0.1, 1.0, sel.size).astype(np.float32)[:, None, None]
        s_short = rng.uniform(0.0, 0.25, sel.size).astype(np.float32)[:, None, None]
        ku = kx * np.cos(th) + ky * np.sin(th)
        kv = -kx * np.sin(th) + ky * np.cos(th)
        h = np.exp(np.float32(-2 * np.pi**2) * (s_long**2 * ku**2 + s_short**2 * kv**2))
        spec = scipy.fft.rfft2(x[sel], workers=-1) * h
        x[sel] = scipy.fft.irfft2(spec, s=(size, size), workers=-1)
    x = x[:, lo : lo + m, lo : lo + m].copy()
    mean = x.mean(axis=(1, 2), keepdims=True)
    std = x.std(axis=(1, 2), keepdims=True) + 1e-12
    sel = np.flatnonzero(u[1] < 0.5)
    if sel.size:
        f = _smooth_field(rng, sel.size, m, rng.uniform(4, 16, sel.size) / pixel_size)
        x[sel] *= np.clip(1 + rng.uniform(0, 0.4, sel.size)[:, None, None] * f, 0.2, None)
    sel = np.flatnonzero(u[2] < 0.6)
    if sel.size:
        f = _smooth_field(rng, sel.size, m, rng.uniform(3, 20, sel.size) / pixel_size)
        yy, xx = np.mgrid[0:m, 0:m] / m - 0.5
        g = rng.normal(0, 1, (2, sel.size))[:, :, None, None]
        ramp = g[0] * yy + g[1] * xx
        bg = f + ramp / (ramp.std(axis=(1, 2), keepdims=True) + 1e-12) * rng.random(
            (sel.size, 1, 1)
        )
        bg -= bg.min(axis=(1, 2), keepdims=True)
        bg /= bg.std(axis=(1, 2), keepdims=True) + 1e-12
        x[sel] += rng.uniform(0, 1.5, sel.size)[:, None, None] * std[sel] * bg
    sel = np.flatnonzero(u[3] < 0.3)
    if sel.size:
        pos = np.clip(x[sel], 0, None) / mean[sel]
        x[sel] = mean[sel] * pos ** rng.uniform(0.6, 1.6, sel.size)[:, None, None]
    # noise at the mean intensity's dose
    if dose is None:
        dose = np.exp(rng.uniform(math.log(5), math.log(5000), n))
        dose[rng.random(n) < 0.1] = 0.0
    dose = np.asarray(dose, dtype=np.float64)
    mean = x.mean(axis=(1, 2), keepdims=True)
    std = x.std(axis=(1, 2), keepdims=True) + 1e-12
    noisy = np.flatnonzero(dose > 0)
    if noisy.size:
        # Poisson counts; the normal approximation above 64 electrons per pixel (as the
        # renderer does)
        low = noisy[dose[noisy] < 64]
        high = noisy[dose[noisy] >= 64]
        if low.size:
            lam = np.clip(x[low], 0, None) / mean[low] * dose[low, None, None]
            x[low] = rng.poisson(lam) / dose[low, None, None] * mean[low]
        if high.size:
            rel = np.clip(x[high], 0, None) / mean[high]
            sd = np.sqrt(rel / dose[high, None, None].astype(np.float32))
            x[high] = (rel + sd * rng.standard_normal(rel.shape, dtype=np.float32)) * mean[high]
    read = rng.uniform(0, 0.05, n).astype(np.float32)[:, None, None] * mean
    x += read * rng.standard_normal(x.shape, dtype=np.float32)
    sel = np.flatnonzero(u[4] < 0.3)
    if sel.size:
        f = _smooth_field(rng, sel.size, m, rng.uniform(0.5, 1.5, sel.size))
        x[sel] += rng.uniform(0, 0.3, sel.size)[:, None, None] * std[sel] * f
    sel = np.flatnonzero(u[5] < 0.3)
    if sel.size:
        amp = rng.uniform(0, 0.3, sel.size)[:, None, None] * std[sel]
        x[sel] += amp * rng.standard_normal((sel.size, m, 1))
    sel = np.flatnonzero(u[6] < 0.35)
    if sel.size:
        f = rng.uniform(1.15, 1.8, sel.size)
        for i, fi in zip(sel, f):
            small = scipy.ndimage.zoom(
                scipy.ndimage.gaussian_filter(x[i], 0.5 * math.sqrt(fi**2 - 1)),
                1 / fi, order=1, grid_mode=False,
            )  # fmt: skip
            big = scipy.ndimage.zoom(small, fi, order=1, prefilter=False, grid_mode=False)
            out = np.empty((m, m))
            h, w = min(m, big.shape[0]), min(m, big.shape[1])
            out[:h, :w] = big[:h, :w]
            out[h:, :] = out[h - 1 : h, :]  # edge rows/columns lost to rounding
            out[:, w:] = out[:, w - 1 : w]
            x[i] = out
    sel = np.flatnonzero(u[7] < 0.3)
    if sel.size:
        lo_, hi_ = np.percentile(x[sel], [0.2, 99.8], axis=(1, 2))
        levels = rng.integers(16, 257, sel.size)
        span = (hi_ - lo_)[:, None, None] + 1e-12
        q = np.clip((x[sel] - lo_[:, None, None]) / span, 0, 1)
        x[sel] = np.round(q * (levels[:, None, None] - 1))
    return x.astype(np.float32)


#: CBED training patterns: shape (pixels) and calibration range (1/Å per pixel).
CBED_SHAPE = (128, 128)
CBED_PIXEL_RANGE = (0.03, 0.045)


_THICKNESS_GRID = np.geomspace(5.0, 500.0, 200)  # Å


class CbedGenerator:
    """Random kinematic CBED patterns (128 x 128) rendered by the C++ core.

    Parameters
    ----------
    seed : int
        Seed of the generator's random parameters and noise.
    tilt_mrad : float or None
        Crystal tilt off the zone axis (mrad) in a random direction; None = N(0, 0.5 mrad)
        per axis (the training spread).

    Examples
    --------
    >>> g = CbedGenerator(0)
    >>> pat, ps, cls, a, rot = g.sample(3)
    >>> pat.shape, pat.dtype, ps.shape
    ((3, 128, 128), dtype('float32'), (3,))
    """

    def __init__(self, seed: int, tilt_mrad: float | None = None) -> None:
        from ._cbed import G_DEPLETION, cbed_motif

        self.rng = np.random.default_rng(seed)
        self.tilt_mrad = tilt_mrad
        self.order = np.array([projected_cell(p, z).symmetry_order for p, z in ZONE_AXES])
        # reflections out to the pattern's corner at the coarsest calibration, largest a
        reach = max(G_DEPLETION, math.hypot(*CBED_SHAPE) / 2 * CBED_PIXEL_RANGE[1] + 0.3)
        gmax = math.ceil(reach * A_RANGE[1] * 1.1)
        motifs = [cbed_motif(p, z, gmax, 1) for p, z in ZONE_AXES]
        self.reflections = np.concatenate([m[0] for m in motifs])
        self.refl_offsets = np.cumsum([0] + [len(m[0]) for m in motifs]).astype(np.int64)
        self.atoms = np.concatenate([m[1] for m in motifs])
        self.atom_offsets = np.cumsum([0] + [len(m[1]) for m in motifs]).astype(np.int64)
        self.volumes = np.array([m[2] for m in motifs])
        # per class, the 24 shortest allowed reflections: |g| a and the geometric structure
        # factor |sum_j exp(2 pi i h . r_j)| (one element), for choosing the thickness
        self.strong = []
        for refl, atoms, _ in motifs:
            geo = np.abs(np.exp(2j * np.pi * refl[:, :3] @ atoms[:, :3].T).sum(axis=1))
            keep = np.flatnonzero(geo > 1e-6)[:24]
            self.strong.append((np.hypot(refl[keep, 3], refl[keep, 4]), geo[keep]))

    def _thickness(self, cls: int, a: float, z: int, sigma: float, kev: float) -> float:
        """Thickness (Å) giving the strongest disk-centre intensity log-uniform in
        0.01-0.3 (visible, and within the kinematic regime)."""
        from ._cbed import _gamma, electron_wavelength

        g_a, geo = self.strong[cls]
        g = g_a / a
        f = np.array([_core.imaging.moliere_scattering_factor(float(z), float(v)) for v in g])
        lam = electron_wavelength(kev)
        amp = lam * _gamma(kev) * f * np.exp(-2 * np.pi**2 * sigma**2 * g**2) * geo
        amp /= self.volumes[cls] * a**3  # pi / extinction distance, 1/Å
        target = math.exp(self.rng.uniform(math.log(0.01), math.log(0.3)))
        # peak intensity at the disk centres, Ewald curvature included: the thinnest T on
        # a grid that reaches the target (else the T of the highest peak)
        x = np.pi * 0.5 * lam * g**2  # pi s at a disk centre on the zone axis
        t = _THICKNESS_GRID[:, None]
        peak = (amp**2 * np.sin(x * t) ** 2 / x**2).max(axis=1)
        hit = np.flatnonzero(peak >= target)
        return float(_THICKNESS_GRID[hit[0]] if hit.size else _THICKNESS_GRID[np.argmax(peak)])

    def _tilt(self, rng: np.random.Generator) -> tuple[float, float]:
        """Crystal tilt off the zone axis (mrad, x and y) of one pattern."""
        if self.tilt_mrad is None:
            return tuple(rng.normal(0, 0.5, 2))
        phi = rng.uniform(0, 2 * math.pi)
        return (self.tilt_mrad * math.cos(phi), self.tilt_mrad * math.sin(phi))

    @renamed_parameters(rotation="rotation_deg")
    def sample(
        self,
        n: int,
        *,
        dose=None,
        classes=None,
        a=None,
        rotation_deg=None,
        thermal=None,
        atomic_number=None,
    ):
        """Draw ``n`` patterns.

        Parameters left as None are drawn per pattern: class uniform over the 12 classes,
        a ~ U(2.5, 5.4) Å, rotation ~ U(0, 360)°, thermal sigma ~ U(0.02, 0.12) Å, dose
        log-uniform 300-30000 e/pixel at the incident intensity (15% noiseless), Z uniform
        in 12-79; always random: calibration U(0.03, 0.045) 1/Å per pixel, beam energy
        U(100, 300) keV, convergence U(0.8, 2.5) mrad, thickness such that the strongest
        reflection's kinematic peak intensity at its disk centre (Ewald curvature
        included) is log-uniform in 0.01-0.3 (the thinnest such T in 5-500 Å), tilt
        N(0, 0.5 mrad) per axis (or ``tilt_mrad``), direct beam within ±4 px of the
        centre, background U(0, 0.01), read noise U(0, 0.003).

        Returns
        -------
        patterns : numpy.ndarray, shape (n, 128, 128), float32
        reciprocal_pixel_size : numpy.ndarray, shape (n,), 1/Å per pixel
        classes : numpy.ndarray, shape (n,), int
        a : numpy.ndarray, shape (n,), float64, Å
        rotation_deg : numpy.ndarray, shape (n,), float64, degrees
        """
        from ._cbed import G_DEPLETION, cbed_params

        rng = self.rng
        cls = rng.integers(0, len(ZONE_AXES), n) if classes is None else np.asarray(classes)
        a = rng.uniform(*A_RANGE, n) if a is None else np.asarray(a, dtype=float)
        rot = rng.uniform(0, 360, n) if rotation_deg is None else np.asarray(rotation_deg, float)
        thermal = rng.uniform(0.02, 0.12, n) if thermal is None else np.full(n, thermal)
        if dose is None:
            d = np.exp(rng.uniform(math.log(300), math.log(30000), n))
            d[rng.random(n) < 0.15] = 0.0
        else:
            d = np.full(n, float(dose))
        z = rng.integers(12, 80, n) if atomic_number is None else np.full(n, atomic_number)
        ps = rng.uniform(*CBED_PIXEL_RANGE, n)
        rows, cols = CBED_SHAPE
        reach = max(G_DEPLETION, math.hypot(rows, cols) / 2 * CBED_PIXEL_RANGE[1] + 0.3)
        params = np.empty((n, _core.imaging.CBED_N_PARAMS))
        for i in range(n):
            center = np.array([0.5 * (cols - 1), 0.5 * (rows - 1)]) + rng.uniform(-4, 4, 2)
            kev = rng.uniform(100, 300)
            params[i] = cbed_params(
                a[i],
                rot[i],
                ps[i],
                tuple(center),
                beam_energy_keV=kev,
                convergence_mrad=rng.uniform(0.8, 2.5),
                thickness_nm=self._thickness(cls[i], a[i], z[i], thermal[i], kev) / 10.0,
                thermal_sigma=thermal[i],
                tilt_mrad=self._tilt(rng),
                background=rng.uniform(0, 0.01),
                dose=d[i],
                read_noise=rng.uniform(0, 0.003),
                g_max=reach,
            )
        atoms = self.atoms.copy()
        seed = int(rng.integers(0, 2**63))
        out = np.empty((n, rows, cols), np.float32)
        # one element per pattern: render each class group with its own Z table
        for zi in np.unique(z):
            sel = np.flatnonzero(z == zi)
            atoms[:, 3] = zi
            out[sel] = _core.imaging.render_cbed(
                self.reflections, self.refl_offsets, atoms, self.atom_offsets, self.volumes,
                cls[sel].astype(np.int64), params[sel], rows, cols, seed + int(zi), np.float32,
            )  # fmt: skip
        return out, ps, cls, a, rot
