"""Multislice HAADF images of the crystal classifier's 12 classes, made with abTEM.

Images that matchar's own renderer did not make: each is a frozen-phonon PRISM
multislice simulation (abTEM) of a real crystal structure seen along one of the
classifier's zone axes, noise-free, over one periodic supercell. The evaluation
(``scripts/evaluate_crystal_multislice.py``) tiles, rotates, resamples and adds noise to
them. Every image is cached as one ``.npz`` file named by its parameters, so a rerun
only simulates what is missing.

    pip install "matchar[train]"   # abTEM, torch, onnx
    OMP_NUM_THREADS=2 python scripts/simulate_multislice.py --out multislice

The structure is built in the classifier's own frame (``projected_cell(...).frame``):
the shortest projected lattice vector ``a1`` lies along +x (image columns) and the
image's rows are +y, so an image rotated by ``theta`` with ``scipy.ndimage.rotate``
conventions has the classifier's rotation ``theta`` modulo 360/n.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from matchar.imaging._simulate import ZONE_AXES, _primitive, projected_cell

#: Real materials per class: (element, a in Å, c in Å for hcp). hcp c/a is the real one
#: (the renderer and classifier assume the ideal sqrt(8/3)).
MATERIALS = {
    "fcc": [("Cu", 3.615, None), ("Al", 4.05, None), ("Au", 4.078, None), ("Ni", 3.524, None)],
    "bcc": [("Fe", 2.867, None), ("W", 3.165, None), ("Mo", 3.147, None), ("Nb", 3.30, None)],
    "hcp": [("Ti", 2.951, 4.686), ("Mg", 3.209, 5.211), ("Zn", 2.665, 4.947), ("Co", 2.507, 4.07)],
    "diamond": [("Si", 5.431, None), ("C", 3.567, None), ("Si", 5.431, None), ("C", 3.567, None)],
}
#: Elements for the classes at random lattice constants (the structure, not the element,
#: carries the class).
RANDOM_ELEMENTS = {"fcc": "Cu", "bcc": "Fe", "hcp": "Ti", "diamond": "Si"}


@dataclass(frozen=True)
class Config:
    """One multislice image: crystal, thickness and optics."""

    cls: int  # index into ZONE_AXES
    element: str
    a: float  # Å (hcp: basal)
    c_over_a: float  # hcp only (1.0 otherwise)
    thickness: float  # Å
    energy_kv: float
    semiangle_mrad: float
    defocus: float  # Å (abTEM C10 = -defocus)
    cs_um: float  # spherical aberration, µm
    astigmatism: float  # C12, Å
    astigmatism_angle: float  # phi12, rad
    phonon_sigma: float  # Å, RMS displacement per direction
    phonon_configs: int
    sampling: float  # potential sampling, Å
    scan_sampling: float  # Å between probe positions
    min_extent: float  # smallest lateral supercell side, Å
    seed: int
    tilt_mrad: float = 0.0  # crystal tilt off the zone axis, mrad
    tilt_azimuth: float = 0.0  # direction of the tilt in the image plane, rad from +x

    def key(self) -> str:
        d = asdict(self)
        if d["tilt_mrad"] == 0.0:  # untilted: the key of the configurations before tilt
            del d["tilt_mrad"], d["tilt_azimuth"]
        text = json.dumps(d, sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:16]


def _along(vectors: np.ndarray, axis: int, reach: int = 8) -> np.ndarray:
    """Shortest integer combination of the rows of ``vectors`` along +``axis``."""
    best = None
    for ijk in itertools.product(range(-reach, reach + 1), repeat=3):
        v = np.array(ijk, dtype=float) @ vectors
        off = np.delete(v, axis)
        if v[axis] > 1e-6 and np.all(np.abs(off) < 1e-6):
            if best is None or v[axis] < best[axis]:
                best = v
    if best is None:
        raise ValueError(f"no lattice vector along axis {axis} within {reach} steps")
    return best


def oriented_supercell(prototype: str, zone_axis, a: float, c_over_a: float, min_extent: float):
    """Atoms (Cartesian, Å) of an orthogonal periodic supercell in the classifier's frame.

    Returns (positions (n, 3), cell lengths (3,)): x along the class's ``a1``, y in plane,
    z along the zone axis; one period along z.
    """
    conv, prim, basis = _primitive(prototype)
    if prototype == "hcp":  # the real c/a: the frame's axes do not depend on it
        scale = np.diag([1.0, 1.0, c_over_a / math.sqrt(8.0 / 3.0)])
        conv, prim, basis = conv @ scale, prim @ scale, basis @ scale
    cell2d = projected_cell(prototype, zone_axis)
    fx, fy = cell2d.frame[:, 0], cell2d.frame[:, 1]
    fz = np.cross(fx, fy)
    rot = np.stack([fx, fy, fz], axis=1)  # 3-D (conventional Cartesian) -> frame
    p = prim @ rot * a
    b = basis @ rot * a
    lx, ly, lz = (_along(p, i)[i] for i in range(3))
    nx, ny = max(1, math.ceil(min_extent / lx)), max(1, math.ceil(min_extent / ly))
    box = np.array([lx * nx, ly * ny, lz])
    # lattice points in the box: solve for the integer range that covers it
    inv = np.linalg.inv(p)
    corners = np.array(list(itertools.product(*[(0.0, s) for s in box]))) @ inv
    lo, hi = np.floor(corners.min(0)) - 1, np.ceil(corners.max(0)) + 1
    grid = np.stack(
        np.meshgrid(*[np.arange(lo[i], hi[i] + 1) for i in range(3)], indexing="ij"), -1
    ).reshape(-1, 3)
    pts = (grid @ p)[:, None, :] + b[None, :, :]
    pts = pts.reshape(-1, 3)
    inside = np.all((pts >= -1e-6) & (pts < box - 1e-6), axis=1)
    pos = pts[inside]
    expect = round(np.prod(box) / abs(np.linalg.det(p)) * len(b))
    if len(pos) != expect:
        raise RuntimeError(f"supercell holds {len(pos)} atoms, expected {expect}")
    return pos, box


def tilted(atoms, tilt_mrad: float, azimuth: float):
    """The crystal tilted by ``tilt_mrad`` off the beam (z) towards ``azimuth`` (rad from
    +x): each atom moves laterally by z tan(tilt), and the lateral periodic box wraps it
    back (small-angle tilt of a crystal whose columns stay periodic in x and y; abTEM's
    PRISM S-matrix takes no beam tilt)."""
    out = atoms.copy()
    pos = out.positions
    t = math.tan(tilt_mrad * 1e-3)
    pos[:, 0] += pos[:, 2] * t * math.cos(azimuth)
    pos[:, 1] += pos[:, 2] * t * math.sin(azimuth)
    out.positions = pos
    out.wrap()
    return out


def simulate(cfg: Config, threads: int = 2) -> tuple[np.ndarray, tuple[float, float]]:
    """Noise-free HAADF image (rows y, columns x) over the periodic supercell.

    Returns the image (float32, intensity as a fraction of the incident beam) and its
    pixel size (Å, rows then columns).
    """
    import abtem
    import ase

    abtem.config.set({"device": "cpu"})
    prototype, zone = ZONE_AXES[cfg.cls]
    pos, box = oriented_supercell(prototype, zone, cfg.a, cfg.c_over_a, cfg.min_extent)
    reps = max(1, round(cfg.thickness / box[2]))
    atoms = ase.Atoms(symbols=[cfg.element] * len(pos), positions=pos, cell=np.diag(box), pbc=True)
    atoms = atoms * (1, 1, reps)
    if cfg.tilt_mrad:
        atoms = tilted(atoms, cfg.tilt_mrad, cfg.tilt_azimuth)
    phonons = abtem.FrozenPhonons(
        atoms, num_configs=cfg.phonon_configs, sigmas=cfg.phonon_sigma, seed=cfg.seed
    )
    potential = abtem.Potential(
        phonons, sampling=cfg.sampling, slice_thickness=2.0, projection="infinite",
        parametrization="lobato",
    )  # fmt: skip
    energy = cfg.energy_kv * 1e3
    smatrix = abtem.SMatrix(
        potential=potential, energy=energy, semiangle_cutoff=cfg.semiangle_mrad, interpolation=1
    )
    ctf = abtem.CTF(
        semiangle_cutoff=cfg.semiangle_mrad,
        energy=energy,
        aberration_coefficients={
            "C10": -cfg.defocus,
            "C30": cfg.cs_um * 1e4,
            "C12": cfg.astigmatism,
            "phi12": cfg.astigmatism_angle,
        },
    )
    scan = abtem.GridScan(
        start=(0, 0), end=(box[0], box[1]), sampling=cfg.scan_sampling, endpoint=False,
        potential=potential,
    )  # fmt: skip
    # HAADF: from three times the probe's semi-angle to the largest angle simulated
    detector = abtem.AnnularDetector(inner=max(60.0, 3 * cfg.semiangle_mrad), outer=None)
    meas = smatrix.scan(scan=scan, detectors=detector, ctf=ctf)
    img = meas.compute(scheduler="threads", num_workers=threads, progress_bar=False)
    arr = np.asarray(img.array, dtype=np.float32).T  # abTEM indexes (x, y)
    sx, sy = box[0] / arr.shape[1], box[1] / arr.shape[0]
    return arr, (sy, sx)


def draw_configs(
    per_class: int,
    seed: int,
    max_thickness: float,
    min_extent: float,
    min_thickness: float = 20.0,
    max_tilt: float = 0.0,
    classes=None,
):
    """Random configurations: per class, real materials first, then random lattice
    constants (U(2.6, 5.3) Å); optics and thickness random (log-uniform ``min_thickness``
    to ``max_thickness`` Å); with ``max_tilt`` > 0 a crystal tilt U(0, max_tilt) mrad in a
    random direction. ``classes``: indices into ZONE_AXES (default all). The defaults
    draw the same configurations as before these options existed."""
    rng = np.random.default_rng(seed)
    tilt_rng = np.random.default_rng([seed, 1])  # its own stream: the rest as without tilt
    out = []
    for k, (prototype, _zone) in enumerate(ZONE_AXES):
        if classes is not None and k not in classes:
            continue
        mats = MATERIALS[prototype]
        for j in range(per_class):
            if j % 2 == 0:  # real materials, then random lattice constants, alternating
                el, a, c = mats[(j // 2) % len(mats)]
                c_over_a = c / a if c else 1.0
            else:
                el, a = RANDOM_ELEMENTS[prototype], float(rng.uniform(2.6, 5.3))
                c_over_a = float(rng.uniform(1.57, 1.70)) if prototype == "hcp" else 1.0
            out.append(
                Config(
                    cls=k,
                    element=el,
                    a=round(float(a), 4),
                    c_over_a=round(float(c_over_a), 4),
                    thickness=round(
                        float(
                            np.exp(rng.uniform(math.log(min_thickness), math.log(max_thickness)))
                        ),
                        1,
                    ),
                    energy_kv=float(rng.choice([200.0, 300.0])),
                    semiangle_mrad=round(float(rng.uniform(18, 30)), 2),
                    defocus=round(float(rng.normal(0, 20)), 1),
                    cs_um=round(float(rng.uniform(-5, 5)), 2),
                    astigmatism=round(float(abs(rng.normal(0, 10))), 1),
                    astigmatism_angle=round(float(rng.uniform(0, np.pi)), 3),
                    phonon_sigma=round(float(rng.uniform(0.06, 0.1)), 3),
                    phonon_configs=2,
                    sampling=0.05,
                    scan_sampling=0.2,
                    min_extent=min_extent,
                    seed=int(rng.integers(0, 2**31)),
                )
            )
            if max_tilt > 0:
                out[-1] = replace(
                    out[-1],
                    tilt_mrad=round(float(tilt_rng.uniform(0, max_tilt)), 2),
                    tilt_azimuth=round(float(tilt_rng.uniform(0, 2 * np.pi)), 3),
                )
    return out


def run(configs, out: Path, threads: int = 2, log=print) -> list[Path]:
    """Simulate the configurations missing from ``out``; return every cache file."""
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for i, cfg in enumerate(configs):
        path = out / f"{ZONE_AXES[cfg.cls][0]}_{cfg.key()}.npz"
        files.append(path)
        if path.is_file():
            continue
        t0 = time.perf_counter()
        img, sampling = simulate(cfg, threads)
        seconds = time.perf_counter() - t0
        import abtem

        meta = dict(asdict(cfg), abtem_version=abtem.__version__, seconds=round(seconds, 1))
        tmp = path.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, image=img, sampling=np.array(sampling), meta=json.dumps(meta))
        tmp.replace(path)
        log(
            f"[{i + 1}/{len(configs)}] {ZONE_AXES[cfg.cls]} {cfg.element} a={cfg.a} "
            f"t={cfg.thickness:.0f} Å {img.shape} {seconds:.0f} s",
        )
    return files


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="multislice", help="cache folder")
    ap.add_argument("--per-class", type=int, default=2, help="images per class")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--min-thickness", type=float, default=20.0, help="Å")
    ap.add_argument("--max-thickness", type=float, default=120.0, help="Å")
    ap.add_argument(
        "--max-tilt", type=float, default=0.0, help="crystal tilt off the zone axis, mrad"
    )
    ap.add_argument(
        "--classes", default=None, help="comma-separated indices into ZONE_AXES (default all)"
    )
    ap.add_argument("--min-extent", type=float, default=9.0, help="smallest cell side, Å")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--shard", default="0/1", help="i/n: every n-th image from the i-th (parallel runs)"
    )
    args = ap.parse_args(argv)
    shard, n_shards = (int(v) for v in args.shard.split("/"))
    classes = None if args.classes is None else {int(v) for v in args.classes.split(",")}
    cfgs = draw_configs(
        args.per_class,
        args.seed,
        args.max_thickness,
        args.min_extent,
        min_thickness=args.min_thickness,
        max_tilt=args.max_tilt,
        classes=classes,
    )
    # interleave the classes so that a partial run covers all of them
    order = sorted(range(len(cfgs)), key=lambda i: (i % args.per_class, i))
    run([cfgs[i] for i in order][shard::n_shards], Path(args.out), args.threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
