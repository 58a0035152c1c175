"""The library's plotting style, checked on the drawn figures of every plot function:
scale bars whose length matches their label, labelled colorbars, axis labels in the data's
units, no text under 8 pt, class colorbars naming every class and no overlapping text."""

from __future__ import annotations

import re

import matplotlib
import numpy as np
import pytest

import matchar as mc

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.text import Text
from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

MIN_PT = 8.0


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# ---------------------------------------------------------------------------
# Inspection helpers
# ---------------------------------------------------------------------------


def _drawn(fig):
    fig = fig.figure if hasattr(fig, "figure") and fig.figure is not None else fig
    fig = fig.get_figure(root=True) if hasattr(fig, "get_figure") else fig
    fig.canvas.draw()
    return fig


def _is_colorbar(ax):
    return ax.get_label() == "<colorbar>"


def _map_axes(fig):
    return [ax for ax in fig.axes if ax.get_images() and not _is_colorbar(ax)]


def _scale_bars(ax):
    return [a for a in ax.get_children() if isinstance(a, AnchoredSizeBar)]


def _bar_length_and_label(bar):
    rects = bar.size_bar.get_children()
    return float(rects[0].get_width()), bar.txt_label.get_text()


def _check_scale_bar(ax, pixel_size):
    """Exactly one bar; its label is a length in Å or nm whose size in pixels is the bar's
    drawn length within a pixel."""
    bars = _scale_bars(ax)
    assert len(bars) == 1, f"{ax.get_title()!r}: {len(bars)} scale bars"
    length_px, label = _bar_length_and_label(bars[0])
    m = re.fullmatch(r"([0-9.]+) (Å|nm)", label)
    assert m, f"scale-bar label {label!r} has no physical unit"
    angstrom = float(m.group(1)) * (10.0 if m.group(2) == "nm" else 1.0)
    assert abs(angstrom / pixel_size - length_px) <= 1.0, (label, length_px, pixel_size)
    assert m.group(1).lstrip("0.")[0] in "125", f"{label!r} is not a round length"
    assert 0 < length_px < ax.get_images()[0].get_array().shape[1]


def _colorbar_of(fig, ax):
    """The colorbar axes drawn just right of ``ax`` (sharing most of its height)."""
    box = ax.get_position()
    found = []
    for cax in fig.axes:
        if not _is_colorbar(cax):
            continue
        c = cax.get_position()
        overlap = min(box.y1, c.y1) - max(box.y0, c.y0)
        if 0 <= c.x0 - box.x1 < 0.12 and overlap > 0.5 * min(box.height, c.height):
            found.append(cax)
    return found


def _check_map(fig, ax, pixel_size):
    """A map: a labelled colorbar; a scale bar with a physical unit when the pixel size is
    known, else axes labelled in px and no scale bar."""
    bars = _colorbar_of(fig, ax)
    assert len(bars) == 1, f"{ax.get_title()!r}: {len(bars)} colorbars"
    assert bars[0].get_ylabel().strip(), f"{ax.get_title()!r}: colorbar without label"
    if pixel_size is None:
        assert _scale_bars(ax) == []
        assert ax.get_xlabel().endswith("(px)") and ax.get_ylabel().endswith("(px)")
    else:
        _check_scale_bar(ax, pixel_size)


def _texts(ax):
    """Visible, non-empty text artists drawn by an axes (ticks, labels, titles, texts,
    legend, scale-bar labels)."""
    out = [ax.title, ax._left_title, ax._right_title, ax.xaxis.label, ax.yaxis.label]
    for axis in (ax.xaxis, ax.yaxis):
        lo, hi = sorted(axis.get_view_interval())
        for tick in axis.get_major_ticks():
            if lo - 1e-9 * (hi - lo) <= tick.get_loc() <= hi + 1e-9 * (hi - lo):
                out += [tick.label1, tick.label2]
    out += list(ax.texts)
    legend = ax.get_legend()
    if legend is not None:
        out += list(legend.get_texts())
    for bar in _scale_bars(ax):
        out.append(bar.txt_label._text)
    return [t for t in out if t.get_visible() and t.get_text().strip()]


def _check_style(fig, spectra_unit=None, skip_overlap_of=()):
    """Fonts, non-empty axis labels, no overlapping text within an axes, no overlapping
    axes; spectra (axes with an energy label) labelled in ``spectra_unit``."""
    fig = _drawn(fig)
    renderer = fig.canvas.get_renderer()
    small = [
        (t.get_text(), t.get_fontsize())
        for t in fig.findobj(Text)
        if t.get_visible() and t.get_text().strip() and t.get_fontsize() < MIN_PT
    ]
    assert not small, f"text under {MIN_PT} pt: {small}"
    for ax in fig.axes:
        if not ax.get_visible() or not ax.axison:
            continue
        if _is_colorbar(ax):
            assert ax.get_ylabel().strip() or ax.get_yticklabels(), "colorbar without label"
            continue
        if not _scale_bars(ax):  # a map with a scale bar needs no axis labels
            assert ax.get_xlabel().strip(), f"{ax.get_title()!r}: no x label"
            assert ax.get_ylabel().strip() or _shares_row_label(fig, ax), (
                f"{ax.get_title()!r}: no y label"
            )
        if "energy" in ax.get_xlabel() and spectra_unit is not None:
            assert ax.get_xlabel() == f"energy ({spectra_unit})", ax.get_xlabel()
        texts = [t for t in _texts(ax) if t.get_text() not in skip_overlap_of]
        _assert_no_overlap(
            [t.get_window_extent(renderer) for t in texts], [t.get_text() for t in texts]
        )
    axes = [ax for ax in fig.axes if ax.get_visible()]
    _assert_no_overlap([ax.get_tightbbox(renderer) for ax in axes], [a.get_title() for a in axes])
    return fig


def _assert_no_overlap(boxes, names):
    """No two bounding boxes share more than a square pixel."""
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            ov = boxes[i].intersection(boxes[i], boxes[j])
            area = 0.0 if ov is None else max(ov.width, 0) * max(ov.height, 0)
            assert area < 1.0, (names[i], names[j], area)


def _shares_row_label(fig, ax):
    """Spectra in one row share the y label of the row's first panel."""
    y = ax.get_position().y0
    return any(
        other is not ax
        and not _is_colorbar(other)
        and abs(other.get_position().y0 - y) < 1e-3
        and other.get_ylabel().strip()
        for other in fig.axes
    )


def _spectra_axes(fig):
    return [ax for ax in fig.axes if ax.get_xlabel().startswith(("energy", "channel"))]


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------


def _cube(seed=0, shape=(24, 20), channels=60):
    rng = np.random.default_rng(seed)
    maps = rng.random((*shape, 3))
    spectra = rng.random((3, channels)) * 20
    return rng.poisson(maps @ spectra).astype(np.uint16)


# ---------------------------------------------------------------------------
# The shared helpers
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("pixel", [0.013, 0.1, 0.37, 1.0, 2.5, 7.0, 55.0])
@pytest.mark.parametrize("width", [16, 100, 333, 2048])
def test_scale_bar_length_matches_its_label(pixel, width):
    from matchar._plotting import add_scale_bar

    _, ax = plt.subplots()
    ax.imshow(np.zeros((10, width)))
    add_scale_bar(ax, pixel, width)
    _check_scale_bar(ax, pixel)
    length_px, _ = _bar_length_and_label(_scale_bars(ax)[0])
    assert 0.1 * width <= length_px <= 0.25 * width + 1e-9  # a visible, not dominant bar


def test_scale_bar_without_pixel_size_is_in_px():
    from matchar._plotting import scale_bar_length

    length, label = scale_bar_length(None, 300)
    assert label == "50 px" and length == 50


def test_class_colorbar_names_every_class_in_its_colour():
    from matchar._plotting import class_colorbar, class_colormap

    names = [f"phase {c}" for c in "ABCDEFGHIJKL"]  # 12: beyond tab10
    fig, ax = plt.subplots(layout="constrained")
    cmap, norm = class_colormap(len(names))
    labels = np.arange(12).reshape(3, 4)
    im = ax.imshow(labels, cmap=cmap, norm=norm)
    cb = class_colorbar(fig, ax, names)
    fig.canvas.draw()
    assert [t.get_text() for t in cb.ax.get_yticklabels()] == names
    # the colour at each class tick is the colour of that class in the image
    for i in range(len(names)):
        np.testing.assert_allclose(cb.cmap(cb.norm(i)), im.cmap(im.norm(i)))
    assert len({tuple(cmap(norm(i))) for i in range(12)}) == 12


def test_add_colorbar_refuses_an_empty_label():
    from matchar._plotting import add_colorbar

    fig, ax = plt.subplots()
    with pytest.raises(ValueError, match="label"):
        add_colorbar(fig, ax.imshow(np.zeros((3, 3))), ax, " ")


# ---------------------------------------------------------------------------
# Spectral decompositions
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("pixel_size", [None, 0.8, 12.0])
def test_nmf_plot_style(pixel_size):
    X = _cube()
    nmf = mc.spectral.NMF(3, random_state=0, max_iter=30, tol=0)
    maps = nmf.fit_transform(X)
    fig = _check_style(nmf.plot(maps, energy=(0.2, 0.01), pixel_size=pixel_size), "keV")
    assert len(_map_axes(fig)) == 3
    for ax in _map_axes(fig):
        _check_map(fig, ax, pixel_size)
    assert len(_spectra_axes(fig)) == 3
    assert any(ax.get_title() == "loss history" for ax in fig.axes)


def test_nmf_plot_ev_axis_is_labelled_ev():
    X = _cube(1)
    nmf = mc.spectral.NMF(2, random_state=0, max_iter=10)
    maps = nmf.fit_transform(X)
    for energy, kw in (((100.0, 0.5, "eV"), {}), ((100.0, 0.5), {"energy_unit": "eV"})):
        fig = _check_style(nmf.plot(maps, energy=energy, **kw), "eV")
        spectra = _spectra_axes(fig)
        assert len(spectra) == 2
        assert all(ax.get_xlabel() == "energy (eV)" for ax in spectra)
        np.testing.assert_allclose(spectra[0].get_lines()[0].get_xdata()[:2], [100.0, 100.5])


def test_pca_plot_style():
    X = _cube(2)
    pca = mc.spectral.PCA(5, random_state=0)
    scores = pca.fit_transform(X)
    fig = _check_style(pca.plot(scores, energy=(0.1, 0.02), n_show=3, pixel_size=1.5), "keV")
    assert len(_map_axes(fig)) == 3
    for ax in _map_axes(fig):
        _check_map(fig, ax, 1.5)
    fig = _check_style(pca.plot(scores, n_show=2))  # no energy: channel axis, pixel maps
    assert all(ax.get_xlabel() == "channel" for ax in _spectra_axes(fig))
    for ax in _map_axes(fig):
        _check_map(fig, ax, None)


def test_physics_nmf_plot_style_edx_in_kev():
    model = mc.spectral.EDXModel(["Cu", "Zn"], (0.2, 0.02, 500))
    X = np.random.default_rng(0).poisson(model.G @ [50, 50, 20, 20] + 1.0, (8, 8, 500))
    est = mc.spectral.PhysicsNMF(model, 1, max_iter=20).fit(X)
    fig = _check_style(est.plot(pixel_size=3.0), "keV")
    (ax,) = _map_axes(fig)
    _check_map(fig, ax, 3.0)
    (spec,) = _spectra_axes(fig)
    np.testing.assert_allclose(spec.get_lines()[0].get_xdata(), model.energy)


def test_physics_nmf_plot_eels_reference_model_in_ev():
    rng = np.random.default_rng(0)
    energy = 200.0 + np.arange(300)  # energy losses in eV
    refs = np.stack([np.exp(-0.5 * ((energy - c) / 8) ** 2) for c in (280.0, 400.0)], axis=1)
    model = mc.spectral.ReferenceModel(refs, (200.0, 1.0, 300))
    X = rng.poisson(model.G @ [30, 20, 5, 5, 5] + 1.0, (6, 6, 300))
    est = mc.spectral.PhysicsNMF(model, 1, max_iter=10).fit(X)
    fig = _check_style(est.plot(), "eV")
    assert [ax.get_xlabel() for ax in _spectra_axes(fig)] == ["energy (eV)"]
    fig = _check_style(est.plot(energy_unit="keV"), "keV")  # the caller's unit wins


def test_decomposition_figure_style():
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
    fig = _check_style(fig, "eV")
    assert len(_map_axes(fig)) == 4
    for ax in _map_axes(fig):
        _check_map(fig, ax, 7.7)


# ---------------------------------------------------------------------------
# Imaging
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("pixel_size", [None, 0.25])
def test_segmentation_plot_style(pixel_size):
    img, _ = mc.datasets.bicrystal(15.0, shape=(96, 96), seed=0)
    seg = mc.imaging.segment(img, n_regions=2, pixel_size=pixel_size)
    fig = _check_style(seg.plot(img))
    (ax,) = _map_axes(fig)
    _check_map(fig, ax, pixel_size)
    (cax,) = _colorbar_of(fig, ax)
    assert [t.get_text() for t in cax.get_yticklabels()] == ["region 0", "region 1"]


def test_segmentation_plot_pixel_size_keyword():
    img, _ = mc.datasets.bicrystal(15.0, shape=(96, 96), seed=0)
    seg = mc.imaging.segment(img, n_regions=2)
    fig = _check_style(seg.plot(img, pixel_size=0.5))
    _check_map(fig, _map_axes(fig)[0], 0.5)


@pytest.mark.parametrize("pixel_size", [None, 0.2, 1.7])
def test_denoise_plot_style(pixel_size):
    img, _ = mc.datasets.bicrystal(15.0, shape=(96, 96), seed=0)
    counts = np.random.default_rng(0).poisson(20.0 * img / img.max())
    with pytest.warns(RuntimeWarning):
        result = mc.imaging.denoise(counts, pixel_size=pixel_size)
    fig = _check_style(result.plot(counts, crop=(slice(0, 80), slice(8, 96))))
    assert len(_map_axes(fig)) == 3
    for ax in _map_axes(fig):
        _check_map(fig, ax, pixel_size)


# ---------------------------------------------------------------------------
# NMR
# ---------------------------------------------------------------------------


def test_structure_posterior_plots_style():
    pred = np.array([[1.0, 2.0, 3.5], [1.5, 2.6, 3.0], [0.8, 2.2, 3.9], [1.2, 1.9, 3.1]])
    res = mc.nmr.structure_posterior(
        pred, 0.2, [1.1, 2.0, 3.4], sigma_exp=0.3, slope=1.0, return_details=True
    )
    ax = res.plot(labels=[f"candidate structure {i}" for i in range(4)])
    _check_style(ax)
    ax = res.plot_parity(int(np.argmax(res.probabilities)))
    _check_style(ax)
    assert "ppm" in ax.get_xlabel() and "ppm" in ax.get_ylabel()


def test_candidate_map_plot_style():
    from matchar.nmr._pipeline import CandidateMap

    coords = np.array([[0.0, 0.0], [1.0, 0.2], [-0.8, 0.9], [0.3, -1.0], [-0.5, -0.4]])
    m = CandidateMap(np.eye(5), coords, np.array([0.6, 0.3]))
    fig = _check_style(m.plot([0.5, 0.2, 0.1, 0.15, 0.05], labels=list("abcde")))
    (ax,) = [a for a in fig.axes if not _is_colorbar(a)]
    (cax,) = _colorbar_of(fig, ax)
    assert cax.get_ylabel() == "posterior probability"


def test_trajectory_plots_style():
    from matchar.nmr._trajectory import TrajectoryShifts

    rng = np.random.default_rng(0)
    shifts = TrajectoryShifts(
        shielding=(30.0 + rng.normal(size=(40, 24))).astype(np.float32),
        std=np.full((40, 24), 0.5, np.float32),
        atoms=np.arange(24),
        element="H",
    )
    _check_style(shifts.plot_sites())
    _check_style(shifts.plot_distributions())


# ---------------------------------------------------------------------------
# The checks can fail
# ---------------------------------------------------------------------------


def test_checks_catch_bad_figures():
    # small text
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    ax.set_xlabel("x (px)")
    ax.set_ylabel("y")
    ax.set_title("tiny", fontsize=6)
    with pytest.raises(AssertionError, match="under"):
        _check_style(fig)
    # an inset over an axis label
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([0, 1])
    ax.set_xlabel("energy (keV)")
    ax.set_ylabel("counts")
    inset = fig.add_axes((0.0, 0.0, 0.3, 0.3))
    inset.plot([0, 1])
    inset.set_xlabel("i")
    inset.set_ylabel("l")
    with pytest.raises(AssertionError):
        _check_style(fig)
    # an eV axis labelled keV
    fig, ax = plt.subplots(layout="constrained")
    ax.plot(np.arange(100.0, 110.0), np.ones(10))
    ax.set_xlabel("energy (keV)")
    ax.set_ylabel("counts")
    with pytest.raises(AssertionError):
        _check_style(fig, "eV")
    # a scale bar whose label does not match its length
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar as Bar

    fig, ax = plt.subplots()
    ax.imshow(np.zeros((50, 50)))
    ax.add_artist(Bar(ax.transData, 10, "5 nm", "lower left"))
    with pytest.raises(AssertionError):
        _check_scale_bar(ax, 1.0)  # 5 nm at 1 Å/px is 50 px, not 10
    # overlapping texts in one axes
    fig, ax = plt.subplots()
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.text(0.5, 0.5, "first label")
    ax.text(0.5, 0.5, "second label")
    with pytest.raises(AssertionError):
        _check_style(fig)
    # a map without a colorbar
    fig, ax = plt.subplots()
    ax.imshow(np.zeros((5, 5)))
    with pytest.raises(AssertionError, match="colorbars"):
        _check_map(fig, ax, None)


@pytest.mark.parametrize("pixel_size", [None, 0.2])
def test_crystal_map_plot_style(pixel_size):
    """CrystalMap.plot: every panel a map with a labelled colorbar and (with the pixel
    size) a scale bar of the image's or the window grid's pixel; the class colorbar names
    all 12 classes."""
    img = mc.imaging.simulate_haadf(
        "fcc", (1, 1, 0), 3.6, shape=(160, 160), pixel_size=0.2, dose=500, seed=0
    )
    m = mc.imaging.classify_map(img, 0.2, stride=16)
    fig = _check_style(m.plot(img, pixel_size=pixel_size))
    axes = _map_axes(fig)
    assert len(axes) == 4
    for k, ax in enumerate(axes):
        grid = None if pixel_size is None else pixel_size * (1 if k == 0 else m.stride)
        _check_map(fig, ax, grid)
    (cax,) = _colorbar_of(fig, axes[1])
    assert [t.get_text() for t in cax.get_yticklabels()] == list(m.classes)
