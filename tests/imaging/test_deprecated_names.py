"""The imaging parameters renamed to the library's names-and-units convention
(docs/developing.md) still work under their old names for one release, with a
FutureWarning that names the new parameter; one test per old name."""

from __future__ import annotations

import numpy as np
import pytest

import matchar as mc
from matchar.imaging._dataset import CbedGenerator, WindowGenerator
from matchar.imaging._simulate import probe_sigma

CBED = dict(prototype="fcc", zone_axis=(1, 1, 0), lattice_constant=3.6, shape=(48, 48))
HAADF = dict(prototype="fcc", zone_axis=(1, 1, 0), lattice_constant=3.6, shape=(32, 32))


def test_electron_wavelength_voltage_kv():
    with pytest.warns(FutureWarning, match=r"voltage_kv=.*deprecated.*beam_energy_keV="):
        old = mc.imaging.electron_wavelength(voltage_kv=200.0)
    assert old == mc.imaging.electron_wavelength(beam_energy_keV=200.0)


@pytest.mark.parametrize(
    "old,new",
    [
        (dict(rotation=30.0), dict(rotation_deg=30.0)),
        (dict(pixel_size=0.05), dict(reciprocal_pixel_size=0.05)),
        (dict(voltage_kv=200.0), dict(beam_energy_keV=200.0)),
        (dict(thickness=45.0), dict(thickness_nm=4.5)),  # Å -> nm
    ],
)
def test_simulate_cbed_old_names(old, new):
    (name,) = old
    (new_name,) = new
    with pytest.warns(FutureWarning, match=rf"simulate_cbed\({name}=.*pass {new_name}="):
        got = mc.imaging.simulate_cbed(**CBED, **old)
    np.testing.assert_array_equal(got, mc.imaging.simulate_cbed(**CBED, **new))


@pytest.mark.parametrize(
    "old,new",
    [
        (dict(rotation=30.0), dict(rotation_deg=30.0)),
        (dict(voltage_kv=200.0), dict(beam_energy_keV=200.0)),
    ],
)
def test_simulate_haadf_old_names(old, new):
    (name,) = old
    (new_name,) = new
    with pytest.warns(FutureWarning, match=rf"simulate_haadf\({name}=.*pass {new_name}="):
        got = mc.imaging.simulate_haadf(**HAADF, **old, seed=1)
    np.testing.assert_array_equal(got, mc.imaging.simulate_haadf(**HAADF, **new, seed=1))


def test_probe_sigma_voltage_kv():
    with pytest.warns(FutureWarning, match="beam_energy_keV"):
        assert probe_sigma(voltage_kv=200.0) == probe_sigma(beam_energy_keV=200.0)


@pytest.mark.parametrize("generator", [WindowGenerator, CbedGenerator])
def test_training_generators_rotation(generator):
    with pytest.warns(FutureWarning, match="rotation_deg"):
        old = generator(0).sample(2, rotation=[10.0, 20.0], dose=1000)
    new = generator(0).sample(2, rotation_deg=[10.0, 20.0], dose=1000)
    for a, b in zip(old, new):
        np.testing.assert_array_equal(a, b)


def test_old_and_new_name_together_is_an_error():
    with pytest.raises(TypeError, match=r"both rotation= .* and rotation_deg="):
        mc.imaging.simulate_haadf(**HAADF, rotation=1.0, rotation_deg=1.0)


@pytest.fixture(scope="module")
def cbed():
    pattern = mc.imaging.simulate_cbed(
        "hcp", (0, 0, 0, 1), 3.2, 10.0, shape=(128, 128), reciprocal_pixel_size=0.035, seed=0
    )
    return pattern, mc.imaging.CrystalClassifier.default("cbed")


def test_predict_cbed_pixel_size(cbed):
    pattern, clf = cbed
    with pytest.warns(FutureWarning, match=r"pixel_size, modality='cbed'.*reciprocal_pixel_size"):
        old = clf.predict(pattern, 0.035, modality="cbed")
    new = clf.predict(pattern, modality="cbed", reciprocal_pixel_size=0.035)
    assert old.zone_axis == new.zone_axis and old.lattice_constant == new.lattice_constant
    with pytest.raises(TypeError, match="both pixel_size and reciprocal_pixel_size"):
        clf.predict(pattern, 0.035, modality="cbed", reciprocal_pixel_size=0.035)
    with pytest.raises(ValueError, match="reciprocal_pixel_size is the calibration of CBED"):
        clf.predict(pattern, modality="haadf", reciprocal_pixel_size=0.035)


def test_classify_map_cbed_pixel_size(cbed):
    pattern, clf = cbed
    data = np.stack([pattern, pattern])[None]  # (1, 2, H, W)
    with pytest.warns(FutureWarning, match="reciprocal_pixel_size"):
        old = mc.imaging.classify_map(data, 0.035, modality="cbed", classifier=clf)
    new = mc.imaging.classify_map(data, modality="cbed", reciprocal_pixel_size=0.035)
    np.testing.assert_array_equal(old.class_index, new.class_index)


def test_predict_patterns_pixel_size(cbed):
    pattern, clf = cbed
    with pytest.warns(FutureWarning, match=r"predict_patterns\(pixel_size="):
        old = clf.predict_patterns(pattern[None], pixel_size=0.035)
    new = clf.predict_patterns(pattern[None], reciprocal_pixel_size=0.035)
    np.testing.assert_array_equal(old["probabilities"], new["probabilities"])


def test_result_rotation_is_rotation_deg_with_a_warning():
    """CrystalPrediction.rotation and CrystalMap.rotation: deprecated aliases of
    rotation_deg (the same value, degrees)."""
    from matchar.imaging._classifier_results import CrystalMap, CrystalPrediction

    p = CrystalPrediction("fcc", (1, 1, 0), np.ones(3) / 3, 3.6, 12.5, 0.1)
    assert p.rotation_deg == 12.5
    with pytest.warns(FutureWarning, match="rotation_deg"):
        assert p.rotation == 12.5
    grid = np.zeros((2, 2), dtype=np.float32)
    m = CrystalMap(
        grid.astype(object), grid.astype(object), grid.astype(np.int64),
        np.zeros((2, 2, 3), np.float32), grid, grid + 7.0, grid, np.zeros((2, 2, 2)),
        ("a", "b", "c"), 64, 32,
    )  # fmt: skip
    with pytest.warns(FutureWarning, match="rotation_deg"):
        np.testing.assert_array_equal(m.rotation, m.rotation_deg)
