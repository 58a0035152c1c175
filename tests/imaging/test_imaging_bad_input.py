"""Bad input to matchar.imaging: clear errors naming the argument, never NaN, truncation,
a pybind11 signature dump, a raw IndexError or a hang; images of any scale give the
answer of scale 1."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest

import matchar as mc
from matchar import NotFittedError
from matchar.imaging import (
    CrystalClassifier,
    Segmenter,
    classify_map,
    default_shifts,
    lattice_vectors,
    lcm_cost,
    local_correlation_map,
    misorientation_deg,
    segment,
    simulate_cbed,
    simulate_haadf,
    symmetry_map,
    symmetry_transforms,
)

SCALES = (1e-300, 1e300)


def limg(shape: tuple[int, int] = (96, 96), period: float = 6.0) -> np.ndarray:
    """A square cosine lattice on a positive background (not constant at any scale)."""
    y, x = np.mgrid[: shape[0], : shape[1]]
    return np.cos(2 * np.pi * x / period) + np.cos(2 * np.pi * y / period) + 2.5


def one_bad_pixel(value: float) -> np.ndarray:
    img = limg()
    img[40, 50] = value
    return img


@pytest.fixture(scope="module")
def clf():
    return CrystalClassifier.default()


@pytest.fixture(scope="module")
def haadf():
    return simulate_haadf("fcc", (1, 1, 0), 4.05, shape=(96, 96), pixel_size=0.2, seed=0)


# -- local correlation and symmetry maps -------------------------------------------------


@pytest.mark.parametrize("method", ["boxsum", "fft"])
@pytest.mark.parametrize("scale", SCALES)
def test_correlation_map_is_scale_invariant(method, scale):
    ref, _ = local_correlation_map(limg(), 8, 8, 20, method=method)
    out, _ = local_correlation_map(limg() * scale, 8, 8, 20, method=method)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, ref, atol=1e-6)


@pytest.mark.parametrize("scale", SCALES)
def test_symmetry_map_is_scale_invariant(scale):
    ref, _ = symmetry_map(limg(), 6, 4)
    out, _ = symmetry_map(limg() * scale, 6, 4)
    np.testing.assert_allclose(out, ref, atol=1e-6)


def test_correlation_map_input_untouched_when_rescaled():
    img = limg() * 1e300
    before = img.copy()
    local_correlation_map(img, 8, 8, 20)
    np.testing.assert_array_equal(img, before)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(window=2**31), r"window must be an integer in \[1, 2147483647\], got 2147483648"),
        (dict(patch=2**31), r"patch must be an integer in \[1, 2147483647\], got 2147483648"),
        (dict(stride=2**40), "stride must be an integer"),
        (dict(n_shifts=2**32 + 5), "n_shifts must be an integer"),
        (dict(patch=2.5), "patch must be an integer"),
        (dict(stride=float("nan")), "stride"),
        (dict(window=True), "window"),
        (dict(method="magic"), "method must be one of"),
        (dict(patch=30, window=30), r"too small for patch=30, window=30"),
    ],
)
def test_correlation_map_bad_arguments(kwargs, match):
    args = dict(patch=8, window=8, n_shifts=20)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        local_correlation_map(limg(), **args)


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_correlation_and_symmetry_maps_refuse_non_finite(value):
    with pytest.raises(ValueError, match="image contains NaN or infinite"):
        local_correlation_map(one_bad_pixel(value), 8, 8, 20, method="fft")
    with pytest.raises(ValueError, match="image contains NaN or infinite"):
        symmetry_map(one_bad_pixel(value), 6, 4)


def test_shift_helpers_bad_integers():
    with pytest.raises(ValueError, match="n_shifts must be an integer"):
        default_shifts(20, 2**32 + 5)
    with pytest.raises(ValueError, match="window must be an integer"):
        default_shifts(2**31, 10)
    with pytest.raises(ValueError, match="stride must be an integer"):
        lcm_cost(20, 20, 100, stride=2**31)


def test_symmetry_bad_arguments():
    with pytest.raises(ValueError, match="patch must be an integer"):
        symmetry_map(limg(), 2**31)
    with pytest.raises(ValueError, match="too small for patch=60"):
        symmetry_map(limg(), 60)
    with pytest.raises(ValueError, match="folds must be an integer in \\[2,"):
        symmetry_transforms(folds=(4.5,))
    with pytest.raises(ValueError, match="mirror_angles_deg must be a finite number"):
        symmetry_transforms(mirror_angles_deg=(float("inf"),))


# -- lattice vectors and misorientation ---------------------------------------------------


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_lattice_vectors_refuse_non_finite(value):
    with pytest.raises(ValueError, match="NaN or infinite"):
        lattice_vectors(one_bad_pixel(value))


def test_lattice_vectors_ignore_non_finite_outside_the_mask():
    mask = np.ones((96, 96), bool)
    mask[:, 48:] = False
    img = limg()
    img[:, 60:] = np.nan
    ref = lattice_vectors(limg(), mask)
    np.testing.assert_allclose(lattice_vectors(img, mask), ref)


@pytest.mark.parametrize("scale", SCALES)
def test_lattice_vectors_are_scale_invariant(scale):
    ref = lattice_vectors(limg())
    assert np.isfinite(ref).all()
    np.testing.assert_allclose(lattice_vectors(limg() * scale), ref, atol=1e-9)


def test_lattice_vectors_bad_max_length():
    with pytest.raises(ValueError, match="max_length must be an integer in \\[3,"):
        lattice_vectors(limg(), max_length=2**31)
    with pytest.raises(ValueError, match="max_length"):
        lattice_vectors(limg(), max_length=10.5)


@pytest.mark.parametrize("tol", [-1, 0, float("nan"), float("inf"), 0.6])
def test_misorientation_bad_tolerance(tol):
    with pytest.raises(ValueError, match=r"tolerance must be a finite number in \(0.0, 0.5\]"):
        misorientation_deg(np.eye(2), np.eye(2), tolerance=tol)


def test_misorientation_bad_basis_shape():
    with pytest.raises(ValueError, match=r"b must be a \(2, 2\) array"):
        misorientation_deg(np.eye(2), [1.0, 2.0, 3.0])
    assert misorientation_deg(np.eye(2), np.eye(2), tolerance=0.5) == 0.0


# -- segmentation -------------------------------------------------------------------------

SMALL = dict(patch=8, window=8, n_shifts=20)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(min_silhouette=float("nan")), "min_silhouette"),
        (dict(min_silhouette=2.0), r"min_silhouette must be a finite number in \[-1.0, 1.0\]"),
        (dict(min_separation=float("inf")), "min_separation"),
        (dict(smoothing=float("nan")), "smoothing"),
        (dict(smoothing=1e300), r"smoothing=1e\+300 pixels exceeds the image's larger side"),
        (dict(contrast_sigma=1e300), "contrast_sigma=1e\\+300 pixels exceeds"),
        (dict(window=2**31), "window must be an integer"),
        (dict(n_shifts=2**32 + 5), "n_shifts must be an integer"),
        (dict(n_components=2.5), "n_components must be an integer"),
        (dict(max_regions=2**31), "max_regions must be an integer"),
        (dict(n_regions=2**31), "n_regions must be an integer"),
        (dict(n_regions=10**6), r"n_regions=1000000 exceeds the \d+ descriptor grid points"),
        (dict(random_state=-1), "random_state must be an integer"),
        (dict(random_state=1.5), "random_state"),
        (dict(pixel_size=float("nan")), "pixel_size"),
    ],
)
def test_segment_bad_arguments(kwargs, match):
    args = dict(SMALL)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        segment(limg(), **args)


def test_segment_bad_arguments_are_refused_before_the_descriptors(monkeypatch):
    import matchar.imaging._segment as seg_mod

    def fail(*args, **kwargs):
        raise AssertionError("descriptors computed before the arguments were checked")

    monkeypatch.setattr(seg_mod, "local_correlation_map", fail)
    with pytest.raises(ValueError, match="n_regions"):
        segment(limg(), n_regions=10**6, **SMALL)


def test_segment_max_regions_is_clamped_to_what_the_image_holds():
    t0 = time.perf_counter()
    seg = Segmenter(max_regions=10**6, **SMALL)
    seg.fit(limg())
    assert time.perf_counter() - t0 < 30
    # 96 // 17 = 5 patches per side: at most 25 regions are tried
    assert max(seg.scores_) <= 25


@pytest.mark.parametrize("scale", SCALES)
def test_segment_is_scale_invariant(scale):
    image, _ = mc.datasets.bicrystal(20.0, shape=(128, 128), seed=0)
    ref = segment(image, n_regions=2, **SMALL)
    out = segment(image * scale, n_regions=2, **SMALL)
    np.testing.assert_array_equal(out.labels, ref.labels)


def test_segment_tiny_values_are_not_called_constant():
    seg = segment(limg() * 1e-300, **SMALL)
    assert seg.n_regions == 1


def test_segmenter_not_fitted():
    with pytest.raises(NotFittedError, match="not fitted"):
        Segmenter().predict(limg())
    with pytest.raises(RuntimeError, match="not fitted"):
        Segmenter().predict(limg())


# -- simulation ---------------------------------------------------------------------------

HAADF = dict(prototype="fcc", zone_axis=(1, 0, 0), lattice_constant=4.0, shape=(32, 32))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(atomic_number=29.7), r"atomic_number must be an integer in \[1, 118\]"),
        (dict(atomic_number=0), "atomic_number"),
        (dict(atomic_number=2**31), "atomic_number"),
        (dict(shape=(64.5, 64)), r"shape\[0\] \(rows\) must be an integer in \[1,"),
        (dict(shape=(64, 2**31)), r"shape\[1\]"),
        (dict(shape=(64,)), "shape must be a pair"),
        (dict(shape=64), "shape must be a pair"),
        (dict(origin=(1, 2, 3)), "origin .* must be a pair of numbers"),
        (dict(origin=(1.0, np.nan)), r"origin \(Å\)\[1\]"),
        (dict(origin=(1e300, 0.0)), r"origin \(Å\)\[0\] must be a finite number in"),
        (dict(drift=(1.0,)), "drift .* must be a pair of numbers"),
        (dict(drift=(np.inf, 0.0)), "drift"),
        (dict(thermal_sigma=1e300), r"thermal_sigma .* in \[0.0, 4.0\]"),
        (dict(thermal_sigma=-0.1), "thermal_sigma"),
        (dict(seed=2.5), "seed must be an integer"),
        (dict(seed=-1), "seed must be an integer"),
        (dict(seed=2**64), "seed must be an integer"),
        (dict(rotation_deg=np.inf), "rotation_deg"),
        (dict(lattice_constant=1e300), "lattice_constant"),
        (dict(pixel_size=np.nan), "pixel_size"),
        (dict(dose=np.inf), "dose"),
        (dict(dose=0.0), "dose"),
        (dict(beam_energy_keV=np.nan), "beam_energy_keV"),
        (dict(convergence_mrad=-1.0), "convergence_mrad"),
        (dict(source_fwhm=np.inf), "source_fwhm"),
        (dict(source_fwhm=1e300), "too fine for the probe"),
        (dict(convergence_mrad=1e-300), "too fine for the probe"),
        (dict(background=-1.0), "background"),
        (dict(background=np.nan), "background"),
        (dict(read_noise=np.nan), "read_noise"),
        (dict(read_noise=-1.0), "read_noise"),
        (dict(read_noise=1.7976931348623157e308), r"read_noise must be a finite number in"),
        (dict(background=1e300), "background"),
        (dict(dose=1e300), r"dose must be a finite number in \(0.0, 1000000000000000.0\]"),
        (dict(scan_jitter=-1.0), "scan_jitter"),
        (dict(scan_jitter=1e300), "scan_jitter"),
        (dict(dtype=np.int16), "dtype"),
    ],
)
def test_simulate_haadf_bad_arguments(kwargs, match):
    args = dict(HAADF)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        simulate_haadf(**args)


def test_simulate_haadf_accepts_integral_values():
    a = simulate_haadf(**{**HAADF, "shape": (32.0, 32), "atomic_number": 29.0}, seed=1)
    b = simulate_haadf(**HAADF, seed=np.uint64(1))
    np.testing.assert_array_equal(a, b)


CBED = dict(prototype="fcc", zone_axis=(1, 1, 0), lattice_constant=3.6, shape=(48, 48))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(atomic_number=29.7), r"atomic_number must be an integer in \[1, 103\]"),
        (dict(atomic_number=104), "atomic_number"),
        (dict(shape=(64.5, 64)), r"shape\[0\]"),
        (dict(center=(1, 2, 3)), "center .* must be a pair"),
        (dict(tilt_mrad=(1.0,)), "tilt_mrad must be a pair"),
        (dict(tilt_mrad=1.0), "tilt_mrad must be a pair"),
        (dict(thermal_sigma=1e300), "thermal_sigma"),
        (dict(seed=2.5), "seed"),
        (dict(thickness_nm=np.inf), "thickness_nm"),
        (dict(lattice_constant=1e300), "lattice_constant"),
        (dict(dose=np.nan), "dose"),
        (dict(dose=1e300), "dose"),
        (dict(read_noise=1e300), "read_noise"),
    ],
)
def test_simulate_cbed_bad_arguments(kwargs, match):
    args = dict(CBED)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        simulate_cbed(**args)


# -- crystal classifier ---------------------------------------------------------------------


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_predict_windows_refuses_non_finite(clf, value):
    w = np.ones((2, 64, 64), np.float32)
    w[1, 3, 4] = value
    with pytest.raises(ValueError, match=r"windows contain NaN or infinite.*index 1"):
        clf.predict_windows(w)
    with pytest.raises(ValueError, match="windows contain NaN"):
        clf.predict_windows(np.full((2, 64, 64), np.nan, np.float32))


def test_predict_windows_bad_arguments(clf):
    with pytest.raises(ValueError, match="batch_size must be an integer in \\[1,"):
        clf.predict_windows(np.ones((2, 64, 64)), batch_size=0)
    with pytest.raises(ValueError, match=r"windows must have shape \(N, 64, 64\)"):
        clf.predict_windows(np.ones((2, 32, 32)))


def test_predict_windows_scale_invariant(clf, haadf):
    w = np.stack([haadf[:64, :64], haadf[16:80, 16:80]])
    ref = clf.predict_windows(w)
    for scale in SCALES:
        out = clf.predict_windows(w * scale)
        assert np.isfinite(out["probs_mc"]).all()
        np.testing.assert_allclose(out["probs_mc"], ref["probs_mc"], atol=1e-3)


@pytest.mark.parametrize("scale", SCALES)
def test_predict_and_classify_map_scale_invariant(clf, haadf, scale):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow RuntimeWarning either
        p = clf.predict(haadf * scale, 0.2)
        m = classify_map(haadf * scale, 0.2, stride=16, classifier=clf)
    ref = clf.predict(haadf, 0.2)
    assert np.isfinite(p.probabilities).all()
    np.testing.assert_allclose(p.probabilities, ref.probabilities, atol=1e-3)
    assert (p.prototype, p.zone_axis) == (ref.prototype, ref.zone_axis)
    ref_m = classify_map(haadf, 0.2, stride=16, classifier=clf)
    assert np.isfinite(m.probabilities).all()
    np.testing.assert_allclose(m.probabilities, ref_m.probabilities, atol=1e-3)


@pytest.mark.parametrize("batch_size", [-1, 0, 2.5, 2**31, None])
def test_classify_map_bad_batch_size(clf, haadf, batch_size):
    with pytest.raises(ValueError, match="batch_size must be an integer in \\[1,"):
        classify_map(haadf, 0.2, batch_size=batch_size, classifier=clf)


def test_classify_map_bad_window_and_stride(clf, haadf):
    with pytest.raises(ValueError, match="window"):
        classify_map(haadf, 0.2, window=2**31, classifier=clf)
    with pytest.raises(ValueError, match="stride"):
        classify_map(haadf, 0.2, stride=2**31, classifier=clf)
    with pytest.raises(ValueError, match="stride"):
        classify_map(haadf, 0.2, stride=4.5, classifier=clf)


def test_windows_larger_than_the_image(clf):
    small = simulate_haadf("fcc", (1, 1, 0), 4.05, shape=(50, 50), pixel_size=0.2, seed=0)
    # the message speaks in the caller's pixels: 16 Å = 80 pixels at 0.2 Å
    with pytest.raises(ValueError, match=r"smaller than one window \(16.0 Å = 80 pixels at 0.2 Å"):
        clf.predict(small, 0.2)
    with pytest.raises(ValueError, match="smaller than one window"):
        classify_map(small, 0.2, classifier=clf)


def test_predict_patterns_bad_batch_size():
    cbed = CrystalClassifier.default("cbed")
    p = simulate_cbed("fcc", (1, 1, 0), 3.6, shape=(96, 96), reciprocal_pixel_size=0.035)
    with pytest.raises(ValueError, match="batch_size must be an integer in \\[1,"):
        cbed.predict_patterns(p[None], 0.035, batch_size=0)


def test_cbed_pattern_overflowing_float32_is_refused():
    cbed = CrystalClassifier.default("cbed")
    p = simulate_cbed("fcc", (1, 1, 0), 3.6, shape=(96, 96), reciprocal_pixel_size=0.035)
    with pytest.raises(ValueError, match="units of the incident beam"):
        cbed.predict(p * 1e300, modality="cbed", reciprocal_pixel_size=0.035)


def _copy_model(tmp_path, onnx_bytes=None, metadata=None):
    models = mc.imaging._classifier._MODELS
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(
        (models / "crystal_classifier.onnx").read_bytes() if onnx_bytes is None else onnx_bytes
    )
    meta = json.loads((models / "crystal_classifier.json").read_text())
    (tmp_path / "model.json").write_text(json.dumps(meta if metadata is None else metadata))
    return onnx


def test_loading_a_garbage_onnx_file(tmp_path):
    onnx = _copy_model(tmp_path, onnx_bytes=b"this is not an onnx graph" * 10)
    with pytest.raises(ValueError, match=r"model.onnx' could not be loaded as an ONNX model"):
        CrystalClassifier(onnx)


@pytest.mark.parametrize(
    ("metadata", "match"),
    [
        ({}, "missing key 'classes'"),
        ([], "JSON object"),
        ({"classes": [{"prototype": "fcc"}], "symmetry_order": [4]}, "missing key 'zone_axis'"),
    ],
)
def test_loading_bad_metadata(tmp_path, metadata, match):
    onnx = _copy_model(tmp_path, metadata=metadata)
    with pytest.raises(ValueError, match=rf"model.json' is not the metadata.*{match}"):
        CrystalClassifier(onnx)


def test_loading_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nothing\.onnx"):
        CrystalClassifier(tmp_path / "nothing.onnx")
    onnx = _copy_model(tmp_path)
    (tmp_path / "model.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"model\.json"):
        CrystalClassifier(onnx)
    (tmp_path / "model.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"model\.json"):
        CrystalClassifier(onnx)


def test_a_copied_model_still_loads(tmp_path, clf):
    other = CrystalClassifier(_copy_model(tmp_path))
    assert other.classes == clf.classes
    assert math.isclose(float(other.symmetry_order.sum()), float(clf.symmetry_order.sum()))


# -- the other public functions -------------------------------------------------------------


@pytest.mark.parametrize("value", [0.7, 3.3, 1e-300])
def test_constant_images_are_refused_whatever_the_rounding(value, clf):
    flat = np.full((96, 96), value)
    with pytest.raises(ValueError, match="image is constant"):
        local_correlation_map(flat, 8, 8, 20)
    with pytest.raises(ValueError, match="image is constant"):
        symmetry_map(flat, 6, 4)
    with pytest.raises(ValueError, match="image is constant"):
        segment(flat, **SMALL)
    with pytest.raises(ValueError, match="image is constant"):
        clf.predict(flat, 0.2)
    with pytest.raises(ValueError, match="image is constant"):
        classify_map(flat, 0.2, classifier=clf)


@pytest.mark.parametrize("zone", [(1, np.nan, 0), "100", (10**6, 1, 0), (1e300, 1, 0), 3])
def test_bad_zone_axes(zone):
    match = r"zone_axis must be a tuple of integers in \[-1000, 1000\]"
    with pytest.raises(ValueError, match=match):
        simulate_haadf("fcc", zone, 4.0, shape=(32, 32))
    with pytest.raises(ValueError, match=match):
        simulate_cbed("fcc", zone, 4.0, shape=(32, 32))
    with pytest.raises(ValueError, match=match):
        mc.imaging.projected_cell("fcc", zone)


def test_projected_cell_takes_a_list():
    cell = mc.imaging.projected_cell("fcc", [1, 0, 0])
    assert cell is mc.imaging.projected_cell("fcc", (2, 0, 0))  # cached, normalized


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            dict(beam_energy_keV=1e300),
            r"beam_energy_keV must be a finite number in \(0.0, 10000.0\]",
        ),
        (dict(beam_energy_keV="300"), "beam_energy_keV"),
        (dict(convergence_mrad=1e300), r"convergence_mrad must be a finite number in"),
    ],
)
def test_probe_parameters_bounded(kwargs, match):
    with pytest.raises(ValueError, match=match):
        simulate_cbed("fcc", (1, 1, 0), 3.6, shape=(32, 32), **kwargs)
    with pytest.raises(ValueError, match=match):
        simulate_haadf("fcc", (1, 1, 0), 3.6, shape=(32, 32), **kwargs)


def test_electron_wavelength_bad_beam_energy():
    with pytest.raises(ValueError, match="beam_energy_keV"):
        mc.imaging.electron_wavelength("300")


def test_cbed_direct_beam_far_outside_names_the_center():
    with pytest.raises(ValueError, match=r"center=\(1000000000.0, 0.0\).*Miller indices"):
        simulate_cbed("fcc", (1, 1, 0), 4.0, shape=(32, 32), center=(1e9, 0))


def test_symmetry_transforms_need_sequences():
    with pytest.raises(ValueError, match="folds must be a sequence"):
        symmetry_transforms(folds=4)
    with pytest.raises(ValueError, match="mirror_angles_deg must be a sequence"):
        symmetry_transforms(mirror_angles_deg="0")


def test_segmentation_plot_bad_alpha():
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    seg = segment(limg(), n_regions=1, **SMALL)
    with pytest.raises(ValueError, match=r"alpha must be a finite number in \[0.0, 1.0\]"):
        seg.plot(alpha=float("nan"))


# -- synthetic images (matchar.datasets) ------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(shape=(64.5, 64)), r"shape \(sides in pixels\) must be an integer"),
        (dict(shape=(2**31, 64)), "shape"),
        (dict(seed=2.5), "seed must be an integer"),
        (dict(misorientation_deg=float("nan")), "misorientation_deg"),
        (dict(spacing=float("inf")), "spacing"),
        (dict(dose=1e300), "dose"),
        (dict(noise=float("inf")), "noise"),
        (dict(background=float("nan")), "background"),
        (dict(sigma=1e4), r"sigma \(pixels, at most spacing\)"),
        (dict(scan_jitter=1e4), r"scan_jitter \(pixels, at most spacing\)"),
    ],
)
def test_bicrystal_bad_arguments(kwargs, match):
    args = dict(misorientation_deg=10.0, shape=(64, 64))
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        mc.datasets.bicrystal(**args)


def test_other_generators_bad_arguments():
    with pytest.raises(ValueError, match="shape"):
        mc.datasets.twin(shape=(64.5, 64))
    with pytest.raises(ValueError, match="seed"):
        mc.datasets.stacking_fault(shape=(64, 64), seed=1.5)
    with pytest.raises(ValueError, match="spacing"):
        mc.datasets.two_phase(shape=(64, 64), spacings=(10.0, float("inf")))
    with pytest.raises(ValueError, match=r"intensities\[1\]"):
        mc.datasets.two_phase(shape=(64, 64), intensities=(1.0, float("nan")))
    with pytest.raises(MemoryError, match="2\\^28"):
        mc.datasets.bicrystal(10.0, shape=(2**20, 2**20))
