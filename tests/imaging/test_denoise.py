"""matchar.imaging.denoise: segmentation-guided denoising, checked against ground truth
(clean synthetic images), analytic lattices, and the `matchar denoise` sub-command."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

import matchar as mc
from matchar import datasets
from matchar.imaging import Segmentation, denoise
from matchar.imaging._denoise_cli import add_parser, run


def _single_region(shape: tuple[int, int], vectors, units: str = "px") -> Segmentation:
    H, W = shape
    return Segmentation(
        labels=np.zeros((H, W), dtype=np.int64),
        n_regions=1,
        boundaries=np.zeros((H, W), dtype=bool),
        lattice_vectors=[np.asarray(vectors, dtype=np.float64)],
        misorientation={},
        grid_labels=np.zeros((1, 1), dtype=np.int64),
        units=units,
    )


def _columns(shape, v1, v2, sigma, missing=()) -> np.ndarray:
    """Gaussian columns of height 1 at i v1 + j v2 (rows (dy, dx), pixels) on 0.1."""
    H, W = shape
    y, x = np.mgrid[:H, :W].astype(np.float64)
    img = np.full(shape, 0.1)
    n = int(max(H, W) / min(np.hypot(*v1), np.hypot(*v2))) + 3
    for i in range(-n, n + 1):
        for j in range(-n, n + 1):
            if (i, j) in missing:
                continue
            cy = H / 2 + i * v1[0] + j * v2[0]
            cx = W / 2 + i * v1[1] + j * v2[1]
            if -4 * sigma < cy < H + 4 * sigma and -4 * sigma < cx < W + 4 * sigma:
                img += np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * sigma**2))
    return img


def _mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(((a - b) ** 2).mean())


@pytest.fixture(scope="module")
def bicrystal_dose2():
    clean, labels = datasets.bicrystal(15.0, shape=(192, 192), seed=3)
    noisy, _ = datasets.bicrystal(15.0, shape=(192, 192), dose=2.0, seed=3)
    truth = clean * 2.0 / clean.mean()
    return noisy, truth, labels, denoise(noisy)


def test_denoise_removes_most_noise_without_bias(bicrystal_dose2):
    noisy, truth, _, result = bicrystal_dose2
    assert result.denoised.shape == noisy.shape and result.denoised.dtype == np.float64
    # ground truth: the clean image at the same dose
    assert _mse(result.denoised, truth) < 0.05 * _mse(noisy, truth)
    # and far better than a plain Gaussian smoothing of the counts
    from scipy import ndimage

    assert _mse(result.denoised, truth) < 0.3 * _mse(ndimage.gaussian_filter(noisy, 1.0), truth)
    # averaging counts over lattice translations is unbiased at 2 e/pixel
    assert abs(result.denoised.mean() - truth.mean()) < 0.02 * truth.mean()
    np.testing.assert_allclose(result.residual, noisy - result.denoised, rtol=0, atol=1e-12)
    assert result.denoised.min() >= 0
    assert 0.9 < result.gain < 1.1  # Poisson counts: variance = mean
    assert 0.7 < result.noise_scale < 1.5  # and the local correction's model agrees
    assert all(len(r) >= 8 for r in result.reflections)


def test_perfect_lattice_is_reproduced_from_perturbed_vectors():
    """Noise-free cosine lattice (oblique, non-integer vectors): the Bragg filter with
    lattice vectors 1 % off must refine them and reproduce the image."""
    H, W = 200, 210
    v = np.array([[8.3, 2.9], [-3.7, 9.1]])  # rows (dy, dx), pixels
    b = np.linalg.inv(v).T
    y, x = np.mgrid[:H, :W].astype(np.float64)

    def wave(h, k):
        g = h * b[0] + k * b[1]
        return np.cos(2 * np.pi * (g[0] * y + g[1] * x) + 0.3 * h - 0.7 * k)

    image = 5.0 + wave(1, 0) + 0.6 * wave(0, 1) + 0.4 * wave(1, 1) + 0.2 * wave(2, -1)
    seg = _single_region((H, W), v * 1.01)
    result = denoise(image, seg, gain=1e-9, correction=False)
    inner = (slice(60, -60), slice(60, -60))  # two envelope widths from the frame
    err = np.abs(result.lattice - image)[inner].max()
    assert err < 2e-3, err  # of waves of amplitude 1
    # without correction the denoised image is the lattice estimate
    np.testing.assert_array_equal(result.denoised, np.clip(result.lattice, 0, None))


def test_supercell_found_when_segmentation_gives_a_subcell():
    """A period-doubling wave (half-order reflections) on a lattice given by its sub-cell:
    the supercell is adopted and the wave reproduced, not filtered out."""
    H, W = 192, 200
    v = np.array([[9.0, 1.5], [-1.0, 8.5]])
    b = np.linalg.inv(v).T
    y, x = np.mgrid[:H, :W].astype(np.float64)

    def wave(g):
        return np.cos(2 * np.pi * (g[0] * y + g[1] * x))

    image = 5.0 + wave(b[0]) + 0.8 * wave(b[1]) + 0.4 * wave(0.5 * b[0]) + 0.3 * wave(1.5 * b[0])
    result = denoise(image, _single_region((H, W), v), gain=1e-9, correction=False)
    hk = result.reflections[0][:, 2:] @ v.T  # indices on the given sub-cell lattice
    assert (np.abs(hk - np.round(hk)) > 0.4).any()  # half-order reflections kept
    inner = (slice(80, -80), slice(80, -80))  # three envelope widths from the frame
    assert np.abs(result.lattice - image)[inner].max() < 2e-3  # half-order amplitude 0.4


def test_point_defect_stays_visible():
    """A vacancy in a square lattice at 5 e/pixel: the lattice-only estimate fills it,
    the local correction keeps it empty."""
    shape, v1, v2 = (160, 160), (10.0, 0.0), (0.0, 10.0)
    clean = _columns(shape, v1, v2, 1.8, missing={(0, 0)})
    truth = clean * 5.0 / clean.mean()
    noisy = np.random.default_rng(0).poisson(truth).astype(np.float64)
    result = denoise(noisy)
    y, x = np.mgrid[:160, :160]
    near = lambda cy, cx: (y - cy) ** 2 + (x - cx) ** 2 <= 4  # noqa: E731
    site = near(80, 80)
    neighbours = near(70, 80) | near(90, 80) | near(80, 70) | near(80, 90)
    column = truth[neighbours].mean()
    background = truth[site].mean()  # the true (empty) site
    assert result.lattice[site].mean() > background + 0.7 * (column - background)
    assert result.denoised[site].mean() < background + 0.3 * (column - background)
    assert result.correction[site].mean() > 0.5
    # far from the vacancy the correction is almost off
    assert np.median(result.correction[:40, :40]) < 0.1


def test_two_phase_boundary_not_broadened():
    clean, _ = datasets.two_phase(shape=(192, 192), seed=1)
    noisy, _ = datasets.two_phase(shape=(192, 192), dose=5.0, seed=1)
    truth = clean * 5.0 / clean.mean()
    result = denoise(noisy)
    from scipy import ndimage

    def width(img: np.ndarray) -> float:
        """10-90 % width of the mean-intensity step across the vertical boundary."""
        prof = ndimage.uniform_filter1d(img.mean(axis=0), 13, mode="nearest")
        t = (prof - prof[130:].mean()) / (prof[:62].mean() - prof[130:].mean())
        seg = t[70:122]
        xs = np.arange(70, 122)

        def crossing(level: float) -> float:
            i = int(np.nonzero(seg < level)[0][0])
            return xs[i - 1] + (seg[i - 1] - level) / (seg[i - 1] - seg[i])

        return crossing(0.1) - crossing(0.9)

    assert abs(width(result.denoised) - width(truth)) < 1.5  # pixels
    assert _mse(result.denoised, truth) < 0.05 * _mse(noisy, truth)


def test_gain_is_estimated_from_the_noise_floor():
    clean = _columns((128, 128), (9.0, 0.0), (0.0, 9.0), 1.6)
    counts = np.random.default_rng(1).poisson(clean * 20.0 / clean.mean())
    seg = _single_region(counts.shape, [[9.0, 0.0], [0.0, 9.0]])
    assert 0.9 < denoise(counts, seg).gain < 1.1
    assert 2.7 < denoise(3.0 * counts, seg).gain < 3.3


@pytest.mark.parametrize("shape", [(131, 157), (160, 97)])
def test_dtypes_layouts_and_odd_shapes_agree(shape):
    H, W = shape
    clean = _columns((H, W), (9.0, 1.0), (-1.0, 9.0), 1.6)
    counts = np.random.default_rng(2).poisson(clean * 10.0 / clean.mean()).astype(np.uint16)
    seg = _single_region((H, W), [[9.0, 1.0], [-1.0, 9.0]])
    reference = denoise(counts.astype(np.float64), seg).denoised
    assert reference.shape == (H, W)
    big = np.zeros((2 * H, 2 * W), dtype=np.float32)
    big[::2, ::2] = counts
    variants = {
        "uint16": counts,
        "float32": counts.astype(np.float32),
        "strided float32": big[::2, ::2],
        "fortran float64": np.asfortranarray(counts.astype(np.float64)),
        "transposed view": counts.T.copy().T,
    }
    for name, image in variants.items():
        before = np.array(image, copy=True)
        out = denoise(image, seg).denoised
        np.testing.assert_allclose(out, reference, rtol=1e-6, atol=1e-9, err_msg=name)
        np.testing.assert_array_equal(image, before, err_msg=f"{name} was modified")


@pytest.mark.parametrize(
    "image, match",
    [
        (np.full((64, 64), np.nan), "NaN or infinite"),
        (np.where(np.eye(64) > 0, np.inf, 1.0), "NaN or infinite"),
        (np.ones(64), "2-D"),
        (np.ones((8, 8, 2)), "2-D"),
        (np.zeros((0, 0)), "empty"),
        (-np.ones((64, 64)), "negative"),
        (np.zeros((64, 64)), "all zeros"),
    ],
)
def test_bad_images_are_refused(image, match):
    with pytest.raises(ValueError, match=match):
        denoise(image, _single_region((64, 64), [[8.0, 0.0], [0.0, 8.0]]))


def test_pure_noise_has_no_lattice():
    noise = np.random.default_rng(0).poisson(3.0, (160, 160)).astype(np.float64)
    with pytest.raises(ValueError, match="no lattice"):
        denoise(noise)
    # a segmentation without lattice vectors
    no_vectors = _single_region(noise.shape, np.full((2, 2), np.nan))
    with pytest.raises(ValueError, match="no lattice"):
        denoise(noise, no_vectors)
    # a lattice claimed by the segmentation but absent from the data is not believed
    with pytest.raises(ValueError, match="no lattice"):
        denoise(noise, _single_region(noise.shape, [[8.0, 0.0], [0.0, 8.0]]))


def test_bad_segmentation_arguments():
    image = _columns((96, 96), (8.0, 0.0), (0.0, 8.0), 1.4) * 20
    with pytest.raises(ValueError, match="shape"):
        denoise(image, _single_region((95, 96), [[8.0, 0.0], [0.0, 8.0]]))
    in_angstrom = _single_region((96, 96), [[1.6, 0.0], [0.0, 1.6]], units="Å")
    with pytest.raises(ValueError, match="pixel_size"):
        denoise(image, in_angstrom)
    # with the pixel size, Å vectors are converted to pixels: same as giving pixels
    a = denoise(image, in_angstrom, pixel_size=0.2, gain=1.0).denoised
    b = denoise(image, _single_region((96, 96), [[8.0, 0.0], [0.0, 8.0]]), gain=1.0).denoised
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)
    with pytest.raises(ValueError, match="only used when segmentation is None"):
        denoise(image, _single_region((96, 96), [[8.0, 0.0], [0.0, 8.0]]), n_regions=2)
    with pytest.raises(ValueError, match="cells"):
        denoise(image, _single_region((96, 96), [[8.0, 0.0], [0.0, 8.0]]), cells=0.0)
    with pytest.raises(ValueError, match="boundary_width"):
        denoise(image, _single_region((96, 96), [[8.0, 0.0], [0.0, 8.0]]), boundary_width=-1)
    bad_labels = _single_region((96, 96), [[8.0, 0.0], [0.0, 8.0]])
    bad_labels.labels[:10] = 3  # only region 0 exists
    with pytest.raises(ValueError, match=r"integers in \[0, n_regions"):
        denoise(image, bad_labels)


def test_region_without_lattice_gets_local_smoothing_with_a_warning():
    H, W = 128, 160
    rng = np.random.default_rng(4)
    clean = _columns((H, W), (8.0, 0.0), (0.0, 8.0), 1.4)
    clean[:, 80:] = 0.5  # amorphous, flat
    counts = rng.poisson(clean * 10).astype(np.float64)
    labels = np.zeros((H, W), dtype=np.int64)
    labels[:, 80:] = 1
    seg = Segmentation(
        labels=labels,
        n_regions=2,
        boundaries=np.zeros((H, W), dtype=bool),
        lattice_vectors=[np.array([[8.0, 0.0], [0.0, 8.0]]), np.full((2, 2), np.nan)],
        misorientation={},
        grid_labels=np.zeros((1, 1), dtype=np.int64),
    )
    with pytest.warns(RuntimeWarning, match="no lattice"):
        result = denoise(counts, seg)
    flat = result.denoised[20:-20, 100:-20]
    # smoothed: much closer to the flat truth (5 counts) than the raw counts are
    assert _mse(flat, 5.0) < 0.2 * _mse(counts[20:-20, 100:-20], 5.0)
    assert len(result.reflections[1]) == 0 and len(result.reflections[0]) >= 8


def test_plot_has_scale_bar_and_colorbars(bicrystal_dose2):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    noisy, _, _, result = bicrystal_dose2
    result.pixel_size = 0.2
    fig = result.plot(noisy)
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    bars = [a for ax in fig.axes for a in ax.get_children() if isinstance(a, AnchoredSizeBar)]
    assert len(bars) == 3 and all(b.txt_label.get_text().endswith(("Å", "nm")) for b in bars)
    labels = [ax.get_ylabel() for ax in fig.axes]
    assert labels.count("counts (e⁻)") == 3  # one colorbar per panel (gain ≈ 1)
    plt.close(fig)
    with pytest.raises(ValueError, match="shape"):
        result.plot(noisy[:10])


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="matchar")
    sub = parser.add_subparsers(dest="command")

    def common(p: argparse.ArgumentParser, out: str) -> None:
        p.add_argument("--out", default=out)
        p.add_argument("--threads", type=int, default=None)

    add_parser(sub, common)
    return parser


def test_cli_writes_denoised_image_and_figures(tmp_path, capsys):
    noisy, _ = datasets.bicrystal(15.0, shape=(160, 160), dose=5.0, seed=0)
    path = tmp_path / "img.npy"
    np.save(path, noisy)
    out = tmp_path / "out"
    args = _parser().parse_args(
        ["denoise", str(path), "--pixel-size", "0.2", "--out", str(out), "--threads", "1"]
    )
    assert args.func is run
    assert run(args) == 0
    denoised = np.load(out / "denoised.npy")
    assert denoised.shape == noisy.shape
    np.testing.assert_allclose(np.load(out / "residual.npy"), noisy - denoised, atol=1e-12)
    assert (out / "denoise.png").stat().st_size > 10_000
    assert "region" in capsys.readouterr().out
    np.testing.assert_array_equal(np.load(path), noisy)  # input file untouched


def test_cli_errors_are_exceptions(tmp_path):
    path = tmp_path / "noise.npy"
    np.save(path, np.random.default_rng(0).poisson(2.0, (128, 128)).astype(np.float64))
    args = _parser().parse_args(["denoise", str(path), "--out", str(tmp_path / "o")])
    with pytest.raises(ValueError, match="no lattice"):
        run(args)
    args = _parser().parse_args(["denoise", str(tmp_path / "missing.npy")])
    with pytest.raises(OSError):
        run(args)


def test_exported():
    assert mc.imaging.denoise is denoise
    assert "denoise" in mc.imaging.__all__ and "DenoiseResult" in mc.imaging.__all__


def test_docstring_example_runs():
    import doctest

    import matchar.imaging._denoise as module

    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 1 and result.failed == 0
