"""The ``matchar decompose`` command: a spectrum image (any format rosettasciio reads,
or .npy) decomposed by NMF or PhysicsNMF, with the signal, crop, binning, energy range
and element choices of the command line; writes maps, components and a figure.
``matchar.cli`` parses the arguments and calls :func:`run_decompose`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np


def run_decompose(args: argparse.Namespace, out_dir: Callable[[], Path]) -> int:
    """``matchar decompose``: read, select, fit, write the maps, components and figure;
    ``out_dir()`` makes and returns the output folder (called once the input is read)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import matchar as mc
    from matchar.spectral._plots import pixel_size_nm, plot_decomposition

    zero_peak_keV = 0.15  # the EDX detector's zero (noise) peak lies below
    to_keV = {"keV": 1.0, "eV": 1e-3}

    def span(text: str, option: str) -> tuple[float | None, float | None]:
        lo, sep, hi = text.partition(":")
        try:
            if not sep:
                raise ValueError
            return (float(lo) if lo.strip() else None, float(hi) if hi.strip() else None)
        except ValueError:
            raise ValueError(
                f"{option}: expected LO:HI (numbers, either may be empty), got {text!r}"
            ) from None

    def pixels(text: str, n: int, what: str) -> slice:
        lo, hi = span(text, "--crop")
        for v in (lo, hi):
            if v is not None and v != int(v):
                raise ValueError(f"--crop: {what} bounds must be integers, got {text!r}")
        sl = slice(None if lo is None else int(lo), None if hi is None else int(hi))
        start, stop, _ = sl.indices(n)
        if stop <= start:
            raise ValueError(f"--crop: {what} range {text!r} selects no pixel of {n}")
        return slice(start, stop)

    if args.elements is not None and not args.physics:
        raise ValueError("--elements needs --physics")
    signal = args.signal
    if signal is not None and signal.strip().lstrip("-").isdigit():
        signal = int(signal)
    energy, meta = None, {}
    if Path(args.file).suffix.lower() == ".npy":
        if signal is not None:
            raise ValueError("--signal needs a microscope file with several signals, not .npy")
        cube = mc.io._load_npy(Path(args.file))
    else:
        cube, energy, meta = mc.io.load_spectrum_image(args.file, signal=signal)
    cube = np.asarray(cube)
    if cube.ndim not in (2, 3):
        raise ValueError(f"{args.file!r}: expected a (H, W, C) or (N, C) cube, got {cube.shape}")
    unit = meta.get("energy_unit")
    nav = [dict(a) for a in meta.get("navigation_axes") or []]
    if len(nav) != cube.ndim - 1:
        nav = [
            {"name": f"nav{i}", "scale": 1.0, "offset": 0.0, "units": None}
            for i in range(cube.ndim - 1)
        ]

    if args.crop:
        parts = args.crop.split(",")
        if len(parts) != cube.ndim - 1:
            want = "y0:y1,x0:x1" if cube.ndim == 3 else "n0:n1"
            raise ValueError(
                f"--crop: expected {want} for a {cube.shape[:-1]} map, got {args.crop!r}"
            )
        slices = [pixels(t, n, w) for t, n, w in zip(parts, cube.shape[:-1], ("y", "x"))]
        cube = cube[tuple(slices)]
        for a, sl in zip(nav, slices):
            a["offset"] = (a.get("offset") or 0.0) + sl.start * (a.get("scale") or 1.0)
            a["size"] = sl.stop - sl.start
    if args.bin < 1:
        raise ValueError(f"--bin must be an integer >= 1, got {args.bin}")
    if args.bin > 1:
        b = args.bin
        shape = [n // b for n in cube.shape[:-1]]
        if min(shape) == 0:
            raise ValueError(f"--bin {b} is larger than the {cube.shape[:-1]} map")
        acc = (
            np.float64
            if cube.dtype.kind == "f"
            else np.uint32
            if cube.dtype.kind in "bu" and cube.dtype.itemsize < 4
            else np.int64
        )
        trimmed = cube[tuple(slice(0, n * b) for n in shape)]
        split = [d for n in shape for d in (n, b)]
        cube = trimmed.reshape(*split, cube.shape[-1]).sum(
            axis=tuple(range(1, 2 * len(shape), 2)), dtype=acc
        )
        for a, n in zip(nav, shape):
            a["scale"] = (a.get("scale") or 1.0) * b
            a["size"] = n

    if cube.size == 0:
        raise ValueError(f"{args.file!r}: the spectrum image is empty, shape {cube.shape}")
    if cube.dtype.kind == "f":  # by blocks of spectra: no mask the size of the cube
        flat = cube.reshape(-1, cube.shape[-1])
        for start in range(0, len(flat), 4096):
            if not np.isfinite(flat[start : start + 4096]).all():
                raise ValueError(f"{args.file!r}: the spectrum image holds NaN or infinite values")
    if not cube.max() > 0:
        raise ValueError(f"{args.file!r}: the spectrum image holds no counts (no positive value)")
    pixels_left = int(np.prod(cube.shape[:-1]))
    if not 1 <= args.components <= min(pixels_left, cube.shape[-1]):
        raise ValueError(
            f"-k must be between 1 and {min(pixels_left, cube.shape[-1])} (the smaller of the "
            f"{pixels_left} pixels and {cube.shape[-1]} channels), got {args.components}"
        )
    C = cube.shape[-1]
    keep = np.ones(C, dtype=bool)
    axis = energy if energy is not None else np.arange(C, dtype=np.float64)
    if args.energy_range:
        lo, hi = span(args.energy_range, "--energy-range")
        keep &= (axis >= (-np.inf if lo is None else lo)) & (axis <= (np.inf if hi is None else hi))
    is_edx = energy is not None and (
        meta.get("technique") == "EDS" or (meta.get("technique") is None and unit == "keV")
    )
    cut = None
    if is_edx and not args.keep_zero_peak and unit in to_keV:
        cut = zero_peak_keV / to_keV[unit]
        keep &= axis >= cut
    if not keep.any():
        raise ValueError(
            f"no channel left: --energy-range {args.energy_range} of "
            f"[{axis[0]:g}, {axis[-1]:g}] {unit or 'channels'}"
            + (f" above the zero peak ({zero_peak_keV} keV)" if cut is not None else "")
        )
    i0, i1 = int(np.argmax(keep)), int(C - np.argmax(keep[::-1]))
    cube = cube[..., i0:i1]
    channels = None
    if energy is not None:
        energy = energy[i0:i1]
        channels = (
            f"channels {i0}..{i1 - 1} of {C} ({energy[0]:g} to {energy[-1]:g} {unit or ''})"
            + (f"; zero peak below {zero_peak_keV} keV left out" if cut is not None else "")
        )

    out = out_dir()
    extra: dict[str, np.ndarray] = {}
    if args.physics:
        if energy is None or unit not in to_keV or meta.get("technique") == "EELS":
            raise ValueError(
                "--physics needs an EDX spectrum image with an energy axis in eV or keV"
            )
        axis_keV = (
            float(energy[0]) * to_keV[unit],
            float(meta["energy_scale"]) * to_keV[unit],
            int(energy.size),
        )
        names = (
            None
            if args.elements in (None, "auto")
            else [e.strip() for e in args.elements.split(",") if e.strip()]
        )
        model = mc.spectral.EDXModel(
            names, axis_keV, metadata=meta, data=cube if names is None else None
        )
        print(channels)  # after the elements were checked: bad input is one line
        print(
            f"EDX model: {', '.join(model.elements)}; {model.beam_energy_keV:g} keV beam, "
            f"take-off {model.takeoff_deg:g} deg, resolution {model.resolution_eV:g} eV"
            + (f" (from the file: {', '.join(model.from_metadata)})" if model.from_metadata else "")
        )
        est = mc.spectral.PhysicsNMF(model, args.components, max_iter=args.max_iter, random_state=0)
        maps = est.fit_transform(cube)
        rep = est.detector_
        if rep is not None:
            print(
                f"detector refined on the data: {rep['resolution_mnka_eV']:.0f} eV at Mn K-alpha, "
                f"offset {1000 * rep['offset_keV']:+.1f} eV, gain {rep['gain']:.4f}, "
                f"window x{rep['window_scale']:.2g}, dead layer {rep['dead_layer_um']:.2g} um"
            )
        else:
            print("detector: as above (not refined: too few counts, or refine=False)")
        print(f"initialisation: {est.init_used_} (lowest objective of the candidates)")
        titles = []
        for k, frac in enumerate(est.composition_):
            top = np.argsort(frac)[::-1][:3]
            titles.append(
                f"phase {k}: "
                + " ".join(f"{model.elements[j]} {frac[j]:.0%}" for j in top if frac[j] > 0.005)
            )
        extra = {
            "elements": np.array(model.elements),
            "composition": est.composition_,
            "element_maps": est.element_maps_,
            "W": est.W_,
        }
        loss_label = "objective"
        fitted = est
    else:
        if channels is not None:
            print(channels)
        fitted = mc.spectral.NMF(
            args.components,
            loss=args.loss,
            max_iter=args.max_iter,
            random_state=0,
            progress=sys.stderr.isatty(),
        )
        maps = fitted.fit_transform(cube)
        titles = None
        loss_label = "KL divergence" if args.loss == "kl" else "squared error / 2"
    # components scaled to unit sum: maps in counts per pixel per component
    comp = np.asarray(fitted.components_, dtype=np.float64)
    sums = comp.sum(axis=1)
    sums = np.where(sums > 0, sums, 1.0)
    comp = comp / sums[:, None]
    maps = np.asarray(maps, dtype=np.float64) * sums
    np.savez(
        out / "decomposition.npz",
        maps=maps,
        components=comp,
        residual_map=fitted.residual_map_,
        loss_history=np.asarray(fitted.loss_history_),
        energy=np.arange(i0, i1) if energy is None else energy,
        energy_unit=np.array(unit or "channel"),
        **extra,
    )
    fig = plot_decomposition(
        comp,
        maps,
        None if energy is None else energy,
        energy_unit=unit,
        titles=titles,
        map_label="counts per pixel",
        pixel_nm=pixel_size_nm(nav) if cube.ndim == 3 else None,
        residual_map=fitted.residual_map_,
        loss_history=np.asarray(fitted.loss_history_),
        loss_iterations=getattr(fitted, "loss_iterations_", None),
        loss_label=loss_label,
    )
    fig.savefig(out / "decomposition.png", dpi=100)
    plt.close(fig)
    sub_meta = dict(meta, navigation_axes=nav, energy_units=unit)
    if energy is not None:
        sub_meta["energy_offset"] = float(energy[0])
    written = _save_decomposition_hspy(out, maps, comp, sub_meta)
    if written:
        print("HyperSpy signals: " + ", ".join(str(p) for p in written))
    if args.physics:
        for t in titles:
            print(t)
    print(
        f"{args.components} components after {fitted.n_iter_} iterations -> "
        f"{out / 'decomposition.npz'}"
    )
    return 0


def _save_decomposition_hspy(out: Path, maps: np.ndarray, components: np.ndarray, meta: dict):
    """maps.hspy and components.hspy when rosettasciio and h5py are installed, else []."""
    import importlib.util

    import matchar as mc

    if importlib.util.find_spec("rsciio") is None or importlib.util.find_spec("h5py") is None:
        return []
    nav = meta.get("navigation_axes") or []
    nav_axes = (
        [dict(a) for a in nav]
        if len(nav) == maps.ndim - 1
        else [{"name": f"nav{i}"} for i in range(maps.ndim - 1)]
    )
    energy = {
        "name": "Energy",
        "scale": meta.get("energy_scale", 1.0),
        "offset": meta.get("energy_offset", 0.0),
        "units": meta.get("energy_units") or "",
    }
    k = components.shape[0]
    return [
        mc.io.save_hspy(
            out / "maps.hspy",
            np.moveaxis(maps, -1, 0),
            n_signal_axes=maps.ndim - 1,
            axes=[{"name": "component", "size": k}, *nav_axes],
            title="NMF abundance maps",
        ),
        mc.io.save_hspy(
            out / "components.hspy",
            components,
            axes=[{"name": "component"}, energy],
            title="NMF components",
            signal_type=meta.get("signal_type") or "",
        ),
    ]
