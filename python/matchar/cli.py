"""The ``matchar`` command line.

Every failure is one line on stderr, ``matchar <command>: error: <what went wrong>``, and
exit status 2 (130 after Ctrl-C); Python warnings are one line each,
``matchar <command>: warning: <message>``. ``matchar --debug <command> ...`` (or the
environment variable ``MATCHAR_DEBUG=1``) shows the Python traceback instead, for bug
reports.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np


def _demo(args: argparse.Namespace) -> int:
    import matchar as mc

    from ._demo import run_demo

    if args.threads is not None:
        mc.set_num_threads(args.threads)
    print(f"matchar {mc.__version__} demo, {mc.get_num_threads()} thread(s)")
    report = run_demo(args.out)
    print(f"report written to {report.resolve()}")
    return 0


#: Command-line limits beyond which a run takes minutes for no use: k-means regions of a
#: segmentation, and SOAP cutoffs (Å; 3-8 Å in practice, the work grows as cutoff**3).
MAX_REGIONS = 64
MAX_CUTOFF = 30.0


def _threads(args: argparse.Namespace) -> None:
    import matchar as mc

    if getattr(args, "threads", None) is not None:
        try:
            mc.set_num_threads(args.threads)
        except ValueError as err:  # the library names its argument n
            raise ValueError(f"--threads{str(err).removeprefix('n')}") from None


def _watched() -> bool:
    """Progress bars only where someone watches: on a terminal. Written to a log or a pipe
    they would be lines of their own, before an error's one line."""
    return sys.stderr.isatty()


def _out_dir(args: argparse.Namespace) -> Path:
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {str(out)!r} is a file; --out names a folder")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _read_image(path: str) -> tuple[np.ndarray, float | None]:
    import matchar as mc

    image, pixel_size, _ = mc.io.load_image(path)
    return image, pixel_size


def _decompose(args: argparse.Namespace) -> int:
    from .spectral._cli import run_decompose

    _threads(args)
    return run_decompose(args, lambda: _out_dir(args))


def _count(n: int, noun: str) -> str:
    """'1 region', '3 regions'."""
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _segment(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import matchar as mc

    _threads(args)
    if args.regions is not None and not 1 <= args.regions <= MAX_REGIONS:
        raise ValueError(f"--regions must be between 1 and {MAX_REGIONS}, got {args.regions}")
    image, file_pixel_size = _read_image(args.image)
    pixel_size = args.pixel_size if args.pixel_size is not None else file_pixel_size
    need = mc.imaging.Segmenter()._smallest_side()  # the library's message names parameters
    if min(image.shape[:2]) <= need:
        raise ValueError(
            f"{args.image}: an image of {image.shape[0]} × {image.shape[1]} pixels is too small "
            f"to segment: both sides must exceed {need} pixels"
        )
    seg = mc.imaging.segment(image, n_regions=args.regions, pixel_size=pixel_size)
    out = _out_dir(args)
    np.save(out / "labels.npy", seg.labels)
    fig, ax = plt.subplots(figsize=(6, 6))
    seg.plot(image, ax=ax)
    fig.savefig(out / "segmentation.png", dpi=100, bbox_inches="tight")
    print(f"{_count(seg.n_regions, 'region')} -> {out / 'labels.npy'}")
    return 0


def _identify(args: argparse.Namespace) -> int:
    import matchar as mc

    _threads(args)
    if args.stride is not None:
        if not args.map:
            raise ValueError("--stride applies to --map only: add --map")
        if not 1 <= args.stride <= 2**31 - 1:
            raise ValueError(f"--stride must be an integer in [1, 2147483647], got {args.stride}")
    image, file_pixel_size = _read_image(args.image)
    pixel_size = args.pixel_size if args.pixel_size is not None else file_pixel_size
    if pixel_size is None:
        raise ValueError(f"{args.image}: no pixel size in the file; pass --pixel-size (Å)")
    known = _known_lattice(args.lattice_constant)
    p = mc.imaging.CrystalClassifier.default().predict(image, pixel_size, lattice_constant=known)
    zone = "".join(str(v) for v in p.zone_axis)
    print(
        f"{p.prototype} [{zone}]  p={p.probabilities.max():.3f}  a={p.lattice_constant:.3f} Å  "
        f"rotation={p.rotation_deg:.1f}°  uncertainty={p.uncertainty:.3f} nats"
    )
    if known is None:  # the classes the image alone cannot tell from this one
        for proto, z, prob, a in p.lookalikes():
            print(
                f"  or {proto} [{''.join(str(v) for v in z)}]  p={prob:.3f}  a={a:.3f} Å  "
                "(the same columns up to scale; --lattice-constant tells them apart)"
            )
    if args.map:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        m = mc.imaging.classify_map(image, pixel_size, stride=args.stride, lattice_constant=known)
        out = _out_dir(args)
        np.savez(
            out / "crystal_map.npz",
            class_index=m.class_index,
            classes=np.array(m.classes),
            probabilities=m.probabilities,
            lattice_constant=m.lattice_constant,
            rotation_deg=m.rotation_deg,
            rotation=m.rotation_deg,  # the same array under its old key, for one release
            uncertainty=m.uncertainty,
            centers=m.centers,
        )
        fig = m.plot(image)
        fig.savefig(out / "crystal_map.png", dpi=100)
        plt.close(fig)
        counts = np.bincount(m.class_index.ravel(), minlength=len(m.classes))
        top = ", ".join(
            f"{m.classes[c].replace('[', ' [')} {counts[c]}"
            for c in np.argsort(-counts, kind="stable")[:3]
            if counts[c]
        )
        print(f"{_count(m.uncertainty.size, 'window')}: {top} -> {out / 'crystal_map.npz'}")
    return 0


def _known_lattice(values: list[str] | None):
    """``--lattice-constant`` values: ``3.61``, ``3.5:4.1`` (a range) or ``fcc=3.59``
    (per prototype, several allowed) -> the ``lattice_constant`` argument of predict."""
    if not values:
        return None

    def number_or_range(text: str):
        try:
            lo, _, hi = text.partition(":")
            return (float(lo), float(hi)) if hi else float(lo)
        except ValueError:
            raise ValueError(
                f"--lattice-constant {text!r}: expected Å as 3.61, 3.5:4.1 or fcc=3.59"
            ) from None

    if all("=" in v for v in values):
        return {k: number_or_range(v) for k, _, v in (x.partition("=") for x in values)}
    if len(values) == 1 and "=" not in values[0]:
        return number_or_range(values[0])
    raise ValueError(
        "--lattice-constant: give one value or range (3.61, 3.5:4.1), or one "
        "prototype=value per phase (fcc=3.59 bcc=2.87)"
    )


def _read_frames(path: str):
    import matchar as mc

    return mc.io.load_structures(path)


def _load_shift_model(path: str):
    """``--model``: a ShiftModel .npz; any failure to read it becomes one error naming it."""
    import matchar as mc
    from matchar.io import FileFormatError

    p = Path(path)
    if p.is_dir():
        raise IsADirectoryError(21, "expected a ShiftModel .npz file, got a directory", path)
    if not p.exists():
        raise FileNotFoundError(2, "no such file", path)
    if not zipfile.is_zipfile(p):
        raise FileFormatError(
            f"cannot read {path!r} as a matchar ShiftModel .npz: not an .npz (zip) archive"
        )
    try:
        return mc.nmr.ShiftModel.load(path)
    except (ImportError, MemoryError, PermissionError):
        raise
    except Exception as err:
        msg = _one_line(str(err))
        if isinstance(err, ValueError) and (path in msg or p.name in msg):
            raise  # already names the file
        detail = f"{type(err).__name__}: {msg}" if msg else type(err).__name__
        raise FileFormatError(
            f"cannot read {path!r} as a matchar ShiftModel .npz: corrupt, truncated or not "
            f"written by ShiftModel.save ({detail})"
        ) from err


def _soap(args: argparse.Namespace) -> int:
    import matchar as mc

    _threads(args)
    if not 0.5 <= args.cutoff <= MAX_CUTOFF:  # the cost grows as cutoff**3 per atom
        raise ValueError(f"--cutoff must be between 0.5 and {MAX_CUTOFF:g} Å, got {args.cutoff:g}")
    frames = _read_frames(args.structures)
    soap = mc.atoms.SOAP(
        cutoff=args.cutoff, max_radial=args.max_radial, max_angular=args.max_angular
    )
    X, samples = soap.compute(frames, progress=_watched(), return_samples=True)
    out = _out_dir(args)
    np.save(out / "soap.npy", X)
    np.save(out / "soap_samples.npy", samples)
    print(f"features {X.shape} -> {out / 'soap.npy'} (rows: {out / 'soap_samples.npy'})")
    return 0


def _shifts(args: argparse.Namespace) -> int:
    import matchar as mc

    _threads(args)
    if not args.trajectory:
        given = [
            opt
            for opt, value, default in (
                ("--index", args.index, ":"),
                ("--timestep-fs", args.timestep_fs, None),
                ("--chunk-size", args.chunk_size, None),
            )
            if value != default
        ]
        if given:
            raise ValueError(f"{', '.join(given)} applies to --trajectory only: add --trajectory")
    model = (
        _load_shift_model(args.model) if args.model else mc.nmr.ShiftModel.pretrained(args.element)
    )
    if args.trajectory:
        from .nmr._cli import run_trajectory

        return run_trajectory(args, model, _out_dir(args))
    frames = _read_frames(args.structures)
    sigma, std = model.predict(frames, return_std=True)
    out = _out_dir(args)
    rows = ["frame,atom,element,shielding_ppm,std_ppm"]
    k = 0
    for f, frame in enumerate(frames):
        for a in np.flatnonzero(frame.numbers == model.z_):
            rows.append(f"{f},{a},{frame[a].symbol},{sigma[k]:.4f},{std[k]:.4f}")
            k += 1
    (out / "shieldings.csv").write_text("\n".join(rows) + "\n")
    print(f"{_count(len(sigma), 'shielding')} -> {out / 'shieldings.csv'}")
    return 0


def _rank(args: argparse.Namespace) -> int:
    from .nmr._cli import run

    _threads(args)
    frames = _read_frames(args.candidates)
    model = _load_shift_model(args.model) if args.model else None
    return run(args, frames, model, _out_dir(args))


def _bench(args: argparse.Namespace) -> int:
    from ._bench import format_table, run_bench

    _threads(args)
    import matchar as mc

    print(f"matchar {mc.__version__} bench, {mc.get_num_threads()} thread(s)", flush=True)
    rows = run_bench(quick=args.quick, repeat=args.repeat)
    print(format_table(rows))
    if args.out is not None:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        import csv

        with out.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["case", "peer", "matchar_s", "peer_s", "speedup"])
            for r in rows:
                writer.writerow(
                    [
                        r.case,
                        r.peer,
                        f"{r.matchar_s:.6g}",
                        "" if r.peer_s is None else f"{r.peer_s:.6g}",
                        "" if r.speedup is None else f"{r.speedup:.4g}",
                    ]
                )
        print(f"table written to {out}")
    return 0


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line on stderr (exit status 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(
            f"{self.prog}: error: {_one_line(message)} (see '{self.prog} --help')",
            file=sys.stderr,
        )
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``matchar`` command (one sub-command per job)."""
    parser = _Parser(
        prog="matchar",
        description="Machine learning for materials characterization.",
        epilog="Errors (bad input, unreadable files) are one line on stderr, "
        "'matchar <command>: error: ...', with exit status 2 (130 after Ctrl-C). "
        "--debug or MATCHAR_DEBUG=1 shows the Python traceback instead.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    parser.add_argument(
        "--debug",
        action="store_true",
        help="on an error, show the Python traceback instead of one line "
        "(also: environment variable MATCHAR_DEBUG=1)",
    )
    sub = parser.add_subparsers(dest="command")
    demo = sub.add_parser("demo", help="run every available job on built-in synthetic data")
    demo.add_argument("--out", default="matchar-demo", help="output folder (default: %(default)s)")
    demo.add_argument("--threads", type=int, default=None, help="number of threads")
    demo.set_defaults(func=_demo)

    def common(p: argparse.ArgumentParser, out: str) -> None:
        p.add_argument("--out", default=out, help="output folder (default: %(default)s)")
        p.add_argument("--threads", type=int, default=None, help="number of threads")

    dec = sub.add_parser(
        "decompose",
        help="NMF (or physics-constrained NMF) of a spectrum image (.bcf, .emd, .pts, .hspy, .npy)",
        description="Decompose a spectrum image into K components: abundance maps (counts per "
        "pixel; the components are scaled to unit sum) and spectra. Writes decomposition.npz, "
        "decomposition.png (maps with colorbars and, when the file records the pixel size, "
        "scale bars; spectra on the file's energy unit; residual map and loss history) and "
        "maps.hspy/components.hspy when rosettasciio is installed.",
    )
    dec.add_argument("file")
    dec.add_argument(
        "-k", "--components", type=int, default=4, help="number of components (default 4)"
    )
    dec.add_argument(
        "--loss",
        choices=["kl", "frobenius"],
        default="kl",
        help="kl: Poisson counts (default); frobenius: least squares",
    )
    dec.add_argument(
        "--max-iter", type=int, default=200, help="most iterations of the fit (default 200)"
    )
    dec.add_argument(
        "--signal",
        default=None,
        help="which spectrum image of a file with several: an index, a title, EDS or EELS "
        "(default: the EDS one, else the first; a warning lists them when there are several)",
    )
    dec.add_argument(
        "--energy-range",
        default=None,
        metavar="LO:HI",
        help="keep channels with LO <= energy <= HI, in the file's energy unit (keV for most "
        "EDX files, eV for EELS; channel indices for .npy); either side may be empty",
    )
    dec.add_argument(
        "--crop",
        default=None,
        metavar="Y0:Y1,X0:X1",
        help="keep pixel rows Y0..Y1-1 and columns X0..X1-1 (Python slices; N0:N1 for an "
        "(N, C) cube), before binning; a negative start needs the = form, --crop=-5:,0:8",
    )
    dec.add_argument(
        "--bin",
        type=int,
        default=1,
        metavar="N",
        help="sum the counts of N x N pixel blocks (rows/columns that do not fill a block "
        "are dropped; the pixel size grows N times)",
    )
    dec.add_argument(
        "--keep-zero-peak",
        action="store_true",
        help="keep the channels below 0.15 keV of an EDX spectrum image (signal type EDS, "
        "or an energy axis in keV): by default they are left out, as they hold the "
        "detector's zero (noise) peak",
    )
    dec.add_argument(
        "--physics",
        action="store_true",
        help="physics-constrained NMF (PhysicsNMF with an EDXModel of the file's beam "
        "energy, take-off angle, resolution and energy axis): phases as element "
        "compositions; EDX only. The model leaves out the channels below 0.15 keV "
        "whatever --keep-zero-peak says",
    )
    dec.add_argument(
        "--elements",
        default=None,
        metavar="auto|Fe,Ni,...",
        help="with --physics: the elements (comma-separated), or auto (default): proposed "
        "from the peaks of the summed spectrum, the file's elements included",
    )
    common(dec, "matchar-decompose")
    dec.set_defaults(func=_decompose)

    seg = sub.add_parser(
        "segment", help="segment a STEM image (.npy, .png, .tif, .dm3/.dm4, .emd, .hspy)"
    )
    seg.add_argument("image")
    seg.add_argument(
        "--regions", type=int, default=None, help="number of regions, 1-64 (default: chosen)"
    )
    seg.add_argument(
        "--pixel-size", type=float, default=None, help="Å per pixel (default: from the file)"
    )
    common(seg, "matchar-segment")
    seg.set_defaults(func=_segment)

    idf = sub.add_parser(
        "identify",
        help="crystal prototype, zone axis, a, rotation of a HAADF image (.npy, .png, .tif, "
        ".dm3/.dm4, .emd, .hspy)",
    )
    idf.add_argument("image")
    idf.add_argument(
        "--pixel-size",
        type=float,
        default=None,
        help="Å per pixel (default: from the file's metadata)",
    )
    idf.add_argument(
        "--lattice-constant",
        nargs="+",
        default=None,
        metavar="A",
        help="known lattice constant in Å: 3.61, a range 3.5:4.1, or per phase fcc=3.59 "
        "bcc=2.87; separates classes that look alike up to scale",
    )
    idf.add_argument("--map", action="store_true", help="also write sliding-window maps")
    idf.add_argument(
        "--stride",
        type=int,
        default=None,
        help="with --map: step between windows in pixels (default: a quarter of the window)",
    )
    common(idf, "matchar-identify")
    idf.set_defaults(func=_identify)

    so = sub.add_parser("soap", help="SOAP power spectra of structures (any file ase reads)")
    so.add_argument("structures")
    so.add_argument(
        "--cutoff", type=float, default=5.0, help="cutoff radius in Å, 0.5-30 (default 5)"
    )
    so.add_argument(
        "--max-radial", type=int, default=8, help="radial basis functions, 1-21 (default 8)"
    )
    so.add_argument(
        "--max-angular", type=int, default=6, help="largest angular channel l, 0-20 (default 6)"
    )
    common(so, "matchar-soap")
    so.set_defaults(func=_soap)

    sh = sub.add_parser("shifts", help="predict NMR shieldings (ppm) ± σ as CSV")
    sh.add_argument("structures")
    sh.add_argument("--element", default="H", help="nucleus with a shipped model (H, C)")
    sh.add_argument("--model", default=None, help="a ShiftModel .npz instead of the shipped one")
    sh.add_argument(
        "--trajectory",
        action="store_true",
        help="the file is an MD trajectory: stream every frame, write per-site averages, "
        "fluctuations, correlation times, distributions and the frames flagged by σ",
    )
    sh.add_argument("--index", default=":", help="--trajectory: frames to read (ase syntax)")
    sh.add_argument("--timestep-fs", type=float, default=None, help="--trajectory: fs per frame")
    sh.add_argument(
        "--chunk-size", type=int, default=None, help="--trajectory: frames per chunk (auto)"
    )
    common(sh, "matchar-shifts")
    sh.set_defaults(func=_shifts)

    rk = sub.add_parser("rank", help="posterior of candidate structures from experimental shifts")
    from .nmr._cli import add_arguments as add_rank_arguments

    add_rank_arguments(rk)
    common(rk, "matchar-rank")
    rk.set_defaults(func=_rank)

    from .imaging import _denoise_cli

    _denoise_cli.add_parser(sub, common)

    be = sub.add_parser("bench", help="time matchar against the installed peers, print ratios")
    be.add_argument("--quick", action="store_true", help="small problems (a few seconds)")
    be.add_argument("--repeat", type=int, default=3, help="timed runs per implementation")
    be.add_argument("--out", default=None, help="also write the table as CSV to this file")
    be.add_argument("--threads", type=int, default=None, help="number of threads")
    be.set_defaults(func=_bench)
    for command in sub.choices.values():  # --debug after the command too
        command.add_argument(
            "--debug",
            action="store_true",
            default=argparse.SUPPRESS,
            help="on an error, show the Python traceback instead of one line",
        )
    return parser


def _one_line(text: str, limit: int = 500) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _describe(err: BaseException) -> str:
    """One line about an error: an OSError's file and reason, else its message."""
    if isinstance(err, OSError) and err.filename is not None and err.strerror:
        return _one_line(f"{str(err.filename)!r}: {err.strerror}")
    msg = _one_line(str(err))
    if isinstance(err, MemoryError):
        return f"out of memory{': ' + msg if msg else ''} (try a smaller input)"
    return msg or type(err).__name__


def _warning_printer(prefix: str) -> Callable[..., None]:
    seen: set[str] = set()

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        text = _one_line(str(message))
        if text not in seen:  # e.g. identify --map: the same pixel-size warning twice
            seen.add(text)
            print(f"{prefix}: warning: {text}", file=sys.stderr)

    return show


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``matchar`` console script; returns the exit code.

    Bad input, unreadable files and any other error are one line on stderr and exit
    status 2 (Ctrl-C: 130); usage errors exit through :class:`SystemExit` with status 2.
    ``--debug`` or ``MATCHAR_DEBUG=1`` re-raises instead, to show the traceback.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        import matchar

        print(matchar.__version__)
        return 0
    if args.command is None:
        parser.print_help()
        return 2
    debug = args.debug or os.environ.get("MATCHAR_DEBUG", "").strip() not in ("", "0")
    prefix = f"matchar {args.command}"
    with warnings.catch_warnings():
        warnings.showwarning = _warning_printer(prefix)
        try:
            return int(args.func(args))
        except KeyboardInterrupt:
            if debug:
                raise
            print(f"{prefix}: interrupted", file=sys.stderr)
            return 130
        except (ValueError, TypeError, OSError, ImportError, MemoryError) as err:
            # bad input, unreadable or unsupported files, a missing optional dependency
            if debug:
                raise
            print(f"{prefix}: error: {_describe(err)}", file=sys.stderr)
            return 2
        except Exception as err:
            # a bug: one line by default, the traceback with --debug
            if debug:
                raise
            print(
                f"{prefix}: error: internal error ({type(err).__name__}: {_describe(err)}); "
                "rerun with --debug for the traceback and report it",
                file=sys.stderr,
            )
            return 2


if __name__ == "__main__":
    sys.exit(main())
