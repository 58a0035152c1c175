"""The ``matchar`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _demo(args: argparse.Namespace) -> int:
    import matchar as mc

    from ._demo import run_demo

    if args.threads is not None:
        mc.set_num_threads(args.threads)
    print(f"matchar {mc.__version__} demo, {mc.get_num_threads()} thread(s)")
    report = run_demo(args.out)
    print(f"report written to {report.resolve()}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``matchar`` command (one sub-command per job)."""
    parser = argparse.ArgumentParser(
        prog="matchar", description="Machine learning for materials characterization."
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command")
    demo = sub.add_parser("demo", help="run every available job on built-in synthetic data")
    demo.add_argument("--out", default="matchar-demo", help="output folder (default: %(default)s)")
    demo.add_argument("--threads", type=int, default=None, help="number of threads")
    demo.set_defaults(func=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``matchar`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        import matchar

        print(matchar.__version__)
        return 0
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args))
    except (ValueError, OSError) as err:
        print(f"matchar {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"matchar {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
