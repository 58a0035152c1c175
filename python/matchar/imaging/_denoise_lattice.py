"""The reciprocal lattice of one region of an atomic-resolution image, as
:func:`denoise` estimates it: the noise floor of the Fourier transform, the reflections
(h, k) that stand above it in a Gaussian window, the least-squares basis refined on their
peaks, and the superlattice check (a doubled or tripled cell whose extra reflections are
significant)."""

from __future__ import annotations

import math

import numpy as np
from scipy import fft as sfft


def _noise_floor(F: np.ndarray, shape: tuple[int, int]) -> float:
    """Mean |F|² of white noise, from the median power at high spatial frequency
    (|k| > 0.35 cycles/pixel; the median of an exponential variable is ln 2 × mean)."""
    ky = sfft.fftfreq(shape[0])[:, None]
    kx = sfft.rfftfreq(shape[1])[None, :]  # F is the half-plane of a real transform
    high = ky**2 + kx**2 > 0.35**2
    if high.sum() < 16:
        high = np.ones(F.shape, dtype=bool)
        high[0, 0] = False
    power = F.real[high] ** 2 + F.imag[high] ** 2
    return float(np.median(power)) / math.log(2.0)


def _candidates(B: np.ndarray) -> np.ndarray:
    """Integer (h, k) != (0, 0) whose reciprocal-lattice point lies inside the band
    |g_y|, |g_x| < 0.5 cycles/pixel; rows (h, k, g_y, g_x)."""
    limit = math.ceil(0.75 / min(np.linalg.norm(B[0]), np.linalg.norm(B[1])))
    limit = min(limit, 64)
    h, k = np.meshgrid(np.arange(-limit, limit + 1), np.arange(-limit, limit + 1))
    hk = np.stack([h.ravel(), k.ravel()], axis=1)
    hk = hk[(hk != 0).any(axis=1)]
    g = hk @ B
    keep = (np.abs(g) < 0.5).all(axis=1)
    return np.concatenate([hk[keep], g[keep]], axis=1).astype(np.float64)


class _Window:
    """Gaussian window of width ``sigma_k`` (cycles/pixel) around a frequency, cut at
    4 sigma, on the DFT grid of ``shape`` (wrapped indices)."""

    def __init__(self, shape: tuple[int, int], sigma_k: float) -> None:
        self.shape = shape
        self.sigma_k = sigma_k
        self.ry = max(1, math.ceil(4 * sigma_k * shape[0]))
        self.rx = max(1, math.ceil(4 * sigma_k * shape[1]))

    def at(
        self, g: np.ndarray, cut: float = 1.0
    ) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:
        """Wrapped indices of the box around ``g`` (half sides ``cut`` × 4 sigma) and the
        Gaussian on it."""
        P, Q = self.shape
        cy, cx = g[0] * P, g[1] * Q
        ry, rx = math.ceil(cut * self.ry), math.ceil(cut * self.rx)
        iy = np.arange(round(cy) - ry, round(cy) + ry + 1)
        ix = np.arange(round(cx) - rx, round(cx) + rx + 1)
        dy = (iy - cy) / P
        dx = (ix - cx) / Q
        w = np.exp(-(dy[:, None] ** 2 + dx[None, :] ** 2) / (2 * self.sigma_k**2))
        return np.ix_(iy % P, ix % Q), w

    def background(self, F: np.ndarray, g: np.ndarray, floor: float) -> float:
        """Mean |F|² of the smooth spectrum under the peak at ``g``: from the median of
        the ring 5–7 sigma around it (robust to a neighbouring peak; the median of an
        exponential variable is ln 2 × its mean), never below the white-noise ``floor``."""
        idx, G = self.at(g, cut=7 / 4)
        ring = (G < math.exp(-12.5)) & (G > math.exp(-24.5))
        if ring.sum() < 8:
            return floor
        power = F[idx].real[ring] ** 2 + F[idx].imag[ring] ** 2
        return max(floor, float(np.median(power)) / math.log(2.0))


def _reflections(
    F: np.ndarray,
    window: _Window,
    B: np.ndarray,
    N0: float,
    area: float,
    z: float = 4.0,
    max_order: float | None = None,
    powers: list[float] | None = None,
    skip_lattice: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Wiener weights of the reciprocal-lattice points (harmonics included) of one region.

    For every candidate g: the signal power through the window, ``S = Σ G² (|F|² − N)``,
    against the noise power through it, ``N Σ G²``, where N is the Poisson noise floor
    ``N0`` or the smooth spectrum around g when higher (a peak must stand out of its
    surroundings); kept when S exceeds ``z`` standard deviations of its noise-only value
    (``N sqrt(Σ G⁴ PQ / area)``: the spectrum of a region of ``area`` pixels zero-padded
    to P × Q is smooth over PQ / area bins, so fewer of them are independent), with
    weight S / (S + N Σ G²).
    Returns (rows (h, k, g_y, g_x), weights); the signal powers S are appended to
    ``powers`` when given."""
    cand = _candidates(B)
    if max_order is not None:  # |g| within max_order times the longest basis vector
        cand = cand[np.hypot(cand[:, 2], cand[:, 3]) <= max_order * np.linalg.norm(B, axis=1).max()]
    if skip_lattice is not None:  # only points off the lattice of these real vectors
        coords = cand[:, 2:] @ skip_lattice.T
        cand = cand[np.abs(coords - np.round(coords)).max(axis=1) > 0.2]
    P, Q = window.shape
    rows, weights = [], []
    for row in cand:
        idx, G = window.at(row[2:])
        G2 = G * G
        N = window.background(F, row[2:], N0)
        S = float((G2 * (F[idx].real ** 2 + F[idx].imag ** 2 - N)).sum())
        if S <= z * N * math.sqrt(float((G2 * G2).sum()) * P * Q / area):
            continue
        rows.append(row)
        weights.append(S / (S + N * float(G2.sum())))
        if powers is not None:
            powers.append(S)
    if not rows:
        return np.zeros((0, 4)), np.zeros(0)
    return np.array(rows), np.array(weights)


def _fit_basis(rows: np.ndarray, weights: np.ndarray, measured: np.ndarray, B: np.ndarray):
    """Reciprocal basis fitted (weighted least squares) to the measured reflections;
    ``B`` unchanged when fewer than three non-collinear peaks are available or the fit
    moves it by more than 15 % (then it is not a refinement of this lattice)."""
    if len(rows) < 3:
        return B
    hk = rows[:, :2]
    if np.linalg.matrix_rank(hk) < 2:
        return B
    w = np.sqrt(weights)[:, None]
    fitted, *_ = np.linalg.lstsq(hk * w, measured * w, rcond=None)
    if np.abs(fitted - B).max() > 0.15 * np.linalg.norm(B, axis=1).min():
        return B
    return fitted


def _fringe_frequency(
    F: np.ndarray, window: _Window, g: np.ndarray, mask: np.ndarray
) -> list[float]:
    """Frequency (cycles/pixel) of the lattice fringe near ``g``, from the mean phase
    gradient of the demodulated fringe over ``mask``. The fringe is band-limited to the
    window, so it is synthesised on a coarse grid from the window's box alone (as in
    geometric phase analysis), not on the full padded frame."""
    P, Q = F.shape
    H, W = mask.shape
    (iy, ix), G = window.at(g)
    ny, nx = G.shape
    sy, sx = sfft.next_fast_len(2 * ny), sfft.next_fast_len(2 * nx)
    box = np.zeros((sy, sx), dtype=np.complex128)
    box[:ny, :nx] = F[iy, ix] * G
    # bin j of the box is frequency (iy[0] + j) / P: demodulate by the box's first bin
    z = sfft.ifft2(box)
    step_y, step_x = P / sy, Q / sx  # pixels per coarse sample
    uy = np.arange(sy) * step_y
    ux = np.arange(sx) * step_x
    inside = np.zeros((sy, sx), dtype=bool)
    ky, kx = uy < H, ux < W
    inside[np.ix_(ky, kx)] = mask[np.ix_(uy[ky].astype(np.int64), ux[kx].astype(np.int64))]
    pair_y = inside[1:, :] & inside[:-1, :]
    pair_x = inside[:, 1:] & inside[:, :-1]
    dy = np.angle((z[1:, :] * np.conj(z[:-1, :]))[pair_y].sum()) / (2 * math.pi * step_y)
    dx = np.angle((z[:, 1:] * np.conj(z[:, :-1]))[pair_x].sum()) / (2 * math.pi * step_x)
    first_y = round(g[0] * P) - window.ry
    first_x = round(g[1] * Q) - window.rx
    return [first_y / P + dy, first_x / Q + dx]


def _refine_basis(
    F: np.ndarray, B: np.ndarray, N0: float, sigma_k: float, mask: np.ndarray, area: float
) -> np.ndarray:
    """Reciprocal basis refined by geometric phase analysis on the region's spectrum.

    The lattice vectors from the autocorrelation are good to about a per cent, which
    misplaces harmonics by more than the filter's window. For the strongest reflections
    (a window wide enough to hold the true peak), the phase of the complex lattice
    fringe ``ifft(F G_g) exp(-2πi g·x)`` drifts by ``2π Δg·x``: its mean gradient over
    the region (amplitude-weighted) gives the true ``g + Δg``, free of the sampling bias
    of peak centroids; ``B`` is then fitted to all of them. Two passes, wide then narrow.
    """
    P, Q = F.shape
    for frac, reach in ((0.1, 1.5), (0.05, 2.5)):
        b = float(np.linalg.norm(B, axis=1).min())
        window = _Window((P, Q), max(frac * b, sigma_k))
        powers: list[float] = []
        rows, _ = _reflections(F, window, B, N0, area, max_order=reach, powers=powers)
        if len(rows) < 3:
            return B
        # the strongest by power (Wiener weights saturate near 1 at high dose), weighted
        # by power: a fringe's phase is as precise as its amplitude is large
        S = np.array(powers)
        strongest = np.argsort(-S, kind="stable")[:12]
        rows, S = rows[strongest], S[strongest]
        measured = [_fringe_frequency(F, window, row[2:], mask) for row in rows]
        B = _fit_basis(rows, S / S.max(), np.array(measured), B)
    return B


# Integer matrices T of the sublattices of index 2 and 3 (new vectors = T @ old vectors,
# up to a change of basis): every superlattice a doubled or tripled cell can make.
_SUPERCELLS = [
    np.array(t, dtype=np.float64)
    for t in (
        [[2, 0], [0, 1]], [[1, 0], [0, 2]], [[1, 1], [0, 2]],
        [[3, 0], [0, 1]], [[1, 0], [0, 3]], [[1, 1], [0, 3]], [[1, 2], [0, 3]],
    )
]  # fmt: skip


def _superlattice(
    F: np.ndarray, window: _Window, B: np.ndarray, N0: float, area: float
) -> np.ndarray:
    """The reciprocal basis of the true lattice when the given one is a sub-cell.

    The segmentation's lattice vectors come from the strongest autocorrelation peaks,
    which can span a sub-cell of the real periodicity (e.g. an ABAB-stacked band whose
    rows repeat every second row). Each supercell of index 2 or 3 is tried; it is
    adopted when it adds at least two pairs of significant reflections between the
    points of the given lattice holding at least 5 % of the lattice's signal power (weaker
    ones are leakage from a neighbouring lattice); the one adding the most power wins."""
    V = np.linalg.inv(B).T
    reach = 2.5 * float(np.linalg.norm(B, axis=1).max())  # low orders tell a supercell
    base: list[float] = []
    _reflections(F, window, B, N0, area, max_order=2.5, powers=base)
    best, best_power = B, 0.05 * sum(base)
    for T in _SUPERCELLS:
        B2 = np.linalg.inv(T @ V).T
        added: list[float] = []
        order = reach / float(np.linalg.norm(B2, axis=1).max())
        rows, _ = _reflections(
            F, window, B2, N0, area, max_order=order, powers=added, skip_lattice=V
        )
        if len(rows) >= 4 and sum(added) > best_power:
            best, best_power = B2, sum(added)
    return best
