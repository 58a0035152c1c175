"""``matchar denoise``: segmentation-guided denoising of a STEM image from the command line.

``add_parser(sub, common)`` adds the sub-command to the ``matchar`` parser; ``run(args)``
does the work and raises on bad input (the CLI turns errors into one line, exit 2).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def add_parser(sub: Any, common: Callable[[argparse.ArgumentParser, str], None]):
    """Add ``denoise`` to the sub-parsers ``sub``; ``common(parser, default_out)`` adds
    the options every command shares (``--out``, ``--threads``).

    Returns
    -------
    argparse.ArgumentParser
        The ``denoise`` parser (its ``func`` default is :func:`run`).
    """
    p = sub.add_parser(
        "denoise",
        help="segmentation-guided denoising of a STEM image (.npy, .png, .tif, .dm3/.dm4, "
        ".emd, .hspy): denoised .npy and before/after/residual figures",
    )
    p.add_argument("image")
    p.add_argument(
        "--pixel-size",
        type=float,
        default=None,
        help="Å per pixel, for the scale bars (default: from the file's metadata)",
    )
    p.add_argument("--regions", type=int, default=None, help="number of regions (auto)")
    p.add_argument(
        "--cells",
        type=float,
        default=3.0,
        help="width of the lattice averaging in lattice spacings (default: %(default)s)",
    )
    p.add_argument(
        "--gain",
        type=float,
        default=None,
        help="detector units per electron (default: estimated; 1 for counts)",
    )
    p.add_argument(
        "--no-correction",
        action="store_true",
        help="lattice-only (Bragg) estimate: erases point defects",
    )
    common(p, "matchar-denoise")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Denoise ``args.image``; write ``denoised.npy``, ``residual.npy``, ``labels.npy``
    and ``denoise.png`` (noisy, denoised, residual; plus ``denoise_detail.png``, a
    256-pixel crop at the centre, for larger images) to ``args.out``. Returns 0."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .._threads import set_num_threads
    from ..io import load_image
    from ._denoise import denoise

    if getattr(args, "threads", None) is not None:
        set_num_threads(args.threads)
    image, file_pixel_size, _ = load_image(args.image)
    pixel_size = args.pixel_size if args.pixel_size is not None else file_pixel_size
    kwargs = {} if args.regions is None else {"n_regions": args.regions}
    result = denoise(
        image,
        pixel_size=pixel_size,
        cells=args.cells,
        gain=args.gain,
        correction=not args.no_correction,
        progress=sys.stderr.isatty(),
        **kwargs,
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "denoised.npy", result.denoised)
    np.save(out / "residual.npy", result.residual)
    np.save(out / "labels.npy", result.segmentation.labels)
    fig = result.plot(image)
    fig.savefig(out / "denoise.png", dpi=110)
    plt.close(fig)
    H, W = result.denoised.shape
    if min(H, W) > 384:
        y0, x0 = (H - 256) // 2, (W - 256) // 2
        fig = result.plot(image, crop=(slice(y0, y0 + 256), slice(x0, x0 + 256)))
        fig.savefig(out / "denoise_detail.png", dpi=110)
        plt.close(fig)
    n_refl = ", ".join(str(len(r)) for r in result.reflections)
    print(
        f"{result.segmentation.n_regions} region(s), reflections per region: {n_refl}; "
        f"gain {result.gain:.3g}; residual std {result.residual.std():.4g} -> {out}"
    )
    return 0
