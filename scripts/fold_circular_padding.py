"""Rewrite an exported crystal-classifier graph so that its trunk pads the angle axis once.

Every ``CircConv`` of ``scripts/train_crystal_classifier.py`` pads its input circularly
in angle (two Slices and a Concat) and with zeros in radius (a Pad) before its
convolution. onnxruntime runs those copies outside its blocked (NCHWc) convolution
layout, so each layer also pays two layout reorders: on the 2-core AMD EPYC (Zen 3,
AVX2) the copies and reorders took about as long as the convolutions themselves.

The trunk's convolutions all have stride 1 in angle, so the circular padding of every
layer can be done once, at the input: wrapped by M = sum of the layers' angular
half-widths on each side, the input makes every later layer see the same periodic signal,
and convolutions without angular padding ("valid" in angle) end on exactly the original
angles. The radial zero padding moves into each Conv's own ``pads``. The rewritten graph
computes what the original computes (the same products and sums; the rewrite is checked
on random inputs before anything is written), with one Slice-Slice-Concat on the
one-channel input instead of one per layer.

    python scripts/fold_circular_padding.py python/matchar/imaging/models/crystal_classifier.onnx

rewrites the file in place (``--out`` writes elsewhere). ``export_onnx`` of the training
scripts applies it to every graph it writes. Needs the ``train`` extra (onnx).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def _attr(node, name, default=None):
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _set_attr(node, name, value) -> None:
    from onnx import helper

    for i, a in enumerate(node.attribute):
        if a.name == name:
            del node.attribute[i]
            break
    node.attribute.append(helper.make_attribute(name, value))


def fold_circular_padding(model):
    """The graph of ``model`` (an ``onnx.ModelProto`` of a ``PolarNet``-based export) with
    the per-layer circular padding of its trunk replaced by one wrap of the input.

    Raises ``ValueError`` when the trunk is not the Slice-Slice-Concat(-Pad)-Conv-Relu
    chain that ``CircConv`` exports (a graph already folded included)."""
    import onnx
    from onnx import helper

    model = onnx.ModelProto.FromString(model.SerializeToString())  # a copy
    g = model.graph
    producer = {o: n for n in g.node for o in n.output}
    source = g.input[0].name
    convs = [n for n in g.node if n.op_type == "Conv" and len(_attr(n, "kernel_shape")) == 2]
    if not convs:
        raise ValueError("no 2-D convolution in the graph")
    layers = []
    outputs = []  # each trunk layer's Relu output: what the next layer reads
    expected_input = source
    for conv in convs:
        kh, kw = _attr(conv, "kernel_shape")
        if list(_attr(conv, "pads", [0, 0, 0, 0])) != [0, 0, 0, 0]:
            raise ValueError(f"{conv.name}: padded already (a folded graph?)")
        if _attr(conv, "strides", [1, 1])[1] != 1 or _attr(conv, "dilations", [1, 1]) != [1, 1]:
            raise ValueError(f"{conv.name}: angular stride or dilation other than 1")
        node = producer.get(conv.input[0])
        pr = 0
        if node is not None and node.op_type == "Pad":
            pr = kh // 2
            node = producer.get(node.input[0])
        if node is None or node.op_type != "Concat" or _attr(node, "axis") not in (-1, 3):
            raise ValueError(f"{conv.name}: its input is not the circular padding of CircConv")
        left, middle, right = node.input
        if middle != expected_input or {producer[left].op_type, producer[right].op_type} != {
            "Slice"
        }:
            raise ValueError(f"{conv.name}: its circular padding is not of the layer before")
        layers.append((conv, pr, kw // 2))
        relu = [n for n in g.node if n.op_type == "Relu" and n.input[0] == conv.output[0]]
        if len(relu) != 1:
            break  # the last trunk layer may feed more than a Relu: the trunk ends here
        expected_input = relu[0].output[0]
        outputs.append(expected_input)
    margin = sum(pa for _c, _pr, pa in layers)
    # the wrap of the input: [x[..., -M:], x, x[..., :M]] along the angle axis
    const = {
        "fold/start_left": [-margin],
        "fold/end_left": [np.iinfo(np.int64).max],
        "fold/start_right": [0],
        "fold/end_right": [margin],
        "fold/axes": [3],
    }
    new_nodes = [
        helper.make_node(
            "Constant",
            [],
            [name],
            value=helper.make_tensor(name, onnx.TensorProto.INT64, [1], v),
        )
        for name, v in const.items()
    ]
    new_nodes += [
        helper.make_node(
            "Slice",
            [source, "fold/start_left", "fold/end_left", "fold/axes"],
            ["fold/left"],
            name="fold/Slice_left",
        ),
        helper.make_node(
            "Slice",
            [source, "fold/start_right", "fold/end_right", "fold/axes"],
            ["fold/right"],
            name="fold/Slice_right",
        ),
        helper.make_node(
            "Concat",
            ["fold/left", source, "fold/right"],
            ["fold/wrapped"],
            axis=3,
            name="fold/Concat",
        ),
    ]
    for i, (conv, pr, _pa) in enumerate(layers):
        # the first layer reads the wrapped input, the others the Relu before them
        conv.input[0] = "fold/wrapped" if i == 0 else outputs[i - 1]
        _set_attr(conv, "pads", [pr, 0, pr, 0])
    nodes = new_nodes + list(g.node)
    # keep what the outputs need, in the original order
    needed = {o.name for o in g.output}
    keep = []
    for n in reversed(nodes):
        if any(o in needed for o in n.output):
            keep.append(n)
            needed.update(i for i in n.input if i)
    keep.reverse()
    del g.node[:]
    g.node.extend(keep)
    used = {i for n in g.node for i in n.input}
    kept_init = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(kept_init)
    del g.value_info[:]
    onnx.checker.check_model(model)
    return model


def check_same(original, folded, n: int = 64, seed: int = 0, atol: float = 1e-4) -> float:
    """Largest absolute difference of the outputs of two graphs on ``n`` random inputs
    (standard normal, the features' scale); raises ``ValueError`` above ``atol``."""
    import onnxruntime as ort

    runs = []
    shape = None
    for m in (original, folded):
        s = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        if shape is None:
            dims = s.get_inputs()[0].shape
            shape = [n] + [int(d) for d in dims[1:]]
            x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
        runs.append(s.run(None, {s.get_inputs()[0].name: x}))
    worst = max(float(np.max(np.abs(a - b))) for a, b in zip(*runs))
    if not worst <= atol:
        raise ValueError(f"the folded graph differs from the original by {worst:.3g}")
    return worst


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", type=Path, help="an exported classifier graph (.onnx)")
    ap.add_argument("--out", type=Path, help="where to write (default: in place)")
    args = ap.parse_args(argv)
    import onnx
    from google.protobuf.message import DecodeError

    try:
        original = onnx.load(str(args.model))
        folded = fold_circular_padding(original)
        worst = check_same(original, folded)
    except (OSError, ValueError, DecodeError, onnx.checker.ValidationError) as exc:
        print(f"fold_circular_padding: {args.model}: {exc}", file=sys.stderr)
        return 2
    out = args.out or args.model
    onnx.save(folded, str(out))
    print(
        f"{out}: {len(original.graph.node)} -> {len(folded.graph.node)} nodes; "
        f"largest output difference {worst:.2g}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
