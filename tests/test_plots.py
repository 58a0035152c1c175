"""result.plot() of the decompositions and the segmentation: figures with the right panels."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest

import matchar as mc

matplotlib.use("Agg")
import matplotlib.pyplot as plt


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def cube(seed=0):
    rng = np.random.default_rng(seed)
    maps = rng.random((12, 10, 3))
    spectra = rng.random((3, 50)) * 20
    return rng.poisson(maps @ spectra).astype(np.uint16)


def test_nmf_plot_maps_spectra_and_energy_axis():
    X = cube()
    nmf = mc.spectral.NMF(3, random_state=0, max_iter=30, tol=0)
    maps = nmf.fit_transform(X)
    fig = nmf.plot(maps, energy=(0.2, 0.01))
    axes = fig.axes
    assert len(axes) == 2 * 3 + 1 + 3  # maps, spectra, loss history, the maps' colorbars
    assert [ax.get_label() for ax in axes[7:]] == ["<colorbar>"] * 3
    # the spectra are drawn against the energy axis, the maps as images
    line = axes[3].get_lines()[0]
    np.testing.assert_allclose(line.get_xdata(), 0.2 + 0.01 * np.arange(50))
    np.testing.assert_allclose(line.get_ydata(), nmf.components_[0])
    assert axes[0].get_images()[0].get_array().shape == (12, 10)
    # spectra only, and (N, K) maps as profiles
    assert len(nmf.plot().axes) == 3 + 1  # spectra, loss history
    assert len(nmf.plot(maps.reshape(-1, 3)).axes[0].get_lines()) == 1
    with pytest.raises(ValueError, match="maps must have shape"):
        nmf.plot(maps[..., :2])
    with pytest.raises(ValueError, match="energy must be"):
        nmf.plot(energy=np.arange(7))


def test_pca_plot_has_scree_and_components():
    X = cube(1)
    pca = mc.spectral.PCA(6, random_state=0)
    scores = pca.fit_transform(X)
    fig = pca.plot(scores, n_show=2)
    scree = [ax for ax in fig.axes if ax.get_title() == "scree plot"]
    assert len(scree) == 1
    np.testing.assert_allclose(scree[0].get_lines()[0].get_ydata(), pca.explained_variance_ratio_)
    assert len(fig.axes) == 1 + 2 * 2 + 2  # scree, maps, spectra, the maps' colorbars


def test_plot_before_fit_raises():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        mc.spectral.NMF(2).plot()
    with pytest.raises(NotFittedError):
        mc.spectral.PCA(2).plot()


def test_segmentation_plot():
    img, _ = mc.datasets.bicrystal(15.0, shape=(96, 96), seed=0)
    seg = mc.imaging.segment(img, n_regions=2)
    ax = seg.plot(img)
    images = ax.get_images()
    assert len(images) == 3  # image, labels, boundaries
    np.testing.assert_array_equal(images[1].get_array(), seg.labels)
    assert ax.get_title() == "2 regions"
    with pytest.raises(ValueError, match="labels' shape"):
        seg.plot(img[:10])


def test_physics_nmf_plot_titles_name_the_elements():
    model = mc.spectral.EDXModel(["Cu", "Zn"], (0.2, 0.02, 500))
    X = np.random.default_rng(0).poisson(model.G @ [50, 50, 20, 20] + 1.0, (8, 8, 500))
    est = mc.spectral.PhysicsNMF(model, 1, max_iter=20).fit(X)
    fig = est.plot()
    assert len(fig.axes) == 4  # map, spectrum, loss history, the map's colorbar
    assert "Cu" in fig.axes[0].get_title() and "Zn" in fig.axes[0].get_title()
    np.testing.assert_allclose(fig.axes[1].get_lines()[0].get_xdata(), model.energy)


def test_crystal_prediction_and_map_plots():
    img = mc.imaging.simulate_haadf("fcc", (1, 1, 0), 3.61, shape=(200, 200), dose=200, seed=0)
    pred = mc.imaging.CrystalClassifier.default().predict(img, 0.12)
    ax = pred.plot()
    heights = [p.get_height() for p in ax.patches]
    np.testing.assert_allclose(heights, pred.probabilities)
    assert pred.prototype in ax.get_title()
    with pytest.raises(ValueError, match="classes"):
        pred.plot(classes=["a"])
    cmap = mc.imaging.classify_map(img, 0.12, stride=32)
    fig = cmap.plot(img)
    images = [a.get_images()[0] for a in fig.axes if a.get_images()]
    assert len(images) == 4
    np.testing.assert_array_equal(images[1].get_array(), cmap.class_index)
    np.testing.assert_array_equal(images[3].get_array(), cmap.uncertainty)
