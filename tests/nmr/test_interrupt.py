"""Ctrl-C reaches the enumeration kernel (it polls between (candidate, first-site) tasks)."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time


def test_ctrl_c_interrupts_enumeration():
    # 60 candidates x 11! assignments: minutes of work; SIGINT must end it early.
    code = textwrap.dedent(
        """
        import sys, numpy as np, matchar as mc
        rng = np.random.default_rng(0)
        pred = rng.normal(25.0, 0.3, (60, 11))
        y = rng.normal(5.0, 0.3, 11)
        print("ready", flush=True)
        try:
            mc.nmr.structure_posterior(pred, 0.3, y, sigma_exp=0.3, assignment="marginalize",
                                       method="exact")
        except KeyboardInterrupt:
            print("interrupted", flush=True)
            sys.exit(3)
        print("finished", flush=True)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(1.0)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, (out, err)
    assert "interrupted" in out
    assert time.monotonic() - t0 < 30
