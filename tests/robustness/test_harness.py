"""The child-process harness classifies every kind of outcome."""

from __future__ import annotations

import signal
import sys

import harness
import pytest
from harness import SANITIZED, Case, callable_code, run, verdict

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX rlimits and signals")

# numpy only: these tests check the harness, and importing matchar costs a second each.
NUMPY = "import numpy as np\n"


def run_case(code, **kw):
    return harness.run_case(code, prelude=kw.pop("prelude", NUMPY), **kw)


def run_interrupt(code, **kw):
    return harness.run_interrupt(code, prelude=NUMPY, **kw)


def test_ok_and_nonfinite():
    assert run_case("result = (np.ones(3), {'a': 1.0})").outcome == "ok"
    out = run_case("result = [1.0, np.array([0.0, np.nan])]")
    assert out.kind == "nonfinite" and "1 of 2" in out.outcome


def test_errors_and_warnings():
    out = run_case("raise ValueError('n must be >= 1')", check_types=["ValueError", "TypeError"])
    assert out.outcome == "error:ValueError: n must be >= 1"
    assert out.isa == {"ValueError": True, "TypeError": False}
    out = run_case("np.log(np.zeros(1))")  # RuntimeWarnings are errors by default
    assert out.outcome.startswith("error:RuntimeWarning")
    assert run_case("x = np.log(np.zeros(1))", warnings_as_errors=False).outcome == "ok"
    # The value of a final expression is the result.
    assert run_case("np.log(np.zeros(1))", warnings_as_errors=False).kind == "nonfinite"
    out = run_case(  # the default prelude: matchar and the cases' helpers
        "mc.spectral.NMF(2).transform(base())",
        check_types=["matchar.NotFittedError"],
        prelude=harness.PRELUDE,
    )
    assert out.exc_type == "NotFittedError" and out.isa == {"matchar.NotFittedError": True}


@pytest.mark.skipif(SANITIZED, reason="ASan turns a SIGSEGV into its own report and abort")
def test_crash_exit_and_hang():
    assert run_case("import os, signal; os.kill(os.getpid(), signal.SIGSEGV)").outcome == (
        "crash:SIGSEGV"
    )
    assert run_case("import os; os.abort()").outcome == "crash:SIGABRT"
    out = run_case("import os, sys; sys.stderr.write('libgomp: failed\\n'); os._exit(1)")
    assert out.outcome == "exit:1: libgomp: failed"
    out = run_case("import time; time.sleep(60)", timeout=3)
    assert out.outcome == "hang" and 3 <= out.seconds < 30


@pytest.mark.skipif(SANITIZED, reason="no address-space limit under AddressSanitizer")
def test_memory_limit():
    # 4 GiB of address space (never touched): over the limit, fine without it.
    out = run_case("x = np.empty(2**29)")
    assert out.exc_type == "MemoryError", out.outcome
    assert run_case("x = np.empty(2**29)", memory_limit=None).outcome == "ok"


def test_callable_by_name(tmp_path):
    f = tmp_path / "target.py"
    f.write_text("def bad():\n    raise TypeError('kernel must be callable')\n")
    out = run_case(callable_code(f"{f}:bad"))
    assert out.outcome == "error:TypeError: kernel must be callable"
    assert run_case(callable_code("math:sqrt", "4.0")).outcome == "ok"
    with pytest.raises(ValueError, match="target"):
        callable_code("sqrt")


def test_interrupt_latency():
    out = run_interrupt("import time\nwhile True:\n    time.sleep(0.01)")
    assert out.exc_type == "KeyboardInterrupt" and out.latency is not None
    assert 0 <= out.latency < 1.0, out.latency
    # A call that ignores SIGINT is a hang; one that ends before the signal is "ok".
    ignore = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\ntime.sleep(30)"
    assert run_interrupt(ignore, reaction_timeout=1.0).outcome == "hang"
    assert run_interrupt("pass").outcome == "ok"


def test_verdicts():
    case = Case("c", "", ("ValueError",), match="zeta")
    good = run_case("raise ValueError('zeta must be >= 1')", check_types=case.expect)
    assert verdict(case, good) is None
    wrong_name = run_case("raise ValueError('n must be >= 1')", check_types=case.expect)
    assert "does not match" in verdict(case, wrong_name)
    dump = run_case(
        "raise ValueError('zeta: incompatible function arguments')", check_types=case.expect
    )
    assert "unclear" in verdict(case, dump)
    assert "returned" in verdict(case, run_case("pass"))
    ctrl_c = Case("i", "import time\ntime.sleep(30)", ("KeyboardInterrupt",), interrupt=True)
    interrupted = run_interrupt(ctrl_c.code, check_types=ctrl_c.expect)
    assert verdict(ctrl_c, interrupted) is None
    late = Case("l", ctrl_c.code, ctrl_c.expect, interrupt=True, max_latency=-1.0)
    assert "too late" in verdict(late, interrupted)
    # A kernel that swallows the signal and returns normally.
    swallow = "import signal, time\nsignal.signal(signal.SIGINT, lambda *a: None)\ntime.sleep(2)"
    out = run_interrupt(swallow)
    assert out.kind == "ok" and "after SIGINT" in out.outcome
    assert "swallowed" in verdict(ctrl_c, out)


def test_every_case_runs_through_run():
    """run() runs a Case after the default prelude (matchar and the helpers)."""
    assert run(Case("a", "result = base().sum()", ("ok",), setup="import os")).outcome == "ok"


def test_interrupt_when_the_parent_ignores_sigint():
    """A background job starts with SIGINT ignored, which children inherit: the child
    restores Python's handler, so Ctrl-C cases mean the same there."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        out = run_interrupt("import time\ntime.sleep(30)")
    finally:
        signal.signal(signal.SIGINT, previous)
    assert out.exc_type == "KeyboardInterrupt", out.outcome
