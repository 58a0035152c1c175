"""matchar.io.load_spectrum_image on files with several signals: listing, choosing (index,
title, EDS/EELS), the default and its warning, units and metadata kept."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import matchar as mc
import matchar.io


def _bcf(shared_data, name):
    pytest.importorskip("rsciio")
    path = shared_data / name
    if not path.exists():
        pytest.skip(f"{path} not found")
    return path


def test_velox_signals_listed_and_eds_chosen(velox):
    signals = mc.io.list_signals(velox)
    kinds = [s["kind"] for s in signals]
    assert kinds.count("spectrum image") == 1 and kinds.count("image") == 5
    cube_info = signals[kinds.index("spectrum image")]
    assert cube_info["technique"] == "EDS" and cube_info["shape"] == (16, 16, 4096)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # one spectrum image: nothing ambiguous
        cube, energy, meta = mc.io.load_spectrum_image(velox)
    assert meta["signal_index"] == cube_info["index"] and cube.shape == (16, 16, 4096)
    assert meta["energy_unit"] == "keV" and meta["energy_size"] == 4096
    np.testing.assert_allclose(energy[:2], [meta["energy_offset"], meta["energy_offset"] + 0.01])
    # metadata completed from the original metadata, as HyperSpy does: 300 kV, elements
    md = meta["metadata"]
    assert md["Acquisition_instrument"]["TEM"]["beam_energy"] == 300.0
    assert md["Sample"]["elements"] == ["C", "O", "Ca", "Cu"]
    assert md["Acquisition_instrument"]["TEM"]["Detector"]["EDS"]["elevation_angle"] == 18.0
    for choice in ("edx", cube_info["index"]):
        assert mc.io.load_spectrum_image(velox, signal=choice)[2]["signal_index"] == 9


def test_velox_bad_choices_name_the_signals(velox):
    image = next(s for s in mc.io.list_signals(velox) if s["kind"] == "image")
    with pytest.raises(ValueError, match=rf"signal={image['index']}: .* not a spectrum image"):
        mc.io.load_spectrum_image(velox, signal=image["index"])
    with pytest.raises(ValueError, match=r"signal='EELS': no spectrum image .*\[9\] EDS"):
        mc.io.load_spectrum_image(velox, signal="EELS")
    with pytest.raises(ValueError, match=r"out of range: .* holds 10 datasets"):
        mc.io.load_spectrum_image(velox, signal=10)
    with pytest.raises(ValueError, match="signal must be None, an int index or a str"):
        mc.io.load_spectrum_image(velox, signal=1.5)


def test_bruker_sem_images_and_edx(shared_data):
    path = _bcf(shared_data, "sem-edx-P45.bcf")
    signals = mc.io.list_signals(path)
    assert [(s["title"], s["kind"]) for s in signals] == [
        ("BSE", "image"),
        ("SE", "image"),
        ("EDX", "spectrum image"),
    ]
    cube, _, meta = mc.io.load_spectrum_image(path)
    assert cube.shape == (75, 100, 2048) and meta["signal_title"] == "EDX"
    assert meta["technique"] == "EDS" and meta["energy_unit"] == "keV"
    with pytest.raises(
        ValueError, match=r"signal=0: dataset \[0\] BSE of .* is an image, not a spectrum image"
    ):
        mc.io.load_spectrum_image(path, signal=0)


def test_bruker_edx_ebsd_by_title(shared_data):
    path = _bcf(shared_data, "sem-edx-ebsd.bcf")
    cube, _, meta = mc.io.load_spectrum_image(path, signal="EDX")
    assert cube.shape == (87, 100, 2048) and meta["signal_index"] == 1


def _fake_file(tmp_path, monkeypatch, items):
    """A file whose reader returns ``items`` (the selection logic on a file with an EELS
    and an EDS spectrum image, which none of the shared files has)."""
    path = tmp_path / "multi.emd"
    path.write_bytes(b"x")
    monkeypatch.setattr(matchar.io, "_read_items", lambda p, lazy: items)
    return path


def _item(title, signal_type, unit, offset, scale, shape):
    nav = [
        {"name": n, "size": s, "scale": 2.0, "offset": 0.0, "units": "nm", "navigate": True}
        for n, s in zip("yx", shape[:-1])
    ]
    return {
        "data": np.arange(np.prod(shape), dtype=np.uint16).reshape(shape),
        "axes": [
            *nav,
            {
                "name": "E",
                "size": shape[-1],
                "scale": scale,
                "offset": offset,
                "units": unit,
                "navigate": False,
            },
        ],
        "metadata": {"General": {"title": title}, "Signal": {"signal_type": signal_type}},
        "original_metadata": {},
    }


def test_several_spectrum_images_default_eds_with_a_warning(tmp_path, monkeypatch):
    items = [
        _item("EELS low loss", "EELS", "eV", -5.0, 0.25, (4, 5, 40)),
        _item("HAADF", "", None, 0.0, 1.0, (4, 5)) | {"axes": []},
        _item("EDS", "EDS_TEM", "keV", -0.25, 0.01, (4, 5, 30)),
        _item("EELS core loss", "EELS", "eV", 300.0, 0.5, (4, 5, 50)),
    ]
    items[1]["data"] = np.zeros((4, 5))
    path = _fake_file(tmp_path, monkeypatch, items)
    with pytest.warns(UserWarning, match=r"holds 3 spectrum images; read \[2\] EDS .*signal="):
        cube, energy, meta = mc.io.load_spectrum_image(path)
    assert meta["signal_index"] == 2 and cube.shape == (4, 5, 30)
    # an EELS choice keeps the eV axis, and says so
    with pytest.warns(UserWarning, match="matches 2 spectrum images"):
        cube, energy, meta = mc.io.load_spectrum_image(path, signal="EELS")
    assert meta["signal_index"] == 0 and meta["energy_unit"] == "eV"
    np.testing.assert_allclose(energy[:3], [-5.0, -4.75, -4.5])
    cube, energy, meta = mc.io.load_spectrum_image(path, signal="core loss")
    assert meta["signal_index"] == 3 and energy[0] == 300.0 and meta["technique"] == "EELS"
    assert cube.shape == (4, 5, 50)


def test_reader_table_is_rosettasciio_registry():
    pytest.importorskip("rsciio")
    import rsciio

    plugins = matchar.io._rsciio_plugins()
    for ext in matchar.io.SPECTRUM_IMAGE_EXTENSIONS:
        assert ext in plugins, ext
    every = {"." + e.lower() for p in rsciio.IO_PLUGINS for e in p["file_extensions"]}
    assert set(plugins) == every
    assert matchar.io._format_name(matchar.io.Path("a.hspy")) == "HyperSpy .hspy"
    assert matchar.io._format_name(matchar.io.Path("a.dm4")) == "DigitalMicrograph .dm4"


def test_jeol_metadata_resolution_and_angles(shared_data):
    pytest.importorskip("rsciio")
    pytest.importorskip("numba")
    path = shared_data / "jeol-edx-512x512.pts"
    if not path.exists():
        pytest.skip(f"{path} not found")
    _, energy, meta = mc.io.load_spectrum_image(path, lazy=True)
    model = mc.spectral.EDXModel(["Fe", "Cu"], metadata=meta)
    eds = meta["metadata"]["Acquisition_instrument"]["TEM"]["Detector"]["EDS"]
    assert model.resolution_eV == pytest.approx(float(eds["energy_resolution_MnKa"]))  # 138
    assert model.takeoff_deg == pytest.approx(22.3, abs=1e-4)  # elevation 22.3, no tilt
    np.testing.assert_allclose(model.energy, energy)  # keV file, keV model


@pytest.mark.parametrize(("ext", "fmt"), [(".msa", "MSA .msa"), (".emi", "TIA .emi")])
def test_garbage_text_formats_are_one_error(tmp_path, ext, fmt):
    # these readers returned an empty spectrum / no dataset for random bytes
    pytest.importorskip("rsciio")
    path = tmp_path / f"random{ext}"
    path.write_bytes(np.random.default_rng(0).bytes(3000))
    with pytest.raises(mc.io.FileFormatError, match=rf"as {fmt}: file holds no data"):
        mc.io.load_spectrum_image(path)


def test_missing_reader_module_says_how_to_install(tmp_path, monkeypatch):
    import sys

    pytest.importorskip("rsciio")
    path = tmp_path / "x.mrc"
    path.write_bytes(b"\0" * 2048)
    monkeypatch.setitem(sys.modules, "mrcz", None)  # import mrcz -> ImportError
    monkeypatch.delitem(sys.modules, "rsciio.mrcz", raising=False)
    monkeypatch.delitem(sys.modules, "rsciio.mrcz._api", raising=False)
    with pytest.raises(ImportError, match=r"needs the module 'mrcz': pip install mrcz \(not in"):
        mc.io.load_spectrum_image(path)
