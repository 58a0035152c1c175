"""--init-onnx of scripts/train_crystal_classifier.py and train_cbed_classifier.py: the
network rebuilt from an exported graph computes what the graph computes (needs the
``train`` extra: torch and onnx)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import matchar as mc

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")


def _haadf(repo_script):
    from matchar.imaging._dataset import WindowGenerator
    from matchar.imaging._features import polar_features

    tr = repo_script("train_crystal_classifier")
    gen = WindowGenerator(11)
    x, _c, _a, _r = gen.sample(24)
    path = _model("crystal_classifier.onnx")
    net = tr.onnx_weights_into(tr.PolarNet(gen.order), path)
    return tr, net, path, polar_features(x, workers=1), mc.imaging.CrystalClassifier.default()


def _cbed(repo_script):
    from matchar.imaging._dataset import CbedGenerator
    from matchar.imaging._features import cbed_features

    tr = repo_script("train_cbed_classifier")
    gen = CbedGenerator(11)
    x, ps, _c, _a, _r = gen.sample(24)
    path = _model("crystal_classifier_cbed.onnx")
    net = tr.net_from_onnx(path, gen.order)
    return tr, net, path, cbed_features(x, ps), mc.imaging.CrystalClassifier.default("cbed")


def _model(name: str) -> Path:
    return Path(mc.imaging.__file__).parent / "models" / name


@pytest.mark.parametrize("build", [_haadf, _cbed], ids=["haadf", "cbed"])
def test_net_from_onnx_matches_the_graph(repo_script, build):
    from onnx import load, numpy_helper

    tr, net, path, feat, clf = build(repo_script)
    probs, log_a, rot = clf._session.run(None, {"features": feat})
    init = {t.name: numpy_helper.to_array(t) for t in load(str(path)).graph.initializer}
    # the first head's dropout masks: the Mul initializer of shape (1, masks per head, 128)
    masks = next(v for k, v in init.items() if k.startswith("onnx::Mul") and v.ndim == 3)[0]
    per_head = masks.shape[0]
    for train_mode in (False, True):  # frozen batch norms: training mode computes the same
        net.train(train_mode)
        tr.freeze_batch_norms(net)
        with torch.no_grad():
            pooled, r = net.pooled(torch.from_numpy(feat))
            out = net.head(net.fc(pooled)[:, None, :] * torch.from_numpy(masks.copy())[None])
        np.testing.assert_allclose(
            r.numpy().reshape(rot.shape[0], -1), rot.reshape(len(rot), -1), atol=1e-5
        )
        p0 = torch.softmax(out[..., :12], -1).numpy()
        np.testing.assert_allclose(p0, probs[:, :per_head], atol=1e-5)
        np.testing.assert_allclose(
            out[..., 12:].numpy() + tr.LOG_A0, log_a[:, :per_head], atol=1e-4
        )


def test_another_design_is_refused(repo_script):
    tr = repo_script("train_cbed_classifier")
    from matchar.imaging._dataset import CbedGenerator

    with pytest.raises(SystemExit, match="kernel"):  # the HAADF graph into the CBED net
        tr.net_from_onnx(_model("crystal_classifier.onnx"), CbedGenerator(0).order)
