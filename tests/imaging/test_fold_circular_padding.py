"""scripts/fold_circular_padding.py: one circular wrap of the input instead of one per
trunk layer computes what the per-layer padding computes, checked against a NumPy
reference of the circular convolutions (needs onnx, in the ``train`` extra)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import matchar as mc

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

# (c_in, c_out, (kh, kw), radial stride, radial zero padding) as CircConv builds them
LAYERS = [(1, 3, (3, 5), 1, True), (3, 4, (3, 3), 2, True), (4, 5, (2, 3), 1, False)]


def _circconv_graph(rng, n_angles: int = 11):
    """A graph in the shape torch.onnx exports CircConv: per layer two Slices and a
    Concat (circular in angle), a Pad (zeros in radius), Conv and Relu."""
    nodes, inits, weights = [], [], []
    x = "features"

    def const(name, values):
        inits.append(numpy_helper.from_array(np.asarray(values, np.int64), name))
        return name

    for i, (cin, cout, (kh, kw), sr, pad_r) in enumerate(LAYERS):
        w = rng.standard_normal((cout, cin, kh, kw)).astype(np.float32)
        b = rng.standard_normal(cout).astype(np.float32)
        weights.append((w, b, sr, pad_r))
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
        pa = kw // 2
        ax = const(f"ax{i}", [3])
        left = [x, const(f"s0{i}", [-pa]), const(f"e0{i}", [2**62]), ax]
        right = [x, const(f"s1{i}", [0]), const(f"e1{i}", [pa]), ax]
        nodes.append(helper.make_node("Slice", left, [f"l{i}"]))
        nodes.append(helper.make_node("Slice", right, [f"r{i}"]))
        nodes.append(helper.make_node("Concat", [f"l{i}", x, f"r{i}"], [f"c{i}"], axis=-1))
        conv_in = f"c{i}"
        if pad_r:
            pr = kh // 2
            pads = const(f"p{i}", [0, 0, pr, 0, 0, 0, pr, 0])
            nodes.append(helper.make_node("Pad", [f"c{i}", pads], [f"pad{i}"], mode="constant"))
            conv_in = f"pad{i}"
        nodes.append(
            helper.make_node(
                "Conv",
                [conv_in, f"w{i}", f"b{i}"],
                [f"conv{i}"],
                kernel_shape=[kh, kw],
                strides=[sr, 1],
                pads=[0, 0, 0, 0],
            )
        )
        nodes.append(helper.make_node("Relu", [f"conv{i}"], [f"relu{i}"]))
        x = f"relu{i}"
    nodes.append(helper.make_node("ReduceMean", [x], ["out"], keepdims=0, axes=[2]))
    graph = helper.make_graph(
        nodes,
        "circconv",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["n", 1, 8, n_angles])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["n", 5, n_angles])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model, weights


def _reference(x, weights):
    """NumPy: circular padding in angle and zero padding in radius per layer."""
    for w, b, sr, pad_r in weights:
        cout, _cin, kh, kw = w.shape
        pa, pr = kw // 2, (kh // 2 if pad_r else 0)
        x = np.concatenate([x[..., x.shape[-1] - pa :], x, x[..., :pa]], axis=-1)
        x = np.pad(x, ((0, 0), (0, 0), (pr, pr), (0, 0)))
        n, _, h, a = x.shape
        ho, ao = (h - kh) // sr + 1, a - kw + 1
        y = np.zeros((n, cout, ho, ao))
        for i in range(kh):
            for j in range(kw):
                patch = x[:, :, i : i + sr * (ho - 1) + 1 : sr, j : j + ao]
                y += np.einsum("nchw,oc->nohw", patch, w[:, :, i, j])
        x = np.maximum(y + b[None, :, None, None], 0.0)
    return x.mean(axis=2)


def _run(model, x):
    s = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return s.run(None, {"features": x})[0]


def test_folded_graph_computes_the_circular_convolutions(repo_script):
    fold = repo_script("fold_circular_padding")
    rng = np.random.default_rng(0)
    model, weights = _circconv_graph(rng)
    folded = fold.fold_circular_padding(model)
    ops = [n.op_type for n in folded.graph.node]
    assert "Pad" not in ops and ops.count("Concat") == 1 and ops.count("Conv") == 3
    x = rng.standard_normal((4, 1, 8, 11)).astype(np.float32)
    ref = _reference(x.astype(np.float64), weights)
    np.testing.assert_allclose(_run(model, x), ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(_run(folded, x), ref, rtol=1e-4, atol=1e-4)
    assert fold.check_same(model, folded) <= 1e-4
    with pytest.raises(ValueError, match="padded already"):
        fold.fold_circular_padding(folded)  # a folded graph is refused, not folded twice


@pytest.mark.parametrize("name", ["crystal_classifier.onnx", "crystal_classifier_cbed.onnx"])
def test_shipped_graphs_are_folded(name):
    path = Path(mc.imaging.__file__).parent / "models" / name
    ops = [n.op_type for n in onnx.load(str(path)).graph.node]
    assert "Pad" not in ops and ops.count("Conv") == 5


def test_cli_refuses_a_file_that_is_not_a_model(repo_script, tmp_path, capsys):
    fold = repo_script("fold_circular_padding")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    assert fold.main([str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad.onnx" in err
