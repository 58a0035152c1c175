"""The matchar command line."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import matchar.cli
import matchar.io


def test_demo_writes_a_self_contained_report(tmp_path):
    out = tmp_path / "demo"
    assert matchar.cli.main(["demo", "--out", str(out)]) == 0
    report = (out / "report.html").read_text()
    assert report.startswith("<!DOCTYPE html>") and report.rstrip().endswith("</html>")
    assert "data:image/png;base64," in report  # figures embedded: one file to mail
    summary = json.loads((out / "report.json").read_text())
    assert summary["jobs"]["gp"]["max_abs_difference"] < 1e-10
    assert summary["jobs"]["imaging"]["adjusted_rand_index"] > 0.9
    assert max(summary["jobs"]["spectral"]["spectral_angles_deg"]) < 5.0
    post = summary["jobs"]["nmr_posterior"]
    assert abs(sum(post["posterior"]) - 1.0) < 1e-9
    assert post["posterior"][post["true_candidate"]] == max(post["posterior"])
    assert summary["jobs"]["soap"]["shape"][0] == 54
    assert len(summary["jobs"]["nmr_shifts"]["shieldings_ppm"]) == 6  # ethanol's H atoms
    assert summary["jobs"]["edx"]["max_composition_error_at_percent"] < 2.0
    crystal = summary["jobs"]["crystal_id"]
    assert crystal["correct"] >= 3 and crystal["n_images"] == 4
    assert {"fcc[110]", "bcc[110]"} <= set(crystal["map_classes"])
    assert crystal["cu_100_lattice_known"] == "fcc[1, 0, 0]"
    assert summary["not_yet_available"] == []


def test_console_script_help_and_errors(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "matchar.cli", "--help"], capture_output=True, text=True
    )
    assert out.returncode == 0 and "demo" in out.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "matchar.cli", "demo", "--threads", "0", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "n must be >= 1" in bad.stderr
    assert matchar.cli.main([]) == 2
    # python -m matchar is the console script too
    version = subprocess.run(
        [sys.executable, "-m", "matchar", "--version"], capture_output=True, text=True
    )
    assert version.returncode == 0 and version.stdout.strip() == matchar.__version__
    bad = subprocess.run([sys.executable, "-m", "matchar", "identify"], capture_output=True)
    assert bad.returncode == 2


def test_segment_command(tmp_path):
    from matchar import datasets

    image, _ = datasets.bicrystal(15.0, shape=(192, 192), dose=50, seed=0)
    np.save(tmp_path / "img.npy", image)
    out = tmp_path / "seg"
    assert matchar.cli.main(["segment", str(tmp_path / "img.npy"), "--out", str(out)]) == 0
    labels = np.load(out / "labels.npy")
    assert labels.shape == image.shape and len(np.unique(labels)) == 2
    assert (out / "segmentation.png").stat().st_size > 1000
    assert matchar.cli.main(["segment", str(tmp_path / "missing.npy"), "--out", str(out)]) == 2
    np.save(tmp_path / "bad.npy", np.ones((3, 3, 3, 3)))
    assert matchar.cli.main(["segment", str(tmp_path / "bad.npy"), "--out", str(out)]) == 2


def test_segment_command_names_what_the_user_can_change(tmp_path, capsys):
    """An image too small to segment is one line naming the file and the size needed,
    not the library's parameters (patch, window), which the command does not take; one
    region is "1 region"."""
    from matchar import datasets

    np.save(tmp_path / "tiny.npy", np.random.default_rng(0).random((16, 16)))
    assert matchar.cli.main(["segment", str(tmp_path / "tiny.npy"), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "tiny.npy" in err and "both sides must exceed 80" in err
    assert "patch" not in err and "window" not in err
    image, _ = datasets.bicrystal(15.0, shape=(96, 96), dose=50, seed=0)
    np.save(tmp_path / "img.npy", image)
    args = ["segment", str(tmp_path / "img.npy"), "--regions", "1", "--out", str(tmp_path / "s")]
    assert matchar.cli.main(args) == 0
    assert capsys.readouterr().out.startswith("1 region -> ")


def test_decompose_command(tmp_path):
    rng = np.random.default_rng(0)
    spectra = rng.random((2, 64))
    cube = rng.poisson(50 * rng.random((16 * 16, 2)) @ spectra).reshape(16, 16, 64)
    np.save(tmp_path / "cube.npy", cube.astype(np.uint16))
    out = tmp_path / "dec"
    args = ["decompose", str(tmp_path / "cube.npy"), "-k", "2", "--max-iter", "30"]
    assert matchar.cli.main([*args, "--out", str(out)]) == 0
    res = np.load(out / "decomposition.npz")
    assert res["maps"].shape == (16, 16, 2) and res["components"].shape == (2, 64)
    assert (res["components"] >= 0).all() and (out / "decomposition.png").exists()
    np.save(tmp_path / "neg.npy", -np.ones((4, 4, 8)))
    assert matchar.cli.main(["decompose", str(tmp_path / "neg.npy"), "--out", str(out)]) == 2


def test_soap_and_shifts_commands(tmp_path):
    import ase.build
    import ase.io

    mols = [ase.build.molecule("CH3CH2OH"), ase.build.molecule("CH3OH")]
    for m in mols:
        m.center(vacuum=5.0)
    ase.io.write(tmp_path / "mols.xyz", mols)
    out = tmp_path / "o"
    assert matchar.cli.main(["soap", str(tmp_path / "mols.xyz"), "--out", str(out)]) == 0
    X = np.load(out / "soap.npy")
    assert X.shape[0] == sum(len(m) for m in mols)
    assert matchar.cli.main(["shifts", str(tmp_path / "mols.xyz"), "--out", str(out)]) == 0
    lines = (out / "shieldings.csv").read_text().splitlines()
    assert lines[0] == "frame,atom,element,shielding_ppm,std_ppm"
    assert len(lines) - 1 == sum(int((m.numbers == 1).sum()) for m in mols)
    sigma = np.array([float(line.split(",")[3]) for line in lines[1:]])
    assert np.all((sigma > 20) & (sigma < 35))
    assert (
        matchar.cli.main(
            ["shifts", str(tmp_path / "mols.xyz"), "--element", "Fe", "--out", str(out)]
        )
        == 2
    )


def test_rank_command(tmp_path):
    import ase.build
    import ase.io

    import matchar as mc

    cands = []
    for k, amp in enumerate([0.0, 0.3]):
        mol = ase.build.molecule("CH3OH")
        if amp:
            mol.rattle(amp, seed=k)
        mol.center(vacuum=6.0)
        cands.append(mol)
    ase.io.write(tmp_path / "cands.xyz", cands)
    sigma = mc.nmr.ShiftModel.pretrained("H").predict(cands[0])
    np.savetxt(tmp_path / "exp.csv", 31.0 - sigma, delimiter=",")
    out = tmp_path / "rank"
    args = ["rank", str(tmp_path / "cands.xyz"), "--experimental", str(tmp_path / "exp.csv")]
    assert matchar.cli.main([*args, "--out", str(out)]) == 0
    table = np.loadtxt(out / "posterior.csv", delimiter=",", skiprows=1, usecols=(0, 2, 3, 4))
    assert table.shape == (2, 4) and abs(table[:, 1].sum() - 1) < 1e-5
    assert (out / "posterior.png").exists() and (out / "similarity.png").exists()
    missing = ["rank", str(tmp_path / "cands.xyz"), "--experimental", str(tmp_path / "no.csv")]
    assert matchar.cli.main([*missing, "--out", str(out)]) == 2


def test_rank_warns_of_shifts_no_compound_shows(tmp_path, capsys):
    """Shifts in Hz (at 400 MHz) or on another scale: the fitted reference offset absorbs
    any constant, so the posterior looks as sure as with right ones; the command warns
    in one line naming the range, and stays quiet for shifts in ppm."""
    import ase.build
    import ase.io

    import matchar as mc

    mol = ase.build.molecule("CH3OH")
    mol.center(vacuum=6.0)
    ase.io.write(tmp_path / "cands.xyz", [mol, mol.copy()])
    sigma = mc.nmr.ShiftModel.pretrained("H").predict(mol)
    args = ["rank", str(tmp_path / "cands.xyz"), "--experimental", str(tmp_path / "exp.csv")]
    for k, (shifts, warned) in enumerate(((31.0 - sigma, False), (400 * (31.0 - sigma), True),
                                          (31.0 - sigma - 100000, True))):  # fmt: skip
        np.savetxt(tmp_path / "exp.csv", shifts, delimiter=",")
        assert matchar.cli.main([*args, "--out", str(tmp_path / f"rank{k}")]) == 0
        err = capsys.readouterr().err
        lines = [w for w in err.splitlines() if "warning" in w]
        if warned:
            assert len(lines) == 1 and lines[0].startswith("matchar rank: warning: "), err
            assert "outside the -60 to 40 ppm of H chemical shifts" in lines[0]
        else:
            assert lines == [], err


def test_bench_command_prints_ratio_table(tmp_path, capsys):
    csv = tmp_path / "bench.csv"
    assert matchar.cli.main(["bench", "--quick", "--repeat", "1", "--out", str(csv)]) == 0
    text = capsys.readouterr().out
    assert "scikit-learn mu" in text and "peer / matchar" in text
    import csv as csv_module

    rows = list(csv_module.reader(csv.read_text().splitlines()))[1:]
    by_peer = {r[1]: r for r in rows}
    sk = by_peer["scikit-learn mu"]
    assert float(sk[2]) > 0 and float(sk[3]) > 0
    assert abs(float(sk[4]) - float(sk[3]) / float(sk[2])) < 1e-3 * float(sk[4])
    assert len(rows) >= 5
    assert matchar.cli.main(["bench", "--quick", "--repeat", "0"]) == 2


def test_segment_reads_microscope_formats_and_their_pixel_size(tmp_path):
    from matchar import datasets

    pytest.importorskip("rsciio")
    pytest.importorskip("h5py")
    image, _ = datasets.bicrystal(15.0, shape=(160, 160), dose=50, seed=1)
    path = matchar.io.save_hspy(
        tmp_path / "img",
        image.astype(np.float32),
        n_signal_axes=2,
        axes=[
            {"name": "y", "scale": 0.02, "units": "nm"},
            {"name": "x", "scale": 0.02, "units": "nm"},
        ],
    )
    img, pixel_size, _ = matchar.io.load_image(path)
    np.testing.assert_array_equal(img, image.astype(np.float32))
    assert pixel_size == pytest.approx(0.2)  # 0.02 nm = 0.2 Å
    out = tmp_path / "seg"
    assert matchar.cli.main(["segment", str(path), "--out", str(out), "--regions", "2"]) == 0
    assert np.load(out / "labels.npy").shape == image.shape
    tifffile = pytest.importorskip("tifffile")
    tifffile.imwrite(tmp_path / "img.tif", image.astype(np.float32))
    img, _, _ = matchar.io.load_image(tmp_path / "img.tif")
    np.testing.assert_array_equal(img, image.astype(np.float32))
    with pytest.raises(ValueError, match="unsupported image format"):
        matchar.io.load_image(path.with_suffix(".xyz").touch() or path.with_suffix(".xyz"))
    assert matchar.cli.main(["segment", str(path.with_suffix(".xyz")), "--out", str(out)]) == 2


def test_decompose_writes_hyperspy_signals(tmp_path):
    pytest.importorskip("rsciio")
    pytest.importorskip("h5py")
    from rsciio.hspy import file_reader

    rng = np.random.default_rng(0)
    cube = rng.poisson(50 * rng.random((12 * 10, 2)) @ rng.random((2, 48))).reshape(12, 10, 48)
    np.save(tmp_path / "cube.npy", cube.astype(np.uint16))
    out = tmp_path / "dec"
    args = ["decompose", str(tmp_path / "cube.npy"), "-k", "2", "--max-iter", "20"]
    assert matchar.cli.main([*args, "--out", str(out)]) == 0
    res = np.load(out / "decomposition.npz")
    maps = file_reader(str(out / "maps.hspy"))[0]
    comps = file_reader(str(out / "components.hspy"))[0]
    # HyperSpy layout: navigation (component) first, signal axes (the image) after
    np.testing.assert_allclose(maps["data"], np.moveaxis(res["maps"], -1, 0))
    assert [a["navigate"] for a in maps["axes"]] == [True, False, False]
    np.testing.assert_allclose(comps["data"], res["components"])
    assert comps["axes"][1]["name"] == "Energy"


def test_save_hspy_uncalibrated_axes_and_errors(tmp_path):
    pytest.importorskip("rsciio")
    pytest.importorskip("h5py")
    from rsciio.hspy import file_reader

    arr = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    axes = [{"name": "k"}, {"name": "y", "scale": None, "units": None}, {"name": "x"}]
    path = matchar.io.save_hspy(tmp_path / "a", arr, n_signal_axes=2, axes=axes)
    item = file_reader(str(path))[0]
    np.testing.assert_array_equal(item["data"], arr)
    assert item["axes"][1]["scale"] == 1.0 and item["axes"][1]["units"] in ("", None)
    with pytest.raises(ValueError, match="n_signal_axes"):
        matchar.io.save_hspy(tmp_path / "b", arr, n_signal_axes=4)
    with pytest.raises(ValueError, match="axes must have 3"):
        matchar.io.save_hspy(tmp_path / "c", arr, axes=axes[:2])


def _one_line_error(capsys, *names: str) -> str:
    """stderr holds one line, 'matchar <command>: error: ...', naming each of ``names``."""
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "error: " in lines[0] and "Traceback" not in err, err
    for name in names:
        assert name in lines[0], (name, err)
    return lines[0]


@pytest.mark.parametrize("ext", [".bcf", ".emd", ".hspy", ".dm3", ".dm4", ".pts"])
@pytest.mark.parametrize("kind", ["empty", "random", "directory"])
def test_decompose_unreadable_file_is_one_line(tmp_path, capsys, ext, kind):
    pytest.importorskip("rsciio")
    pytest.importorskip("h5py")
    path = tmp_path / f"map{ext}"
    if kind == "directory":
        path.mkdir()
    else:
        path.write_bytes(b"" if kind == "empty" else np.random.default_rng(0).bytes(4096))
    out = tmp_path / "out"
    assert matchar.cli.main(["decompose", str(path), "--out", str(out)]) == 2
    line = _one_line_error(capsys, str(path))
    assert line.startswith("matchar decompose: error: ")
    assert "got a directory" in line if kind == "directory" else "cannot read" in line


@pytest.mark.parametrize(
    ("name", "fraction"), [("bruker-test_TEM.bcf", 0.5), ("jeol-edx-512x512.pts", 0.3)]
)
def test_decompose_truncated_file_is_one_line(shared_data, tmp_path, capsys, name, fraction):
    pytest.importorskip("rsciio")
    data = (shared_data / name).read_bytes()
    path = tmp_path / name
    path.write_bytes(data[: int(len(data) * fraction)])
    assert matchar.cli.main(["decompose", str(path), "--out", str(tmp_path / "o")]) == 2
    assert "file is truncated" in _one_line_error(capsys, str(path))


@pytest.mark.parametrize("command", ["segment", "identify"])
@pytest.mark.parametrize("kind", ["empty", "random", "truncated"])
def test_image_commands_corrupt_png_is_one_line(tmp_path, capsys, command, kind):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = tmp_path / "img.png"
    if kind == "truncated":
        plt.imsave(path, np.random.default_rng(0).random((64, 64)))
        path.write_bytes(path.read_bytes()[:300])
    else:
        path.write_bytes(b"" if kind == "empty" else np.random.default_rng(0).bytes(1000))
    args = [command, str(path), "--pixel-size", "0.2", "--out", str(tmp_path / "o")]
    assert matchar.cli.main(args) == 2
    assert "as PNG" in _one_line_error(capsys, str(path))


@pytest.mark.parametrize("command", ["soap", "shifts", "rank"])
@pytest.mark.parametrize("content", [b"", b"\n", b"garbage\n", b"1\n\nH nan 0 0\n"])
def test_structure_commands_bad_xyz_is_one_line(tmp_path, capsys, command, content):
    path = tmp_path / "mols.xyz"
    path.write_bytes(content)
    exp = tmp_path / "exp.csv"
    exp.write_text("1.0\n2.0\n")
    args = [command, str(path), "--out", str(tmp_path / "o")]
    if command == "rank":
        args += ["--experimental", str(exp)]
    assert matchar.cli.main(args) == 2
    _one_line_error(capsys, str(path), "structure file")


def test_commands_missing_file_and_directory_are_one_line(tmp_path, capsys):
    out = ["--out", str(tmp_path / "o")]
    for command, ext in [("decompose", ".bcf"), ("segment", ".png"), ("soap", ".xyz")]:
        assert matchar.cli.main([command, str(tmp_path / f"absent{ext}"), *out]) == 2
        _one_line_error(capsys, str(tmp_path / f"absent{ext}"), "no such file")
        (tmp_path / f"data{ext}").mkdir()
        assert matchar.cli.main([command, str(tmp_path / f"data{ext}"), *out]) == 2
        _one_line_error(capsys, str(tmp_path / f"data{ext}"), "got a directory")


def _mols(tmp_path):
    import ase.build
    import ase.io

    mol = ase.build.molecule("CH3OH")
    mol.center(vacuum=5.0)
    ase.io.write(tmp_path / "mols.xyz", [mol])
    return tmp_path / "mols.xyz"


@pytest.mark.parametrize("kind", ["random", "empty-npz", "other-npz"])
def test_shifts_garbage_model_is_one_line(tmp_path, capsys, kind):
    model = tmp_path / "model.npz"
    if kind == "random":
        model.write_bytes(np.random.default_rng(0).bytes(3000))
    elif kind == "empty-npz":
        np.savez(model)
    else:
        np.savez(model, weights=np.ones(3))  # no "config": KeyError inside load
    args = ["shifts", str(_mols(tmp_path)), "--model", str(model), "--out", str(tmp_path / "o")]
    assert matchar.cli.main(args) == 2
    _one_line_error(capsys, str(model))


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "holds no rows"),
        (b"a,b\nc,d\n", "no 'shift' column"),
        (b"1\nnan\n", "not finite"),
        (b"shift,sites\n1.0,H\n", "cannot read site"),
        (b"shift\n", "no peaks"),
    ],
)
def test_rank_bad_experimental_csv_is_one_line(tmp_path, capsys, content, reason):
    exp = tmp_path / "exp.csv"
    exp.write_bytes(content)
    args = ["rank", str(_mols(tmp_path)), "--experimental", str(exp)]
    assert matchar.cli.main([*args, "--out", str(tmp_path / "o")]) == 2
    assert reason in _one_line_error(capsys, str(exp))


def test_usage_error_is_one_line(capsys):
    with pytest.raises(SystemExit) as info:
        matchar.cli.main(["decompose", "x.bcf", "-k", "four"])
    assert info.value.code == 2
    line = _one_line_error(capsys, "-k/--components", "four")
    assert line.startswith("matchar decompose: error: ")
    with pytest.raises(SystemExit) as info:
        matchar.cli.main(["no-such-command"])
    assert info.value.code == 2
    _one_line_error(capsys, "no-such-command")


@pytest.mark.parametrize(
    ("error", "code", "text"),
    [
        (ValueError("bad\nvalue"), 2, "error: bad value"),
        (TypeError("wrong type"), 2, "error: wrong type"),
        (MemoryError(), 2, "error: out of memory"),
        (OSError("disk full"), 2, "error: disk full"),
        (KeyError("z_"), 2, "internal error (KeyError"),
        (RuntimeError("a bug"), 2, "internal error (RuntimeError: a bug)"),
        (KeyboardInterrupt(), 130, "interrupted"),
    ],
)
def test_every_failure_is_one_line(monkeypatch, capsys, error, code, text):
    def fail(args):
        raise error

    monkeypatch.setattr(matchar.cli, "_segment", fail)
    monkeypatch.delenv("MATCHAR_DEBUG", raising=False)
    assert matchar.cli.main(["segment", "x.npy"]) == code
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and text in err, err
    assert err.startswith("matchar segment: ")


def test_debug_flag_and_variable_show_the_traceback(monkeypatch):
    def fail(args):
        raise RuntimeError("a bug")

    monkeypatch.setattr(matchar.cli, "_segment", fail)
    monkeypatch.delenv("MATCHAR_DEBUG", raising=False)
    with pytest.raises(RuntimeError, match="a bug"):
        matchar.cli.main(["--debug", "segment", "x.npy"])
    with pytest.raises(RuntimeError, match="a bug"):
        matchar.cli.main(["segment", "x.npy", "--debug"])
    monkeypatch.setenv("MATCHAR_DEBUG", "1")
    with pytest.raises(RuntimeError, match="a bug"):
        matchar.cli.main(["segment", "x.npy"])
    assert "--debug" in matchar.cli.build_parser().format_help()


def test_warnings_are_one_readable_line(monkeypatch, capsys):
    import warnings

    def warn(args):
        warnings.warn("something odd\nabout the input", UserWarning, stacklevel=1)
        return 0

    monkeypatch.setattr(matchar.cli, "_segment", warn)
    before = warnings.showwarning
    assert matchar.cli.main(["segment", "x.npy"]) == 0
    err = capsys.readouterr().err
    assert err == "matchar segment: warning: something odd about the input\n"
    assert warnings.showwarning is before  # restored when main returns


def test_denoise_command(tmp_path, capsys):
    from matchar import datasets

    noisy, _ = datasets.bicrystal(15.0, shape=(160, 160), dose=5.0, seed=0)
    np.save(tmp_path / "img.npy", noisy)
    out = tmp_path / "dn"
    args = ["denoise", str(tmp_path / "img.npy"), "--pixel-size", "0.2", "--out", str(out)]
    assert matchar.cli.main(args) == 0
    den = np.load(out / "denoised.npy")
    assert den.shape == noisy.shape and np.isfinite(den).all()
    assert (out / "denoise.png").exists()
    capsys.readouterr()  # the progress bar of the run above
    np.save(tmp_path / "flat.npy", np.full((64, 64), np.nan))
    assert matchar.cli.main(["denoise", str(tmp_path / "flat.npy"), "--out", str(out)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    # an absurd gain leaves no electrons, so no lattice: the message blames the gain
    args = ["denoise", str(tmp_path / "img.npy"), "--pixel-size", "0.2", "--gain", "1e12"]
    assert matchar.cli.main([*args, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no lattice found" in err and "check the gain" in err


def test_shifts_trajectory_command(tmp_path, capsys):
    import ase.build
    import ase.io

    rng = np.random.default_rng(0)
    base = ase.build.molecule("CH3CH2OH")
    base.center(vacuum=5.0)
    frames = []
    for _ in range(12):
        f = base.copy()
        f.positions += rng.normal(0.0, 0.05, f.positions.shape)
        frames.append(f)
    ase.io.write(tmp_path / "md.extxyz", frames)
    out = tmp_path / "traj"
    args = ["shifts", str(tmp_path / "md.extxyz"), "--trajectory", "--timestep-fs", "10"]
    assert matchar.cli.main([*args, "--chunk-size", "5", "--out", str(out)]) == 0
    stats = np.loadtxt(out / "site_statistics.csv", delimiter=",", skiprows=1, usecols=(0, 2, 3))
    assert stats.shape == (6, 3)
    data = np.load(out / "trajectory_shieldings.npz")
    assert data["shielding"].shape == (12, 6)
    assert float(data["timestep_fs"]) == 10.0  # written only when given: no NaN for "not given"
    np.testing.assert_allclose(stats[:, 1], data["shielding"].mean(0), atol=1e-4)
    assert (out / "site_averages.png").exists() and (out / "distributions.png").exists()
    ase.io.write(tmp_path / "bad.extxyz", [frames[0], frames[1][:4]])
    bad = ["shifts", str(tmp_path / "bad.extxyz"), "--trajectory", "--out", str(out)]
    assert matchar.cli.main(bad) == 2
    assert "frame 1 has 4 atoms" in capsys.readouterr().err


def _cube(tmp_path, name: str, values) -> str:
    path = tmp_path / name
    np.save(path, np.asarray(values))
    return str(path)


@pytest.mark.parametrize(
    "make,extra,names",
    [
        (lambda t: _cube(t, "e.npy", np.zeros((0, 0))), [], ["e.npy", "empty"]),
        (lambda t: _cube(t, "c.npy", np.zeros((4, 4, 0))), [], ["c.npy", "empty"]),
        (lambda t: _cube(t, "z.npy", np.zeros((4, 4, 8))), [], ["z.npy", "no counts"]),
        (
            lambda t: _cube(t, "n.npy", np.where(np.eye(8)[:, :, None] > 0, np.nan, 1.0) * [1] * 5),
            [],
            ["n.npy", "NaN"],
        ),
        (lambda t: _cube(t, "k.npy", np.ones((2, 2, 8))), ["-k", "5"], ["-k", "4 pixels"]),
        (lambda t: _cube(t, "t.npy", np.ones((2, 2, 8))), ["--threads", "0"], ["--threads"]),
    ],
)
def test_decompose_bad_cube_is_one_line_before_any_work(tmp_path, capsys, make, extra, names):
    path = make(tmp_path)
    before = np.load(path).copy()
    args = ["decompose", path, *extra, "--out", str(tmp_path / "o")]
    assert matchar.cli.main(args) == 2
    _one_line_error(capsys, *names)
    np.testing.assert_array_equal(np.load(path), before)  # the input is untouched


def test_text_saved_under_a_npy_name_is_named_not_unpickled(tmp_path, capsys):
    path = tmp_path / "notes.npy"
    path.write_text("0.1 0.2\n0.3 0.4\n")
    assert matchar.cli.main(["segment", str(path), "--out", str(tmp_path / "o")]) == 2
    line = _one_line_error(capsys, "notes.npy", "no .npy header")
    assert "allow_pickle" not in line
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    assert matchar.cli.main(["segment", str(path), "--out", str(tmp_path / "o")]) == 2
    line = _one_line_error(capsys, "notes.npy", "Python objects")
    assert "allow_pickle" not in line


@pytest.mark.parametrize(
    "argv,names",
    [
        (["identify", "IMG", "--pixel-size", "0.2", "--stride", "4"], ["--stride", "--map"]),
        (["identify", "IMG", "--pixel-size", "0.2", "--map", "--stride", "0"], ["--stride"]),
        (["segment", "IMG", "--regions", "1000"], ["--regions", "64"]),
    ],
)
def test_image_options_checked_before_any_work(tmp_path, capsys, argv, names):
    path = _cube(tmp_path, "img.npy", np.random.default_rng(0).random((96, 96)))
    argv = [path if a == "IMG" else a for a in argv]
    assert matchar.cli.main([*argv, "--out", str(tmp_path / "o")]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # no result line before the error
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "error: " in lines[0], captured.err
    assert all(name in lines[0] for name in names), lines[0]


def test_structure_options_out_of_their_use_are_refused(tmp_path, capsys):
    import ase.build
    import ase.io

    path = tmp_path / "w.xyz"
    ase.io.write(path, ase.build.molecule("H2O"))
    out = ["--out", str(tmp_path / "o")]
    assert matchar.cli.main(["soap", str(path), "--cutoff", "300", *out]) == 2
    _one_line_error(capsys, "--cutoff", "30 Å")
    for opt in (["--index", "0:2"], ["--timestep-fs", "2"], ["--chunk-size", "4"]):
        assert matchar.cli.main(["shifts", str(path), *opt, *out]) == 2
        _one_line_error(capsys, opt[0], "--trajectory")


def test_rosettasciio_log_is_the_reason_in_one_error_line(velox_reduced, tmp_path, capsys):
    """The Velox file whose spectrum images RosettaSciIO cannot read: its log message
    (which it prints to stdout in colour) is the reason given in the one error line,
    which names the file."""
    path = velox_reduced
    assert matchar.cli.main(["decompose", str(path), "--out", str(tmp_path / "o")]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    (error,) = captured.err.strip().splitlines()
    assert error.startswith("matchar decompose: error: ") and path.name in error
    assert "\x1b[" not in error and "The reader says: No spectrum stream" in error


def test_no_progress_bar_where_no_terminal_watches(tmp_path, capsys, monkeypatch):
    """stderr here is not a terminal: the run writes no progress bar there, so an error
    would be its only line; on a terminal it does."""
    rng = np.random.default_rng(0)
    path = _cube(tmp_path, "c.npy", rng.poisson(5.0, (6, 6, 20)))
    args = ["decompose", path, "-k", "2", "--max-iter", "20", "--out", str(tmp_path / "o")]
    assert matchar.cli.main(args) == 0
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert matchar.cli.main(args) == 0
    assert "NMF (kl)" in capsys.readouterr().err


def test_out_that_is_a_file_and_a_bad_frame_index_name_the_option(tmp_path, capsys):
    import ase.build
    import ase.io

    path = tmp_path / "w.extxyz"
    ase.io.write(path, [ase.build.molecule("H2O")] * 3)
    afile = tmp_path / "afile"
    afile.write_text("")
    assert matchar.cli.main(["soap", str(path), "--out", str(afile)]) == 2
    _one_line_error(capsys, "--out", "afile", "folder")
    out = ["--out", str(tmp_path / "o")]
    assert matchar.cli.main(["shifts", str(path), "--trajectory", "--index", "foo", *out]) == 2
    _one_line_error(capsys, "index", "'foo'", "::10")
    assert matchar.cli.main(["shifts", str(path), "--trajectory", "--index", "10:20", *out]) == 2
    _one_line_error(capsys, "w.extxyz", "no frame selected by index '10:20'")
