"""Train matchar's crystal classifier (HAADF windows -> prototype + zone axis, lattice
constant, in-plane rotation, MC-dropout uncertainty) and export it to ONNX.

Reproduces the model shipped in python/matchar/imaging/models/:

    OMP_NUM_THREADS=2 python scripts/train_crystal_classifier.py --minutes 22 --seed 0

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

    def features(self, x: torch.Tensor):
        f = self.trunk(x)[:, :, 0, :]  # (N, 64, A)
        pooled = torch.cat([f.mean(-1), f.amax(-1)], 1)
        w = torch.softmax(self.angle_score(f), dim=-1)  # (N, C, A)
        c = (w * self.cos_t).sum(-1)
        s = (w * self.sin_t).sum(-1)
        cp, sp = torch.cos(self.phase), torch.sin(self.phase)
        rot = torch.stack([c * cp - s * sp, c * sp + s * cp], -1)  # (N, C, 2)
        return self.fc(pooled), rot.flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, rot = self.features(x)
        return torch.cat([self.head(self.dropout(h)), rot], 1)


class PolarExport(nn.Module):
    def __init__(self, net: PolarNet, masks: torch.Tensor) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("masks", masks / (1.0 - DROPOUT))

    def forward(self, x: torch.Tensor):
        h, rot = self.net.features(x)
        out = self.net.head(h[:, None, :] * self.masks[None])  # (N, T, 2C)
        c = N_CLASSES
        probs = torch.softmax(out[..., :c], dim=-1)
        return probs, out[..., c:] + LOG_A0, rot


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


def targets(gen: WindowGenerator, cls, a, rot):
    n = gen.order[cls]
    th = np.deg2rad(rot) * n
    return (
        torch.as_tensor(cls, dtype=torch.long),
        torch.as_tensor(np.log(a) - LOG_A0, dtype=torch.float32),
        torch.as_tensor(np.stack([np.cos(th), np.sin(th)], 1), dtype=torch.float32),
    )


def loss_fn(out, cls, loga, rot):
    c = N_CLASSES
    idx = torch.arange(len(cls))
    ce = nn.functional.cross_entropy(out[:, :c], cls)
    la = nn.functional.smooth_l1_loss(out[:, c : 2 * c][idx, cls], loga, beta=0.02)
    r = out[:, 2 * c :].reshape(-1, c, 2)[idx, cls]
    rl = ((r - rot) ** 2).sum(1).mean()
    return ce + 20.0 * la + rl, ce


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=22.0, help="training wall time")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--chunk", type=int, default=8192, help="fresh windows per chunk")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--out", default="python/matchar/imaging/models")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--arch", choices=["polar", "fft"], default="polar")
    ap.add_argument(
        "--init", default=None, help="continue from a state dict saved by an earlier run (--state)"
    )
    ap.add_argument(
        "--state",
        default="crystal_classifier_state.pt",
        help="where to save the trained state dict",
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    gen = WindowGenerator(args.seed)
    val_gen = WindowGenerator(10_000 + args.seed)
    vx, vc, va, _vr = val_gen.sample(2048)
    featurize = polar_features if args.arch == "polar" else fft_features
    vfeat = torch.from_numpy(featurize(vx, workers=args.threads))
    net = PolarNet(gen.order) if args.arch == "polar" else CrystalNet()
    if args.init:
        net.load_state_dict(torch.load(args.init))
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
    export = (PolarExport if args.arch == "polar" else ExportNet)(net, masks).eval()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = out_dir / "crystal_classifier.onnx"
    torch.save(net.state_dict(), args.state)
    torch.onnx.export(
        export,
        vfeat[:1],
        str(onnx_path),
        input_names=["features"],
        output_names=["probabilities", "log_a", "rotation"],
        dynamic_axes={
            "features": {0: "n"},
            "probabilities": {0: "n"},
            "log_a": {0: "n"},
            "rotation": {0: "n"},
        },
        opset_version=17,
        dynamo=False,
    )
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
    (out_dir / "crystal_classifier.json").write_text(json.dumps(meta, indent=2) + "\n")
    print("wrote", onnx_path, onnx_path.stat().st_size, "bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
