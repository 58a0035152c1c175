"""Run one bad-input case in a fresh child Python and classify what happened.

A case is a snippet of Python (run after :data:`PRELUDE`) or a callable named
``"path/to/file.py:function"`` / ``"package.module:function"``. The child is started
with ``subprocess`` (``sys.executable -c ...``, never ``fork``: GCC's OpenMP runtime can
hang a forked child), inherits the environment (``PYTHONPATH`` included), limits its
address space (``RLIMIT_AS``, 4 GiB by default) before it imports anything, and reports
through files in a temporary folder, so that a crash, an abort or a hang of the case
cannot take the caller down.

Outcomes (:attr:`Outcome.outcome`):

``ok``
    The case returned; if it bound a variable ``result`` (or ends with an expression,
    whose value becomes ``result``), every array and number in it (searched through
    tuples, lists, dicts and object attributes) is finite.
``nonfinite: <where>``
    The case returned, but ``result`` holds NaN or inf.
``error:<ExceptionType>: <message>``
    The case raised a Python exception (RuntimeWarnings are errors by default, so a
    warning on the way to a NaN shows up here too).
``crash:<SIGNAL>``
    The child died of a signal (negative return code).
``exit:<code>: <last stderr line>``
    The child exited without reporting (e.g. ``libgomp: Thread creation failed``).
``hang``
    Still running after ``timeout`` seconds (the child is killed).

:func:`run_interrupt` runs a long call, sends SIGINT ``wait`` seconds into it and
measures how long the child took to raise ``KeyboardInterrupt``.

Usable from tests and scripts: nothing here depends on pytest.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

#: Address-space limit of the child (bytes): large requests must fail with MemoryError.
MEMORY_LIMIT = 4 * 1024**3
#: Under AddressSanitizer (scripts/sanitize.sh preloads libasan) the process reserves
#: terabytes of address space for its shadow memory: no RLIMIT_AS can apply.
SANITIZED = "libasan" in os.environ.get("LD_PRELOAD", "")
#: How much longer a Ctrl-C may take to land under the sanitizers than without.
SANITIZER_SLOWDOWN = 3.0
#: Seconds before a case counts as a hang.
TIMEOUT = 60.0

#: Imports and the helpers the cases use; run in the child before every case.
PRELUDE = """
import numpy as np
import matchar as mc


def base():
    "Poisson counts of shape (40, 30)."
    return np.random.default_rng(0).poisson(5, (40, 30))


def limg(n=96, period=6):
    "An n x n cosine lattice image (period 6 px), values in [0.5, 4.5]."
    y, x = np.mgrid[:n, :n].astype(np.float64)
    return 2.5 + np.cos(2 * np.pi * x / period) + np.cos(2 * np.pi * y / period)
"""

# The child's code. Placeholders are filled by _child_code with repr()s.
_CHILD = r"""
import json as _json, os as _os, signal as _signal, sys as _sys, time as _time
# Ctrl-C raises KeyboardInterrupt, as in an interactive Python, even when the parent
# runs in the background (a non-interactive shell starts background jobs with SIGINT
# ignored, and Python then keeps it ignored).
_signal.signal(_signal.SIGINT, _signal.default_int_handler)
_DIR = {dir!r}
def _report(d):
    tmp = _os.path.join(_DIR, "result.tmp")
    with open(tmp, "w") as f:
        _json.dump(d, f)
    _os.replace(tmp, _os.path.join(_DIR, "result.json"))
_limit = {limit!r}
if _limit:
    import resource as _resource
    _soft, _hard = _resource.getrlimit(_resource.RLIMIT_AS)
    if _hard != _resource.RLIM_INFINITY:
        _limit = min(_limit, _hard)
    _resource.setrlimit(_resource.RLIMIT_AS, (_limit, _hard))
_ns = {{"__name__": "__robustness_case__"}}
_phase = "prelude"
try:
    exec(compile({prelude!r}, "<prelude>", "exec"), _ns)
    import warnings as _warnings
    if {warnings_as_errors!r}:
        _warnings.simplefilter("error", RuntimeWarning)
    _phase = "setup"
    exec(compile({setup!r}, "<setup>", "exec"), _ns)
    _phase = "case"
    import ast as _ast
    _tree = _ast.parse({code!r}, "<case>")
    if _tree.body and isinstance(_tree.body[-1], _ast.Expr):  # the last value is the result
        _last = _tree.body[-1]
        _tree.body[-1] = _ast.Assign([_ast.Name("result", _ast.Store())], _last.value)
        _ast.copy_location(_tree.body[-1], _last)
        _ast.fix_missing_locations(_tree)
    _compiled = compile(_tree, "<case>", "exec")
    open(_os.path.join(_DIR, "ready"), "w").close()
    _t0 = _time.monotonic()
    exec(_compiled, _ns)
    _t1 = _time.monotonic()
    _report({{"status": "returned", "seconds": _t1 - _t0, "returned_at": _t1,
              "nonfinite": nonfinite(_ns["result"]) if "result" in _ns else None}})
except BaseException as _e:
    _t1 = _time.monotonic()
    _isa = {{}}
    for _name in {check_types!r}:
        try:
            if "." in _name:
                _mod, _, _attr = _name.rpartition(".")
                import importlib as _il
                _cls = getattr(_il.import_module(_mod), _attr)
            else:
                import builtins as _b
                _cls = getattr(_b, _name)
            _isa[_name] = isinstance(_e, _cls)
        except Exception:
            _isa[_name] = False
    _report({{"status": "raised", "phase": _phase, "type": type(_e).__name__,
              "message": str(_e)[:2000], "isa": _isa, "caught_at": _t1,
              "seconds": _t1 - _t0 if _phase == "case" else None}})
"""


def nonfinite(obj, where: str = "result", depth: int = 0, seen: set | None = None):
    """Where ``obj`` holds NaN or inf (a short description), or None when it is finite.

    Searches arrays, numbers, tuples, lists, dicts and object attributes (4 levels).
    Also run inside the child processes (its source is copied there).
    """
    import numbers

    import numpy as np

    seen = set() if seen is None else seen
    if id(obj) in seen or depth > 4:
        return None
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind in "fc" and not np.isfinite(obj).all():
            return f"{where}: {int((~np.isfinite(obj)).sum())} of {obj.size} not finite"
        return None
    if isinstance(obj, numbers.Number) and not isinstance(obj, bool):
        try:
            return None if np.isfinite(obj) else f"{where} = {obj!r}"
        except TypeError:
            return None
    if isinstance(obj, (str, bytes, type)):
        return None
    if isinstance(obj, dict):
        items = obj.items()
    elif isinstance(obj, (list, tuple)):
        items = enumerate(obj)
    elif hasattr(obj, "__dict__"):
        items = vars(obj).items()
    else:
        return None
    for k, v in items:
        found = nonfinite(v, f"{where}[{k!r}]", depth + 1, seen)
        if found:
            return found
    return None


# Read once, at import: the child gets the same function even if this file changes.
_NONFINITE_SOURCE = inspect.getsource(nonfinite)


@dataclass
class Outcome:
    """What one case did."""

    #: ``ok``, ``nonfinite: ...``, ``error:Type: message``, ``crash:SIG``, ``exit:...``,
    #: ``hang`` (see the module docstring).
    outcome: str
    #: Seconds the case itself ran (from the end of its setup; the wall time of the
    #: child when it did not report).
    seconds: float
    #: Exception type name, message and isinstance checks (``error`` outcomes).
    exc_type: str | None = None
    message: str = ""
    isa: dict = field(default_factory=dict)
    #: Ctrl-C cases: seconds from SIGINT to the KeyboardInterrupt (None otherwise).
    latency: float | None = None
    stderr: str = ""

    @property
    def kind(self) -> str:
        """``ok``, ``nonfinite``, ``error``, ``crash``, ``exit`` or ``hang``."""
        return re.match(r"[a-z]*", self.outcome).group()

    def short(self, width: int = 100) -> str:
        """One line for tables."""
        text = " ".join(self.outcome.split())
        if self.latency is not None:
            text += f" (after {self.latency:.2f} s)"
        return text if len(text) <= width else text[: width - 3] + "..."


def _child_code(
    code: str,
    workdir: str,
    *,
    setup: str,
    prelude: str,
    limit: int | None,
    warnings_as_errors: bool,
    check_types: Iterable[str],
) -> str:
    return _NONFINITE_SOURCE + _CHILD.format(
        dir=workdir,
        limit=limit,
        prelude=prelude,
        setup=textwrap.dedent(setup),
        code=textwrap.dedent(code),
        warnings_as_errors=warnings_as_errors,
        check_types=tuple(check_types),
    )


def callable_code(target: str, *args_repr: str) -> str:
    """Case code that calls ``target`` (``"file.py:func"`` or ``"module:func"``).

    Its return value becomes ``result``; ``args_repr`` are Python expressions passed
    as positional arguments.
    """
    where, _, name = target.rpartition(":")
    if not where or not name:
        raise ValueError(f"target must be 'file.py:function' or 'module:function', got {target!r}")
    args = ", ".join(args_repr)
    if where.endswith(".py"):
        load = (
            "import importlib.util as _u\n"
            f"_spec = _u.spec_from_file_location('_robustness_target', {where!r})\n"
            "_m = _u.module_from_spec(_spec); _spec.loader.exec_module(_m)\n"
        )
    else:
        load = f"import importlib as _il\n_m = _il.import_module({where!r})\n"
    return load + f"result = getattr(_m, {name!r})({args})\n"


def _popen(code: str, workdir: str, env: dict | None) -> subprocess.Popen:
    out = open(os.path.join(workdir, "stdout"), "wb")
    err = open(os.path.join(workdir, "stderr"), "wb")
    try:
        return subprocess.Popen(
            [sys.executable, "-c", code],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=dict(os.environ) if env is None else dict(os.environ, **env),
            cwd=workdir,  # never the source tree: matchar must come from PYTHONPATH / site
            start_new_session=True,  # own process group: killed as a whole on timeout
        )
    finally:
        out.close()
        err.close()


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def _tail(path: Path, n: int = 4000) -> str:
    try:
        return path.read_bytes()[-n:].decode("utf-8", "replace")
    except OSError:
        return ""


def _classify(
    proc: subprocess.Popen, workdir: Path, wall: float, *, hung: bool, sent_at: float | None
) -> Outcome:
    stderr = _tail(workdir / "stderr")
    result = workdir / "result.json"
    if hung and not result.exists():
        return Outcome("hang", wall, stderr=stderr)
    # Reported, then did not exit in time: a hang at exit (say so, keep the report).
    at_exit = " (then hung at exit)" if hung else ""
    if result.exists():
        r = json.loads(result.read_text())
        if r["status"] == "returned":
            text = "ok" if not r["nonfinite"] else f"nonfinite: {r['nonfinite']}"
            if sent_at is not None and r["returned_at"] > sent_at:
                late = r["returned_at"] - sent_at
                text += f" (returned {late:.1f} s after SIGINT: no KeyboardInterrupt)"
            return Outcome(text + at_exit, r["seconds"], stderr=stderr)
        first = r["message"].strip().splitlines()[0] if r["message"].strip() else ""
        latency = None
        if sent_at is not None and r["type"] == "KeyboardInterrupt":
            latency = r["caught_at"] - sent_at  # both CLOCK_MONOTONIC, system-wide
        phase = "" if r["phase"] == "case" else f" (in {r['phase']})"
        return Outcome(
            f"error:{r['type']}: {first}{phase}{at_exit}",
            r["seconds"] if r["seconds"] is not None else wall,
            exc_type=r["type"],
            message=r["message"],
            isa=r["isa"],
            latency=latency,
            stderr=stderr,
        )
    rc = proc.returncode
    if rc is not None and rc < 0:
        try:
            name = signal.Signals(-rc).name
        except ValueError:
            name = str(-rc)
        return Outcome(f"crash:{name}", wall, stderr=stderr)
    last = next((ln for ln in reversed(stderr.splitlines()) if ln.strip()), "")
    return Outcome(f"exit:{rc}: {last.strip()}", wall, stderr=stderr)


def run_case(
    code: str,
    *,
    setup: str = "",
    prelude: str = PRELUDE,
    timeout: float = TIMEOUT,
    memory_limit: int | None = MEMORY_LIMIT,
    warnings_as_errors: bool = True,
    check_types: Iterable[str] = (),
    env: dict | None = None,
) -> Outcome:
    """Run ``setup`` then ``code`` (after :data:`PRELUDE`) in a fresh child Python.

    Parameters
    ----------
    code : str
        The case. It may bind ``result`` (a final expression's value is bound to it):
        the outcome is then ``ok`` only if every number in it is finite. Use
        :func:`callable_code` for a named callable.
    setup : str
        Run before ``code`` and not timed (inputs, fitted estimators).
    prelude : str
        Run first (default :data:`PRELUDE`: numpy, matchar and the cases' helpers).
    timeout : float
        Seconds (setup included) before the child is killed and the case is a hang.
    memory_limit : int or None
        ``RLIMIT_AS`` of the child in bytes (None: unlimited).
    warnings_as_errors : bool
        Turn RuntimeWarnings (overflow, invalid value, ...) into exceptions in the child.
    check_types : iterable of str
        Exception classes (``"ValueError"``, ``"matchar.NotFittedError"``) the child
        tests a raised exception against, reported in :attr:`Outcome.isa`.
    env : dict, optional
        Extra environment variables (the rest is inherited).
    """
    with tempfile.TemporaryDirectory(prefix="matchar-case-") as tmp:
        workdir = Path(tmp)
        child = _child_code(
            code,
            tmp,
            setup=setup,
            prelude=prelude,
            limit=None if SANITIZED else memory_limit,
            warnings_as_errors=warnings_as_errors,
            check_types=check_types,
        )
        t0 = time.monotonic()
        proc = _popen(child, tmp, env)
        try:
            proc.wait(timeout=timeout)
            hung = False
        except subprocess.TimeoutExpired:
            hung = True
        finally:
            if proc.poll() is None:
                _kill(proc)
        return _classify(proc, workdir, time.monotonic() - t0, hung=hung, sent_at=None)


def run_interrupt(
    code: str,
    *,
    setup: str = "",
    prelude: str = PRELUDE,
    wait: float = 1.0,
    reaction_timeout: float = 10.0,
    setup_timeout: float = TIMEOUT,
    memory_limit: int | None = MEMORY_LIMIT,
    check_types: Iterable[str] = (),
    env: dict | None = None,
) -> Outcome:
    """Start ``code`` in a child, send SIGINT ``wait`` seconds into it, classify.

    The outcome is ``error:KeyboardInterrupt`` with :attr:`Outcome.latency` the seconds
    from the signal to the exception reaching Python; ``hang`` if the child has not
    exited ``reaction_timeout`` seconds after the signal; ``ok`` if the call returned
    before the signal (the case is too short to test anything).
    """
    with tempfile.TemporaryDirectory(prefix="matchar-case-") as tmp:
        workdir = Path(tmp)
        child = _child_code(
            code,
            tmp,
            setup=setup,
            prelude=prelude,
            limit=None if SANITIZED else memory_limit,
            warnings_as_errors=False,
            check_types=(*tuple(check_types), "KeyboardInterrupt"),
        )
        t0 = time.monotonic()
        proc = _popen(child, tmp, env)
        sent_at = None
        hung = False
        try:
            deadline = t0 + setup_timeout
            while not (workdir / "ready").exists():
                if proc.poll() is not None:
                    break
                if time.monotonic() > deadline:
                    hung = True
                    break
                time.sleep(0.01)
            if proc.poll() is None and not hung:
                time.sleep(wait)
                if proc.poll() is None:
                    sent_at = time.monotonic()
                    proc.send_signal(signal.SIGINT)
                    try:
                        proc.wait(timeout=reaction_timeout)
                    except subprocess.TimeoutExpired:
                        hung = True
        finally:
            if proc.poll() is None:
                _kill(proc)
        return _classify(proc, workdir, time.monotonic() - t0, hung=hung, sent_at=sent_at)


#: Messages that are never a clear error.
UNCLEAR = ("incompatible function arguments",)


@dataclass(frozen=True)
class Case:
    """One reproducer with its expected (fixed) outcome.

    ``expect`` lists what is acceptable: ``"ok"`` (returned; ``result``, if bound, is
    finite) and/or exception classes (``"ValueError"``, ``"matchar.NotFittedError"``,
    ``"KeyboardInterrupt"``; subclasses count). ``match`` is a regular expression the
    message of an accepted exception must contain (KeyboardInterrupt excepted), e.g.
    the argument's name; ``reject`` one it must not contain. ``interrupt`` cases are
    run by :func:`run_interrupt` and must raise KeyboardInterrupt within
    ``max_latency`` seconds of the signal.
    """

    name: str
    code: str
    expect: tuple[str, ...]
    match: str | None = None
    reject: str | None = None
    setup: str = ""
    timeout: float = 30.0
    slow: bool = False
    interrupt: bool = False
    max_latency: float = 1.0
    warnings_as_errors: bool = True
    note: str = ""

    def expected_text(self) -> str:
        """The expectation in a few words, for tables."""
        text = " | ".join(self.expect)
        if self.match:
            text += f" ~ {self.match}"
        if self.interrupt:
            text += f" <= {self.max_latency:g} s"
        return text


def run(case: Case, *, timeout: float | None = None) -> Outcome:
    """Run one :class:`Case` in a child process."""
    types = tuple(e for e in case.expect if e != "ok")
    if case.interrupt:
        return run_interrupt(
            case.code,
            setup=case.setup,
            setup_timeout=timeout or case.timeout,
            check_types=types,
        )
    return run_case(
        case.code,
        setup=case.setup,
        timeout=timeout or case.timeout,
        warnings_as_errors=case.warnings_as_errors,
        check_types=types,
    )


def verdict(case: Case, outcome: Outcome) -> str | None:
    """None when ``outcome`` is what ``case`` expects, else why not (one line)."""
    if "hung at exit" in outcome.outcome:
        return f"the child did not exit after reporting: {outcome.short()}"
    if outcome.kind == "ok":
        if "ok" in case.expect and not case.interrupt:
            return None
        if case.interrupt and "after SIGINT" in outcome.outcome:
            return f"Ctrl-C was swallowed: {outcome.short()}"
        if case.interrupt:
            return "the call returned before the signal: make the case longer"
        return f"expected {case.expected_text()}, but it returned"
    if outcome.kind != "error":
        return f"expected {case.expected_text()}, got {outcome.short()}"
    accepted = [name for name, yes in outcome.isa.items() if yes and name in case.expect]
    if not accepted:
        return f"expected {case.expected_text()}, got {outcome.short()}"
    if any(u in outcome.message for u in UNCLEAR):
        return f"unclear message: {outcome.short()}"
    if accepted == ["KeyboardInterrupt"]:
        # AddressSanitizer makes every allocation and memory write several times slower
        # (a 12000 x 12000 image: 1.9 s from the signal once, under 1 s in other runs)
        limit = case.max_latency * (SANITIZER_SLOWDOWN if SANITIZED else 1.0)
        if case.interrupt and (outcome.latency is None or outcome.latency > limit):
            return f"KeyboardInterrupt too late: {outcome.short()}"
        return None
    if case.match and not re.search(case.match, outcome.message):
        return f"message does not match {case.match!r}: {outcome.short()}"
    if case.reject and re.search(case.reject, outcome.message):
        return f"message matches {case.reject!r}: {outcome.short()}"
    return None
