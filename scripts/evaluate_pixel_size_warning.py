"""How often the classifier's "check pixel_size" warning is right: simulated images at a
wrong pixel size (it must warn) and bicrystals at the right one (it should not).

The whole image's first-order spacing is judged first; where it fits no class, the image's
quarters vouch for the scale when their median first-order spacing lies inside the
classes' range (``matchar.imaging._classifier_checks.tile_spacings``; grain boundaries
add peaks of their own to the whole image's spectrum). This script counts, for both sets,
the images whose whole-image spacing is implausible and those the quarters vouch for::

    OMP_NUM_THREADS=2 python scripts/evaluate_pixel_size_warning.py
"""

from __future__ import annotations

import argparse
import json

import numpy as np

import matchar as mc
from matchar.imaging._classifier_checks import TILE_MIN_BINS, tile_spacings
from matchar.imaging._refine import (
    LATTICE_SIGNIFICANCE,
    first_order_peak,
    plausible_spacings,
    power_spectra,
)
from matchar.imaging._simulate import ZONE_AXES


def judged(img: np.ndarray, ps: float, lo: float, hi: float) -> tuple[bool, bool]:
    """(whole-image spacing implausible, the quarters vouch for the scale)."""
    img = img.astype(np.float32)
    spacing, ratio = first_order_peak(power_spectra(img[None]), img.shape, ps)
    if ratio < LATTICE_SIGNIFICANCE or lo / 1.25 <= spacing <= 1.25 * hi:
        return False, False
    tiles, side = tile_spacings(img, ps)
    vouch = bool(len(tiles)) and TILE_MIN_BINS * spacing <= side
    return True, bool(vouch and lo <= float(np.median(tiles)) <= hi)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-wrong", type=int, default=300, help="images at a wrong pixel size")
    ap.add_argument("--n-bicrystals", type=int, default=60)
    args = ap.parse_args(argv)
    clf = mc.imaging.CrystalClassifier.default()
    lo, hi = plausible_spacings(tuple(zip(clf._protos, clf._zones)), (2.5, 5.4))
    rng = np.random.default_rng(0)
    wrong = {"images": 0, "implausible": 0, "vouched_for": 0}
    for t in range(args.n_wrong):
        p, z = ZONE_AXES[rng.integers(len(ZONE_AXES))]
        a, true_ps = rng.uniform(2.6, 5.3), rng.uniform(0.08, 0.2)
        factor = rng.choice([0.3, 0.4, 2.5, 3.0, 3.5, 4.0])
        size = int(rng.choice([128, 256, 400, 512]))
        img = mc.imaging.simulate_haadf(
            p, z, a, rotation_deg=rng.uniform(0, 360), shape=(size, size),
            pixel_size=true_ps, dose=300, seed=t,
        )  # fmt: skip
        wrong["images"] += 1
        bad, vouch = judged(img, true_ps * factor, lo, hi)
        wrong["implausible"] += int(bad)
        wrong["vouched_for"] += int(vouch)
    rng = np.random.default_rng(1)
    bi = {"images": 0, "implausible": 0, "vouched_for": 0}
    for t in range(args.n_bicrystals):
        size = int(rng.choice([400, 512, 640]))
        if t % 3 == 0:  # Σ5 [100] boundary in bcc Fe
            c1 = c2 = ("bcc", (1, 0, 0))
            a1 = a2 = 2.87
            r0 = rng.uniform(0, 360)
            r1 = r0 + 36.87
        elif t % 3 == 1:  # Σ3 twin boundary in fcc [110]
            c1 = c2 = ("fcc", (1, 1, 0))
            a1 = a2 = 3.6
            r0 = rng.uniform(0, 360)
            r1 = r0 + 70.53
        else:  # two random crystals
            c1, c2 = ZONE_AXES[rng.integers(12)], ZONE_AXES[rng.integers(12)]
            a1, a2 = rng.uniform(3, 5, 2)
            r0, r1 = rng.uniform(0, 360, 2)
        kw = dict(shape=(size, size), pixel_size=0.12, dose=1000, thermal_sigma=0.05)
        g1 = mc.imaging.simulate_haadf(*c1, a1, rotation_deg=r0, seed=t, **kw)
        g2 = mc.imaging.simulate_haadf(*c2, a2, rotation_deg=r1, seed=t + 1000, **kw)
        img = np.where(np.arange(size)[None, :] < size // 2, g1, g2)
        bi["images"] += 1
        bad, vouch = judged(img, 0.12, lo, hi)
        bi["implausible"] += int(bad)
        bi["vouched_for"] += int(vouch)
    res = {
        "wrong_pixel_size": wrong,
        "bicrystals_right_pixel_size": bi,
        "warned_wrong_pixel_size": wrong["implausible"] - wrong["vouched_for"],
        "false_warnings_bicrystals": bi["implausible"] - bi["vouched_for"],
    }
    print(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
