"""Multislice HAADF images of the crystal classifier's 12 classes, made with abTEM.

Images that matchar's own renderer did not make: each is a frozen-phonon PRISM
multislice simulation (abTEM) of a real crystal structure seen along one of the
classifier's zone axes, noise-free, over one periodic supercell. The evaluation
(``scripts/evaluate_crystal_multislice.py``) tiles, rotates, resamples and adds noise to
them. Every image is cached as one ``.npz`` file named by its parameters, so a rerun
only simulates what is missing.

    pip install "matchar[train]"   # abTEM, torch, onnx
    OMP_NUM_THREADS=2 python scripts/simulate_multislice.py --out multislice

``--boundaries N`` simulates bicrystals instead (``BOUNDARIES``, ``boundary_supercell``):
N each of a Σ5 (310)[001] boundary in bcc crystals and a Σ3 twin in fcc crystals seen
along [110], edge-on, at real materials' lattice constants.

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
    boundary: str = ""  # a key of BOUNDARIES: a bicrystal instead of one crystal
    periods: int = 0  # bicrystal: CSL periods of each grain across the boundary

    def key(self) -> str:
        d = asdict(self)
        if d["tilt_mrad"] == 0.0:  # untilted: the key of the configurations before tilt
            del d["tilt_mrad"], d["tilt_azimuth"]
        if not d["boundary"]:  # one crystal: the key of the configurations before bicrystals
            del d["boundary"], d["periods"]
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


#: Grain boundaries edge-on along a zone axis of the classifier, between two grains of one
#: crystal: name -> (class, misorientation about the beam in degrees). ``sigma5``: the
#: symmetric (310)[001] tilt boundary of a bcc crystal, the class of a real Fe
#: grain-boundary image; ``sigma3``: the coherent (111) twin of an fcc crystal seen along
#: [110], the boundary of the high-entropy-alloy image's twin lamellae.
BOUNDARIES = {
    "sigma5": (("bcc", (1, 0, 0)), 2 * math.degrees(math.atan(1 / 3))),
    "sigma3": (("fcc", (1, 1, 0)), math.degrees(math.acos(1 / 3))),
}


def _periodic_wrap(pos: np.ndarray, box: np.ndarray) -> np.ndarray:
    out = pos - np.floor(pos / box) * box
    out[out >= box] = 0.0  # a coordinate that rounds onto the far face
    return out


def boundary_supercell(boundary: str, a: float, periods: int, min_extent: float = 9.0):
    """Atoms of a periodic bicrystal with two edge-on boundaries, built with ase.

    x is normal to the boundaries (at x = 0 and x = box[0] / 2, both mirror planes of the
    unrelaxed CSL structure), y lies along them and z along the beam; each grain holds
    ``periods`` CSL periods across. ``sigma5``: grain A has x along [310] and y along
    [-130], grain B is its mirror image (x along [3-10], y along [130]); each pair of
    mirror atoms closer than 0.8 nearest-neighbour distances across a boundary becomes one
    atom on the boundary plane between them (an unrelaxed model). ``sigma3``:
    the (111) layers ...ABC|CBA... with the twin planes on a layer. The y side is
    repeated to at least ``min_extent`` Å (the PRISM probe is periodic over the cell).
    Returns (positions (n, 3) Å, cell lengths (3,) Å, boundary x positions (2,) Å).
    """
    from ase.lattice.cubic import BodyCenteredCubic, FaceCenteredCubic
    from scipy.spatial import cKDTree

    if boundary not in BOUNDARIES:
        raise ValueError(f"boundary must be one of {sorted(BOUNDARIES)}, got {boundary!r}")
    if periods < 1:
        raise ValueError(f"periods must be at least 1, got {periods}")
    if boundary == "sigma5":
        kw = dict(size=(periods, 1, 1), symbol="Fe", latticeconstant=a)
        ga = BodyCenteredCubic(directions=[[3, 1, 0], [-1, 3, 0], [0, 0, 1]], **kw)
        gb = BodyCenteredCubic(directions=[[3, -1, 0], [1, 3, 0], [0, 0, 1]], **kw)
        half = ga.cell[0, 0]
        box = np.array([2 * half, ga.cell[1, 1], ga.cell[2, 2]])
        pa = _periodic_wrap(ga.positions, box)
        pb = _periodic_wrap(gb.positions + np.array([half, 0.0, 0.0]), box)
        nn = a * math.sqrt(3) / 2
        close = cKDTree(pa, boxsize=box).query_ball_point(pb, 0.8 * nn)
        pa = pa.copy()
        for j, hits in enumerate(close):  # mirror pairs 0.2 a sqrt(10) apart: one atom
            for i in hits:  # on the boundary plane between them
                delta = (pb[j] - pa[i] + box / 2) % box - box / 2
                pa[i] = pa[i] + delta / 2
        pos = _periodic_wrap(np.vstack([pa, pb[[not c for c in close]]]), box)
    else:
        g = FaceCenteredCubic(
            directions=[[1, -1, 1], [1, -1, -2], [1, 1, 0]], size=(periods, 1, 1),
            symbol="Cu", latticeconstant=a,
        )  # fmt: skip
        d = a / math.sqrt(3)  # (111) layer spacing; the cell holds 3 periods layers
        pa = g.positions
        half = (3 * periods - 1) * d  # mirror planes on the first and the last layer
        inner = pa[(pa[:, 0] > 1e-6) & (pa[:, 0] < half - 1e-6)]
        mirrored = inner * [-1.0, 1.0, 1.0] + [2 * half, 0.0, 0.0]
        box = np.array([2 * half, g.cell[1, 1], g.cell[2, 2]])
        pos = _periodic_wrap(np.vstack([pa, mirrored]), box)
    ny = max(1, math.ceil(min_extent / box[1] - 1e-9))
    pos = np.vstack([pos + np.array([0.0, j * box[1], 0.0]) for j in range(ny)])
    box = box * [1, ny, 1]
    return pos, box, np.array([0.0, box[0] / 2])


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
    interpolation = 1
    if cfg.boundary:
        pos, box, _ = boundary_supercell(cfg.boundary, cfg.a, cfg.periods, cfg.min_extent)
        # the long side: PRISM probes cropped to a third of it, at least 20 Å
        interpolation = (max(1, min(3, int(box[0] // 20.0))), 1)
    else:
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
        potential=potential,
        energy=energy,
        semiangle_cutoff=cfg.semiangle_mrad,
        interpolation=interpolation,
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
    outer = None
    if cfg.boundary:  # cropped probes: just inside the largest angle of both axes
        from abtem.core.energy import energy2wavelength

        outer = 0.98 * 1e3 * (2 / 3) * energy2wavelength(energy) / (2 * cfg.sampling)
    detector = abtem.AnnularDetector(inner=max(60.0, 3 * cfg.semiangle_mrad), outer=outer)
    meas = smatrix.scan(scan=scan, detectors=detector, ctf=ctf)
    img = meas.compute(scheduler="threads", num_workers=threads, progress_bar=False)
    arr = np.asarray(img.array, dtype=np.float32).T  # abTEM indexes (x, y)
    sx, sy = box[0] / arr.shape[1], box[1] / arr.shape[0]
    return arr, (sy, sx)


def _draw_optics(rng, min_thickness: float, max_thickness: float) -> dict:
    """Thickness (log-uniform, Å), optics, phonons and the abTEM seed of one image, drawn
    from ``rng`` in a fixed order (the cache keys depend on it)."""
    lo, hi = math.log(min_thickness), math.log(max_thickness)
    return dict(
        thickness=round(float(np.exp(rng.uniform(lo, hi))), 1),
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
        seed=int(rng.integers(0, 2**31)),
    )


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
                    **_draw_optics(rng, min_thickness, max_thickness),
                    min_extent=min_extent,
                )
            )
            if max_tilt > 0:
                out[-1] = replace(
                    out[-1],
                    tilt_mrad=round(float(tilt_rng.uniform(0, max_tilt)), 2),
                    tilt_azimuth=round(float(tilt_rng.uniform(0, 2 * np.pi)), 3),
                )
    return out


def draw_boundary_configs(
    per_boundary: int,
    seed: int,
    max_thickness: float,
    min_extent: float,
    min_thickness: float = 20.0,
    grain_width: float = 36.0,
):
    """Random bicrystal configurations: per entry of ``BOUNDARIES``, ``per_boundary``
    images cycling through the class's real materials (Fe, W, Mo, Nb for ``sigma5``; Cu,
    Al, Au, Ni for ``sigma3``) at their lattice constants, each grain about
    ``grain_width`` Å wide; thickness and optics drawn as in :func:`draw_configs`."""
    rng = np.random.default_rng([seed, 2])
    out = []
    for name, (label, _mis) in BOUNDARIES.items():
        prototype = label[0]
        for j in range(per_boundary):
            el, a, _c = MATERIALS[prototype][j % len(MATERIALS[prototype])]
            if name == "sigma5":  # CSL period a sqrt(10) across the (310) plane
                periods = max(1, round(grain_width / (a * math.sqrt(10))))
            else:  # 3 periods - 1 (111) layers of a / sqrt(3) per grain
                periods = max(1, round((grain_width / (a / math.sqrt(3)) + 1) / 3))
            out.append(
                Config(
                    cls=ZONE_AXES.index(label),
                    element=el,
                    a=round(float(a), 4),
                    c_over_a=1.0,
                    **_draw_optics(rng, min_thickness, max_thickness),
                    min_extent=min_extent,
                    boundary=name,
                    periods=periods,
                )
            )
    return out


def run(configs, out: Path, threads: int = 2, log=print) -> list[Path]:
    """Simulate the configurations missing from ``out``; return every cache file."""
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for i, cfg in enumerate(configs):
        stem = cfg.boundary or ZONE_AXES[cfg.cls][0]
        path = out / f"{stem}_{cfg.key()}.npz"
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
    ap.add_argument(
        "--boundaries",
        type=int,
        default=0,
        help="instead of single crystals: this many bicrystals of each grain boundary",
    )
    ap.add_argument(
        "--first", type=int, default=None, help="with --boundaries: only the first N images"
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--shard", default="0/1", help="i/n: every n-th image from the i-th (parallel runs)"
    )
    args = ap.parse_args(argv)
    shard, n_shards = (int(v) for v in args.shard.split("/"))
    if args.boundaries:
        cfgs = draw_boundary_configs(
            args.boundaries, args.seed, args.max_thickness, args.min_extent,
            min_thickness=args.min_thickness,
        )  # fmt: skip
        # alternate the boundaries so that a partial run (--first) covers both
        order = sorted(range(len(cfgs)), key=lambda i: (i % args.boundaries, i))
        cfgs = [cfgs[i] for i in order][: args.first]
        run(cfgs[shard::n_shards], Path(args.out), args.threads)
        return 0
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
