"""``matchar decompose`` on real files: signal choice, crop, binning, energy range, the
zero-peak exclusion, physics mode, units and the figure; errors are one line, exit 2."""

from __future__ import annotations

import zipfile

import matplotlib
import numpy as np
import pytest

import matchar as mc
import matchar.cli

matplotlib.use("Agg")


def _file(shared_data, name):
    pytest.importorskip("rsciio")
    path = shared_data / name
    if not path.exists():
        pytest.skip(f"{path} not found")
    return path


def _run(tmp_path, *args, out="o"):
    code = matchar.cli.main(["decompose", *map(str, args), "--out", str(tmp_path / out)])
    return code, tmp_path / out


def test_zero_peak_left_out_by_default_and_kept_on_request(shared_data, tmp_path):
    path = _file(shared_data, "bruker-test_TEM.bcf")
    code, out = _run(tmp_path, path, "-k", 2, "--max-iter", 10, out="a")
    assert code == 0
    res = np.load(out / "decomposition.npz")
    e = res["energy"]
    assert str(res["energy_unit"]) == "keV" and e[0] >= 0.15 > e[0] - 0.0101
    assert res["components"].shape == (2, e.size) and res["maps"].shape == (64, 64, 2)
    np.testing.assert_allclose(res["components"].sum(axis=1), 1.0)  # maps in counts
    code, out = _run(tmp_path, path, "-k", 2, "--max-iter", 10, "--keep-zero-peak", out="b")
    assert code == 0
    assert np.load(out / "decomposition.npz")["energy"].size == 2048


def test_crop_bin_and_energy_range(shared_data, tmp_path):
    rsciio_hspy = pytest.importorskip("rsciio.hspy")
    path = _file(shared_data, "bruker-test_TEM.bcf")
    cube, energy, meta = mc.io.load_spectrum_image(path)
    args = ["--crop", "4:36,8:40", "--bin", 2, "--energy-range", "1:5", "-k", 2]
    code, out = _run(tmp_path, path, *args, "--max-iter", 10)
    assert code == 0
    res = np.load(out / "decomposition.npz")
    keep = (energy >= 1) & (energy <= 5)
    np.testing.assert_allclose(res["energy"], energy[keep])
    assert res["maps"].shape == (16, 16, 2) and res["residual_map"].shape == (16, 16)
    # the binned sub-cube's counts, summed by hand: what the fit models (KL NMF keeps
    # the total of the counts it fits)
    sub = cube[4:36, 8:40][..., keep].astype(np.int64).reshape(16, 2, 16, 2, -1).sum((1, 3))
    model_total = float((res["maps"] @ res["components"]).sum())
    assert model_total == pytest.approx(float(sub.sum()), rel=1e-3)
    maps = rsciio_hspy.file_reader(str(out / "maps.hspy"))[0]
    y, x = (a for a in maps["axes"] if not a["navigate"])
    scale = meta["navigation_axes"][0]["scale"]
    assert y["scale"] == pytest.approx(2 * scale) and y["offset"] == pytest.approx(4 * scale)
    assert x["offset"] == pytest.approx(8 * scale) and y["units"] == "µm"


def test_physics_mode_reads_the_file(shared_data, tmp_path, capsys):
    pytest.importorskip("sparse")
    archive = _file(shared_data, "velox-edx-16x16.zip")
    with zipfile.ZipFile(archive) as z:
        name = next(n for n in z.namelist() if n.endswith(".emd") and "Reduced" not in n)
        z.extract(name, tmp_path)
    code, out = _run(
        tmp_path,
        tmp_path / name,
        "--signal",
        "EDS",
        "--physics",
        "--elements",
        "C,O,Ca,Cu",
        "-k",
        2,
        "--max-iter",
        20,
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "300 keV beam" in printed and "beam_energy_keV" in printed
    res = np.load(out / "decomposition.npz")
    assert list(res["elements"]) == ["C", "O", "Ca", "Cu"]
    np.testing.assert_allclose(res["composition"].sum(axis=1), 1.0)
    assert res["element_maps"].shape == (16, 16, 4)


def test_physics_auto_elements(shared_data, tmp_path, capsys):
    path = _file(shared_data, "bruker-test_TEM.bcf")
    code, out = _run(tmp_path, path, "--physics", "-k", 2, "--max-iter", 10, "--bin", 2)
    assert code == 0
    elements = list(np.load(out / "decomposition.npz")["elements"])
    assert {"Cu", "O", "Pd", "Ti"} <= set(elements)  # the file's, kept as known ones
    assert "take-off 18 deg" in capsys.readouterr().out


def test_eels_axis_in_ev(tmp_path):
    pytest.importorskip("rsciio")
    pytest.importorskip("h5py")
    rng = np.random.default_rng(0)
    cube = rng.poisson(20 * rng.random((8 * 6, 2)) @ rng.random((2, 120))).reshape(8, 6, 120)
    axes = [
        {"name": "y", "scale": 0.5, "units": "nm"},
        {"name": "x", "scale": 0.5, "units": "nm"},
        {"name": "Energy loss", "scale": 2.0, "offset": 40.0, "units": "eV"},
    ]
    path = mc.io.save_hspy(tmp_path / "eels", cube.astype(np.uint16), axes=axes, signal_type="EELS")
    code, out = _run(tmp_path, path, "-k", 2, "--max-iter", 10, "--energy-range", "60:200")
    assert code == 0
    res = np.load(out / "decomposition.npz")
    # eV kept, and no zero-peak cut (60 eV < 0.15 keV would have been cut for EDX)
    assert str(res["energy_unit"]) == "eV" and res["energy"][0] == 60.0
    assert res["energy"][-1] == 200.0
    code, _ = _run(tmp_path, path, "--physics")
    assert code == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--crop", "a:b,0:4"], "--crop: expected LO:HI"),
        (["--crop", "0:4"], "--crop: expected y0:y1,x0:x1"),
        (["--crop", "70:80,0:4"], "selects no pixel"),
        (["--bin", "0"], "--bin must be"),
        (["--bin", "100"], "larger than"),
        (["--energy-range", "30:40"], "no channel left"),
        (["--elements", "Fe"], "--elements needs --physics"),
        (["--signal", "0"], "not a spectrum image"),
        (["--physics", "--elements", "Xx"], "Xx"),
    ],
)
def test_errors_are_one_line(shared_data, tmp_path, capsys, args, message):
    path = _file(shared_data, "bruker-test_TEM.bcf")
    code, _ = _run(tmp_path, path, *args, "--max-iter", 2)
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("matchar decompose: error: ") and "\n" not in err
    assert message in err


def test_npy_cannot_take_physics_or_signal(tmp_path, capsys):
    np.save(tmp_path / "c.npy", np.ones((4, 4, 16), np.uint16))
    assert _run(tmp_path, tmp_path / "c.npy", "--physics")[0] == 2
    assert _run(tmp_path, tmp_path / "c.npy", "--signal", "EDS")[0] == 2


def test_figure_panels_do_not_overlap():
    import matplotlib.pyplot as plt
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    from matchar.spectral._plots import plot_decomposition

    rng = np.random.default_rng(0)
    fig = plot_decomposition(
        rng.random((3, 50)),
        rng.random((20, 30, 3)),
        (0.2, 0.01),
        energy_unit="eV",
        pixel_nm=0.77,
        residual_map=rng.random((20, 30)),
        loss_history=np.geomspace(1e5, 1e4, 12),
    )
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    axes = fig.axes
    labels = [ax.get_xlabel() for ax in axes]
    assert labels.count("energy (eV)") == 3 and "iteration" in labels
    # every map has a colorbar (3 + residual) and a scale bar ("5 nm" of 30 x 0.77 nm)
    assert sum(1 for ax in axes if ax.get_label() == "<colorbar>") == 4
    bars = [a for ax in axes for a in ax.get_children() if isinstance(a, AnchoredSizeBar)]
    assert [b.txt_label.get_text() for b in bars] == ["5 nm"] * 4
    boxes = [ax.get_tightbbox(renderer) for ax in axes]
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            overlap = boxes[i].intersection(boxes[i], boxes[j])
            area = 0.0 if overlap is None else max(overlap.width, 0) * max(overlap.height, 0)
            assert area < 1.0, (axes[i].get_title(), axes[j].get_title(), area)
    plt.close(fig)


def test_plot_energy_unit_from_the_file():
    import matplotlib.pyplot as plt

    X = np.random.default_rng(0).poisson(5.0, (6, 5, 40))
    nmf = mc.spectral.NMF(2, max_iter=5, random_state=0).fit(X)
    fig = nmf.plot(nmf.transform(X), energy=(100.0, 0.5, "eV"))  # an EELS file's axis
    labels = [ax.get_xlabel() for ax in fig.axes]
    assert labels.count("energy (eV)") == 2 and "energy (keV)" not in labels
    np.testing.assert_allclose(fig.axes[2].get_lines()[0].get_xdata()[:2], [100.0, 100.5])
    plt.close(fig)
