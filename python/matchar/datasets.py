"""Synthetic data with known ground truth, for tests, documentation and demos.

Atomic-resolution STEM (HAADF) images are rendered from atomic-column models: every
projected column is a 2-D Gaussian of width ``sigma`` (pixels) and height given by its
relative intensity, on a constant ``background``. The detector is modelled by an
optional Poisson dose (electrons per pixel, on average), Gaussian read noise and scan
distortion: a random horizontal offset of every scan line (``scan_jitter``), a linear
sample drift during the frame (``drift``) and the flyback distortion at the start of
every line (``flyback``). Each generator returns the image and the ground-truth label of
every pixel; the labels are those of the object point each pixel actually saw, so they
are distorted exactly like the image.

Scan model: pixel ``(y, x)`` is recorded at time ``t = y + x / W`` (in line periods)
and images the object point

    X = x + jitter[y] + drift[1] · t + flyback[0] · exp(-x / flyback[1])
    Y = y + drift[0] · t

(pixels; ``jitter[y]`` ~ N(0, scan_jitter²) per line). ``drift`` is the sample drift in
pixels per scan line (a 1024-line frame with ``drift=(0.01, 0.02)`` is sheared by about
10 px vertically and 20 px horizontally); ``flyback = (amplitude, decay)`` is the
horizontal displacement, in pixels, left by the scan coils' settling after the flyback,
decaying exponentially over ``decay`` pixels along the line.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._validation import check_float, check_int

__all__ = ["bicrystal", "stacking_fault", "twin", "two_phase"]

_LATTICES = {
    # 2-D cells as rows (a1, a2) in (x, y) units of the spacing, plus the basis in
    # fractional coordinates.
    "square": (np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([[0.0, 0.0]])),
    "hexagonal": (np.array([[1.0, 0.0], [0.5, math.sqrt(3) / 2]]), np.array([[0.0, 0.0]])),
    # fcc viewed along [110]: centred rectangular, a x a/sqrt(2), spacing = a.
    "fcc110": (
        np.array([[1.0, 0.0], [0.0, 1 / math.sqrt(2)]]),
        np.array([[0.0, 0.0], [0.5, 0.5]]),
    ),
}


def _rotation(deg: float) -> np.ndarray:
    t = math.radians(deg)
    return np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])


def _lattice_columns(
    bounds: Sequence[float],
    lattice: str,
    spacing: float,
    rotation_deg: float,
    origin: Sequence[float],
    mirror_y: float | None = None,
) -> np.ndarray:
    """Column positions (N, 2) as (x, y) in pixels covering the object area
    ``bounds = (x0, x1, y0, y1)`` with a margin of 4 spacings."""
    if lattice not in _LATTICES:
        raise ValueError(f"lattice must be one of {sorted(_LATTICES)}, got {lattice!r}")
    cell, basis = _LATTICES[lattice]
    rot = _rotation(rotation_deg)
    vectors = (cell * spacing) @ rot.T  # rows a1, a2 in pixels
    x0, x1, y0, y1 = bounds
    ox, oy = float(origin[0]), float(origin[1])
    reach = max(math.hypot(cx - ox, cy - oy) for cx in (x0, x1) for cy in (y0, y1))
    reach += 4 * spacing
    area = abs(np.linalg.det(vectors))
    n = math.ceil(reach * max(np.linalg.norm(vectors, axis=1)) / area) + 2
    i, j = np.meshgrid(np.arange(-n, n + 1), np.arange(-n, n + 1), indexing="ij")
    ij = np.stack([i.ravel(), j.ravel()], axis=1).astype(np.float64)
    pos = np.concatenate([(ij + b) @ vectors for b in basis]) + np.array([ox, oy])
    if mirror_y is not None:
        pos[:, 1] = 2 * mirror_y - pos[:, 1]
    margin = 4 * spacing
    keep = (
        (pos[:, 0] > x0 - margin)
        & (pos[:, 0] < x1 + margin)
        & (pos[:, 1] > y0 - margin)
        & (pos[:, 1] < y1 + margin)
    )
    return pos[keep]


class _Scan:
    """Where every pixel of the scan looks on the object (see the module docstring)."""

    def __init__(self, shape, scan_jitter, drift, flyback, rng) -> None:
        H, W = shape
        if not (math.isfinite(scan_jitter) and scan_jitter >= 0):
            raise ValueError(f"scan_jitter must be >= 0 pixels, got {scan_jitter!r}")
        try:
            vy, vx = (float(v) for v in drift)
        except (TypeError, ValueError):
            raise ValueError(f"drift must be (dy, dx) pixels per line, got {drift!r}") from None
        try:
            amp, decay = (float(v) for v in flyback)
        except (TypeError, ValueError):
            raise ValueError(
                f"flyback must be (amplitude, decay) in pixels, got {flyback!r}"
            ) from None
        if not (math.isfinite(vy) and math.isfinite(vx)):
            raise ValueError(f"drift must be finite, got {drift!r}")
        if not (math.isfinite(amp) and decay > 0 and math.isfinite(decay)):
            raise ValueError(f"flyback must be (finite amplitude, decay > 0), got {flyback!r}")
        # Largest deviation of the scan's Jacobian from the identity: below 1/2 the
        # mapping is one-to-one and the column windows below stay small.
        self.k = abs(vx) + abs(vy) + (abs(vx) + abs(vy)) / W + abs(amp) / decay
        if self.k >= 0.5:
            raise ValueError(
                "drift and flyback too strong: |drift_y| + |drift_x| + |amplitude| / decay "
                f"must stay below 0.5, got {self.k:.3g}"
            )
        self.shape, self.vy, self.vx, self.amp, self.decay = (H, W), vy, vx, amp, decay
        self.jitter = rng.normal(0.0, scan_jitter, H) if scan_jitter else np.zeros(H)
        y, x = np.mgrid[:H, :W].astype(np.float64)
        self.X, self.Y = self._smooth(y, x)
        self.X += self.jitter[:, None]

    def _smooth(self, y: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        t = y + x / self.shape[1]
        X = x + self.vx * t
        if self.amp:  # x < 0 only occurs for columns outside the frame
            X = X + self.amp * np.exp(-np.maximum(x, 0.0) / self.decay)
        return X, y + self.vy * t

    def image_position(self, X: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixel (x, y) that sees object point (X, Y), jitter aside (fixed point)."""
        x, y = np.array(X, dtype=np.float64), np.array(Y, dtype=np.float64)
        if self.k == 0:
            return x, y
        for _ in range(40):  # contraction by k < 1/2 per step
            sx, sy = self._smooth(y, x)
            x -= sx - X
            y -= sy - Y
        return x, y

    def bounds(self) -> tuple[float, float, float, float]:
        return float(self.X.min()), float(self.X.max()), float(self.Y.min()), float(self.Y.max())


def _render(
    scan: _Scan, positions: np.ndarray, intensities: np.ndarray, sigma: float
) -> np.ndarray:
    """Sum of Gaussian columns as seen by the scan: pixel (y, x) samples the object at
    ``(scan.X[y, x], scan.Y[y, x])``."""
    H, W = scan.shape
    img = np.zeros((H, W))
    R = math.ceil(4 * sigma / (1 - scan.k) + np.abs(scan.jitter).max()) + (scan.k > 0)
    off = np.arange(-R, R + 1)
    px, py = scan.image_position(positions[:, 0], positions[:, 1])
    chunk = max(1, min(4096, (1 << 21) // len(off) ** 2))  # temporaries of ~16 MB
    for start in range(0, len(positions), chunk):
        pos = positions[start : start + chunk]
        amp = intensities[start : start + chunk]
        cy = np.round(py[start : start + chunk]).astype(np.int64)
        cx = np.round(px[start : start + chunk]).astype(np.int64)
        yy, xx = np.broadcast_arrays(
            cy[:, None, None] + off[None, :, None], cx[:, None, None] + off[None, None, :]
        )
        inside = (yy >= 0) & (yy < H) & (xx >= 0) & (xx < W)
        yc, xc = np.clip(yy, 0, H - 1), np.clip(xx, 0, W - 1)
        dx = scan.X[yc, xc] - pos[:, 0, None, None]
        dy = scan.Y[yc, xc] - pos[:, 1, None, None]
        val = amp[:, None, None] * np.exp(-(dx * dx + dy * dy) / (2 * sigma * sigma))
        np.add.at(img, (yy[inside], xx[inside]), val[inside])
    return img


def _detector(
    clean: np.ndarray, dose: float | None, noise: float, rng: np.random.Generator
) -> np.ndarray:
    img = clean
    scale = 1.0
    if dose is not None:
        dose = check_float(dose, "dose (electrons per pixel)", low=0.0, high=1e15, low_open=True)
        scale = dose / clean.mean()
        img = rng.poisson(clean * scale).astype(np.float64)
    noise = check_float(noise, "noise", low=0.0, high=1e6)
    if noise:
        img = img + rng.normal(0.0, noise * scale, clean.shape)
    return img


def _check_common(
    shape: Sequence[int], spacing: float, sigma: float | None, scan_jitter: float = 0.0
) -> tuple:
    try:
        items = () if isinstance(shape, (str, bytes)) else tuple(shape)
    except TypeError:
        items = ()
    if len(items) != 2:
        raise ValueError(f"shape must be two sides >= 8 pixels, got {shape!r}")
    shape_t = tuple(check_int(v, "shape (sides in pixels)", low=8) for v in items)
    if shape_t[0] * shape_t[1] > 1 << 28:
        raise MemoryError(f"shape {shape!r} is too large (more than 2^28 pixels)")
    spacing = check_float(spacing, "spacing (pixels)", low=1.0, high=1e6, low_open=True)
    sig = 0.18 * spacing if sigma is None else float(sigma)
    if sigma is not None:
        sig = check_float(sigma, "sigma (pixels, at most spacing)", low=0.0, high=spacing,
                          low_open=True)  # fmt: skip
    check_float(scan_jitter, "scan_jitter (pixels, at most spacing)", low=0.0, high=spacing)
    return shape_t, sig


def _check_generator_args(seed: Any, background: Any, **angles: Any) -> None:
    """The arguments every generator shares: seed, background and angles/positions."""
    check_int(seed, "seed", low=0, high=None, allow_none=True)
    check_float(background, "background", low=0.0, high=1e6)
    for name, value in angles.items():
        check_float(value, name, low=-1e6, high=1e6)


def _finish(scan, rng, positions, intensities, sigma, background, dose, noise):
    clean = background + _render(scan, positions, intensities, sigma)
    return _detector(clean, dose, noise, rng)


def _side(angle_deg, point):
    """0/1 by the side of a line through ``point`` (x, y) at ``angle_deg``."""
    t = math.radians(angle_deg)
    normal = np.array([math.sin(t), -math.cos(t)])

    def side(xy: np.ndarray) -> np.ndarray:
        return ((xy - np.asarray(point)) @ normal > 1e-9).astype(np.int64)

    return side


def _object_points(scan: _Scan) -> np.ndarray:
    return np.stack([scan.X.ravel(), scan.Y.ravel()], axis=1)


def bicrystal(
    misorientation_deg: float = 15.0,
    shape: Sequence[int] = (256, 256),
    spacing: float = 10.0,
    *,
    lattice: str = "square",
    rotation_deg: float = 0.0,
    boundary_angle_deg: float = 90.0,
    boundary_position: float = 0.5,
    sigma: float | None = None,
    background: float = 0.1,
    dose: float | None = None,
    noise: float = 0.0,
    scan_jitter: float = 0.0,
    drift: tuple[float, float] = (0.0, 0.0),
    flyback: tuple[float, float] = (0.0, 10.0),
    seed: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """A bicrystal: two grains of one lattice, rotated by ``misorientation_deg``.

    Parameters
    ----------
    misorientation_deg : float, default 15
        In-plane rotation of grain 1 relative to grain 0, in degrees.
    shape : (int, int), default (256, 256)
        Image shape (H, W) in pixels: sides >= 8, at most 2**28 pixels.
    spacing : float, default 10
        Lattice constant in pixels, in (1, 1e6].
    lattice : {"square", "hexagonal", "fcc110"}, default "square"
        Projected lattice (``"fcc110"``: fcc along [110], centred a × a/√2 cell).
    rotation_deg : float, default 0
        Rotation of grain 0, in degrees.
    boundary_angle_deg : float, default 90
        Direction of the (straight) boundary, in degrees from the x axis; 90 is vertical.
    boundary_position : float, default 0.5
        Where the boundary crosses the horizontal mid-line, as a fraction of the width.
    sigma : float, optional
        Width of a column in pixels, in (0, spacing]; default ``0.18 * spacing``.
    background : float, default 0.1
        Constant background, relative to a column height of 1, in [0, 1e6].
    dose : float, optional
        Mean electrons per pixel, in (0, 1e15]; the image is then Poisson counts.
        ``None``: noiseless.
    noise : float, default 0
        Gaussian noise standard deviation, relative to a column height, in [0, 1e6].
    scan_jitter : float, default 0
        Standard deviation in pixels of a random horizontal shift of every scan line,
        in [0, spacing].
    drift : (float, float), default (0, 0)
        Sample drift ``(dy, dx)`` in pixels per scan line (see the module docstring).
    flyback : (float, float), default (0, 10)
        ``(amplitude, decay)`` in pixels: horizontal displacement
        ``amplitude · exp(-x / decay)`` at the start of every line.
        ``|drift[0]| + |drift[1]| + |amplitude| / decay`` must stay below 0.5.
    seed : int, optional
        Seed of the random generator (noise, dose, jitter), >= 0.

    Returns
    -------
    image : numpy.ndarray, shape (H, W), float64
        The simulated HAADF image (counts when ``dose`` is given).
    labels : numpy.ndarray, shape (H, W), int64
        0 for grain 0 (left of a vertical boundary), 1 for grain 1.

    Example
    -------
    >>> from matchar import datasets
    >>> image, labels = datasets.bicrystal(20.0, shape=(128, 128), dose=50, seed=0)
    >>> image.shape, sorted(set(labels.ravel().tolist()))
    ((128, 128), [0, 1])
    """
    shape_t, sig = _check_common(shape, spacing, sigma, scan_jitter)
    _check_generator_args(
        seed,
        background,
        misorientation_deg=misorientation_deg,
        rotation_deg=rotation_deg,
        boundary_angle_deg=boundary_angle_deg,
        boundary_position=boundary_position,
    )
    H, W = shape_t
    rng = np.random.default_rng(seed)
    scan = _Scan(shape_t, scan_jitter, drift, flyback, rng)
    side = _side(boundary_angle_deg, (boundary_position * W, H / 2))
    flip = int(side(np.array([[0.0, H // 2]]))[0])  # grain 0 holds the left mid-point
    labels = (side(_object_points(scan)) ^ flip).reshape(shape_t)
    centre = (W / 2, H / 2)
    pos = []
    for grain, rot in ((0, rotation_deg), (1, rotation_deg + misorientation_deg)):
        p = _lattice_columns(scan.bounds(), lattice, spacing, rot, centre)
        pos.append(p[(side(p) ^ flip) == grain])
    pos = np.concatenate(pos)
    image = _finish(scan, rng, pos, np.ones(len(pos)), sig, background, dose, noise)
    return image, labels


def twin(
    shape: Sequence[int] = (256, 256),
    spacing: float = 16.0,
    *,
    lamella: tuple[float, float] = (0.35, 0.65),
    sigma: float | None = None,
    background: float = 0.1,
    dose: float | None = None,
    noise: float = 0.0,
    scan_jitter: float = 0.0,
    drift: tuple[float, float] = (0.0, 0.0),
    flyback: tuple[float, float] = (0.0, 10.0),
    seed: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """A Σ3 twin lamella in an fcc crystal viewed along [110].

    The matrix is fcc along [110] (centred rectangular cell ``spacing`` × ``spacing/√2``)
    oriented so that the edge-on (1-11) twin plane is horizontal; inside the horizontal
    lamella the crystal is its mirror image across that plane (coherent twin).

    Parameters
    ----------
    shape : (int, int), default (256, 256)
        Image shape (H, W) in pixels.
    spacing : float, default 16
        fcc lattice constant a in pixels.
    lamella : (float, float), default (0.35, 0.65)
        Top and bottom of the twin lamella as fractions of the height.
    sigma, background, dose, noise, scan_jitter, drift, flyback, seed
        As in :func:`bicrystal`.

    Returns
    -------
    image : numpy.ndarray, shape (H, W), float64
    labels : numpy.ndarray, shape (H, W), int64
        1 inside the lamella (twin), 0 in the matrix.

    Example
    -------
    >>> from matchar import datasets
    >>> image, labels = datasets.twin(shape=(128, 128), seed=0)
    >>> float(labels.mean()) > 0.2
    True
    """
    shape_t, sig = _check_common(shape, spacing, sigma, scan_jitter)
    _check_generator_args(seed, background)
    H, W = shape_t
    top, bottom = (float(f) * H for f in lamella)
    if not 0 <= top < bottom <= H:
        raise ValueError(f"lamella must be two increasing fractions in [0, 1], got {lamella!r}")
    # Both interfaces are coherent (1-11) mirror planes: the bottom one is snapped to the
    # nearest plane (spacing a/sqrt(3)) and the matrix below is the lamella mirrored
    # across it, i.e. the upper matrix translated by 2 (bottom - top).
    d111 = spacing / math.sqrt(3)
    bottom = top + max(1, round((bottom - top) / d111)) * d111
    rng = np.random.default_rng(seed)
    scan = _Scan(shape_t, scan_jitter, drift, flyback, rng)
    bounds = scan.bounds()
    # The trace of (1-11) in the [110] projection runs at -35.26 deg from [001].
    rot = math.degrees(math.atan(1 / math.sqrt(2)))
    upper = _lattice_columns(bounds, "fcc110", spacing, rot, (W / 2, top))
    mirrored = _lattice_columns(bounds, "fcc110", spacing, rot, (W / 2, top), mirror_y=top)
    lower = _lattice_columns(bounds, "fcc110", spacing, rot, (W / 2, 2 * bottom - top))
    pos = np.concatenate(
        [
            upper[upper[:, 1] < top - 1e-6],
            mirrored[(mirrored[:, 1] >= top - 1e-6) & (mirrored[:, 1] <= bottom + 1e-6)],
            lower[lower[:, 1] > bottom + 1e-6],
        ]
    )
    labels = ((scan.Y >= top) & (scan.Y < bottom)).astype(np.int64)
    image = _finish(scan, rng, pos, np.ones(len(pos)), sig, background, dose, noise)
    return image, labels


def stacking_fault(
    shape: Sequence[int] = (256, 256),
    spacing: float = 10.0,
    *,
    band: tuple[float, float] = (0.4, 0.6),
    sigma: float | None = None,
    background: float = 0.1,
    dose: float | None = None,
    noise: float = 0.0,
    scan_jitter: float = 0.0,
    drift: tuple[float, float] = (0.0, 0.0),
    flyback: tuple[float, float] = (0.0, 10.0),
    seed: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Close-packed rows stacked ABC (fcc) with a band of ABAB (hcp) stacking faults.

    A schematic projection of close-packed planes seen edge-on: horizontal rows of
    columns ``spacing`` apart, rows ``spacing·√(2/3)`` apart, each row shifted by
    ``spacing/3`` times its stacking position (A=0, B=1, C=2). Outside the band the
    sequence is ABCABC…, inside it ABAB… (a dense band of intrinsic faults, i.e. a thin
    hcp lamella).

    Parameters
    ----------
    shape : (int, int), default (256, 256)
        Image shape (H, W) in pixels.
    spacing : float, default 10
        Distance between neighbouring columns of a row, in pixels.
    band : (float, float), default (0.4, 0.6)
        Top and bottom of the faulted band as fractions of the height.
    sigma, background, dose, noise, scan_jitter, drift, flyback, seed
        As in :func:`bicrystal`.

    Returns
    -------
    image : numpy.ndarray, shape (H, W), float64
    labels : numpy.ndarray, shape (H, W), int64
        1 in the faulted (hcp) band, 0 in the fcc matrix.

    Example
    -------
    >>> from matchar import datasets
    >>> image, labels = datasets.stacking_fault(shape=(128, 128), seed=0)
    >>> image.shape == labels.shape
    True
    """
    shape_t, sig = _check_common(shape, spacing, sigma, scan_jitter)
    _check_generator_args(seed, background)
    H, W = shape_t
    top, bottom = (float(f) * H for f in band)
    if not 0 <= top < bottom <= H:
        raise ValueError(f"band must be two increasing fractions in [0, 1], got {band!r}")
    h = spacing * math.sqrt(2 / 3)
    rng = np.random.default_rng(seed)
    scan = _Scan(shape_t, scan_jitter, drift, flyback, rng)
    bx0, bx1, by0, by1 = scan.bounds()
    rows = np.arange(min(-4, math.floor(by0 / h) - 4), max(int(H / h), math.ceil(by1 / h)) + 5)
    ys = rows * h + h / 2
    in_band = (ys >= top) & (ys < bottom)
    stack = np.empty(len(rows), dtype=np.int64)
    prev, first_band = 0, None
    for n in range(len(rows)):
        if n == 0:
            stack[n] = 0
        elif in_band[n]:
            if first_band is None:
                first_band = n
            # alternate between the last two positions: ...ABC|BCBC...
            stack[n] = stack[n - 2] if n - first_band >= 1 else (prev + 1) % 3
        else:
            stack[n] = (prev + 1) % 3
        prev = stack[n]
    xs = (
        np.arange(
            min(-4, math.floor(bx0 / spacing) - 4),
            max(int(W / spacing), math.ceil(bx1 / spacing)) + 5,
        )
        * spacing
    )
    pos = np.array(
        [(x + s * spacing / 3, y) for y, s in zip(ys, stack) for x in xs], dtype=np.float64
    )
    labels = np.zeros(shape_t, dtype=np.int64)
    if np.any(in_band):
        # pixels belong to the band between the first and last faulted row (half a row out)
        y0, y1 = ys[in_band].min() - h / 2, ys[in_band].max() + h / 2
        labels[(scan.Y >= y0) & (scan.Y < y1)] = 1
    image = _finish(scan, rng, pos, np.ones(len(pos)), sig, background, dose, noise)
    return image, labels


def two_phase(
    shape: Sequence[int] = (256, 256),
    spacings: tuple[float, float] = (10.0, 13.0),
    lattices: tuple[str, str] = ("square", "hexagonal"),
    *,
    intensities: tuple[float, float] = (1.0, 0.7),
    boundary_angle_deg: float = 90.0,
    boundary_position: float = 0.5,
    sigma: float | None = None,
    background: float = 0.1,
    dose: float | None = None,
    noise: float = 0.0,
    scan_jitter: float = 0.0,
    drift: tuple[float, float] = (0.0, 0.0),
    flyback: tuple[float, float] = (0.0, 10.0),
    seed: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Two phases with different lattices, spacings and column intensities.

    Parameters
    ----------
    shape : (int, int), default (256, 256)
        Image shape (H, W) in pixels.
    spacings : (float, float), default (10, 13)
        Lattice constants of phase 0 and phase 1, in pixels.
    lattices : (str, str), default ("square", "hexagonal")
        Lattices of the two phases (see :func:`bicrystal`).
    intensities : (float, float), default (1.0, 0.7)
        Column heights of the two phases (Z contrast).
    boundary_angle_deg, boundary_position, sigma, background, dose, noise
        As in :func:`bicrystal` (``sigma`` defaults to 0.18 × each phase's spacing).
    scan_jitter, drift, flyback, seed
        As in :func:`bicrystal`.

    Returns
    -------
    image : numpy.ndarray, shape (H, W), float64
    labels : numpy.ndarray, shape (H, W), int64
        0 for phase 0 (left of a vertical boundary), 1 for phase 1.

    Example
    -------
    >>> from matchar import datasets
    >>> image, labels = datasets.two_phase(shape=(128, 128), seed=0)
    >>> image.shape
    (128, 128)
    """
    try:
        pair = [float(v) for v in spacings]
    except (TypeError, ValueError):
        pair = []
    if len(pair) != 2:
        raise ValueError(f"spacings must be a pair of numbers (pixels), got {spacings!r}")
    for v in pair:
        _check_common(shape, v, None)
    shape_t, _ = _check_common(shape, min(pair), sigma, scan_jitter)
    _check_generator_args(
        seed,
        background,
        boundary_angle_deg=boundary_angle_deg,
        boundary_position=boundary_position,
        **{f"intensities[{i}]": v for i, v in enumerate(intensities)},
    )
    H, W = shape_t
    rng = np.random.default_rng(seed)
    scan = _Scan(shape_t, scan_jitter, drift, flyback, rng)
    side = _side(boundary_angle_deg, (boundary_position * W, H / 2))
    flip = int(side(np.array([[0.0, H // 2]]))[0])
    labels = (side(_object_points(scan)) ^ flip).reshape(shape_t)
    clean = np.full(shape_t, float(background))
    for phase in (0, 1):
        p = _lattice_columns(scan.bounds(), lattices[phase], spacings[phase], 0.0, (W / 2, H / 2))
        p = p[(side(p) ^ flip) == phase]
        sig = 0.18 * spacings[phase] if sigma is None else float(sigma)
        clean += _render(scan, p, np.full(len(p), float(intensities[phase])), sig)
    return _detector(clean, dose, noise, rng), labels
