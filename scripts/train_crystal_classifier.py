"""Train matchar's crystal classifier (HAADF windows -> prototype + zone axis, lattice
constant, in-plane rotation, MC-dropout uncertainty) and export it to ONNX.

Reproduces the model shipped in python/matchar/imaging/models/ (five stages: two of the
whole network, a small deep ensemble of heads on its trunk, a fine-tuning stage of the
whole network continued from that exported graph with ``--init-onnx``, and a fresh
ensemble of heads; exact commands in docs/imaging_cnn.md and the model JSON):

    OMP_NUM_THREADS=2 python scripts/train_crystal_classifier.py --minutes 24 --seed 0 ...
    OMP_NUM_THREADS=2 python scripts/train_crystal_classifier.py --heads 4 --init stage2.pt ...

Needs the ``train`` extra (torch, onnx). Training data are generated on the fly with
matchar's C++ HAADF renderer; every chunk of windows is fresh (continuous random
parameters), so the network never sees a window twice.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from matchar.imaging._dataset import A_RANGE, WindowGenerator
from matchar.imaging._features import (
    MODEL_PIXEL_SIZE,
    MODEL_WINDOW,
    POLAR_ANGLES,
    fft_features,
    polar_features,
    real_features,
)
from matchar.imaging._simulate import ZONE_AXES

N_CLASSES = len(ZONE_AXES)
LOG_A0 = math.log(3.7)  # log-lattice-constant offset of the regression head
N_MC = 16  # fixed MC-dropout masks exported in the ONNX graph
DROPOUT = 0.3


class CrystalNet(nn.Module):
    """Compact CNN on the 64 x 64 log-FFT: class, log-a and rotation heads per class."""

    def __init__(self, hidden: int = 128) -> None:
        super().__init__()

        def block(cin: int, cout: int, k: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cout, k, stride=2, padding=k // 2, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
            )

        self.trunk = nn.Sequential(
            block(1, 16, 5),
            block(16, 32, 3),
            block(32, 64, 3),
            block(64, 64, 3),
            nn.Flatten(),
            nn.Linear(64 * 4 * 4, hidden),
            nn.ReLU(inplace=True),
        )
        self.dropout = nn.Dropout(DROPOUT)
        # per class: 1 logit, 1 log-a, 2 (cos n theta, sin n theta)
        self.head = nn.Linear(hidden, 4 * N_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.trunk(x)))


class CircConv(nn.Module):
    """Conv2d over (radius, angle) maps: zero padding in radius, circular in angle."""

    def __init__(
        self, cin: int, cout: int, k: tuple[int, int], stride=(1, 1), pad_r: bool = True
    ) -> None:
        super().__init__()
        self.pr = k[0] // 2 if pad_r else 0
        self.pa = k[1] // 2
        self.conv = nn.Conv2d(cin, cout, k, stride=stride, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pa:
            x = torch.cat([x[..., -self.pa :], x, x[..., : self.pa]], dim=-1)
        if self.pr:
            x = nn.functional.pad(x, (0, 0, self.pr, self.pr))
        return torch.relu(self.bn(self.conv(x)))


class PolarNet(nn.Module):
    """CNN on the polar log-FFT (radius x angle, angle circular).

    Class and lattice constant come from angle-pooled (rotation-invariant) features; the
    rotation from per-class angular score profiles (rotation-equivariant): a softmax over
    the angle bins weights (cos n phi, sin n phi), turned by a learned per-class phase.
    """

    def __init__(
        self, order, hidden: int = 128, trunk: nn.Module | None = None, angles=None
    ) -> None:
        """``trunk`` maps (N, 1, R, A) to (N, 64, 1, A); ``angles`` (A,) are the signed
        polar angles (radians) by which a rotation of the input moves each angle bin
        (default: the HAADF grid, where an image rotation phi shifts t by -phi)."""
        super().__init__()
        self.trunk = (
            trunk
            if trunk is not None
            else nn.Sequential(
                CircConv(1, 16, (3, 5)),
                CircConv(16, 24, (3, 3), stride=(2, 1)),
                CircConv(24, 32, (3, 3), stride=(2, 1)),
                CircConv(32, 64, (6, 3), pad_r=False),
            )
        )
        self.fc = nn.Sequential(nn.Linear(128, hidden), nn.ReLU(inplace=True))
        self.dropout = nn.Dropout(DROPOUT)
        self.head = nn.Linear(hidden, 2 * N_CLASSES)
        self.angle_score = nn.Conv1d(64, N_CLASSES, 1)
        self.phase = nn.Parameter(torch.zeros(N_CLASSES))
        angles = -np.asarray(POLAR_ANGLES) if angles is None else np.asarray(angles)
        phi = (
            torch.as_tensor(angles, dtype=torch.float32)[None, :]
            * torch.as_tensor(np.asarray(order), dtype=torch.float32)[:, None]
        )  # (C, A)
        self.register_buffer("cos_t", torch.cos(phi))
        self.register_buffer("sin_t", torch.sin(phi))

    def pooled(self, x: torch.Tensor):
        """Angle-pooled trunk features (N, 128) and the rotation output (N, 2C)."""
        f = self.trunk(x)[:, :, 0, :]  # (N, 64, A)
        pooled = torch.cat([f.mean(-1), f.amax(-1)], 1)
        w = torch.softmax(self.angle_score(f), dim=-1)  # (N, C, A)
        c = (w * self.cos_t).sum(-1)
        s = (w * self.sin_t).sum(-1)
        cp, sp = torch.cos(self.phase), torch.sin(self.phase)
        rot = torch.stack([c * cp - s * sp, c * sp + s * cp], -1)  # (N, C, 2)
        return pooled, rot.flatten(1)

    def features(self, x: torch.Tensor):
        pooled, rot = self.pooled(x)
        return self.fc(pooled), rot

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, rot = self.features(x)
        return torch.cat([self.head(self.dropout(h)), rot], 1)


class Head(nn.Module):
    """One member of the head ensemble: ``PolarNet``'s fc -> dropout -> head, on the
    pooled trunk features (class logits and log lattice constant per class)."""

    def __init__(self, hidden: int = 128) -> None:
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(128, hidden), nn.ReLU(inplace=True))
        self.dropout = nn.Dropout(DROPOUT)
        self.head = nn.Linear(hidden, 2 * N_CLASSES)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.fc(pooled)))


class EnsembleExport(nn.Module):
    """Inference graph of the head ensemble: the trunk once, then every head under its
    own fixed dropout masks (``masks``: (n_heads, masks per head, hidden)); the samples
    of all heads are stacked along the second axis (any module with ``fc`` and ``head``
    serves as a head, ``net`` itself included)."""

    def __init__(self, net: PolarNet, heads, masks: torch.Tensor) -> None:
        super().__init__()
        self.net = net
        self.heads = nn.ModuleList(heads)
        self.register_buffer("masks", masks / (1.0 - DROPOUT))

    def forward(self, x: torch.Tensor):
        pooled, rot = self.net.pooled(x)
        out = torch.cat(
            [
                h.head(h.fc(pooled)[:, None, :] * self.masks[e][None])
                for e, h in enumerate(self.heads)
            ],
            1,
        )  # (N, T, 2C)
        c = N_CLASSES
        return torch.softmax(out[..., :c], dim=-1), out[..., c:] + LOG_A0, rot


def single_head_export(net: PolarNet, masks: torch.Tensor) -> EnsembleExport:
    """Inference graph of one trained network: its own head under ``masks`` (T, hidden)."""
    return EnsembleExport(net, [net], masks[None])


def class_lattice_loss(out, cls, loga):
    """Cross-entropy of the class logits ``out[:, :C]`` plus the smooth-L1 error of the
    true class's log lattice constant ``out[:, C:2C]`` (weight 20); also returns the CE."""
    c = N_CLASSES
    ce = nn.functional.cross_entropy(out[:, :c], cls)
    la = nn.functional.smooth_l1_loss(
        out[:, c : 2 * c][torch.arange(len(cls)), cls], loga, beta=0.02
    )
    return ce + 20.0 * la, ce


def train_head_ensemble(
    net: PolarNet,
    sample,
    n_windows: int,
    n_heads: int,
    epochs: int,
    seed: int,
    lr: float = 3e-3,
    batch: int = 256,
    chunk: int = 4096,
):
    """A small deep ensemble of heads on the frozen trunk of ``net``.

    ``sample(n)`` returns ``(features (n, 1, R, A) float32, classes (n,), a (n,) Å)`` of
    fresh inputs; their pooled trunk features are computed once, then ``n_heads`` heads
    are trained from independent random initialisations (seeds ``1000 * seed + e``) for
    ``epochs`` passes each (AdamW, cosine decay, dropout as in training).
    """
    net.eval()
    pooled, cls, loga = [], [], []
    with torch.no_grad():
        for s in range(0, n_windows, chunk):
            feat, c, a = sample(min(chunk, n_windows - s))
            pooled.append(net.pooled(torch.from_numpy(feat))[0])
            cls.append(c)
            loga.append(np.log(a) - LOG_A0)
    P = torch.cat(pooled)
    ct = torch.as_tensor(np.concatenate(cls), dtype=torch.long)
    lt = torch.as_tensor(np.concatenate(loga), dtype=torch.float32)
    steps = max(1, epochs * (len(P) // batch))
    heads = []
    for e in range(n_heads):
        torch.manual_seed(1000 * seed + e)
        h = Head(net.fc[0].out_features)
        opt = torch.optim.AdamW(h.parameters(), lr=lr, weight_decay=1e-4)
        k = 0
        h.train()
        for _ in range(epochs):
            perm = torch.randperm(len(P))
            for s in range(0, len(P) - batch + 1, batch):
                for g in opt.param_groups:
                    g["lr"] = lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * k / steps)))
                b = perm[s : s + batch]
                loss, _ = class_lattice_loss(h(P[b]), ct[b], lt[b])
                opt.zero_grad()
                loss.backward()
                opt.step()
                k += 1
        h.eval()
        heads.append(h)
        print(f"head {e + 1}/{n_heads} trained, last loss {float(loss.detach()):.3f}", flush=True)
    return heads


def add_head_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument(
        "--heads",
        type=int,
        default=0,
        help="with --init: keep the trained network's trunk and train this many independent "
        "heads on it (a small deep ensemble, each under 16/N of the exported dropout masks)",
    )
    ap.add_argument("--head-windows", type=int, default=131072, help="fresh inputs for --heads")
    ap.add_argument("--head-epochs", type=int, default=12, help="passes over them per head")
    ap.add_argument(
        "--mixed-heads",
        action="store_true",
        help="half of the heads on windows with --overlap/--grains, half on the same windows "
        "without them: the two halves disagree where a window holds two crystals",
    )


def load_net_state(path) -> dict:
    """The network's state dict from a ``--state`` file of either stage."""
    state = torch.load(path)
    return state["net"] if "net" in state and "heads" in state else state


def onnx_weights_into(net: PolarNet, path) -> PolarNet:
    """``net`` (a ``PolarNet`` of the graph's design) with the weights of an exported graph
    (``EnsembleExport``), for continuing to train a shipped model whose torch state was
    not kept (``--init-onnx``).

    The export folded each batch norm into its convolution; here the folded kernel
    becomes the convolution and the batch norm the identity plus the folded bias
    (running mean 0, running variance 1 - eps, scale 1), so the network computes what
    the graph computes as long as its batch norms stay in eval mode
    (``freeze_batch_norms``; the fine-tuning stage keeps them there). The network's own
    fc and head are those of the graph's first head."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    init = {
        t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in model.graph.initializer
    }
    convs = [n for n in model.graph.node if n.op_type == "Conv" and n.input[1] in init]
    trunk = [m for m in net.trunk if isinstance(m, CircConv)]
    if len(convs) != len(trunk) + 1:  # + the 1x1 angle score
        raise SystemExit(f"{path}: expected {len(trunk) + 1} convolutions, found {len(convs)}")
    with torch.no_grad():
        for layer, node in zip(trunk, convs):
            w = init[node.input[1]]
            if tuple(w.shape) != tuple(layer.conv.weight.shape):
                raise SystemExit(
                    f"{path}: a {tuple(w.shape)} kernel where the network has "
                    f"{tuple(layer.conv.weight.shape)} (another design?)"
                )
            layer.conv.weight.copy_(w)
            bn = layer.bn
            bn.weight.fill_(1.0)
            bn.bias.copy_(init[node.input[2]])
            bn.running_mean.zero_()
            bn.running_var.fill_(1.0 - bn.eps)
        for name in ("angle_score.weight", "angle_score.bias", "phase"):
            dict(net.named_parameters())[name].copy_(init["net." + name])
        gemm = next(
            n
            for n in model.graph.node
            if n.op_type == "Gemm" and n.input[1] == "heads.0.fc.0.weight"
        )
        trans_b = next((a.i for a in gemm.attribute if a.name == "transB"), 0)
        w = init["heads.0.fc.0.weight"]
        net.fc[0].weight.copy_(w if trans_b else w.T)
        net.fc[0].bias.copy_(init["heads.0.fc.0.bias"])
        matmul = next(
            n
            for n in model.graph.node
            if n.op_type == "MatMul"
            and n.input[1] in init
            and tuple(init[n.input[1]].shape) == (net.head.in_features, net.head.out_features)
        )
        net.head.weight.copy_(init[matmul.input[1]].T)
        net.head.bias.copy_(init["heads.0.head.bias"])
    return net


def freeze_batch_norms(net: nn.Module) -> None:
    """Batch norms to eval mode (running statistics fixed; scale and shift still train)."""
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eval()


def continued_history(args, json_path: Path, meta: dict, count_key: str) -> dict:
    """``meta`` of a stage that continues an earlier model (``--init``: the JSON at
    ``json_path``; ``--init-onnx``: the JSON beside that graph): the earlier stages'
    commands, input counts (``count_key``) and times come first, as lists, so the JSON
    records every stage that made the model."""
    src = Path(args.init_onnx).with_suffix(".json") if args.init_onnx else json_path
    if not (args.init or args.init_onnx) or not src.is_file():
        return meta
    prev = json.loads(src.read_text())
    for key in ("training_command", count_key, "training_seconds"):
        old = prev.get(key, [])
        meta[key] = (old if isinstance(old, list) else [old]) + [meta[key]]
    return meta


def export_onnx(module: nn.Module, example: torch.Tensor, path: Path) -> None:
    """Write ``module`` (features -> probabilities, log_a, rotation) as ONNX, batch axis free."""
    torch.onnx.export(
        module.eval(),
        example,
        str(path),
        input_names=["features"],
        output_names=["probabilities", "log_a", "rotation"],
        dynamic_axes={k: {0: "n"} for k in ("features", "probabilities", "log_a", "rotation")},
        opset_version=17,
        dynamo=False,
    )
    # one circular wrap of the input instead of one per trunk layer: the same outputs,
    # about half the inference time (scripts/fold_circular_padding.py)
    import onnx

    here = str(Path(__file__).resolve().parent)
    if here not in sys.path:
        sys.path.insert(0, here)
    from fold_circular_padding import check_same, fold_circular_padding

    original = onnx.load(str(path))
    folded = fold_circular_padding(original)
    check_same(original, folded)
    onnx.save(folded, str(path))


def head_stage(args, argv, net: PolarNet, sample, vfeat, vc, onnx_path: Path, script: str) -> int:
    """``--heads N`` (with ``--init``): keep the trained trunk, train N heads on it, export
    the ensemble to ``onnx_path`` and add the stage to the model JSON beside it."""
    if args.heads < 1 or N_MC % args.heads:
        raise SystemExit(f"--heads must divide {N_MC} (the exported samples), got {args.heads}")
    t0 = time.perf_counter()
    samplers = list(sample) if isinstance(sample, (list, tuple)) else [sample]
    if args.heads % len(samplers):
        raise SystemExit(f"--heads must be a multiple of {len(samplers)} with --mixed-heads")
    heads = []
    for g, draw in enumerate(samplers):  # group g: its own windows, its own initial seeds
        heads += train_head_ensemble(
            net,
            draw,
            args.head_windows,
            args.heads // len(samplers),
            args.head_epochs,
            args.seed + 1000 * g,
        )
    with torch.no_grad():
        pooled, _ = net.pooled(vfeat)
        p = torch.stack([torch.softmax(h(pooled)[:, :N_CLASSES], -1) for h in heads]).mean(0)
    acc = float((p.argmax(1).numpy() == vc).mean())
    print(f"ensemble of {args.heads} heads: validation accuracy {acc:.4f}", flush=True)
    gmask = torch.Generator().manual_seed(args.seed + 1)
    hidden = heads[0].head.in_features
    masks = (torch.rand(args.heads, N_MC // args.heads, hidden, generator=gmask) >= DROPOUT).float()
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    export_onnx(EnsembleExport(net, heads, masks), vfeat[:1], onnx_path)
    torch.save({"net": net.state_dict(), "heads": [h.state_dict() for h in heads]}, args.state)
    json_path = onnx_path.with_suffix(".json")
    meta = json.loads(json_path.read_text()) if json_path.is_file() else {}
    meta.pop("evaluation", None)  # measured for another model
    commands = meta.get("training_command", [])
    commands = [commands] if isinstance(commands, str) else list(commands)
    commands.append(f"OMP_NUM_THREADS=2 python scripts/{script} " + " ".join(argv))
    meta.update(
        training_command=commands,
        mc_samples=N_MC,
        dropout=DROPOUT,
        ensemble_heads=args.heads,
        masks_per_head=N_MC // args.heads,
        head_training_inputs=args.head_windows,
        head_epochs=args.head_epochs,
        head_training_seconds=round(time.perf_counter() - t0, 1),
        validation_accuracy_heads=acc,
        torch_version=torch.__version__,
    )
    json_path.write_text(json.dumps(meta, indent=2) + "\n")
    print("wrote", onnx_path, onnx_path.stat().st_size, "bytes")
    return 0


class ExportNet(nn.Module):
    """Inference graph: the trunk once, the heads under N_MC fixed dropout masks."""

    def __init__(self, net: CrystalNet, masks: torch.Tensor) -> None:
        super().__init__()
        self.trunk, self.head = net.trunk, net.head
        self.register_buffer("masks", masks / (1.0 - DROPOUT))

    def forward(self, x: torch.Tensor):
        h = self.trunk(x)  # (N, H)
        out = self.head(h[:, None, :] * self.masks[None])  # (N, T, 4C)
        c = N_CLASSES
        probs = torch.softmax(out[..., :c], dim=-1)
        return probs, out[..., c : 2 * c] + LOG_A0, out[..., 2 * c :]


def shuffled_in(rng, n: int, share: float, first, second):
    """``n`` windows (x, class, a, rotation): a binomial ``share`` of them from
    ``second.sample``, the rest from ``first.sample``, shuffled together."""
    k = int(rng.binomial(n, share))
    parts = [first.sample(n - k), second.sample(k)]
    perm = rng.permutation(n)
    return tuple(np.concatenate([p[i] for p in parts])[perm] for i in range(4))


class MixedGenerator:
    """Windows of the renderer (its own noise) and, a ``fraction`` of them, of the
    microscope nuisance model, shuffled together."""

    def __init__(
        self,
        seed: int,
        fraction: float,
        overlap: float = 0.0,
        grains: float = 0.0,
        stacked: float = 0.0,
    ) -> None:
        if not 0.0 <= fraction <= 1.0:
            raise SystemExit(f"--nuisance must be in [0, 1], got {fraction}")
        for name, v in (("overlap", overlap), ("grains", grains), ("stacked", stacked)):
            if not 0.0 <= v <= 1.0 or (v and not fraction):
                raise SystemExit(f"--{name} must be in [0, 1] and needs --nuisance, got {v}")
        self.fraction = fraction
        self.clean = WindowGenerator(seed)
        # all-nuisance runs draw from WindowGenerator(seed, nuisance=True) itself
        self.nuisance = WindowGenerator(
            seed + (fraction < 1) * 1_000_003,
            nuisance=True,
            overlap=overlap,
            grains=grains,
            stacked=stacked,
        )
        self.order = self.clean.order
        self.rng = np.random.default_rng(seed + 7)

    def sample(self, n: int):
        if self.fraction in (0.0, 1.0):
            return (self.nuisance if self.fraction else self.clean).sample(n)
        return shuffled_in(self.rng, n, self.fraction, self.clean, self.nuisance)


class MultisliceWindows:
    """Windows of abTEM multislice images (a ``simulate_multislice.py`` cache of single
    crystals) as ``classify_map`` sees them: each a 20 Å square of one image at a random
    rotation, pixel size U(0.1, 0.3) Å, source size (Gaussian sigma U(0.15, 0.35) Å) and
    dose (log-uniform 50-2000 e/pixel, Poisson), as ``evaluate_crystal_multislice.py``
    makes its test images, resampled to the model's pixel size and cropped to one window
    at a random position. Labels: the image's class and lattice constant, the rotation."""

    def __init__(self, folder, seed: int) -> None:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from evaluate_crystal_multislice import load_cache, test_image

        from matchar.imaging._classifier_checks import _resample

        if not Path(folder).is_dir():
            raise SystemExit(f"--multislice {folder}: no such folder")
        self.items = [it for it in load_cache(Path(folder)) if not it.get("boundary")]
        if not self.items:
            raise SystemExit(f"--multislice {folder}: no single-crystal images in it")
        self._test_image, self._resample = test_image, _resample
        self.rng = np.random.default_rng(seed)

    def sample(self, n: int):
        rng = self.rng
        x = np.empty((n, MODEL_WINDOW, MODEL_WINDOW), np.float32)
        cls, a, rot = np.empty(n, np.int64), np.empty(n), np.empty(n)
        for i in range(n):
            it = self.items[rng.integers(len(self.items))]
            rot[i] = rng.uniform(0, 360)
            ps = rng.uniform(0.1, 0.3)
            img = self._test_image(
                it["image"], it["sampling"], rot[i], ps, 20.0, rng.uniform(0.15, 0.35),
                math.exp(rng.uniform(math.log(50), math.log(2000))), rng,
            )  # fmt: skip
            r = self._resample(img, ps)
            y0, x0 = (int(rng.integers(0, m - MODEL_WINDOW + 1)) for m in r.shape)
            x[i] = r[y0 : y0 + MODEL_WINDOW, x0 : x0 + MODEL_WINDOW]
            cls[i], a[i] = it["cls"], it["a"]
        return x, cls, a, rot


class Blend:
    """``gen``'s windows with a ``share`` of ``extra``'s among them, shuffled together."""

    def __init__(self, gen, extra, share: float, seed: int) -> None:
        if not 0.0 < share <= 1.0:
            raise SystemExit(f"--multislice-share must be in (0, 1], got {share}")
        self.gen, self.extra, self.share = gen, extra, share
        self.order = gen.order
        self.rng = np.random.default_rng(seed + 11)

    def sample(self, n: int):
        return shuffled_in(self.rng, n, self.share, self.gen, self.extra)


def targets(gen, cls, a, rot):
    n = gen.order[cls]
    th = np.deg2rad(rot) * n
    return (
        torch.as_tensor(cls, dtype=torch.long),
        torch.as_tensor(np.log(a) - LOG_A0, dtype=torch.float32),
        torch.as_tensor(np.stack([np.cos(th), np.sin(th)], 1), dtype=torch.float32),
    )


def loss_fn(out, cls, loga, rot):
    c = N_CLASSES
    loss, ce = class_lattice_loss(out, cls, loga)
    r = out[:, 2 * c :].reshape(-1, c, 2)[torch.arange(len(cls)), cls]
    return loss + ((r - rot) ** 2).sum(1).mean(), ce


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=22.0, help="training wall time")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--chunk", type=int, default=8192, help="fresh windows per chunk")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--out", default="python/matchar/imaging/models")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--arch",
        choices=["polar", "fft", "real"],
        default="polar",
        help="the network's input: the log-FFT on a polar grid (PolarNet, shipped), the "
        "log-FFT itself or the standardized window (CrystalNet)",
    )
    ap.add_argument(
        "--init", default=None, help="continue from a state dict saved by an earlier run (--state)"
    )
    ap.add_argument(
        "--state",
        default="crystal_classifier_state.pt",
        help="where to save the trained state dict",
    )
    ap.add_argument(
        "--init-onnx",
        default=None,
        help="continue from an exported graph (e.g. the shipped model) instead of a torch "
        "state; its batch norms, folded into the convolutions, stay frozen",
    )
    ap.add_argument(
        "--nuisance",
        type=float,
        nargs="?",
        const=1.0,
        default=0.0,
        help="fraction of the windows passed through the microscope nuisance model "
        "(matchar.imaging._dataset.microscope_nuisance) instead of the renderer's noise "
        "(no value: all)",
    )
    ap.add_argument(
        "--overlap",
        type=float,
        default=0.0,
        help="fraction of the nuisance windows in which a second, thinner crystal overlaps "
        "the first in projection (matchar.imaging._dataset.overlap_crystals)",
    )
    ap.add_argument(
        "--grains",
        type=float,
        default=0.0,
        help="fraction of the nuisance windows holding a second grain of the same crystal at "
        "another rotation (matchar.imaging._dataset.grain_mask: a boundary or twin lamellae)",
    )
    ap.add_argument(
        "--stacked",
        type=float,
        default=0.0,
        help="fraction of the nuisance windows in which a second grain of the same crystal, "
        "at another rotation, lies on top of the first along the beam (an inclined grain or "
        "twin boundary; matchar.imaging._dataset.stack_crystals)",
    )
    ap.add_argument(
        "--multislice",
        default=None,
        help="a simulate_multislice.py cache of single crystals: a share of the training "
        "windows cut from its abTEM images (MultisliceWindows)",
    )
    ap.add_argument("--multislice-share", type=float, default=0.25, help="share of those windows")
    add_head_arguments(ap)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    second = (args.overlap, args.grains, args.stacked)
    gen = MixedGenerator(args.seed, args.nuisance, *second)

    def with_multislice(g):  # the same abTEM windows for every generator of one seed
        if not args.multislice:
            return g
        return Blend(
            g, MultisliceWindows(args.multislice, args.seed + 5), args.multislice_share, args.seed
        )

    gen = with_multislice(gen)
    val_gen = MixedGenerator(10_000 + args.seed, args.nuisance, *second)
    vx, vc, va, _vr = val_gen.sample(2048)
    featurize = {"polar": polar_features, "fft": fft_features, "real": real_features}[args.arch]
    vfeat = torch.from_numpy(featurize(vx, workers=args.threads))
    net = PolarNet(gen.order) if args.arch == "polar" else CrystalNet()
    if args.init:
        net.load_state_dict(load_net_state(args.init))
    if args.init_onnx:
        if args.init or args.arch != "polar":
            raise SystemExit("--init-onnx continues a polar network; give it or --init, not both")
        net = onnx_weights_into(net, args.init_onnx)
    if args.heads:
        if not args.init or args.arch != "polar":
            raise SystemExit("--heads needs --init (a trained polar network)")

        def sampler(g):
            def sample(n):
                x, c, a, _r = g.sample(n)
                return featurize(x, workers=args.threads), c, a

            return sample

        sample = sampler(gen)
        if args.mixed_heads:
            if not any(second):
                raise SystemExit("--mixed-heads needs --overlap, --grains or --stacked")
            # the same seed: the same windows, without the second crystals
            sample = [sampler(with_multislice(MixedGenerator(args.seed, args.nuisance))), sample]
        argv_ = argv if argv is not None else sys.argv[1:]
        onnx_path = Path(args.out) / "crystal_classifier.onnx"
        return head_stage(
            args, argv_, net, sample, vfeat, vc, onnx_path, "train_crystal_classifier.py"
        )
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    budget = args.minutes * 60.0
    t0 = time.perf_counter()
    seen = 0
    chunk_i = 0
    while time.perf_counter() - t0 < budget:
        x, c, a, r = gen.sample(args.chunk)
        feat = torch.from_numpy(featurize(x, workers=args.threads))
        tc, ta, tr = targets(gen, c, a, r)
        net.train()
        if args.init_onnx:
            freeze_batch_norms(net)
        perm = torch.randperm(len(c))
        for s in range(0, len(c) - args.batch + 1, args.batch):
            frac = min(1.0, (time.perf_counter() - t0) / budget)
            for g in opt.param_groups:  # cosine decay over the wall-time budget
                g["lr"] = args.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * frac)))
            b = perm[s : s + args.batch]
            loss, _ = loss_fn(net(feat[b]), tc[b], ta[b], tr[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
            seen += len(b)
        chunk_i += 1
        net.eval()
        with torch.no_grad():
            out = net(vfeat)
        acc = float((out[:, :N_CLASSES].argmax(1).numpy() == vc).mean())
        pa = np.exp(out[:, N_CLASSES : 2 * N_CLASSES].numpy()[np.arange(len(vc)), vc] + LOG_A0)
        mae = float(np.mean(np.abs(pa / va - 1)) * 100)
        print(
            f"chunk {chunk_i} seen {seen} t {time.perf_counter() - t0:.0f}s loss "
            f"{float(loss.detach()):.3f} val acc {acc:.4f} lattice MAE {mae:.2f}%",
            flush=True,
        )

    net.eval()
    gmask = torch.Generator().manual_seed(args.seed + 1)
    masks = (torch.rand(N_MC, net.head.in_features, generator=gmask) >= DROPOUT).float()
    export = (single_head_export if args.arch == "polar" else ExportNet)(net, masks).eval()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = out_dir / "crystal_classifier.onnx"
    torch.save(net.state_dict(), args.state)
    export_onnx(export, vfeat[:1], onnx_path)
    meta = {
        "classes": [{"prototype": p, "zone_axis": list(z)} for p, z in ZONE_AXES],
        "symmetry_order": [int(o) for o in gen.order],
        "pixel_size": MODEL_PIXEL_SIZE,
        "window": MODEL_WINDOW,
        "mc_samples": N_MC,
        "dropout": DROPOUT,
        "lattice_constant_range": list(A_RANGE),
        "features": args.arch,
        "training_command": "OMP_NUM_THREADS=2 python scripts/train_crystal_classifier.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "training_windows": seen,
        "training_seconds": round(time.perf_counter() - t0, 1),
        "torch_version": torch.__version__,
        "validation_accuracy_last_chunk": acc,
    }
    meta = continued_history(args, out_dir / "crystal_classifier.json", meta, "training_windows")
    (out_dir / "crystal_classifier.json").write_text(json.dumps(meta, indent=2) + "\n")
    print("wrote", onnx_path, onnx_path.stat().st_size, "bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
