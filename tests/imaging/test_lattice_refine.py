"""The lattice constant measured from the FFT peaks after classification, the warnings
when it contradicts a given lattice constant or the image shows no plausible lattice,
and the one-line warnings of ``matchar identify``."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
import scipy.ndimage

import matchar as mc
import matchar.cli
from matchar.imaging._classifier_checks import tile_spacings
from matchar.imaging._refine import first_order_peak, power_spectra

PS = 0.12  # Å per pixel of the test images
SHAPE = (256, 256)  # 30.7 Å: FFT bins of 0.033 1/Å


@pytest.fixture(scope="module")
def clf():
    return mc.imaging.CrystalClassifier.default()


def _image(proto, zone, a, rotation=17.0, shape=SHAPE, ps=PS, dose=300, seed=0):
    return mc.imaging.simulate_haadf(
        proto, zone, a, rotation_deg=rotation, shape=shape, pixel_size=ps, dose=dose, seed=seed
    )


def _user_warnings(record) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, UserWarning)]


# Several zone axes of every prototype, lattice constants away from the network's
# training-range edges, rotations off the lattice directions.
CASES = [
    ("fcc", (1, 1, 0), 3.61, 17.0),
    ("fcc", (2, 1, 1), 4.08, 41.0),
    ("bcc", (1, 1, 1), 2.87, 8.0),
    ("bcc", (1, 1, 0), 3.30, 63.0),
    ("hcp", (0, 0, 0, 1), 3.21, 25.0),
    ("hcp", (1, 0, -1, 0), 2.95, 70.0),
    ("diamond", (1, 1, 0), 5.43, 12.0),
]


def test_refined_lattice_constant_matches_the_truth(clf):
    # A 30.7 Å field of view gives FFT bins of 1/30.7 1/Å; the first-order peaks lie
    # 10-20 bins out and several orders are fitted together, so locating them to a
    # tenth of a bin gives a to a few 0.1%: 0.5% is the bound (the network alone is
    # off by 1-3%).
    err_refined, err_network = [], []
    for i, (proto, zone, a, rot) in enumerate(CASES):
        img = _image(proto, zone, a, rot, seed=i)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            p = clf.predict(img, PS, lattice_constant=a)
        assert (p.prototype, p.zone_axis) == (proto, zone)
        err_refined.append(abs(p.lattice_constant / a - 1))
        # the network's own reading of the class: the mean over windows of log a
        out = clf.predict_windows(
            clf._grid_windows(mc.imaging._classifier._resample(img, PS), img.shape, 64, 32)[
                0
            ].reshape(-1, 64, 64)
        )
        k = clf.classes.index(f"{proto}[{''.join(map(str, zone))}]")
        a_net = float(np.exp(out["log_a"].mean(axis=(0, 1))[k]))
        err_network.append(abs(a_net / a - 1))
    assert max(err_refined) < 0.005, err_refined
    assert np.mean(err_refined) < 0.5 * np.mean(err_network), (err_refined, err_network)


@pytest.mark.parametrize("pixel_size", [0.08, 0.2])
def test_refinement_at_other_pixel_sizes(clf, pixel_size):
    a = 4.05  # Al
    n = round(SHAPE[0] * PS / pixel_size)
    img = _image("fcc", (1, 0, 0), a, 33.0, shape=(n, n), ps=pixel_size, seed=3)
    p = clf.predict(img, pixel_size, lattice_constant=a)
    assert p.prototype == "fcc"
    assert abs(p.lattice_constant / a - 1) < 0.005


def test_map_lattice_constant_is_measured_per_window(clf):
    a = 3.61
    img = _image("fcc", (1, 1, 0), a, 17.0, shape=(400, 400), dose=300, seed=5)
    m = clf.classify_map(img, PS, stride=24, lattice_constant=a)
    assert np.all(m.prototype == "fcc")
    assert m.lattice_constant.dtype == np.float32
    err = np.abs(m.lattice_constant / a - 1)
    # A 16 Å window has FFT bins of 1/16 1/Å, the {111} peaks 7.7 bins out: a tenth of
    # a bin is 1.3% on one peak, less on the several fitted.
    assert np.median(err) < 0.005
    assert np.quantile(err, 0.95) < 0.02


def test_given_lattice_constant_far_from_the_image_warns_once(clf):
    a, given = 3.61, 2.87  # Cu imaged, Fe told
    img = _image("fcc", (1, 1, 0), a, 17.0, seed=1)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        p = clf.predict(img, PS, lattice_constant=given)
    msgs = _user_warnings(record)
    assert len(msgs) == 1, msgs
    assert "3.61 Å" in msgs[0] and "2.87 Å" in msgs[0]
    assert f"{(a - given) / given:.0%}" in msgs[0]  # 26%
    assert "tolerance 5%" in msgs[0]
    # the value reported is the one measured, not the one given
    assert abs(p.lattice_constant / a - 1) < 0.005
    # a range and a per-prototype dict are named as given
    with pytest.warns(UserWarning, match=r"given 2\.8-2\.95 Å by 22%"):
        clf.predict(img, PS, lattice_constant=(2.8, 2.95))
    with pytest.warns(UserWarning, match=r"given fcc 2\.87 Å"):
        clf.predict(img, PS, lattice_constant={"fcc": 2.87})


def test_given_lattice_constant_that_fits_gives_no_warning(clf):
    img = _image("fcc", (1, 1, 0), 3.61, 17.0, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clf.predict(img, PS, lattice_constant=3.59)  # 0.6% off, within 5%
        clf.predict(img, PS, lattice_constant=3.61 * 1.04)
        clf.classify_map(img, PS, stride=32, lattice_constant=3.59)


def test_map_given_lattice_constant_far_from_the_image_warns_once(clf):
    img = _image("fcc", (1, 1, 0), 3.61, 17.0, seed=1)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        m = clf.classify_map(img, PS, stride=32, lattice_constant=2.87)
    msgs = _user_warnings(record)
    assert len(msgs) == 1, msgs
    n = m.uncertainty.size
    assert "2.87 Å" in msgs[0] and f"in {n} of {n} windows" in msgs[0]
    assert np.median(np.abs(m.lattice_constant / 3.61 - 1)) < 0.005


def test_no_class_fitting_the_given_value_is_still_one_warning(clf):
    img = _image("fcc", (1, 1, 0), 4.0, 17.0, seed=2)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        p = clf.predict(img, PS, lattice_constant=40.0)
    msgs = _user_warnings(record)
    assert len(msgs) == 1, msgs
    assert "40 Å" in msgs[0] and "no class's predicted lattice constant" in msgs[0]
    assert np.isclose(p.probabilities.sum(), 1.0)


# -- the command line -------------------------------------------------------------------
def _save(tmp_path, img, name="img.npy"):
    path = tmp_path / name
    np.save(path, img)
    return str(path)


def test_cli_identify_warning_is_one_line(tmp_path, capsys):
    path = _save(tmp_path, _image("fcc", (1, 1, 0), 3.61, 17.0, seed=1))
    code = matchar.cli.main(
        ["identify", path, "--pixel-size", str(PS), "--lattice-constant", "2.87"]
    )
    assert code == 0
    out, err = capsys.readouterr()
    assert out.startswith("fcc [110]") and "a=3.61" in out
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(
        "matchar identify: warning: lattice constant measured from the image, 3.61 Å, "
        "differs from the given 2.87 Å by 26%"
    )
    assert "UserWarning" not in err and ".py" not in err


def test_cli_identify_prints_a_repeated_warning_once(tmp_path, capsys):
    ps = 0.45  # outside the 0.06-0.4 Å the classifier expects: predict and map warn
    path = _save(tmp_path, _image("bcc", (1, 1, 0), 3.3, 20.0, shape=(90, 90), ps=ps))
    args = ["identify", path, "--pixel-size", str(ps), "--map", "--out", str(tmp_path / "o")]
    assert matchar.cli.main(args) == 0
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert all(line.startswith("matchar identify: warning: ") for line in lines), err
    assert sum("pixel_size=0.45" in line for line in lines) == 1, err


# -- bad input ----------------------------------------------------------------------
def test_wrong_pixel_size_warns_naming_the_spacing(clf):
    a, true_ps, told = 3.61, 0.1, 0.35  # the image's spacings look 3.5x too large
    img = _image("fcc", (1, 1, 0), a, 17.0, shape=(256, 256), ps=true_ps)
    with pytest.warns(UserWarning, match="check pixel_size") as record:
        clf.predict(img, told)
    msg = next(str(w.message) for w in record if "check pixel_size" in str(w.message))
    spacing = float(re.search(r"spacing of ([0-9.]+) Å", msg).group(1))
    # fcc [110] first order d(111) = a/√3, scaled by 3.5: 7.29 Å, 12.3 bins of the
    # 89.6 Å (apparent) field of view; given to the nearest bin: within 4%
    expected = a / np.sqrt(3) * told / true_ps
    assert abs(spacing / expected - 1) < 0.04, (spacing, expected)
    with pytest.warns(UserWarning, match="check pixel_size"):
        clf.classify_map(img, told, stride=16)


def test_grain_boundary_peaks_do_not_call_the_pixel_size_wrong(clf):
    # Two grains (hcp [2-1-10] at 4.58 Å, fcc [211] at 3.61 Å) at their true pixel size:
    # the boundary adds a peak at 6.4 Å to the whole image's spectrum, nearer the origin
    # than any lattice peak and outside every class's first-order spacings; the four
    # 38 Å tiles, each inside one grain, show the grains' own fringes (2.0-4.1 Å).
    kw = dict(shape=(640, 640), pixel_size=0.12, dose=1000, thermal_sigma=0.05)
    g1 = mc.imaging.simulate_haadf("hcp", (2, -1, -1, 0), 4.577, rotation_deg=163.26, seed=5, **kw)
    g2 = mc.imaging.simulate_haadf("fcc", (2, 1, 1), 3.606, rotation_deg=48.26, seed=1005, **kw)
    img = np.where(np.arange(640)[None, :] < 320, g1, g2)
    before = img.copy()
    spacing, _ = first_order_peak(power_spectra(img[None]), img.shape, 0.12)
    assert spacing > 6.0  # the boundary's peak: the case this test is about
    tiles, side = tile_spacings(img, 0.12)
    assert side == pytest.approx(38.4) and len(tiles) == 4
    assert np.all((tiles > 1.9) & (tiles < 4.2))
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        clf.predict(img, 0.12)
        clf.classify_map(img, 0.12, stride=40)
    assert not [w for w in record if "check pixel_size" in str(w.message)]
    np.testing.assert_array_equal(img, before)


def _amorphous(n: int, ps: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.zeros((n, n))
    pts = rng.integers(0, n, (int((n * ps) ** 2 / 4.0), 2))  # one atom per 4 Å²
    np.add.at(img, (pts[:, 0], pts[:, 1]), 1.0)
    img = scipy.ndimage.gaussian_filter(img, 0.5 / ps)
    return rng.poisson(200 * img / img.max() + 5).astype(float)


@pytest.mark.parametrize("kind", ["gaussian noise", "poisson noise", "amorphous", "blurred"])
def test_images_without_a_lattice_warn(clf, kind):
    rng = np.random.default_rng(0)
    img = {
        "gaussian noise": lambda: rng.normal(size=SHAPE),
        "poisson noise": lambda: rng.poisson(3.0, SHAPE).astype(float),
        "amorphous": lambda: _amorphous(SHAPE[0], PS, 1),
        "blurred": lambda: (
            scipy.ndimage.gaussian_filter(_image("fcc", (1, 1, 0), 3.61, dose=None), 2.0 / PS)
            + rng.normal(0, 0.01, SHAPE)
        ),
    }[kind]()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        with pytest.warns(UserWarning, match="shows no lattice") as record:
            p = clf.predict(img, PS)
        with pytest.warns(UserWarning, match="shows no lattice"):
            m = clf.classify_map(img, PS, stride=32)
    # the network does give a class (on noise with p ~0.7): the warning names it
    label = f"{p.prototype}[{''.join(map(str, p.zone_axis))}]"
    assert any(label in str(w.message) for w in record)
    assert np.isfinite(p.lattice_constant) and np.all(np.isfinite(m.lattice_constant))


@pytest.mark.parametrize("kind", ["cosine", "square wave", "scan lines"])
def test_fringes_of_one_direction_are_not_a_lattice(clf, kind):
    """Stripes at a plausible spacing (their FFT peaks are strong, but all on one line
    through the origin) warn as no 2-D lattice, naming the class the network gave."""
    rng = np.random.default_rng(1)
    y, x = np.mgrid[: SHAPE[0], : SHAPE[1]] * PS
    u = (np.cos(0.4) * x + np.sin(0.4) * y) / 2.1  # 2.1 Å fringes, turned by 23°
    img = {
        "cosine": lambda: np.cos(2 * np.pi * u),
        "square wave": lambda: np.sign(np.cos(2 * np.pi * u)),
        "scan lines": lambda: (
            np.cos(2 * np.pi * y / 2.1) * (1 + 0.2 * rng.random(SHAPE[0]))[:, None]
        ),
    }[kind]() + rng.normal(0, 0.3, SHAPE)
    before = img.copy()
    with pytest.warns(UserWarning, match="fringes of one direction only") as record:
        p = clf.predict(img, PS)
    label = f"{p.prototype}[{''.join(map(str, p.zone_axis))}]"
    assert any(label in str(w.message) for w in record)
    with pytest.warns(UserWarning, match="fringes of one direction only"):
        clf.classify_map(img, PS, stride=32)
    np.testing.assert_array_equal(img, before)


def test_every_class_is_a_2d_lattice_to_the_directions_check():
    """The spread of the strong peaks' directions that the check reads: at least 60° for
    every class from the renderer at both ends of the lattice constants (abTEM and the
    real images: scripts/check_lattice_directions.py), about 0 for one direction."""
    from matchar.imaging._classifier_checks import MIN_DIRECTIONS_SPREAD
    from matchar.imaging._refine import peak_directions_spread, power_spectra
    from matchar.imaging._simulate import ZONE_AXES

    for proto, zone in ZONE_AXES:
        for a in (2.6, 5.2):
            img = _image(proto, zone, a, dose=100, seed=3)
            spread = peak_directions_spread(power_spectra(img[None]), img.shape, PS)
            assert spread >= 3 * MIN_DIRECTIONS_SPREAD - 1, (proto, zone, a, spread)


def test_low_dose_lattice_is_not_called_noise(clf):
    img = _image("bcc", (1, 1, 1), 2.87, dose=2, seed=4)  # 2 electrons per pixel
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = clf.predict(img, PS)
    assert abs(p.lattice_constant / 2.87 - 1) < 0.01


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_pixels_raise(clf, value):
    img = _image("fcc", (1, 1, 0), 3.61)
    img[10, 20] = value
    with pytest.raises(ValueError, match="NaN or inf"):
        clf.predict(img, PS)
    with pytest.raises(ValueError, match="NaN or inf"):
        clf.classify_map(img, PS)
    with pytest.raises(ValueError, match="NaN or inf"):
        clf.predict(img, PS, lattice_constant=3.61)


def test_window_larger_than_the_image_raises(clf):
    img = _image("fcc", (1, 1, 0), 3.61, shape=(100, 100))  # 12 Å: less than 16 Å
    with pytest.raises(ValueError, match="smaller than one window"):
        clf.predict(img, PS)
    with pytest.raises(ValueError, match="smaller than one window"):
        clf.classify_map(img, PS)
    with pytest.raises(ValueError, match="window"):
        clf.classify_map(img[:70, :70], PS, window=100)


def test_refinement_keeps_the_start_for_a_class_the_image_does_not_show():
    from matchar.imaging._refine import power_spectra, refine_lattice, reflection_table

    img = _image("diamond", (1, 1, 0), 5.43, 17.0, seed=1)
    spec = power_spectra(img[None])
    g, sep = reflection_table((("diamond", (1, 1, 0)), ("hcp", (0, 0, 0, 1))))
    # the right class from a start 4% off and 3° off finds its peaks ...
    a, found = refine_lattice(spec, img.shape, PS, g[[0]], sep[[0]], [5.43 * 1.04], [20.0])
    assert found[0] >= 4 and abs(a[0] / 5.43 - 1) < 0.003
    # ... a class with another pattern finds too few of its own and keeps the start
    a, found = refine_lattice(spec, img.shape, PS, g[[1]], sep[[1]], [3.165], [17.0])
    assert found[0] == 0 and a[0] == 3.165


def test_refinement_flags_a_look_alike_whose_peaks_sit_off_its_lattice():
    """fcc [110] (Cu) read as the near-hexagonal bcc [111] (a = 2.81 Å, rotation 23.8°,
    what the network reads for that class): its first-order peaks are found, but 1-2 bins
    off the places bcc [111] puts them (the right class: a few hundredths of a bin), so
    the fit is refused and flagged."""
    from matchar.imaging._refine import power_spectra, refine_lattice, reflection_table

    img = _image("fcc", (1, 1, 0), 3.61, 17.0, seed=1)
    spec = power_spectra(img[None])
    g, sep = reflection_table((("fcc", (1, 1, 0)), ("bcc", (1, 1, 1))))
    a, found, off = refine_lattice(
        spec, img.shape, PS, g[[0]], sep[[0]], [3.64], [17.0], return_misfit=True
    )
    assert found[0] >= 4 and not off[0] and abs(a[0] / 3.61 - 1) < 0.003
    a, found, off = refine_lattice(
        spec, img.shape, PS, g[[1]], sep[[1]], [2.81], [23.8], return_misfit=True
    )
    assert off[0] and found[0] == 0 and a[0] == 2.81


def test_prior_that_excludes_the_class_the_image_shows(clf):
    """A dict prior that allows only bcc on a Cu [110] image: no bcc class fits the
    image's peaks, so the image's own class is reported, with its measured lattice
    constant, and a warning says that the prior excludes it."""
    img = _image("fcc", (1, 1, 0), 3.61, 17.0, seed=1)
    with pytest.warns(UserWarning, match=r"fcc\[110\].*3\.61 Å.*given bcc 2\.87 Å excludes"):
        p = clf.predict(img, PS, lattice_constant={"bcc": 2.87})
    assert (p.prototype, p.zone_axis) == ("fcc", (1, 1, 0))
    assert abs(p.lattice_constant / 3.61 - 1) < 0.005
    with pytest.warns(UserWarning, match=r"windows show a class of a prototype the given bcc"):
        m = clf.classify_map(img, PS, lattice_constant={"bcc": 2.87})
    assert (m.prototype == "fcc").mean() > 0.5
