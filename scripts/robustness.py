"""Run the bad-input reproducers, one child process each, and print a table.

Every case (``tests/robustness/reproducers.py``) runs in a fresh Python under a 4 GiB
address-space limit and a timeout, so crashes, aborts and hangs are classified instead of
taking this script down: ``ok``, ``nonfinite``, ``error:<Type>: <message>``,
``crash:<SIGNAL>``, ``exit:<code>``, ``hang``. The table has one row per case: its name,
the expected outcome, what happened, the seconds it took and PASS/FAIL.

Usage::

    python scripts/robustness.py              # the fast cases (what CI runs)
    python scripts/robustness.py --all        # also the slow ones
    python scripts/robustness.py -k haadf     # cases whose name contains "haadf"
    python scripts/robustness.py --list       # names only

matchar must be importable by the child processes (installed, or on ``PYTHONPATH``,
which they inherit). Exit code 1 when any case fails.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "robustness"))

from harness import Case, run, verdict
from reproducers import CASES


def select(cases: list[Case], include_slow: bool, patterns: list[str]) -> list[Case]:
    """The cases to run: fast ones (or all), filtered by name substrings."""
    out = [c for c in cases if include_slow or not c.slow]
    if patterns:
        out = [c for c in out if any(p in c.name for p in patterns)]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--all", action="store_true", help="include the slow cases")
    parser.add_argument(
        "-k", action="append", default=[], metavar="TEXT", help="only names containing TEXT"
    )
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("--timeout", type=float, default=None, help="override every timeout (s)")
    parser.add_argument("--width", type=int, default=70, help="width of the outcome column")
    args = parser.parse_args(argv)

    cases = select(CASES, args.all or bool(args.k), args.k)
    if args.list:
        for c in cases:
            print(f"{c.name:45s} {'slow ' if c.slow else ''}{c.expected_text()}")
        return 0
    name_w = max((len(c.name) for c in cases), default=4)
    exp_w = min(40, max((len(c.expected_text()) for c in cases), default=8))
    header = f"{'case':{name_w}}  {'expected':{exp_w}}  {'outcome':{args.width}}  {'s':>6}  "
    print(header + "verdict")
    print("-" * (len(header) + 7))
    failed = []
    t_all = time.monotonic()
    for case in cases:
        outcome = run(case, timeout=args.timeout)
        why = verdict(case, outcome)
        if why is not None:
            failed.append((case.name, why))
        expected = case.expected_text()
        if len(expected) > exp_w:
            expected = expected[: exp_w - 3] + "..."
        print(
            f"{case.name:{name_w}}  {expected:{exp_w}}  {outcome.short(args.width):{args.width}}  "
            f"{outcome.seconds:6.1f}  {'PASS' if why is None else 'FAIL'}",
            flush=True,
        )
    print(
        f"\n{len(cases) - len(failed)} of {len(cases)} as expected "
        f"({time.monotonic() - t_all:.0f} s)"
    )
    for name, why in failed:
        print(f"FAIL {name}: {why}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
