"""Temperature scaling of the crystal classifier's probabilities (the model JSON's
``temperature``): every Monte-Carlo sample's softmax is taken at logits / T."""

from __future__ import annotations

import json

import numpy as np
import pytest

import matchar as mc
from matchar.imaging._classifier import _MODELS


def _with_temperature(tmp_path, t):
    meta = json.loads((_MODELS / "crystal_classifier.json").read_text())
    meta["temperature"] = t
    path = tmp_path / "meta.json"
    path.write_text(json.dumps(meta))
    return mc.imaging.CrystalClassifier(_MODELS / "crystal_classifier.onnx", path)


def _windows():
    return np.stack(
        [
            mc.imaging.simulate_haadf(
                p, z, 3.3, rotation_deg=11.0 * i, shape=(64, 64), pixel_size=0.25, dose=200, seed=i
            )
            for i, (p, z) in enumerate(mc.imaging.ZONE_AXES[:5])
        ]
    )


@pytest.mark.parametrize("t", [0.5, 2.5])
def test_probabilities_at_a_temperature_match_numpy(tmp_path, t):
    w = _windows()
    ref = _with_temperature(tmp_path, 1.0).predict_windows(w)["probs_mc"].astype(np.float64)
    got = _with_temperature(tmp_path, t).predict_windows(w)["probs_mc"]
    logits = np.log(np.clip(ref, 1e-30, None)) / t  # log p = logit - logsumexp
    expected = np.exp(logits - logits.max(-1, keepdims=True))
    expected /= expected.sum(-1, keepdims=True)
    np.testing.assert_allclose(got, expected, atol=2e-5)
    np.testing.assert_allclose(got.sum(-1), 1.0, atol=1e-5)
    # a higher temperature flattens each sample: its top class loses probability (the
    # top of the samples' mean need not, where the samples disagree on it)
    top = ref.argmax(-1)[..., None]
    ref_top = np.take_along_axis(ref, top, -1)
    got_top = np.take_along_axis(got.astype(np.float64), top, -1)
    if t > 1:
        assert np.all(got_top <= ref_top + 1e-6)
    else:
        assert np.all(got_top >= ref_top - 1e-6)


@pytest.mark.parametrize("t", [0.0, -1.0, float("nan"), 100.0])
def test_bad_temperature(tmp_path, t):
    with pytest.raises(ValueError, match="temperature"):
        _with_temperature(tmp_path, t)
