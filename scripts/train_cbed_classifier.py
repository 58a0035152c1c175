"""Train matchar's CBED crystal classifier (kinematic CBED pattern -> prototype + zone
axis, lattice constant, in-plane rotation, MC-dropout uncertainty) and export it to ONNX.

Reproduces the model shipped in python/matchar/imaging/models/crystal_classifier_cbed.*
(six stages: three of the whole network, a head ensemble, a fine-tuning stage continued
from that exported graph with ``--init-onnx``, a fresh head ensemble; exact commands in
docs/imaging_cnn.md and the model JSON):

    OMP_NUM_THREADS=2 python scripts/train_cbed_classifier.py --minutes 22 --seed 0 --epochs 3
    ...

Needs the ``train`` extra (torch, onnx). Patterns are rendered on the fly by matchar's C++
CBED kernel (continuous random parameters, see ``matchar.imaging._dataset.CbedGenerator``);
each chunk is used for ``--epochs`` passes and then replaced by fresh patterns.
The network and losses are those of ``train_crystal_classifier.py`` (same heads, same
MC-dropout export) on the polar CBED features (48 radii x 60 angles).
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_crystal_classifier import (
    DROPOUT,
    LOG_A0,
    N_CLASSES,
    N_MC,
    CircConv,
    PolarNet,
    add_head_arguments,
    continued_history,
    export_onnx,
    freeze_batch_norms,
    head_stage,
    load_net_state,
    loss_fn,
    onnx_weights_into,
    single_head_export,
)

from matchar.imaging._dataset import A_RANGE, CBED_PIXEL_RANGE, CBED_SHAPE, CbedGenerator
from matchar.imaging._features import CBED_ANGLES, CBED_RADII, cbed_features
from matchar.imaging._simulate import ZONE_AXES


class CbedNet(PolarNet):
    """``PolarNet`` on the polar CBED pattern (48 radii x 60 angles, angle circular).

    Same heads (class and lattice constant from angle-pooled features, rotation from
    per-class angular score profiles) on a narrower trunk whose last kernel spans the
    12 remaining radii. The polar angle t runs from +x towards +y (rows), so a pattern
    turned by phi moves to t + phi.
    """

    def __init__(self, order, hidden: int = 128) -> None:
        n_r = len(CBED_RADII)
        trunk = nn.Sequential(
            CircConv(1, 8, (3, 5)),
            CircConv(8, 16, (3, 3), stride=(2, 1)),
            CircConv(16, 32, (3, 3), stride=(2, 1)),
            CircConv(32, 64, ((n_r + 3) // 4, 3), pad_r=False),
        )
        super().__init__(order, hidden, trunk=trunk, angles=CBED_ANGLES)


def net_from_onnx(path, order) -> CbedNet:
    """A ``CbedNet`` holding the weights of an exported graph (``--init-onnx``; see
    ``train_crystal_classifier.onnx_weights_into``)."""
    return onnx_weights_into(CbedNet(order), path)


def targets(order, cls, a, rot):
    th = np.deg2rad(rot) * order[cls]
    return (
        torch.as_tensor(cls, dtype=torch.long),
        torch.as_tensor(np.log(a) - LOG_A0, dtype=torch.float32),
        torch.as_tensor(np.stack([np.cos(th), np.sin(th)], 1), dtype=torch.float32),
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=22.0, help="training wall time")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--chunk", type=int, default=4096, help="fresh patterns per chunk")
    ap.add_argument("--epochs", type=int, default=3, help="passes over each chunk")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--out", default="python/matchar/imaging/models")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--init", default=None, help="continue from a saved state dict (--state)")
    ap.add_argument(
        "--init-onnx",
        default=None,
        help="continue from an exported graph (e.g. the shipped model) instead of a torch "
        "state; its batch norms, folded into the convolutions, stay frozen",
    )
    ap.add_argument("--state", default="crystal_classifier_cbed_state.pt")
    add_head_arguments(ap)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    gen = CbedGenerator(args.seed)
    val_gen = CbedGenerator(10_000 + args.seed)
    vx, vps, vc, va, _vr = val_gen.sample(1024)
    vfeat = torch.from_numpy(cbed_features(vx, vps))
    net = CbedNet(gen.order)
    if args.init:
        net.load_state_dict(load_net_state(args.init))
    if args.init_onnx:
        if args.init:
            raise SystemExit("give --init or --init-onnx, not both")
        net = net_from_onnx(args.init_onnx, gen.order)
    if args.heads:
        if not args.init:
            raise SystemExit("--heads needs --init (a trained network)")

        def sample(n):
            x, ps, c, a, _r = gen.sample(n)
            return cbed_features(x, ps), c, a

        argv_ = argv if argv is not None else sys.argv[1:]
        onnx_path = Path(args.out) / "crystal_classifier_cbed.onnx"
        return head_stage(
            args, argv_, net, sample, vfeat, vc, onnx_path, "train_cbed_classifier.py"
        )
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    budget = args.minutes * 60.0
    t0 = time.perf_counter()
    seen = 0
    chunk_i = 0
    acc = 0.0
    while time.perf_counter() - t0 < budget:
        x, ps, c, a, r = gen.sample(args.chunk)
        feat = torch.from_numpy(cbed_features(x, ps))
        tc, ta, tr = targets(gen.order, c, a, r)
        net.train()
        if args.init_onnx:
            freeze_batch_norms(net)
        for _ in range(args.epochs):
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
        pred = out[:, :N_CLASSES].argmax(1).numpy()
        acc = float((pred == vc).mean())
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
    export = single_head_export(net, masks).eval()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = out_dir / "crystal_classifier_cbed.onnx"
    torch.save(net.state_dict(), args.state)
    export_onnx(export, vfeat[:1], onnx_path)
    meta = {
        "modality": "cbed",
        "classes": [{"prototype": p, "zone_axis": list(z)} for p, z in ZONE_AXES],
        "symmetry_order": [int(o) for o in gen.order],
        "features": "cbed_polar",
        "pixel_size_unit": "1/Angstrom per pixel",
        "training_pixel_size_range": list(CBED_PIXEL_RANGE),
        "training_shape": list(CBED_SHAPE),
        "mc_samples": N_MC,
        "dropout": DROPOUT,
        "lattice_constant_range": list(A_RANGE),
        "training_command": "OMP_NUM_THREADS=2 python scripts/train_cbed_classifier.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "training_patterns": seen,
        "training_seconds": round(time.perf_counter() - t0, 1),
        "torch_version": torch.__version__,
        "validation_accuracy_last_chunk": acc,
    }
    meta = continued_history(
        args, out_dir / "crystal_classifier_cbed.json", meta, "training_patterns"
    )
    (out_dir / "crystal_classifier_cbed.json").write_text(json.dumps(meta, indent=2) + "\n")
    print("wrote", onnx_path, onnx_path.stat().st_size, "bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
