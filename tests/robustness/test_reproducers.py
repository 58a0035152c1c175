"""The bad-input reproducers (``reproducers.py``), each in a child process.

One test per case: the case runs in a fresh Python under a 4 GiB address-space limit
and a timeout (``harness.py``) and must end as its ``expect`` says: a clear exception
naming the argument, a finite (sometimes also checked) result, or KeyboardInterrupt
within a second of Ctrl-C. Cases that take more than a few seconds even when fixed are
marked ``slow``; ``python scripts/robustness.py --all`` runs the same cases and prints a
table.
"""

from __future__ import annotations

import sys

import pytest
from harness import SANITIZED, run, verdict
from reproducers import CASES

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX rlimits and signals")


@pytest.mark.parametrize(
    "case",
    [pytest.param(c, id=c.name, marks=[pytest.mark.slow] if c.slow else []) for c in CASES],
)
def test_reproducer(case):
    if SANITIZED and "MemoryError" in case.expect:
        pytest.skip("no address-space limit under AddressSanitizer: the case would allocate GBs")
    outcome = run(case)
    why = verdict(case, outcome)
    if why is not None:
        detail = f"\n{case.note}" if case.note else ""
        tail = outcome.stderr.strip()[-1500:]
        pytest.fail(f"{why}{detail}" + (f"\nchild stderr:\n{tail}" if tail else ""))
