"""NMR shieldings along an MD trajectory: FPS vs random training frames, and streaming.

The system: liquid water, 64 rigid TIP3P-FB molecules (192 atoms, 128 H) in a periodic
box at 300 K, simulated with OpenMM (Langevin, 2 fs, PME), one frame every 100 fs. The
"reference" shieldings that stand in for DFT are the **shipped ¹H ShiftModel's
predictions** (a fixed model, not a quantum-chemical calculation): the study measures how
well a new model trained on a few labelled frames reproduces a reference on every frame,
which depends on which frames are labelled, not on the reference's own accuracy.

1. ``learning``: FPS-selected vs randomly selected training frames (3 seeds), error of a
   ShiftModel trained on them against the reference on all frames, vs the number of
   labelled frames.
2. ``stream``: a model trained with the defaults on 40 FPS-selected frames predicts
   ``--stream-frames`` frames (the MD frames repeated) with σ from an ASE ``.traj`` file
   read frame by frame; wall time and peak RSS.

Needs OpenMM (``pip install openmm``). Run::

    PYTHONPATH=python python benchmarks/nmr_trajectory_study.py learning --frames 2000
    PYTHONPATH=python python benchmarks/nmr_trajectory_study.py stream --stream-frames 90000

Files go to ``--work`` (default /tmp/matchar-md).
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import numpy as np

import matchar as mc

#: The model settings these numbers were measured with (lighter than ShiftModel's
#: defaults: a 2000-point sparse GP on 6 x 4 SOAP calibrated on held-out frames).
LIGHT = dict(
    soap={"cutoff": (3.0, 5.0), "max_radial": 6, "max_angular": 4, "atomic_width": 0.3,
          "smoothing": 0.5},
    n_sparse=2000,
    n_sparse_committee=2000,
    regularizer=0.15,
    calibration_folds=0,
)  # fmt: skip


def simulate(
    n_frames: int, path: Path, every: int = 50, seed: int = 0, molecules: int = 64
) -> None:
    """Water box MD with OpenMM, frames written as extxyz (Å)."""
    import ase
    import ase.io
    import openmm
    import openmm.app as app
    import openmm.unit as u

    ff = app.ForceField("amber14/tip3pfb.xml")
    modeller = app.Modeller(app.Topology(), [])
    modeller.addSolvent(ff, numAdded=molecules, model="tip3p")
    system = ff.createSystem(
        modeller.topology, nonbondedMethod=app.PME, nonbondedCutoff=0.55 * u.nanometer,
        constraints=app.HBonds, rigidWater=True,
    )  # fmt: skip
    integrator = openmm.LangevinMiddleIntegrator(
        300 * u.kelvin, 1.0 / u.picosecond, 2 * u.femtosecond
    )
    integrator.setRandomNumberSeed(seed)
    platform = openmm.Platform.getPlatformByName("CPU")
    sim = app.Simulation(modeller.topology, system, integrator, platform, {"Threads": "2"})
    sim.context.setPositions(modeller.positions)
    sim.minimizeEnergy()
    sim.context.setVelocitiesToTemperature(300 * u.kelvin, seed)
    sim.step(5000)  # 10 ps equilibration
    numbers = [a.element.atomic_number for a in modeller.topology.atoms()]
    frames = []
    for _ in range(n_frames):
        sim.step(every)
        state = sim.context.getState(getPositions=True, enforcePeriodicBox=True)
        pos = state.getPositions(asNumpy=True).value_in_unit(u.angstrom)
        box = state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(u.angstrom)
        frames.append(ase.Atoms(numbers=numbers, positions=pos, cell=box, pbc=True))
    ase.io.write(path, frames)


def learning(args) -> None:
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    traj_path = work / f"water-{args.frames}.extxyz"
    if not traj_path.exists():
        t = time.perf_counter()
        simulate(args.frames, traj_path)
        print(f"MD: {args.frames} frames in {time.perf_counter() - t:.0f} s -> {traj_path}")
    traj = mc.nmr.Trajectory(traj_path)
    reference = mc.nmr.ShiftModel.pretrained("H")
    t = time.perf_counter()
    ref = mc.nmr.predict_trajectory(reference, traj, timestep_fs=100.0, return_std=False)
    print(f"reference labels (shipped H model) on {ref.n_frames} frames: "
          f"{time.perf_counter() - t:.0f} s")  # fmt: skip
    D = mc.nmr.frame_descriptors(traj, "H")
    frames_all = None
    rows = []
    for n in args.sizes:
        for method, seeds in (("fps", [0]), ("random", [0, 1, 2])):
            errs = []
            for seed in seeds:
                sel = mc.nmr.select_frames(traj, n, "H", method=method, descriptors=D, seed=seed)
                if frames_all is None:
                    frames_all = traj.frames(range(len(traj)))
                train = [frames_all[i] for i in sel.indices]
                labels = [ref.shielding[i].astype(np.float64) for i in sel.indices]
                model = mc.nmr.ShiftModel(
                    "H",
                    **{**LIGHT, "n_sparse": args.n_sparse, "n_sparse_committee": args.n_sparse},
                    n_committee=4,
                    validation_fraction=0.2,
                )
                model.fit(train, [_full(f, lab) for f, lab in zip(train, labels)])
                pred = mc.nmr.predict_trajectory(model, frames_all, return_std=False)
                errs.append(float(np.sqrt(((pred.shielding - ref.shielding) ** 2).mean())))
            rows.append((n, method, float(np.mean(errs)), float(np.std(errs)), len(seeds)))
            print(f"n={n:4d} {method:6s} RMSE {np.mean(errs):.4f} ± {np.std(errs):.4f} ppm",
                  flush=True)  # fmt: skip
    print("| labelled frames | FPS RMSE (ppm) | random RMSE (ppm), mean ± sd of 3 seeds |")
    print("|---|---|---|")
    for n in args.sizes:
        f = next(r for r in rows if r[0] == n and r[1] == "fps")
        r = next(r for r in rows if r[0] == n and r[1] == "random")
        print(f"| {n} | {f[2]:.4f} | {r[2]:.4f} ± {r[3]:.4f} |")
    print(f"reference spread over frames and sites: {ref.shielding.std():.3f} ppm")


def _full(frame, h_values):
    """Per-atom targets for ShiftModel.fit: the H values, NaN elsewhere."""
    out = np.full(len(frame), np.nan)
    out[frame.numbers == 1] = h_values
    return out


def stream(args) -> None:
    """The workflow's last step at scale: a model trained with the defaults on 40
    FPS-selected frames (labels: the reference model) predicts every frame of a long
    trajectory (the MD frames repeated, ASE .traj read frame by frame) with σ."""
    import ase.io

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    tag = "" if args.molecules == 64 else f"-{3 * args.molecules}atoms"
    src = work / f"water-{args.frames}{tag}.extxyz"
    if not src.exists():
        simulate(args.frames, src, molecules=args.molecules)
    big = work / f"water-{args.stream_frames}{tag}.traj"
    if not big.exists():
        frames = ase.io.read(src, index=":")
        with ase.io.Trajectory(big, "w") as out:
            for k in range(args.stream_frames):
                out.write(frames[k % len(frames)])
    traj = mc.nmr.Trajectory(src)
    sel = mc.nmr.select_frames(traj, 40, "H")
    train = traj.frames(sel.indices)
    reference = mc.nmr.ShiftModel.pretrained("H")
    labels = reference.predict(train).reshape(len(train), -1)
    model = mc.nmr.ShiftModel("H", **LIGHT).fit(
        train, [_full(f, lab) for f, lab in zip(train, labels)]
    )
    mc.set_num_threads(2)
    t = time.perf_counter()
    res = mc.nmr.predict_trajectory(model, big, timestep_fs=100.0, progress=True)
    dt = time.perf_counter() - t
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    per_frame = 1e3 * dt / res.n_frames
    n_atoms = 3 * args.molecules
    print(f"{res.n_frames} frames x {len(res.atoms)} H ({n_atoms} atoms): {dt:.1f} s with "
          f"the compression ({per_frame:.2f} ms per frame), peak RSS {rss:.2f} GB")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["learning", "stream"])
    ap.add_argument("--frames", type=int, default=2000)
    ap.add_argument("--sizes", type=int, nargs="+", default=[5, 10, 20, 40])
    ap.add_argument("--n-sparse", type=int, default=1000)
    ap.add_argument("--stream-frames", type=int, default=90000)
    ap.add_argument("--molecules", type=int, default=64, help="water molecules (stream)")
    ap.add_argument("--work", default="/tmp/matchar-md")
    args = ap.parse_args()
    learning(args) if args.what == "learning" else stream(args)


if __name__ == "__main__":
    main()
