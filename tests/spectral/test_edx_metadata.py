"""EDXModel reads the file: metadata win over the defaults, the user wins over the
metadata; eV axes are converted; elements off the axis are named; proposal without a
float64 copy of the cube."""

from __future__ import annotations

import tracemalloc
import warnings

import numpy as np
import pytest

import matchar as mc
from matchar.spectral._edx import _summed_spectrum, edx_metadata, take_off_angle


def _meta(unit="keV", offset=-0.25, scale=0.01, size=1024, **tem):
    return {
        "energy_offset": offset,
        "energy_scale": scale,
        "energy_unit": unit,
        "energy_size": size,
        "metadata": {"Acquisition_instrument": {"TEM": tem}, "Sample": {"elements": ["Fe", "O"]}},
    }


def test_defaults_without_metadata():
    m = mc.spectral.EDXModel(["Fe"], (0.0, 0.01, 1024))
    assert (m.beam_energy_keV, m.resolution_eV, m.takeoff_deg) == (200.0, 130.0, 20.0)
    assert m.from_metadata == []


def test_metadata_win_over_defaults_and_user_wins_over_metadata():
    meta = _meta(
        beam_energy=300.0,
        Detector={
            "EDS": {"elevation_angle": 22.0, "azimuth_angle": 45.0, "energy_resolution_MnKa": 136.0}
        },
        Stage={"tilt_alpha": 10.0},
    )
    m = mc.spectral.EDXModel(metadata=meta)
    assert m.beam_energy_keV == 300.0 and m.resolution_eV == 136.0
    # HyperSpy's documented example: tilt 10, azimuth 45, elevation 22 -> 28.866 deg
    assert m.takeoff_deg == pytest.approx(28.865971, abs=1e-5)
    assert m.elements == ["Fe", "O"]
    assert (m.offset, m.scale, m.energy.size) == (-0.25, 0.01, 1024)
    assert set(m.from_metadata) == {
        "energy_axis",
        "beam_energy_keV",
        "resolution_eV",
        "takeoff_deg",
        "elements",
    }
    mine = mc.spectral.EDXModel(
        ["Cu"],
        (0.0, 0.02, 500),
        beam_energy_keV=120.0,
        resolution_eV=128.0,
        takeoff_deg=35.0,
        metadata=meta,
    )
    assert (mine.beam_energy_keV, mine.resolution_eV, mine.takeoff_deg) == (120.0, 128.0, 35.0)
    assert mine.elements == ["Cu"] and mine.energy.size == 500 and mine.from_metadata == []


def test_ev_axis_is_converted_to_kev():
    meta = _meta(unit="eV", offset=-250.0, scale=10.0, size=2048, beam_energy=200.0)
    m = mc.spectral.EDXModel(["Fe"], metadata=meta)
    assert m.offset == pytest.approx(-0.25) and m.scale == pytest.approx(0.01)
    # the same model as one built on the keV axis by hand
    ref = mc.spectral.EDXModel(["Fe"], (-0.25, 0.01, 2048))
    np.testing.assert_allclose(m.G, ref.G)
    eV_axis = -250.0 + 10.0 * np.arange(2048)  # load_spectrum_image's axis of that file
    with pytest.raises(ValueError, match="the file's axis in eV; EDXModel takes keV"):
        mc.spectral.EDXModel(["Fe"], eV_axis, metadata=meta)
    np.testing.assert_allclose(mc.spectral.EDXModel(["Fe"], eV_axis / 1000, metadata=meta).G, ref.G)
    with pytest.raises(ValueError, match="energy axis is in 'nm'"):
        edx_metadata(_meta(unit="nm"))


def test_take_off_angle_reference_values():
    assert take_off_angle(0.0, 45.0, 18.0) == pytest.approx(18.0)
    assert take_off_angle(10.0, 45.0, 22.0) == pytest.approx(28.865971201155283)


def test_metadata_element_off_the_axis_is_named_not_dropped_silently():
    meta = _meta(offset=2.0, scale=0.01, size=400, beam_energy=200.0)  # 2-6 keV
    meta["metadata"]["Sample"]["elements"] = ["Ti", "Zn"]  # Zn L 1.0, K 8.6 keV
    with pytest.warns(UserWarning, match=r"Zn have no X-ray line .* \[2.000, 5.990\] keV"):
        m = mc.spectral.EDXModel(metadata=meta)
    assert m.elements == ["Ti"]
    counts = np.random.default_rng(0).poisson(2e4 * m.G.sum(1), (4, 400))
    with pytest.warns(UserWarning, match="Zn"):
        found = m.propose_elements(counts, known=["Ti", "Zn"])
    assert "Zn" not in [p["element"] for p in found]
    # an element the user names keeps raising
    with pytest.raises(ValueError, match="covers no X-ray line of Zn"):
        mc.spectral.EDXModel(["Zn"], (2.0, 0.01, 400))


def test_summed_spectrum_in_blocks_without_a_float64_copy():
    rng = np.random.default_rng(0)
    cube = rng.integers(0, 50, (32, 64, 2048), dtype=np.uint16)  # 8 MB, 33 MB as float64
    crop = cube[3:30, 5:60]  # not contiguous
    tracemalloc.start()
    spec = _summed_spectrum(crop, 2048, chunk_bytes=1 << 22)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    np.testing.assert_array_equal(spec, crop.reshape(-1, 2048).sum(axis=0, dtype=np.int64))
    assert peak < 6e6, peak  # a float64 copy of the crop alone would be 24 MB
    with pytest.raises(ValueError, match="non-negative"):
        _summed_spectrum(-np.ones((3, 4, 8)), 8)
    with pytest.raises(ValueError, match="non-negative"):
        _summed_spectrum(np.full((3, 8), np.nan), 8)
    with pytest.raises(ValueError, match="channels"):
        _summed_spectrum(np.ones((3, 7)), 8)


def test_bruker_file_settings(shared_data):
    pytest.importorskip("rsciio")
    path = shared_data / "bruker-test_TEM.bcf"
    if not path.exists():
        pytest.skip(f"{path} not found")
    _cube, energy, meta = mc.io.load_spectrum_image(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        m = mc.spectral.EDXModel(metadata=meta)  # elements, 200 kV and 18 deg of the file
    assert m.elements == ["Cu", "O", "Pd", "Ti"]
    assert m.beam_energy_keV == 200.0 and m.takeoff_deg == pytest.approx(18.0)
    np.testing.assert_allclose(m.energy, energy)


def test_velox_beam_energy_is_the_files(velox):
    cube, _energy, meta = mc.io.load_spectrum_image(velox)
    m = mc.spectral.EDXModel(metadata=meta)
    assert m.beam_energy_keV == 300.0  # the 200 keV default overrode it before
    assert m.elements == ["C", "O", "Ca", "Cu"]
    est = mc.spectral.PhysicsNMF(m, 2, max_iter=20, random_state=0).fit(cube)
    assert np.isfinite(est.composition_).all()
