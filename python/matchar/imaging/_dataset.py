"""Random simulated HAADF windows for training and evaluating the crystal classifier."""

from __future__ import annotations

import math

import numpy as np

from .. import _core
from ._features import MODEL_PIXEL_SIZE, MODEL_WINDOW
from ._simulate import ZONE_AXES, haadf_params, projected_cell

#: Lattice constants (Å) the classifier is trained on (AI-STEM/Yeo et al.'s range).
A_RANGE = (2.5, 5.4)


class WindowGenerator:
    """Random HAADF windows (64 x 64 at 0.25 Å per pixel) rendered by the C++ core.

    Parameters
    ----------
    seed : int
        Seed of the generator's random parameters and noise.

    Examples
    --------
    >>> g = WindowGenerator(0)
    >>> img, cls, a, rot = g.sample(4)
    >>> img.shape, img.dtype
    ((4, 64, 64), dtype('float32'))
    """

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.cells = [projected_cell(p, z) for p, z in ZONE_AXES]
        self.order = np.array([c.symmetry_order for c in self.cells])
        cols = [c.columns for c in self.cells]
        self.columns = np.concatenate(cols)
        self.offsets = np.concatenate([[0], np.cumsum([len(c) for c in cols])]).astype(np.int64)

    def sample(
        self,
        n: int,
        *,
        dose=None,
        distortion=None,
        classes=None,
        a=None,
        rotation=None,
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
        rotation : numpy.ndarray, shape (n,), float64, degrees
        """
        rng = self.rng
        n_classes = len(self.cells)
        cls = rng.integers(0, n_classes, n) if classes is None else np.asarray(classes)
        a = rng.uniform(*A_RANGE, n) if a is None else np.asarray(a, dtype=float)
        rot = rng.uniform(0, 360, n) if rotation is None else np.asarray(rotation, dtype=float)
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
                probe=rng.uniform(0.25, 0.45),
                thermal_sigma=thermal[i],
                background=rng.uniform(0, 0.4),
                dose=d[i],
                read_noise=rng.uniform(0, 0.08),
                jitter=dist[i] * a[i],
                drift=(sign[0] * dist[i] * ps, sign[1] * dist[i] * ps),
            )
        seed = int(rng.integers(0, 2**63))
        img = _core.imaging.render_haadf_f32(
            self.columns,
            self.offsets,
            cls.astype(np.int64),
            params,
            MODEL_WINDOW,
            MODEL_WINDOW,
            seed,
        )
        return img, cls, a, rot


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

    def _thickness(self, cls: int, a: float, z: int, sigma: float, kv: float) -> float:
        """Thickness (Å) giving the strongest disk-centre intensity log-uniform in
        0.01-0.3 (visible, and within the kinematic regime)."""
        from ._cbed import _gamma, electron_wavelength

        g_a, geo = self.strong[cls]
        g = g_a / a
        f = np.array([_core.imaging.moliere_scattering_factor(float(z), float(v)) for v in g])
        lam = electron_wavelength(kv)
        amp = lam * _gamma(kv) * f * np.exp(-2 * np.pi**2 * sigma**2 * g**2) * geo
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

    def sample(
        self,
        n: int,
        *,
        dose=None,
        classes=None,
        a=None,
        rotation=None,
        thermal=None,
        atomic_number=None,
    ):
        """Draw ``n`` patterns.

        Parameters left as None are drawn per pattern: class uniform over the 12 classes,
        a ~ U(2.5, 5.4) Å, rotation ~ U(0, 360)°, thermal sigma ~ U(0.02, 0.12) Å, dose
        log-uniform 300-30000 e/pixel at the incident intensity (15% noiseless), Z uniform
        in 12-79; always random: calibration U(0.03, 0.045) 1/Å per pixel, voltage
        U(100, 300) kV, convergence U(0.8, 2.5) mrad, thickness such that the strongest
        reflection's kinematic peak intensity at its disk centre (Ewald curvature
        included) is log-uniform in 0.01-0.3 (the thinnest such T in 5-500 Å), tilt
        N(0, 0.5 mrad) per axis (or ``tilt_mrad``), direct beam within ±4 px of the
        centre, background U(0, 0.01), read noise U(0, 0.003).

        Returns
        -------
        patterns : numpy.ndarray, shape (n, 128, 128), float32
        pixel_size : numpy.ndarray, shape (n,), 1/Å per pixel
        classes : numpy.ndarray, shape (n,), int
        a : numpy.ndarray, shape (n,), float64, Å
        rotation : numpy.ndarray, shape (n,), float64, degrees
        """
        from ._cbed import G_DEPLETION, cbed_params

        rng = self.rng
        cls = rng.integers(0, len(ZONE_AXES), n) if classes is None else np.asarray(classes)
        a = rng.uniform(*A_RANGE, n) if a is None else np.asarray(a, dtype=float)
        rot = rng.uniform(0, 360, n) if rotation is None else np.asarray(rotation, dtype=float)
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
            kv = rng.uniform(100, 300)
            params[i] = cbed_params(
                a[i],
                rot[i],
                ps[i],
                tuple(center),
                voltage_kv=kv,
                convergence_mrad=rng.uniform(0.8, 2.5),
                thickness=self._thickness(cls[i], a[i], z[i], thermal[i], kv),
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
            out[sel] = _core.imaging.render_cbed_f32(
                self.reflections, self.refl_offsets, atoms, self.atom_offsets, self.volumes,
                cls[sel].astype(np.int64), params[sel], rows, cols, seed + int(zi),
            )  # fmt: skip
        return out, ps, cls, a, rot
