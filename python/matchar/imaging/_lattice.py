"""Lattice analysis of segmented regions: reduced lattice vectors and misorientation."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike
from scipy import ndimage

from .._validation import check_float, check_int
from ._correlation import as_image, finite_rescaled

_NAN_BASIS = np.full((2, 2), np.nan)


def _masked_autocorrelation(img: np.ndarray, mask: np.ndarray, L: int) -> np.ndarray:
    """Normalised autocorrelation of ``img`` over ``mask`` for shifts within ±L.

    ac[L + dy, L + dx] = mean over pixel pairs (p, p + (dy, dx)) both in the mask of
    f(p) f(p + s), f = image minus its mean over the mask, divided by the value at s = 0.
    Shifts with fewer than a quarter of the pairs of s = 0 are set to 0.
    """
    shape = (img.shape[0] + L + 1, img.shape[1] + L + 1)
    idx = np.ix_(np.arange(-L, L + 1) % shape[0], np.arange(-L, L + 1) % shape[1])

    def autocorrelation(x: np.ndarray) -> np.ndarray:
        # one transform alive at a time: the peak stays near 3 image-sized buffers
        F = np.fft.rfft2(x, s=shape)
        power = F.real**2
        power += F.imag**2
        del F
        return np.fft.irfft2(power, s=shape)[idx]

    num = autocorrelation(np.where(mask, img - img[mask].mean(), 0.0))
    den = autocorrelation(mask.astype(np.float64))
    n0 = den[L, L]
    ac = np.where(den > 0.25 * n0, num / np.maximum(den, 1e-300), 0.0)
    return ac / ac[L, L] if ac[L, L] > 0 else ac * 0.0


def _refine(ac: np.ndarray, i: int, j: int) -> tuple[float, float]:
    """Sub-pixel peak position by a parabola through three points along each axis."""

    def offset(fm: float, f0: float, fp: float) -> float:
        d = fm - 2 * f0 + fp
        return 0.0 if d >= 0 else float(np.clip(0.5 * (fm - fp) / d, -0.5, 0.5))

    dy = offset(ac[i - 1, j], ac[i, j], ac[i + 1, j]) if 0 < i < ac.shape[0] - 1 else 0.0
    dx = offset(ac[i, j - 1], ac[i, j], ac[i, j + 1]) if 0 < j < ac.shape[1] - 1 else 0.0
    return i + dy, j + dx


def _reduce(v1: np.ndarray, v2: np.ndarray) -> np.ndarray:
    """Lagrange-Gauss reduction: the two shortest vectors of the lattice (v1, v2)."""
    for _ in range(100):
        if v2 @ v2 < v1 @ v1:
            v1, v2 = v2, v1
        mu = round(float(v1 @ v2) / float(v1 @ v1))
        if mu == 0:
            break
        v2 = v2 - mu * v1
    if v1[0] < 0 or (v1[0] == 0 and v1[1] < 0):
        v1 = -v1
    if v1[0] * v2[1] - v1[1] * v2[0] < 0:  # right-handed in (dy, dx)
        v2 = -v2
    return np.stack([v1, v2])


def lattice_vectors(
    image: ArrayLike, mask: ArrayLike | None = None, max_length: int = 40
) -> np.ndarray:
    """The two shortest lattice vectors of a crystalline region, in pixels.

    From the peaks of the autocorrelation of the image restricted to ``mask``
    (computed by FFT with the mask's own pair counts, so an irregular region is
    handled): local maxima at least 2 px from the origin and at least half as high as
    the highest one are candidates; the shortest candidate and the shortest one not
    within 20° of its direction span the lattice; each is refined to sub-pixel precision
    with parabolas and the pair is Lagrange-Gauss reduced. The result does not depend on
    the image's scale (a region whose largest ``|value|`` is outside ``2**±200`` is first
    scaled exactly by a power of two).

    Parameters
    ----------
    image : array_like, shape (H, W)
        Intensity image.
    mask : array_like of bool, shape (H, W), optional
        The region; default the whole image.
    max_length : int, default 40
        Longest lattice vector searched for, in pixels.

    Returns
    -------
    vectors : numpy.ndarray, shape (2, 2), float64
        Rows ``(dy, dx)``: ``|v1| <= |v2|``, ``v1`` with ``dy > 0`` (or ``dy == 0``,
        ``dx > 0``), ``v2`` on its counter-clockwise side in (dy, dx) axes. NaN when the
        region is too small (fewer than ``max_length²`` pixels) or shows no lattice.

    Raises
    ------
    ValueError
        NaN or infinite pixels inside the region, a mask of another shape, or
        ``max_length`` not an integer >= 3.

    Example
    -------
    >>> import numpy as np, matchar as mc
    >>> y, x = np.mgrid[:128, :128]
    >>> image = np.cos(2 * np.pi * x / 10) + np.cos(2 * np.pi * y / 10)
    >>> np.round(np.abs(mc.imaging.lattice_vectors(image)), 1).tolist()
    [[0.0, 10.0], [10.0, 0.0]]
    """
    img = as_image(image)
    L = check_int(max_length, "max_length", low=3)
    if mask is None:
        m = np.ones(img.shape, dtype=bool)
    else:
        m = np.asarray(mask, dtype=bool)
        if m.shape != img.shape:
            raise ValueError(f"mask must have the image's shape {img.shape}, got {m.shape}")
    if not m.any():
        return _NAN_BASIS.copy()
    region = finite_rescaled(img[m], "image (inside the mask)")
    if m.sum() < L * L:
        return _NAN_BASIS.copy()
    img = np.zeros(img.shape, dtype=np.float64)
    img[m] = region
    ac = _masked_autocorrelation(img, m, L)
    peaks = (ndimage.maximum_filter(ac, size=3, mode="constant", cval=-np.inf) == ac) & (ac > 0)
    ii, jj = np.nonzero(peaks)
    vec = np.stack([ii - L, jj - L], axis=1).astype(np.float64)
    r = np.hypot(vec[:, 0], vec[:, 1])
    keep = r >= 2.0
    if keep.sum() < 2:
        return _NAN_BASIS.copy()
    ii, jj, vec, r = ii[keep], jj[keep], vec[keep], r[keep]
    height = ac[ii, jj]
    strong = height >= 0.5 * height.max()
    ii, jj, r = ii[strong], jj[strong], r[strong]
    order = np.argsort(r, kind="stable")
    refined = np.array([_refine(ac, ii[k], jj[k]) for k in order]) - L
    v1 = refined[0]
    for v in refined[1:]:
        sin = abs(v1[0] * v[1] - v1[1] * v[0]) / (np.linalg.norm(v1) * np.linalg.norm(v))
        if sin > math.sin(math.radians(20)):
            return _reduce(v1, v)
    return _NAN_BASIS.copy()


def _basis(value: ArrayLike, name: str) -> np.ndarray:
    """A (2, 2) float64 basis (rows ``(dy, dx)``; four numbers in any shape accepted)."""
    expected = f"{name} must be a (2, 2) array of lattice vectors (rows (dy, dx))"
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{expected}, got {value!r}") from exc
    if arr.size != 4:
        raise ValueError(f"{expected}, got shape {arr.shape}")
    return arr.reshape(2, 2)


def misorientation_deg(a: ArrayLike, b: ArrayLike, tolerance: float = 0.1) -> float:
    """Smallest in-plane rotation (degrees) that maps lattice ``a`` onto lattice ``b``.

    Candidate rotations take a vector of ``±a1, ±a2`` onto a vector of ``±b1, ±b2`` of
    the same length (within ``tolerance``, relative); a candidate is accepted when the
    rotated basis of ``a`` is an integer, unimodular combination of ``b1, b2`` (every
    coefficient within ``tolerance`` of an integer). Rotations are therefore reported
    modulo the lattice's own symmetry (2-, 4- or 6-fold), and a mirror-related
    (twinned) lattice gives the rotation that relates the projected lattices.

    Parameters
    ----------
    a, b : array_like, shape (2, 2)
        Lattice vectors as rows ``(dy, dx)`` (any common unit), e.g. from
        :func:`lattice_vectors`.
    tolerance : float, default 0.1
        Relative length mismatch and distance from integer coefficients still accepted,
        in (0, 0.5].

    Returns
    -------
    float
        Degrees in ``[0, 180]``; NaN when a basis holds NaN or no rotation maps one
        lattice onto the other (e.g. different phases).

    Example
    -------
    >>> import matchar as mc
    >>> b = [[2.588, 9.659], [9.659, -2.588]]  # a square lattice turned by 15 degrees
    >>> round(mc.imaging.misorientation_deg([[0, 10], [10, 0]], b), 1)
    15.0
    """
    tolerance = check_float(tolerance, "tolerance", low=0.0, high=0.5, low_open=True)
    A = _basis(a, "a")
    B = _basis(b, "b")
    if not (np.isfinite(A).all() and np.isfinite(B).all()):
        return math.nan
    if abs(np.linalg.det(B)) < 1e-12 or abs(np.linalg.det(A)) < 1e-12:
        return math.nan
    B_inv = np.linalg.inv(B)
    za = A[:, 1] + 1j * A[:, 0]  # (dy, dx) as dx + i dy
    best = math.nan
    for va in np.concatenate([A, -A]):
        for vb in np.concatenate([B, -B]):
            na, nb = np.hypot(*va), np.hypot(*vb)
            if abs(na - nb) > tolerance * max(na, nb):
                continue
            theta = math.atan2(vb[0], vb[1]) - math.atan2(va[0], va[1])
            zr = za * complex(math.cos(theta), math.sin(theta))
            coeff = np.stack([zr.imag, zr.real], axis=1) @ B_inv
            if np.abs(coeff - np.round(coeff)).max() > tolerance:
                continue
            if abs(round(np.linalg.det(np.round(coeff)))) != 1:
                continue
            d = abs((math.degrees(theta) + 180.0) % 360.0 - 180.0)
            best = d if math.isnan(best) else min(best, d)
    return best
