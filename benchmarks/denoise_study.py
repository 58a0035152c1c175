"""Segmentation-guided denoising against BM3D on synthetic HAADF images with ground truth.

For every dataset (bicrystal, twin, stacking fault, two-phase) and dose (electrons per
pixel), the noisy image is denoised by ``matchar.imaging.denoise`` (segmentation
included in its time) and by BM3D (``bm3d.bm3d`` on the Anscombe-transformed counts with
sigma = 1, then the closed-form unbiased inverse Anscombe of Mäkitalo & Foi); both are
compared with the clean image scaled to the same dose: PSNR (peak = max of the clean
image), SSIM (Wang et al. 2004: Gaussian window sigma 1.5 px, K1 = 0.01, K2 = 0.03,
data range = the clean image's range), PSNR within one lattice spacing of the true
boundary, and, for the two-phase image (a step in mean intensity), the 10–90 % width of
the boundary's intensity profile (averaged along the boundary, box-smoothed over one
period) minus the clean image's width. Then one 1024² timing of both.

    PYTHONPATH=python .venv/bin/python benchmarks/denoise_study.py [--size 256]
        [--doses 0.5 1 2 5 50] [--seeds 1] [--timing-size 1024] [--out table.md]
        [--real-image ../shared/data/high_entropy_alloy.npy --figures docs/denoising]

Prints a Markdown table (and writes it to --out). With --real-image (an fcc crystal seen
along <110>, a = 3.6 Å assumed) the pixel size is measured from the refined lattice of
its largest region and the figures for docs/denoising.md are written to --figures.
"""

from __future__ import annotations

import argparse
import math
import platform
import time
from collections.abc import Callable

import numpy as np
from scipy import ndimage
from tqdm import tqdm

import matchar as mc
from matchar import datasets
from matchar.imaging._denoise import _scale_bar


def anscombe(x: np.ndarray) -> np.ndarray:
    return 2.0 * np.sqrt(x + 3.0 / 8.0)


def inverse_anscombe(d: np.ndarray) -> np.ndarray:
    """Closed-form approximation of the exact unbiased inverse (Mäkitalo & Foi 2011)."""
    d = np.maximum(d, 0.8)
    s = math.sqrt(1.5)
    return np.maximum(0.25 * d**2 + 0.25 * s / d - 1.375 / d**2 + 0.625 * s / d**3 - 0.125, 0.0)


def bm3d_poisson(noisy: np.ndarray) -> np.ndarray:
    import bm3d

    return inverse_anscombe(np.asarray(bm3d.bm3d(anscombe(noisy), sigma_psd=1.0)))


def matchar_denoise(noisy: np.ndarray) -> np.ndarray:
    return mc.imaging.denoise(noisy).denoised


def psnr(x: np.ndarray, ref: np.ndarray, mask: np.ndarray | None = None) -> float:
    err = (x - ref) ** 2
    mse = float(err.mean() if mask is None else err[mask].mean())
    return 10 * math.log10(float(ref.max()) ** 2 / mse)


def ssim(x: np.ndarray, ref: np.ndarray) -> float:
    """Mean SSIM (Wang et al. 2004), Gaussian window sigma 1.5, K1 = 0.01, K2 = 0.03."""
    L = float(ref.max() - ref.min())
    c1, c2 = (0.01 * L) ** 2, (0.03 * L) ** 2

    def blur(a: np.ndarray) -> np.ndarray:
        return ndimage.gaussian_filter(a, 1.5, truncate=3.5)

    mx, my = blur(x), blur(ref)
    sxx = blur(x * x) - mx * mx
    syy = blur(ref * ref) - my * my
    sxy = blur(x * ref) - mx * my
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sxx + syy + c2))
    return float(s[5:-5, 5:-5].mean())


def step_width(img: np.ndarray, period: int) -> float:
    """10–90 % width (pixels) of the mean-intensity step across a vertical boundary."""
    prof = ndimage.uniform_filter1d(img.mean(axis=0), period, mode="nearest")
    W = len(prof)
    left = prof[: W // 2 - 2 * period].mean()
    right = prof[W // 2 + 2 * period :].mean()
    t = (prof - right) / (left - right)  # 1 on the left, 0 on the right
    mid = slice(W // 2 - 2 * period, W // 2 + 2 * period)
    x = np.arange(W)[mid]
    seg = t[mid]

    def crossing(level: float) -> float:
        i = int(np.nonzero(seg < level)[0][0])
        if i == 0:
            return float(x[0])
        return float(x[i - 1] + (seg[i - 1] - level) / (seg[i - 1] - seg[i]))

    return crossing(0.1) - crossing(0.9)


GENERATORS: dict[str, Callable] = {
    "bicrystal": lambda **kw: datasets.bicrystal(15.0, **kw),
    "twin": lambda **kw: datasets.twin(**kw),
    "stacking fault": lambda **kw: datasets.stacking_fault(**kw),
    "two-phase": lambda **kw: datasets.two_phase(**kw),
}
SPACING = {"bicrystal": 10, "twin": 16, "stacking fault": 10, "two-phase": 13}


def boundary_zone(labels: np.ndarray, width: float) -> np.ndarray:
    edge = np.zeros(labels.shape, dtype=bool)
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    edge[:-1, :] |= labels[:-1, :] != labels[1:, :]
    return ndimage.distance_transform_edt(~edge) <= width


def measured_pixel_size(result, lattice_constant: float = 3.6) -> tuple[float, np.ndarray]:
    """Å per pixel of an fcc <110> image: its shortest projected column spacing is
    a sqrt(3/8); the lattice vectors (pixels) come from the reflections the denoiser
    refined in the largest region."""
    labels = result.segmentation.labels
    region = int(np.argmax(np.bincount(labels.ravel())))
    g = result.reflections[region][:, 2:]
    # the reflections of the segmentation's (primitive) lattice: the denoiser may have
    # adopted a supercell (extra reflections, e.g. of twins, between them)
    V0 = np.asarray(result.segmentation.lattice_vectors[region])
    hk = g @ V0.T
    on = np.abs(hk - np.round(hk)).max(axis=1) < 0.2
    B = np.linalg.lstsq(np.round(hk[on]), g[on], rcond=None)[0]
    V = np.linalg.inv(B).T  # rows (dy, dx), pixels, refined
    return lattice_constant * math.sqrt(3 / 8) / float(np.linalg.norm(V, axis=1).mean()), V


def real_image_figures(path: str, out_dir: str) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    image = np.load(path, mmap_mode="r")  # read in place
    t0 = time.perf_counter()
    result = mc.imaging.denoise(image)
    elapsed = time.perf_counter() - t0
    pixel_size, V = measured_pixel_size(result)
    result.pixel_size = pixel_size
    lengths = np.linalg.norm(V, axis=1)
    angle = math.degrees(math.acos(abs(V[0] @ V[1]) / lengths.prod()))
    lines = [
        f"real image {path}: {image.shape[0]}x{image.shape[1]} {image.dtype}, denoised in "
        f"{elapsed:.2f} s; {result.segmentation.n_regions} regions; lattice vectors "
        f"{lengths[0]:.3f} and {lengths[1]:.3f} px at {angle:.1f} deg (fcc <110>: equal, "
        f"70.5 deg) -> pixel size {pixel_size:.4f} Å (a = 3.6 Å); gain {result.gain:.3g}, "
        f"noise scale {result.noise_scale:.3g}, local correction on "
        f"{(result.correction > 0.5).mean():.1%} of the pixels"
    ]
    out = __import__("pathlib").Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fig = result.plot(image)
    # noisy images do not compress: JPEG keeps the figures small
    jpeg = {"format": "jpeg", "pil_kwargs": {"quality": 88}}
    fig.savefig(out / "hea_denoise.jpg", dpi=80, **jpeg)
    plt.close(fig)
    H, W = image.shape
    crop = (slice(H // 2 - 128, H // 2 + 128), slice(W // 2 - 128, W // 2 + 128))
    fig = result.plot(image, crop=crop)
    fig.savefig(out / "hea_denoise_detail.jpg", dpi=90, **jpeg)
    plt.close(fig)
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 4.8))
    result.segmentation.plot(np.asarray(image, dtype=np.float64), ax=axes[0])
    axes[0].set_title(f"segmentation: {result.segmentation.n_regions} regions", fontsize=10)
    im = axes[1].imshow(result.correction, cmap="viridis", vmin=0, vmax=1)
    axes[1].set_title("weight of the local correction", fontsize=10)
    axes[1].set_axis_off()
    fig.colorbar(im, ax=axes[1], fraction=0.046, pad=0.03).set_label("weight (0 = lattice only)")
    for ax in axes:
        _scale_bar(ax, image.shape, pixel_size)
    fig.tight_layout()
    fig.savefig(out / "hea_segmentation.png", dpi=60)
    plt.close(fig)
    lines.append(f"figures: {out}/hea_denoise.jpg, hea_denoise_detail.jpg, hea_segmentation.png")
    return lines


def synthetic_figure(out_dir: str, dose: float = 1.0) -> str:
    """Clean, noisy, matchar and BM3D versions of the twin image (256², ``dose`` e/px)
    with a vacancy punched into the clean image's matrix, and matchar's residual."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import patheffects

    clean, _ = datasets.twin(shape=(256, 256), seed=0)
    y, x = np.mgrid[:256, :256]
    # remove the column nearest (40, 128): subtract its Gaussian (sigma 0.18 spacing)
    cy, cx = np.unravel_index(
        np.argmax(np.where((y - 40) ** 2 + (x - 128) ** 2 < 64, clean, 0)), clean.shape
    )
    clean = clean - np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * (0.18 * 16) ** 2))
    clean = np.maximum(clean, 0.1)
    truth = clean * dose / clean.mean()
    noisy = np.random.default_rng(0).poisson(truth).astype(np.float64)
    ours = mc.imaging.denoise(noisy)
    theirs = bm3d_poisson(noisy)
    panels = [
        ("clean", truth),
        (f"noisy ({dose:g} e/px)", noisy),
        (f"matchar ({psnr(ours.denoised, truth):.1f} dB)", ours.denoised),
        (f"BM3D ({psnr(theirs, truth):.1f} dB)", theirs),
        ("matchar residual", ours.residual),
    ]
    fig, axes = plt.subplots(1, 5, figsize=(17, 3.9))
    lo, hi = 0.0, float(np.percentile(truth, 99.5))
    for ax, (title, data) in zip(axes, panels):
        if title.endswith("residual"):
            r = float(np.percentile(np.abs(data), 99.5))
            im = ax.imshow(data, cmap="RdBu_r", vmin=-r, vmax=r, interpolation="nearest")
        else:
            im = ax.imshow(data, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
        ax.set_title(title, fontsize=10)
        ax.set_axis_off()
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03).set_label("counts (e⁻)")
        outline = [patheffects.withStroke(linewidth=6, foreground="black")]
        ax.plot([12, 12 + 64], [240, 240], color="white", lw=4, path_effects=outline)
        thin = [patheffects.withStroke(linewidth=2.5, foreground="black")]
        ax.text(44, 232, "64 px", color="white", ha="center", fontsize=8, path_effects=thin)
    fig.tight_layout()
    path = __import__("pathlib").Path(out_dir) / "twin_vacancy.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=72)
    plt.close(fig)
    # the share of the vacancy's contrast (against the lattice estimate) kept, by dose
    site = (y - cy) ** 2 + (x - cx) ** 2 <= 4
    kept = []
    for d in (1.0, 2.0, 5.0):
        t = clean * d / clean.mean()
        r = mc.imaging.denoise(np.random.default_rng(0).poisson(t).astype(np.float64))
        lat = r.lattice[site].mean()
        kept.append(f"{d:g}: {(lat - r.denoised[site].mean()) / (lat - t[site].mean()):.0%}")
    return (
        f"synthetic figure: {path} (vacancy at ({cy}, {cx})); share of the vacancy's "
        f"contrast kept, by dose: {', '.join(kept)}"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--doses", type=float, nargs="+", default=[0.5, 1.0, 2.0, 5.0, 50.0])
    p.add_argument("--seeds", type=int, default=1, help="noise realisations per cell")
    p.add_argument("--datasets", nargs="*", default=list(GENERATORS), help="none: skip the table")
    p.add_argument("--timing-size", type=int, default=1024, help="0 skips the timing")
    p.add_argument("--no-bm3d", action="store_true", help="matchar only (tuning)")
    p.add_argument("--out", default=None)
    p.add_argument("--real-image", default=None, help="fcc <110> HAADF image (.npy)")
    p.add_argument("--figures", default="docs/denoising", help="folder for its figures")
    args = p.parse_args(argv)

    lines = [
        "| image | dose (e/px) | PSNR matchar | PSNR BM3D | SSIM matchar | SSIM BM3D "
        "| boundary PSNR matchar | boundary PSNR BM3D | time matchar (s) | time BM3D (s) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    broadening = []
    jobs = [(name, dose, seed) for name in args.datasets for dose in args.doses
            for seed in range(args.seeds)]  # fmt: skip
    results: dict[tuple[str, float], list] = {}
    for name, dose, seed in tqdm(jobs, desc="denoise study"):
        shape = (args.size, args.size)
        clean, labels = GENERATORS[name](shape=shape, seed=seed)
        noisy, _ = GENERATORS[name](shape=shape, dose=dose, seed=seed)
        truth = clean * dose / clean.mean()
        zone = boundary_zone(labels, SPACING[name])
        row = []
        for method in (matchar_denoise, None if args.no_bm3d else bm3d_poisson):
            if method is None:
                row += [math.nan] * 4
                continue
            t0 = time.perf_counter()
            out = method(noisy)
            elapsed = time.perf_counter() - t0
            row += [psnr(out, truth), ssim(out, truth), psnr(out, truth, zone), elapsed]
            if name == "two-phase":
                period = SPACING[name]
                who = "matchar" if method is matchar_denoise else "BM3D"
                broadening.append((who, dose, step_width(out, period) - step_width(truth, period)))
        results.setdefault((name, dose), []).append(row)
    for (name, dose), rows in results.items():
        r = np.nanmean(np.array(rows), axis=0) if not args.no_bm3d else np.array(rows).mean(0)
        lines.append(
            f"| {name} | {dose:g} | {r[0]:.2f} | {r[4]:.2f} | {r[1]:.3f} | {r[5]:.3f} "
            f"| {r[2]:.2f} | {r[6]:.2f} | {r[3]:.2f} | {r[7]:.2f} |"
        )
    lines.append("")
    for who in ("matchar", "BM3D"):
        items = [(d, b) for w, d, b in broadening if w == who]
        if items:
            lines.append(
                f"two-phase boundary, 10–90 % step width of the {who} result minus the "
                "clean image's (px), by dose: " + ", ".join(f"{d:g}: {b:+.2f}" for d, b in items)
            )
    if args.timing_size:
        n = args.timing_size
        noisy, _ = datasets.bicrystal(15.0, shape=(n, n), dose=2.0, seed=0)
        t0 = time.perf_counter()
        res = mc.imaging.denoise(noisy)
        t_mc = time.perf_counter() - t0
        seg = res.segmentation
        t0 = time.perf_counter()
        mc.imaging.denoise(noisy, seg)
        t_filter = time.perf_counter() - t0
        t_bm = math.nan
        if not args.no_bm3d:
            t0 = time.perf_counter()
            bm3d_poisson(noisy)
            t_bm = time.perf_counter() - t0
        lines.append("")
        lines.append(
            f"{n}² bicrystal at 2 e/px: matchar {t_mc:.2f} s (of which the filter, given the "
            f"segmentation, {t_filter:.2f} s), BM3D {t_bm:.2f} s: {t_bm / t_mc:.1f}× faster"
        )
    if args.real_image:
        lines.append("")
        lines += real_image_figures(args.real_image, args.figures)
        if not args.no_bm3d:
            lines.append(synthetic_figure(args.figures))
    lines.append("")
    lines.append(f"threads: {mc.get_num_threads()}, python {platform.python_version()}")
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
