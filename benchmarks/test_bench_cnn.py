"""Crystal classifier throughput: classify_map (onnxruntime, preprocessing included)
against the same network in PyTorch eager on the same windows, same group.

Run: OMP_NUM_THREADS=2 python -m pytest benchmarks/test_bench_cnn.py --benchmark-only \
        --benchmark-group-by=group --benchmark-columns=min,median,max

Windows per second = N_WINDOWS / time. The PyTorch side (skipped without torch) rebuilds
the shipped inference graph (trunk once + 4 ensemble heads under 4 dropout masks each,
``EnsembleExport``) from scripts/train_crystal_classifier.py with random weights: the
speed does not depend on the weight values. Both sides get the same preprocessing
(resampling + polar log-FFT).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import matchar as mc
from matchar.imaging._classifier import _resample
from matchar.imaging._features import polar_features

PS = 0.25
SHAPE = (512, 512)
STRIDE = 8  # 57 x 57 = 3249 windows of 64 x 64
N_WINDOWS = ((SHAPE[0] - 64) // STRIDE + 1) * ((SHAPE[1] - 64) // STRIDE + 1)


@pytest.fixture(scope="module")
def image():
    return mc.imaging.simulate_haadf(
        "fcc",
        (1, 1, 0),
        4.05,
        rotation_deg=20.0,
        shape=SHAPE,
        pixel_size=PS,
        dose=1000,
        seed=0,
        dtype=np.float32,
    )


def _torch_model():
    torch = pytest.importorskip("torch")
    path = Path(__file__).resolve().parents[1] / "scripts" / "train_crystal_classifier.py"
    spec = importlib.util.spec_from_file_location("train_crystal_classifier", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    torch.manual_seed(0)
    gen = mod.WindowGenerator(0)
    net = mod.PolarNet(gen.order).eval()
    heads = [mod.Head().eval() for _ in range(4)]
    masks = (torch.rand(4, mod.N_MC // 4, 128) >= mod.DROPOUT).float()
    return torch, mod.EnsembleExport(net, heads, masks).eval()


def test_classify_map_onnxruntime(benchmark, image):
    benchmark.group = f"crystal classifier, {N_WINDOWS} windows 64x64"
    clf = mc.imaging.CrystalClassifier.default()
    m = benchmark.pedantic(
        mc.imaging.classify_map,
        args=(image, PS),
        kwargs=dict(stride=STRIDE, classifier=clf),
        rounds=3,
        iterations=1,
        warmup_rounds=1,
    )
    assert m.uncertainty.size == N_WINDOWS
    benchmark.extra_info["windows_per_second"] = N_WINDOWS / benchmark.stats.stats.median


def test_pytorch_eager(benchmark, image):
    torch, model = _torch_model()
    torch.set_num_threads(mc.get_num_threads())

    def run():
        r = _resample(image, PS)
        view = np.lib.stride_tricks.sliding_window_view(r, (64, 64))[::STRIDE, ::STRIDE]
        win = np.ascontiguousarray(view.reshape(-1, 64, 64))
        outs = []
        with torch.no_grad():
            for s in range(0, len(win), 2048):
                feat = torch.from_numpy(polar_features(win[s : s + 2048], workers=2))
                outs.append(model(feat)[0].mean(1).numpy())
        return np.concatenate(outs)

    benchmark.group = f"crystal classifier, {N_WINDOWS} windows 64x64"
    p = benchmark.pedantic(run, rounds=3, iterations=1, warmup_rounds=1)
    assert p.shape == (N_WINDOWS, 12)
    benchmark.extra_info["windows_per_second"] = N_WINDOWS / benchmark.stats.stats.median
