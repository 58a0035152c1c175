"""Trajectories: lazy reading, frame selection (FPS against a brute-force reference),
streaming prediction (equal to ShiftModel.predict) and per-site statistics (NumPy
references: autocorrelation by direct sums, an AR(1) process of known correlation time)."""

from __future__ import annotations

import ase.io
import numpy as np
import pytest
from ase.build import molecule

import matchar as mc


def _md_like(n_frames=24, seed=0, amplitude=0.06):
    """An ethanol 'trajectory': the molecule with small random displacements per frame."""
    rng = np.random.default_rng(seed)
    base = molecule("CH3CH2OH")
    base.center(vacuum=5.0)
    frames = []
    for _ in range(n_frames):
        f = base.copy()
        f.positions += rng.normal(0.0, amplitude, f.positions.shape)
        frames.append(f)
    return frames


@pytest.fixture(scope="module")
def model():
    return mc.nmr.ShiftModel.pretrained("H")


def test_trajectory_reads_lazily_and_checks_every_frame(tmp_path):
    frames = _md_like(10)
    path = tmp_path / "md.extxyz"
    ase.io.write(path, frames)
    traj = mc.nmr.Trajectory(path)
    assert len(traj) == 10
    picked = traj.frames([7, 2])
    np.testing.assert_allclose(picked[0].positions, frames[7].positions, atol=1e-6)
    assert len(mc.nmr.Trajectory(path, index="::3")) == 4
    bad = [*frames[:3], molecule("CH3OCH3"), frames[4]]  # same count, other order
    ase.io.write(tmp_path / "bad.extxyz", bad)
    with pytest.raises(ValueError, match="frame 3 has other species"):
        list(mc.nmr.Trajectory(tmp_path / "bad.extxyz"))
    ase.io.write(tmp_path / "short.extxyz", [frames[0], frames[1][:5]])
    with pytest.raises(ValueError, match="frame 1 has 5 atoms, frame 0 has 9"):
        len(mc.nmr.Trajectory(tmp_path / "short.extxyz"))
    with pytest.raises(ValueError, match="has no frame 12"):
        traj.frames([1, 12])
    with pytest.raises(FileNotFoundError):
        mc.nmr.Trajectory(tmp_path / "absent.extxyz")
    with pytest.raises(ValueError, match="no frame"):
        mc.nmr.Trajectory([])


def _greedy_reference(D, k):
    """Max-min farthest-point sampling by brute force (NumPy)."""
    chosen = [int(np.argmax(((D - D.mean(0)) ** 2).sum(1)))]
    while len(chosen) < k:
        dist = np.min(np.linalg.norm(D[:, None, :] - D[chosen][None], axis=-1), axis=1)
        chosen.append(int(np.argmax(dist)))
    return np.array(chosen)


def test_fps_matches_a_brute_force_reference():
    D = np.random.default_rng(1).normal(size=(60, 5))
    sel = mc.nmr.select_frames(None, 12, descriptors=D)
    ref = _greedy_reference(D, 12)
    np.testing.assert_array_equal(sel.indices, ref)
    full = np.linalg.norm(D[:, None, :] - D[ref][None], axis=-1)
    np.testing.assert_allclose(sel.distance, full.min(axis=1), atol=1e-12)
    np.testing.assert_array_equal(sel.nearest, full.argmin(axis=1))
    for i in range(12):
        np.testing.assert_allclose(sel.fill_distance[i], full[:, : i + 1].min(axis=1).max())
    assert np.all(np.diff(sel.fill_distance) <= 1e-12)
    assert sel.coverage(np.inf) == 1.0
    rnd = mc.nmr.select_frames(None, 12, descriptors=D, method="random", seed=3)
    assert len(set(rnd.indices.tolist())) == 12
    again = mc.nmr.select_frames(None, 12, descriptors=D, method="random", seed=3)
    np.testing.assert_array_equal(rnd.indices, again.indices)


def test_fps_on_a_trajectory_labels_rare_frames_before_repeats():
    # 20 copies of one frame and 4 distinct ones: FPS takes the distinct ones first.
    frames = _md_like(5, seed=2, amplitude=0.15)
    traj = [frames[0].copy() for _ in range(20)] + frames[1:]
    D = mc.nmr.frame_descriptors(traj, "H", dim=32)
    assert D.shape == (24, 32)
    np.testing.assert_allclose(D[:20], np.broadcast_to(D[0], (20, 32)), atol=1e-9)
    sel = mc.nmr.select_frames(traj, 5, "H", descriptors=D)
    assert sorted(set(sel.indices.tolist()) - set(range(20))) == [20, 21, 22, 23]
    assert sel.fill_distance[-1] < 1e-9  # five picks cover all 24 frames


def test_frame_descriptors_preserve_distances():
    # Johnson-Lindenstrauss: with many dimensions, descriptor distances approximate the
    # distances between the frames' concatenated (per-environment normalised) SOAP rows.
    frames = _md_like(6, seed=4, amplitude=0.1)
    z = mc.nmr.ShiftModel("H", soap=mc.nmr.FRAME_SOAP)  # the descriptors' SOAP
    X = np.stack([z.features(f).astype(np.float64).ravel() for f in frames])
    exact = np.linalg.norm(X[:, None] - X[None], axis=-1)
    D = mc.nmr.frame_descriptors(frames, "H", dim=2048, seed=0)
    approx = np.linalg.norm(D[:, None] - D[None], axis=-1)
    iu = np.triu_indices(6, 1)
    np.testing.assert_allclose(approx[iu] / exact[iu], 1.0, atol=0.12)


def test_streaming_prediction_equals_predict(tmp_path, model):
    frames = _md_like(9)
    path = tmp_path / "md.extxyz"
    ase.io.write(path, frames)
    res = mc.nmr.predict_trajectory(model, path, chunk_size=4, timestep_fs=5.0, compress=False)
    mean, std = model.predict(frames, return_std=True)
    assert res.shielding.shape == (9, 6) and res.shielding.dtype == np.float32
    np.testing.assert_array_equal(res.atoms, np.flatnonzero(frames[0].numbers == 1))
    np.testing.assert_allclose(res.shielding, mean.reshape(9, 6), rtol=1e-6, atol=1e-5)
    # σ is the spread of committee members (each ~|μ| = 30 ppm, ~1 ppm apart) evaluated
    # in float32 over F features, by chunks of another size than predict's (another
    # GEMM blocking, another summation order): each member's rounding error, random with
    # a standard deviation of about ε32 |μ| sqrt(F), survives in the spread. Five of
    # those (seen: 1.9, i.e. 5e-4 of σ, depending on the build and the CPU).
    n_features = model.features(frames[:1]).shape[1]
    bound = 5 * np.finfo(np.float32).eps * np.abs(mean.reshape(9, 6)) * np.sqrt(n_features)
    assert np.all(np.abs(res.std - std.reshape(9, 6)) <= bound)
    assert bound.max() < 0.01 * std.min()  # still a check of σ to 1%
    one = mc.nmr.predict_trajectory(model, frames, chunk_size=100, return_std=False, compress=True)
    np.testing.assert_allclose(one.shielding, res.shielding, rtol=1e-6, atol=1e-5)
    assert one.std is None
    with pytest.raises(ValueError, match="no σ"):
        one.flagged_frames()


def _series(x, timestep=None):
    x = np.asarray(x, dtype=np.float32)
    return mc.nmr.TrajectoryShifts(x, None, np.arange(x.shape[1]), "H", timestep)


def test_statistics_match_numpy_references():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(301, 3)).cumsum(axis=0) * 0.01 + rng.normal(size=(301, 3))
    res = _series(x)
    x64 = res.shielding.astype(np.float64)
    np.testing.assert_allclose(res.mean(), x64.mean(0), rtol=1e-12)
    np.testing.assert_allclose(res.fluctuation(), x64.std(0), rtol=1e-12)
    rho = res.autocorrelation(max_lag=40)
    c = x64 - x64.mean(0)
    n = len(c)
    for lag in (0, 1, 7, 40):
        direct = (c[: n - lag] * c[lag:]).sum(0) / (n - lag) / ((c * c).sum(0) / n)
        np.testing.assert_allclose(rho[lag], direct, rtol=1e-10, atol=1e-12)
    counts, edges = res.histogram(bins=17)
    assert counts.shape == (3, 17) and np.all(counts.sum(axis=1) == 301)
    assert edges[0] == pytest.approx(x64.min()) and edges[-1] == pytest.approx(x64.max())


def test_autocorrelation_time_of_an_ar1_process():
    # x_t = phi x_{t-1} + e_t: integrated autocorrelation time (1 + phi) / (2 (1 - phi)).
    rng = np.random.default_rng(5)
    phi, n = 0.8, 100_000
    e = rng.normal(size=(n, 2))
    x = np.empty_like(e)
    x[0] = e[0]
    for t in range(1, n):
        x[t] = phi * x[t - 1] + e[t]
    res = _series(x, timestep=2.0)
    expected = (1 + phi) / (2 * (1 - phi))  # 4.5 frames
    np.testing.assert_allclose(res.autocorrelation_time(in_frames=True), expected, rtol=0.1)
    np.testing.assert_allclose(res.autocorrelation_time(), 2.0 * expected, rtol=0.1)
    se = res.standard_error()  # sqrt(2 tau var / n)
    np.testing.assert_allclose(se, np.sqrt(2 * expected * x.var(0) / n), rtol=0.1)
    white = _series(rng.normal(size=(5000, 1)))
    assert white.autocorrelation_time(in_frames=True)[0] == pytest.approx(0.5, abs=0.1)


def test_flagged_frames_are_those_with_large_sigma():
    std = np.full((50, 4), 0.3, dtype=np.float32)
    std[[7, 31], 2] = 0.9
    res = mc.nmr.TrajectoryShifts(np.zeros((50, 4), np.float32), std, np.arange(4), "H")
    np.testing.assert_array_equal(res.flagged_frames(), [7, 31])
    assert res.flagged_frames(factor=4.0).size == 0


def test_bad_input(model):
    frames = _md_like(4)
    with pytest.raises(ValueError, match="n_select"):
        mc.nmr.select_frames(frames, 5, "H", dim=8)
    with pytest.raises(ValueError, match="method"):
        mc.nmr.select_frames(frames, 2, "H", method="kmeans")
    with pytest.raises(ValueError, match="holds no C atom"):
        mc.nmr.frame_descriptors([molecule("H2O")], "C")
    with pytest.raises(ValueError, match="descriptors"):
        mc.nmr.select_frames(None, 1, descriptors=np.full((3, 2), np.nan))
    with pytest.raises(ValueError, match="holds no C atom"):
        mc.nmr.predict_trajectory(mc.nmr.ShiftModel.pretrained("C"), [molecule("H2O")])
    with pytest.raises(ValueError, match="timestep_fs"):
        mc.nmr.predict_trajectory(model, frames, timestep_fs=-1.0)


def test_mdanalysis_formats_with_a_topology(tmp_path):
    mda = pytest.importorskip("MDAnalysis")
    frames = _md_like(5)
    ase.io.write(tmp_path / "top.pdb", frames[0])
    u = mda.Universe(str(tmp_path / "top.pdb"))
    with mda.Writer(str(tmp_path / "md.dcd"), n_atoms=len(frames[0])) as w:
        for f in frames:
            u.atoms.positions = f.positions
            w.write(u.atoms)
    traj = mc.nmr.Trajectory(tmp_path / "md.dcd", topology=tmp_path / "top.pdb")
    assert len(traj) == 5
    read = traj.frames([3])[0]
    np.testing.assert_array_equal(read.numbers, frames[0].numbers)
    np.testing.assert_allclose(read.positions, frames[3].positions, atol=1e-3)
    assert (
        len(mc.nmr.Trajectory(tmp_path / "md.dcd", index="::2", topology=tmp_path / "top.pdb")) == 3
    )
    with pytest.raises(ValueError, match="needs topology"):
        mc.nmr.Trajectory(tmp_path / "md.dcd")


def test_compresses_by_default_only_long_trajectories(monkeypatch):
    # The one-time compression is repaid only over many environments: a short trajectory
    # is predicted with the model as it is, a long one (here: a lowered threshold) with a
    # compressed copy; the model passed in is never modified.
    from matchar.nmr import _trajectory

    frames = _md_like(4)
    train = _md_like(6, seed=1)
    values = [30.0 + 0.1 * f.positions[:, 0] for f in train]  # any smooth per-atom target
    model = mc.nmr.ShiftModel(
        "H", soap=mc.nmr.FRAME_SOAP, n_sparse=12, n_committee=2, calibration_folds=2
    ).fit(train, values)
    calls = []
    real = type(model).compress

    def counted(self, *args, **kwargs):
        calls.append(args)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(type(model), "compress", counted)
    short = mc.nmr.predict_trajectory(model, frames)
    assert calls == []
    monkeypatch.setattr(_trajectory, "_COMPRESS_MIN_ENVIRONMENTS", 4 * 6)
    long = mc.nmr.predict_trajectory(model, frames)
    assert len(calls) == 1 and "committee_basis_" not in model.gpr_.__dict__
    np.testing.assert_allclose(long.shielding, short.shielding, atol=0.02)
    np.testing.assert_allclose(long.std, short.std, atol=0.02)
