"""CrystalClassifier / classify_map with the shipped ONNX model (fast)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

import matchar as mc
from matchar.imaging._classifier import CrystalClassifier
from matchar.imaging._features import MODEL_WINDOW, fft_features, polar_features, real_features

MODELS = Path(mc.imaging.__file__).parent / "models"


@pytest.fixture(scope="module")
def clf():
    return CrystalClassifier.default()


def test_image_alone_splits_lookalikes_by_the_training_prior(clf):
    """The square group: fcc, bcc and diamond [100] explain a column spacing d with
    a = 2 d, √2 d and 2√2 d; a uniform on the training range (2.5-5.4 Å) gives each the
    density 1 / (k (5.4 - 2.5)) of spacings, so at d = 1.8075 Å (Cu) the group's total
    splits 2 : √2 : 2√2, whatever split the network gave. At d = 1.92 Å (Si, a = 5.43 Å)
    diamond's a leaves the range: fcc and bcc only, 2 : √2. Identical samples keep no
    mutual information. A given lattice constant reweights the network's own split
    instead (it may lie outside the training range)."""
    assert clf.lookalike_prior and clf.metadata["lattice_constant_range"] == [2.5, 5.4]
    c = len(clf.classes)
    fcc, bcc, dia, other = (
        clf.classes.index(n) for n in ("fcc[100]", "bcc[100]", "diamond[100]", "fcc[110]")
    )
    r2 = math.sqrt(2)
    for d, odds in ((1.8075, [2, r2, 2 * r2]), (5.431 / (2 * r2), [2, r2, 0])):
        p = np.zeros((1, 4, c), np.float32)
        p[..., fcc], p[..., other] = 0.9, 0.1  # the network: all of the group on fcc
        loga = np.full((1, 4, c), math.log(3.5))
        loga[..., fcc], loga[..., bcc], loga[..., dia] = np.log([2 * d, r2 * d, 2 * r2 * d])
        rot = np.zeros((1, 4, c, 2))
        s = clf._summarize({"probs_mc": p, "log_a": loga, "rot": rot})
        odds = np.asarray(odds, dtype=float)
        got = s["probabilities"][0]
        np.testing.assert_allclose(got[[fcc, bcc, dia]], 0.9 * odds / odds.sum(), rtol=1e-6)
        assert got[other] == pytest.approx(0.1, rel=1e-6)
        assert s["uncertainty"][0] == pytest.approx(0.0, abs=1e-9)
        known = clf._summarize({"probs_mc": p, "log_a": loga, "rot": rot}, clf._prior(2 * d, 0.05))
        assert known["class"][0] == fcc
        # a given range holding every class's lattice constant: the network's own split
        wide = clf._summarize({"probs_mc": p, "log_a": loga, "rot": rot}, clf._prior((1, 10), 0.05))
        np.testing.assert_allclose(wide["probabilities"][0], p[0].mean(0), rtol=1e-6, atol=1e-12)


def test_image_alone_uncertainty_merges_each_lookalike_group(clf):
    """From the image alone the training prior splits a look-alike group, so the heads'
    disagreement over that split is not uncertainty: two samples that put everything on
    fcc [100] and on bcc [100] agree (0 nats), while samples split between fcc [100] and
    fcc [110] disagree by log 2. With a lattice constant given (the network's split
    reweighted) or ``lookalike_prior`` off, the information is per class. Random samples
    against a direct reference that sums each group's columns."""
    c = len(clf.classes)
    fcc, bcc, f110 = (clf.classes.index(n) for n in ("fcc[100]", "bcc[100]", "fcc[110]"))
    loga = np.full((2, 2, c), math.log(3.6))
    rot = np.zeros((2, 2, c, 2))
    p = np.zeros((2, 2, c), np.float32)
    p[0, 0, fcc] = p[0, 1, bcc] = 1.0  # within the square group
    p[1, 0, fcc] = p[1, 1, f110] = 1.0  # across groups
    out = {"probs_mc": p, "log_a": loga, "rot": rot}
    np.testing.assert_allclose(clf._summarize(out)["uncertainty"], [0.0, math.log(2)], atol=1e-9)
    wide = clf._summarize(out, clf._prior((1, 10), 0.05))["uncertainty"]
    np.testing.assert_allclose(wide, [math.log(2), math.log(2)], atol=1e-9)

    rng = np.random.default_rng(4)
    logits = rng.normal(size=(7, 16, c)) * 2
    q = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    names = [[f"{a}[{z}]" for a in protos] for protos, z in (
        (("fcc", "bcc", "diamond"), "100"), (("fcc", "bcc"), "111"), (("fcc",), "211"),
    )]  # fmt: skip
    names[2].append("hcp[10-10]")
    groups = [[clf.classes.index(n) for n in g] for g in names]
    rest = [i for i in range(c) if not any(i in g for g in groups)]
    merged = np.concatenate([q[..., rest]] + [q[..., g].sum(-1, keepdims=True) for g in groups], -1)
    mean = merged.mean(1)
    want = -(mean * np.log(mean)).sum(-1) + (merged * np.log(merged)).sum(-1).mean(1)
    out = {"probs_mc": q, "log_a": np.full(q.shape, math.log(3.6)), "rot": np.zeros((*q.shape, 2))}
    np.testing.assert_allclose(clf._summarize(out)["uncertainty"], want, rtol=1e-9, atol=1e-12)
    flat = q.mean(1)
    per_class = -(flat * np.log(flat)).sum(-1) + (q * np.log(q)).sum(-1).mean(1)
    assert np.all(per_class >= want - 1e-12)  # merging never adds disagreement


def test_model_ships_with_metadata(clf):
    onnx = MODELS / "crystal_classifier.onnx"
    assert onnx.stat().st_size < 5 * 1024 * 1024
    meta = json.loads((MODELS / "crystal_classifier.json").read_text())
    assert len(meta["classes"]) == 12 == len(clf.classes)
    assert "training_command" in meta
    assert clf.classes[7] == "hcp[0001]"


def test_summary_math_against_numpy(clf, monkeypatch):
    monkeypatch.setattr(clf, "lookalike_prior", False)  # the network's own split
    rng = np.random.default_rng(0)
    n, t, c = 5, 16, 12
    logits = rng.normal(size=(n, t, c)) * 3
    p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    phi = rng.uniform(0, 360, (n,))
    k = p.mean(1).argmax(-1)
    order = clf.symmetry_order[k]
    rot = np.zeros((n, t, c, 2))
    rot[np.arange(n), :, k, 0] = np.cos(np.radians(phi) * order)[:, None]
    rot[np.arange(n), :, k, 1] = np.sin(np.radians(phi) * order)[:, None]
    loga = rng.normal(size=(n, t, c)) * 0.1 + math.log(3.5)
    s = clf._summarize({"probs_mc": p.astype(np.float32), "log_a": loga, "rot": rot})
    mean = p.mean(1)
    h = -(mean * np.log(mean)).sum(-1)
    ht = -(p * np.log(p)).sum(-1).mean(1)
    np.testing.assert_allclose(s["uncertainty"], h - ht, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(s["class"], k)
    np.testing.assert_allclose(
        s["lattice_constant"], np.exp(loga.mean(1)[np.arange(n), k]), rtol=1e-6
    )
    period = 360.0 / order
    err = np.abs((s["rotation_deg"] - phi + period / 2) % period - period / 2)
    assert np.all(err < 1e-6)
    # identical masks -> no mutual information
    same = np.repeat(p[:, :1], t, axis=1)
    s2 = clf._summarize({"probs_mc": same, "log_a": loga, "rot": rot})
    np.testing.assert_allclose(s2["uncertainty"], 0.0, atol=1e-6)


def test_lattice_prior_against_numpy(clf, monkeypatch):
    """The known-lattice-constant reweighting against a direct NumPy reference: one value,
    a range, a per-prototype dict (prototypes left out get probability 0)."""
    monkeypatch.setattr(clf, "lookalike_prior", False)  # the reweighting alone
    rng = np.random.default_rng(1)
    n, t, c = 6, 16, 12
    logits = rng.normal(size=(n, t, c)) * 2
    p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    loga = np.log(rng.uniform(2.5, 5.5, (n, t, c)))
    rot = np.zeros((n, t, c, 2))
    rot[..., 0] = 1.0
    out = {"probs_mc": p.astype(np.float32), "log_a": loga.astype(np.float32), "rot": rot}
    protos = [clf._protos[i] for i in range(c)]
    tol = 0.07

    def reference(lo, hi):  # (c,) bounds in Å, NaN = excluded
        a = np.exp(loga.astype(np.float32).astype(np.float64))
        d = np.where(a < lo, np.log(lo / a), np.where(a > hi, np.log(a / hi), 0.0))
        w = np.where(np.isnan(lo), 0.0, np.exp(-0.5 * (d / tol) ** 2))
        q = p.astype(np.float32).astype(np.float64) * w
        return q / q.sum(-1, keepdims=True)

    cases = [
        (3.6, np.full(c, 3.6), np.full(c, 3.6)),
        ((3.0, 4.2), np.full(c, 3.0), np.full(c, 4.2)),
        (
            {"fcc": 3.6, "hcp": (2.9, 3.3)},
            np.array([3.6 if q == "fcc" else 2.9 if q == "hcp" else np.nan for q in protos]),
            np.array([3.6 if q == "fcc" else 3.3 if q == "hcp" else np.nan for q in protos]),
        ),
    ]
    for known, lo, hi in cases:
        with np.errstate(invalid="ignore"):
            ref = reference(lo, hi)
        s = clf._summarize(out, clf._prior(known, tol))
        np.testing.assert_allclose(s["probabilities"], ref.mean(1), rtol=1e-6, atol=1e-9)
        np.testing.assert_array_equal(s["class"], ref.mean(1).argmax(-1))
    excluded = [i for i, q in enumerate(protos) if q not in ("fcc", "hcp")]
    assert np.all(s["probabilities"][:, excluded] == 0.0)
    # a range holding every class's lattice constant changes nothing
    s0 = clf._summarize(out)
    s1 = clf._summarize(out, clf._prior((1.0, 10.0), tol))
    np.testing.assert_allclose(s1["probabilities"], s0["probabilities"], rtol=1e-6)
    np.testing.assert_allclose(s1["uncertainty"], s0["uncertainty"], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(
    "proto, a", [("fcc", 3.61), ("bcc", 2.87), ("diamond", 5.43), ("bcc", 3.30)]
)
def test_known_lattice_constant_separates_look_alikes(clf, proto, a):
    # fcc, bcc and diamond [100] are the same square column pattern up to scale: the
    # image alone cannot tell them apart, the known lattice constant can.
    img = mc.imaging.simulate_haadf(
        proto, (1, 0, 0), a, rotation_deg=10.0, shape=(96, 96), pixel_size=0.2, dose=2000, seed=3
    )
    p = clf.predict(img, 0.2, lattice_constant=a)
    assert (p.prototype, p.zone_axis) == (proto, (1, 0, 0))
    assert abs(p.lattice_constant / a - 1) < 0.05
    # a two-phase prior (e.g. a duplex steel) picks the phase the image shows
    q = clf.predict(img, 0.2, lattice_constant={proto: a, "hcp": (2.5, 3.3)})
    assert q.prototype == proto
    m = clf.classify_map(img, 0.2, stride=32, lattice_constant=a)
    assert np.all(m.prototype == proto)


def test_known_lattice_constant_bad_input(clf):
    img = mc.imaging.simulate_haadf("fcc", (1, 1, 0), 4.0, shape=(80, 80), pixel_size=0.2)
    for bad, exc in [
        (-1.0, ValueError),
        (float("nan"), ValueError),
        ((4.0, 3.0), ValueError),
        ((1.0, 2.0, 3.0), TypeError),
        ("fcc", TypeError),
        ({}, ValueError),
        ({"bct": 3.0}, ValueError),
        ({"fcc": "x"}, TypeError),
    ]:
        with pytest.raises(exc, match="lattice_constant"):
            clf.predict(img, 0.2, lattice_constant=bad)
    for tol in (0.0, -0.1, float("inf"), 2.0):
        with pytest.raises(ValueError, match="lattice_tolerance"):
            clf.predict(img, 0.2, lattice_constant=4.0, lattice_tolerance=tol)
    with pytest.warns(UserWarning, match="no class's predicted lattice constant"):
        p = clf.predict(img, 0.2, lattice_constant=40.0)
    assert np.isclose(p.probabilities.sum(), 1.0)


def _polar_reference(windows):
    """The polar features as first written: the bilinear gather of the full centred
    log-FFT map of fft_features, then standardized."""
    from matchar.imaging._features import _POLAR_IDX, _POLAR_W

    f = fft_features(windows)[:, 0].reshape(len(windows), -1).astype(np.float64)
    p = np.einsum("nkj,kj->nk", f[:, _POLAR_IDX], _POLAR_W)
    p = (p - p.mean(axis=1, keepdims=True)) / p.std(axis=1, keepdims=True)
    return p.reshape(len(windows), 1, 24, 60)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_polar_features_match_the_full_map_reference(dtype):
    rng = np.random.default_rng(3)
    big = rng.random((5, 2 * MODEL_WINDOW, 2 * MODEL_WINDOW)).astype(dtype)
    x = big[:, ::2, 1::2]  # non-contiguous
    x[1] = 1000.0 + 7.0 * x[1]  # gain and offset
    yy, xx = np.mgrid[:MODEL_WINDOW, :MODEL_WINDOW]
    x[2] += np.cos(2 * np.pi * (5 * xx + 3 * yy) / MODEL_WINDOW)  # lattice fringes
    before = x.copy()
    p = polar_features(x)
    assert p.dtype == np.float32 and p.shape == (5, 1, 24, 60) and p.flags.c_contiguous
    # float32 FFTs of the two paths: the log-magnitudes agree to ~1e-6 of their range
    np.testing.assert_allclose(p, _polar_reference(x), atol=2e-4)
    np.testing.assert_array_equal(x, before)
    assert polar_features(x[:0]).shape == (0, 1, 24, 60)


def test_features_shapes_and_invariance():
    rng = np.random.default_rng(1)
    x = rng.random((3, MODEL_WINDOW, MODEL_WINDOW))
    f = fft_features(x)
    assert f.shape == (3, 1, 64, 64) and f.dtype == np.float32
    np.testing.assert_allclose(f.mean(axis=(2, 3)), 0, atol=1e-5)
    # the log-FFT magnitude ignores an affine change of intensity
    np.testing.assert_allclose(fft_features(5 * x + 2), f, atol=1e-3)  # DC bin ~ 0
    p = polar_features(x)
    assert p.shape == (3, 1, 24, 60)
    before = x.copy()
    polar_features(x)
    np.testing.assert_array_equal(x, before)
    # the real-space input: each window standardized, so gain and offset drop out
    r = real_features(x)
    assert r.shape == (3, 1, 64, 64) and r.dtype == np.float32
    np.testing.assert_allclose(
        r[:, 0], (x - x.mean((1, 2), keepdims=True)) / x.std((1, 2), keepdims=True), atol=1e-4
    )
    np.testing.assert_allclose(real_features(7 * x + 1000), r, atol=1e-3)
    np.testing.assert_array_equal(x, before)
    with pytest.raises(ValueError, match="shape"):
        real_features(x[:, :32])


@pytest.mark.parametrize(
    "proto,zone,a,rot",
    [
        ("hcp", (0, 0, 0, 1), 3.21, 17.0),
        ("fcc", (1, 1, 0), 4.05, 50.0),
        ("hcp", (2, -1, -1, 0), 2.95, 100.0),
        ("diamond", (1, 1, 0), 5.0, 33.0),
    ],
)
def test_predict_simulated_image(clf, proto, zone, a, rot):
    img = mc.imaging.simulate_haadf(
        proto, zone, a, rotation_deg=rot, shape=(160, 160), pixel_size=0.15, dose=2000, seed=5
    )
    before = img.copy()
    p = clf.predict(img, 0.15)
    np.testing.assert_array_equal(img, before)
    assert (p.prototype, p.zone_axis) == (proto, zone)
    assert p.probabilities.shape == (12,)
    assert p.probabilities.sum() == pytest.approx(1.0, abs=1e-4)
    assert abs(p.lattice_constant / a - 1) < 0.05
    period = 360.0 / mc.imaging.projected_cell(proto, zone).symmetry_order
    err = abs((p.rotation_deg - rot + period / 2) % period - period / 2)
    assert err < 5.0
    assert 0 <= p.uncertainty <= math.log(12)


def test_classify_map_grid(clf):
    img = mc.imaging.simulate_haadf(
        "hcp", (0, 0, 0, 1), 3.2, shape=(150, 170), pixel_size=0.2, dose=1000, seed=2
    )
    m = mc.imaging.classify_map(img, 0.2, stride=10)
    win = round(16 / 0.2)
    assert m.window == win and m.stride == 10
    shape = ((150 - win) // 10 + 1, (170 - win) // 10 + 1)
    assert m.uncertainty.shape == shape == m.prototype.shape == m.lattice_constant.shape
    assert m.probabilities.shape == (*shape, 12)
    np.testing.assert_allclose(m.probabilities.sum(-1), 1.0, atol=1e-4)
    np.testing.assert_allclose(m.centers[0, 0], [(win - 1) / 2, (win - 1) / 2])
    np.testing.assert_allclose(m.centers[1, 2], [10 + (win - 1) / 2, 20 + (win - 1) / 2])
    assert m.zone_axis[0, 0] == (0, 0, 0, 1)
    assert (m.prototype == "hcp").mean() > 0.9
    # a smaller window (zero-padded) is accepted
    small = mc.imaging.classify_map(img, 0.2, window=60, stride=30, classifier=clf)
    assert small.window == 60


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("wm", [32, 45, 48, 63])
def test_smaller_windows_are_tapered_once(dtype, wm):
    """What the features of a zero-padded smaller window taper (its mean removed, times
    the features' 64-pixel Hann) is the window's own field under one Hann taper of its
    side, up to a scale and an offset, and zero outside: not tapered twice (which left
    a 12 Å window a taper 5 Å wide at half height instead of 6 Å). The input stays
    untouched, non-contiguous or not."""
    from matchar.imaging._classifier import _network_windows
    from matchar.imaging._features import _HANN

    rng = np.random.default_rng(wm)
    big = rng.normal(5.0, 2.0, (3, 2 * wm, wm + 7)).astype(dtype)
    win = big[:, ::2, 3 : 3 + wm]  # non-contiguous
    before = win.copy()
    w = _network_windows(win)
    np.testing.assert_array_equal(win, before)
    assert w.shape == (3, MODEL_WINDOW, MODEL_WINDOW) and w.dtype == np.float32
    w = w.astype(np.float64)
    seen = (w - w.mean(axis=(1, 2), keepdims=True)) * _HANN
    o = (MODEL_WINDOW - wm) // 2
    h = np.hanning(wm + 2)[1:-1]
    hh = np.outer(h, h)
    for i in range(3):
        inner = seen[i, o : o + wm, o : o + wm]
        outside = seen[i].copy()
        outside[o : o + wm, o : o + wm] = 0
        assert np.abs(outside).max() < 1e-6 * np.abs(inner).max()
        # inner = hh * (alpha * field + beta): a least-squares fit leaves no residual
        field = win[i].astype(np.float64)
        design = np.stack([(hh * field).ravel(), hh.ravel()], 1)
        coef, *_ = np.linalg.lstsq(design, inner.ravel(), rcond=None)
        resid = inner.ravel() - design @ coef
        assert np.abs(resid).max() < 1e-5 * np.abs(inner).max()
        assert coef[0] > 0


def test_smaller_windows_read_the_class_with_less_uncertainty(clf, monkeypatch):
    """12 Å windows (100 pixels at 0.12 Å) of clean crystals outside the look-alike
    groups: every window names the class, with less uncertainty than when the field
    was tapered twice (about half of it on these three)."""
    from matchar.imaging import _classifier_maps
    from matchar.imaging._classifier import _pad_windows

    for i, (proto, zone, a) in enumerate(
        [("fcc", (1, 1, 0), 3.6), ("bcc", (1, 1, 0), 2.87), ("hcp", (0, 0, 0, 1), 3.2)]
    ):
        img = mc.imaging.simulate_haadf(proto, zone, a, shape=(200, 200), pixel_size=0.12,
                                        dose=300, seed=i)  # fmt: skip
        small = clf.classify_map(img, 0.12, window=100, stride=20)
        assert (small.prototype == proto).all()
        assert all(z == zone for z in small.zone_axis.ravel())
        with monkeypatch.context() as m:
            m.setattr(_classifier_maps, "_network_windows", _pad_windows)
            twice = clf.classify_map(img, 0.12, window=100, stride=20)
        assert small.uncertainty.mean() < 0.75 * twice.uncertainty.mean()


@pytest.mark.parametrize(
    "window,given,warns",
    [
        (100, None, False),  # 12.0 Å
        (95, None, True),  # 11.4 Å, from the image alone
        (95, 3.6, False),  # with the lattice constant given
        (84, 3.6, False),  # 10.1 Å, given
        (80, 3.6, True),  # 9.6 Å, even given
    ],
)
def test_windows_too_small_for_real_images_warn(clf, window, given, warns):
    import warnings

    img = mc.imaging.simulate_haadf("fcc", (1, 1, 0), 3.6, shape=(130, 130), pixel_size=0.12,
                                    dose=300, seed=0)  # fmt: skip
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clf.classify_map(img, 0.12, window=window, stride=30, lattice_constant=given)
    said = [w for w in caught if "misread real images" in str(w.message)]
    assert len(said) == int(warns), [str(w.message) for w in caught]
    if warns:
        text = str(said[0].message)
        assert f"{window * 0.12:.1f} Å ({window} pixels)" in text
        assert ("with lattice_constant= given" in text) == (given is None)
        assert said[0].filename == __file__  # points at the caller


@pytest.mark.parametrize(
    "bad,exc,match",
    [
        (np.full((100, 100), np.nan), ValueError, "NaN"),
        (np.ones((100, 100, 3)), ValueError, "2-D"),
        (np.ones((30, 200)), ValueError, "smaller than one window"),
        (np.array([["a"]]), ValueError, "image"),
    ],
)
def test_bad_images(clf, bad, exc, match):
    with pytest.raises(exc, match=match):
        clf.predict(bad, 0.15)
    with pytest.raises(exc, match=match):
        mc.imaging.classify_map(bad, 0.15, classifier=clf)


def test_bad_pixel_sizes_and_options(clf):
    img = mc.imaging.simulate_haadf("fcc", (1, 0, 0), 4.0, shape=(200, 200), pixel_size=0.1, seed=0)
    for ps in (0.0, -1.0, float("nan"), 5.0, 0.001):
        with pytest.raises(ValueError, match="pixel_size"):
            clf.predict(img, ps)
    with pytest.warns(UserWarning, match="pixel_size"):
        clf.predict(img, 0.5)
    with pytest.raises(ValueError, match="1/Å per pixel"):  # CBED calibrations are reciprocal
        clf.predict(img, modality="cbed", reciprocal_pixel_size=0.5)
    with pytest.raises(ValueError, match="modality"):
        clf.predict(img, 0.1, modality="tem")
    with pytest.raises(ValueError, match="window"):
        mc.imaging.classify_map(img, 0.1, window=400, classifier=clf)
    with pytest.raises(ValueError, match="stride"):
        mc.imaging.classify_map(img, 0.1, stride=0, classifier=clf)
    with pytest.raises(TypeError, match="window"):
        mc.imaging.classify_map(img, 0.1, window=100.5, classifier=clf)


def test_pixel_size_resampling_consistent(clf):
    # the same crystal imaged at 0.1 and 0.25 A/pixel gives the same lattice constant
    kw = dict(rotation_deg=12.0, dose=3000, thermal_sigma=0.05)
    fine = mc.imaging.simulate_haadf(
        "hcp", (2, -1, -1, 0), 3.2, shape=(192, 192), pixel_size=0.1, seed=3, **kw
    )
    coarse = mc.imaging.simulate_haadf(
        "hcp", (2, -1, -1, 0), 3.2, shape=(80, 80), pixel_size=0.25, seed=4, **kw
    )
    pf, pc = clf.predict(fine, 0.1), clf.predict(coarse, 0.25)
    assert pf.zone_axis == pc.zone_axis == (2, -1, -1, 0)
    assert abs(pf.lattice_constant / pc.lattice_constant - 1) < 0.05


def test_cli_identify(tmp_path, capsys):
    from matchar.cli import main

    img = mc.imaging.simulate_haadf(
        "hcp", (0, 0, 0, 1), 3.2, shape=(140, 140), pixel_size=0.2, dose=1000, seed=0
    )
    path = tmp_path / "img.npy"
    np.save(path, img)
    out = tmp_path / "out"
    assert (
        main(
            [
                "identify",
                str(path),
                "--pixel-size",
                "0.2",
                "--map",
                "--stride",
                "20",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "hcp [0001]" in text
    # the map's most frequent classes and their window counts, which sum to at most 16
    summary = text.splitlines()[-1]
    assert summary.startswith("16 windows: ") and "crystal_map.npz" in summary
    listed = summary.split(": ", 1)[1].rsplit(" -> ", 1)[0].split(", ")
    assert 1 <= len(listed) <= 3 and sum(int(item.split()[-1]) for item in listed) <= 16
    with np.load(out / "crystal_map.npz") as z:
        assert z["uncertainty"].shape == (4, 4)
        counts = np.bincount(z["class_index"].ravel(), minlength=12)
        assert listed[0] == f"{z['classes'][counts.argmax()].replace('[', ' [')} {counts.max()}"
        # rotation_deg, and for one release the same array under its old key
        np.testing.assert_array_equal(z["rotation"], z["rotation_deg"])
    assert (out / "crystal_map.png").stat().st_size > 0
    assert main(["identify", str(path), "--pixel-size", "nan"]) == 2
    assert "pixel_size" in capsys.readouterr().err


def test_cli_identify_with_a_known_lattice_constant(tmp_path, capsys):
    from matchar.cli import main

    img = mc.imaging.simulate_haadf(
        "fcc", (1, 0, 0), 3.61, shape=(96, 96), pixel_size=0.2, dose=2000, seed=3
    )
    path = tmp_path / "cu.npy"
    np.save(path, img)
    for known in (["3.61"], ["3.5:3.7"], ["fcc=3.61", "bcc=2.87"]):
        argv = ["identify", str(path), "--pixel-size", "0.2", "--lattice-constant", *known]
        assert main(argv) == 0
        assert capsys.readouterr().out.startswith("fcc [100]")
    for bad in (["x"], ["3.6", "fcc=3.6"], ["fcc=-1"]):
        argv = ["identify", str(path), "--pixel-size", "0.2", "--lattice-constant", *bad]
        assert main(argv) == 2
        assert "lattice" in capsys.readouterr().err


def test_lookalikes_show_the_same_column_spacing():
    """The look-alikes of a [100] prediction sit at the lattice constants that give the
    same square of columns: fcc [100] columns are a/2 apart, bcc [100] a/sqrt(2), diamond
    [100] a/(2 sqrt(2)); so a_fcc = sqrt(2) a_bcc and a_diamond = sqrt(2) a_fcc. A
    prediction outside every look-alike group has none."""
    probs = np.zeros(12)
    probs[[0, 4, 10]] = [0.5, 0.3, 0.2]  # fcc[100], bcc[100], diamond[100]
    pred = mc.imaging.CrystalPrediction("fcc", (1, 0, 0), probs, 4.0, 10.0, 0.1)
    got = pred.lookalikes()
    assert [(m[0], m[1]) for m in got] == [("bcc", (1, 0, 0)), ("diamond", (1, 0, 0))]
    assert [m[2] for m in got] == pytest.approx([0.3, 0.2])
    assert got[0][3] == pytest.approx(4.0 / math.sqrt(2))
    assert got[1][3] == pytest.approx(4.0 * math.sqrt(2))
    assert [m[0] for m in pred.lookalikes(min_probability=0.25)] == ["bcc"]
    probs = np.zeros(12)
    probs[1] = 1.0
    assert mc.imaging.CrystalPrediction("fcc", (1, 1, 0), probs, 3.6, 0.0, 0.0).lookalikes() == []
    with pytest.raises(ValueError, match="min_probability"):
        pred.lookalikes(min_probability=1.5)
    with pytest.raises(ValueError, match="12 entries"):
        pred.lookalikes(classes=["fcc[100]"])


def test_cli_identify_names_the_lookalikes_from_the_image_alone(tmp_path, capsys):
    """From the image alone the CLI adds a line for each look-alike with its lattice
    constant; with the lattice constant given it does not."""
    from matchar.cli import main

    img = mc.imaging.simulate_haadf(
        "bcc", (1, 0, 0), 2.87, shape=(160, 160), pixel_size=0.12, dose=1000, seed=2
    )
    path = tmp_path / "fe.npy"
    np.save(path, img)
    assert main(["identify", str(path), "--pixel-size", "0.12"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) >= 2 and all(line.startswith("  or ") for line in lines[1:])
    bcc = [line for line in lines if "bcc [100]" in line]
    assert len(bcc) == 1
    assert float(bcc[0].split("a=")[1].split()[0]) == pytest.approx(2.87, rel=0.03)
    assert main(["identify", str(path), "--pixel-size", "0.12", "--lattice-constant", "2.87"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1


def test_cli_identify_needs_a_pixel_size(tmp_path, capsys):
    from matchar.cli import main

    path = tmp_path / "img.npy"
    np.save(path, np.random.default_rng(0).random((100, 100)))
    assert main(["identify", str(path)]) == 2
    assert "pixel" in capsys.readouterr().err


def test_the_model_json_picks_the_input_features(tmp_path):
    import shutil

    from matchar.imaging import _classifier

    models = Path(_classifier.__file__).parent / "models"
    meta = json.loads((models / "crystal_classifier.json").read_text())
    for kind, fn in [("polar", polar_features), ("fft", fft_features), ("real", real_features)]:
        shutil.copy(models / "crystal_classifier.onnx", tmp_path / f"{kind}.onnx")
        (tmp_path / f"{kind}.json").write_text(json.dumps(dict(meta, features=kind)))
        assert mc.imaging.CrystalClassifier(tmp_path / f"{kind}.onnx")._featurize is fn
    shutil.copy(models / "crystal_classifier.onnx", tmp_path / "bad.onnx")
    (tmp_path / "bad.json").write_text(json.dumps(dict(meta, features="wavelet")))
    with pytest.raises(ValueError, match="unknown features 'wavelet'"):
        mc.imaging.CrystalClassifier(tmp_path / "bad.onnx")
