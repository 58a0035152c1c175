"""The directions check of the crystal classifier on images matchar did not make.

``predict`` and ``classify_map`` warn that an image shows no 2-D lattice when the strong
peaks of its power spectrum all lie on one line through the origin (fringes of one
direction: stripes, a line grating, scan noise). This prints the largest angle between
the directions of two strong peaks (:func:`matchar.imaging._refine.peak_directions_spread`)
of every image of:

* the real high-entropy-alloy image (``--hea``, at its 0.396 Å per pixel);
* AI-STEM's real Fe image and its ten abTEM reference images (``--ai4stem``, the ``data``
  folder of github.com/AndreasLeitherer/ai4stem);
* three 32 Å test images of every abTEM multislice image (``--cache``, from
  ``scripts/simulate_multislice.py``), cut as ``scripts/evaluate_crystal_multislice.py``
  cuts them;
* renderer images of every class at a = 2.6, 3.6 and 5.2 Å, and one stripe image.

The check's threshold (``MIN_DIRECTIONS_SPREAD``, 20°) must lie well under every crystal
and above the stripes::

    python scripts/check_lattice_directions.py --hea ../shared/data/high_entropy_alloy.npy \\
        --ai4stem ai4stem/ai4stem/data --cache multislice
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

import matchar as mc
from matchar.imaging._classifier_checks import MIN_DIRECTIONS_SPREAD
from matchar.imaging._refine import peak_directions_spread, power_spectra
from matchar.imaging._simulate import ZONE_AXES


def spread(image: np.ndarray, pixel_size: float) -> float:
    img = np.asarray(image, np.float32)
    return peak_directions_spread(power_spectra(img[None], workers=1), img.shape, pixel_size)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hea", type=Path, default=None, help="high_entropy_alloy.npy")
    ap.add_argument("--ai4stem", type=Path, default=None, help="AI-STEM's data folder")
    ap.add_argument("--cache", type=Path, default=None, help="abTEM multislice cache")
    args = ap.parse_args(argv)
    rows: list[tuple[str, str, float]] = []
    if args.hea is not None:
        rows.append(("real", "high-entropy alloy", spread(np.load(args.hea), 0.396)))
    if args.ai4stem is not None:
        fe = np.load(args.ai4stem / "experimental_images" / "Fe_bcc_100.npy")
        rows.append(("real", "AI-STEM Fe bcc [100] Σ5", spread(fe, 0.1245)))
        for f in sorted((args.ai4stem / "reference_images").glob("*.npy")):
            rows.append(("abTEM (AI-STEM)", f.stem, spread(np.load(f), 0.12)))
    if args.cache is not None:
        sys.path.insert(0, str(Path(__file__).parent))
        import evaluate_crystal_multislice as ev

        rng = np.random.default_rng(0)
        for item in ev.load_cache(args.cache):
            for j in range(3):
                img = ev.test_image(
                    item["image"], item["sampling"], rng.uniform(0, 360), 0.12, 32.0, 0.3, 50, rng
                )
                rows.append(("abTEM (matchar's set)", f"{item['file']} #{j}", spread(img, 0.12)))
    for proto, zone in ZONE_AXES:
        for a in (2.6, 3.6, 5.2):
            img = mc.imaging.simulate_haadf(
                proto, zone, a, shape=(256, 256), pixel_size=0.12, dose=100, seed=1
            )
            rows.append(("renderer", f"{proto} {list(zone)} a={a}", spread(img, 0.12)))
    rng = np.random.default_rng(0)
    x = np.mgrid[:256, :256][1] * 0.1
    stripes = np.cos(2 * np.pi * x / 2.0) + 0.5 * rng.normal(size=(256, 256))
    rows.append(("stripes", "2.0 Å cosine fringes + noise", spread(stripes, 0.1)))
    print(f"threshold: {MIN_DIRECTIONS_SPREAD:g}°")
    for source in dict.fromkeys(r[0] for r in rows):
        values = [(v, name) for s, name, v in rows if s == source]
        low, name = min(values)
        print(f"{source:24s} {len(values):4d} images, smallest spread {low:5.1f}° ({name})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
