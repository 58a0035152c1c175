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

from matchar import _core
from matchar.imaging._features import MODEL_PIXEL_SIZE, MODEL_WINDOW, fft_features
from matchar.imaging._simulate import ZONE_AXES, haadf_params, projected_cell

N_CLASSES = len(ZONE_AXES)
LOG_A0 = math.log(3.7)  # log-lattice-constant offset of the regression head
N_MC = 16  # fixed MC-dropout masks exported in the ONNX graph
DROPOUT = 0.3
A_RANGE = (2.5, 5.4)


class CrystalNet(nn.Module):
    """Compact CNN on the 64 x 64 log-FFT: class, log-a and rotation heads per class."""

    def __init__(self, hidden: int = 128) -> None:
        super().__init__()

        def block(cin: int, cout: int, k: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, k, stride=2, padding=k // 2, bias=False),
                                 nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

        self.trunk = nn.Sequential(block(1, 16, 5), block(16, 32, 3), block(32, 64, 3),
                                   block(64, 64, 3), nn.Flatten(),
                                   nn.Linear(64 * 4 * 4, hidden), nn.ReLU(inplace=True))
        self.dropout = nn.Dropout(DROPOUT)
        # per class: 1 logit, 1 log-a, 2 (cos n theta, sin n theta)
        self.head = nn.Linear(hidden, 4 * N_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.trunk(x)))


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
        return probs, out[..., c:2 * c] + LOG_A0, out[..., 2 * c:]


class Generator:
    """Random HAADF windows on the model pixel scale, rendered by matchar's C++ core."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.cells = [projected_cell(p, z) for p, z in ZONE_AXES]
        self.order = np.array([c.symmetry_order for c in self.cells])
        cols = [c.columns for c in self.cells]
        self.columns = np.concatenate(cols)
        self.offsets = np.concatenate([[0], np.cumsum([len(c) for c in cols])]).astype(np.int64)

    def sample(self, n: int, *, dose=None, distortion=None, classes=None, a=None, rotation=None,
               thermal=None):
        rng = self.rng
        cls = rng.integers(0, N_CLASSES, n) if classes is None else np.asarray(classes)
        a = rng.uniform(*A_RANGE, n) if a is None else np.asarray(a, dtype=float)
        rot = rng.uniform(0, 360, n) if rotation is None else np.asarray(rotation, dtype=float)
        thermal = rng.uniform(0.0, 0.12, n) if thermal is None else np.full(n, thermal)
        if dose is None:
            d = np.exp(rng.uniform(math.log(10), math.log(5000), n))
            d[rng.random(n) < 0.15] = 0.0
        else:
            d = np.full(n, float(dose))
        if distortion is None:
            dist = np.where(rng.random(n) < 0.35, rng.uniform(0, 0.07, n), 0.0)
        else:
            dist = np.full(n, float(distortion))
        params = np.empty((n, _core.imaging.HAADF_N_PARAMS))
        for i in range(n):
            ps = MODEL_PIXEL_SIZE
            sign = rng.choice([-1.0, 1.0], 2)
            params[i] = haadf_params(
                self.cells[cls[i]], a[i], rot[i], ps,
                origin=tuple(rng.uniform(0, 20, 2)), probe=rng.uniform(0.25, 0.45),
                thermal_sigma=thermal[i], background=rng.uniform(0, 0.4), dose=d[i],
                read_noise=rng.uniform(0, 0.08), jitter=dist[i] * a[i],
                drift=(sign[0] * dist[i] * ps, sign[1] * dist[i] * ps))
        seed = int(rng.integers(0, 2**63))
        img = _core.imaging.render_haadf_f32(self.columns, self.offsets, cls.astype(np.int64),
                                             params, MODEL_WINDOW, MODEL_WINDOW, seed)
        return img, cls, a, rot


def targets(gen: Generator, cls, a, rot):
    n = gen.order[cls]
    th = np.deg2rad(rot) * n
    return (torch.as_tensor(cls, dtype=torch.long),
            torch.as_tensor(np.log(a) - LOG_A0, dtype=torch.float32),
            torch.as_tensor(np.stack([np.cos(th), np.sin(th)], 1), dtype=torch.float32))


def loss_fn(out, cls, loga, rot):
    c = N_CLASSES
    idx = torch.arange(len(cls))
    ce = nn.functional.cross_entropy(out[:, :c], cls)
    la = nn.functional.smooth_l1_loss(out[:, c:2 * c][idx, cls], loga, beta=0.02)
    r = out[:, 2 * c:].reshape(-1, c, 2)[idx, cls]
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
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    gen = Generator(args.seed)
    val_gen = Generator(10_000 + args.seed)
    vx, vc, va, _vr = val_gen.sample(2048)
    vfeat = torch.from_numpy(fft_features(vx, workers=args.threads))
    net = CrystalNet()
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    budget = args.minutes * 60.0
    t0 = time.perf_counter()
    seen = 0
    chunk_i = 0
    while time.perf_counter() - t0 < budget:
        x, c, a, r = gen.sample(args.chunk)
        feat = torch.from_numpy(fft_features(x, workers=args.threads))
        tc, ta, tr = targets(gen, c, a, r)
        net.train()
        perm = torch.randperm(len(c))
        for s in range(0, len(c) - args.batch + 1, args.batch):
            frac = min(1.0, (time.perf_counter() - t0) / budget)
            for g in opt.param_groups:  # cosine decay over the wall-time budget
                g["lr"] = args.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * frac)))
            b = perm[s:s + args.batch]
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
        pa = np.exp(out[:, N_CLASSES:2 * N_CLASSES].numpy()[np.arange(len(vc)), vc] + LOG_A0)
        mae = float(np.mean(np.abs(pa / va - 1)) * 100)
        print(f"chunk {chunk_i} seen {seen} t {time.perf_counter() - t0:.0f}s loss "
              f"{float(loss.detach()):.3f} val acc {acc:.4f} lattice MAE {mae:.2f}%", flush=True)

    net.eval()
    gmask = torch.Generator().manual_seed(args.seed + 1)
    masks = (torch.rand(N_MC, net.head.in_features, generator=gmask) >= DROPOUT).float()
    export = ExportNet(net, masks).eval()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = out_dir / "crystal_classifier.onnx"
    torch.save(net.state_dict(), "/tmp/crystal_classifier_state.pt")
    torch.onnx.export(export, torch.zeros(1, 1, MODEL_WINDOW, MODEL_WINDOW), str(onnx_path),
                      input_names=["features"], output_names=["probabilities", "log_a", "rotation"],
                      dynamic_axes={"features": {0: "n"}, "probabilities": {0: "n"},
                                    "log_a": {0: "n"}, "rotation": {0: "n"}},
                      opset_version=17, dynamo=False)
    meta = {
        "classes": [{"prototype": p, "zone_axis": list(z)} for p, z in ZONE_AXES],
        "symmetry_order": [int(o) for o in gen.order],
        "pixel_size": MODEL_PIXEL_SIZE,
        "window": MODEL_WINDOW,
        "mc_samples": N_MC,
        "dropout": DROPOUT,
        "lattice_constant_range": list(A_RANGE),
        "features": "log1p|FFT| of the standardized, Hann-tapered window, standardized",
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
