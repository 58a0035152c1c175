"""Ctrl-C reaches the enumeration kernel (it polls between (candidate, first-site) tasks)."""

from __future__ import annotations


def test_ctrl_c_interrupts_enumeration(ctrl_c):
    # 60 candidates x 11! assignments: minutes of work; SIGINT must end it early.
    ctrl_c(
        """
        import numpy as np, matchar as mc
        rng = np.random.default_rng(0)
        pred = rng.normal(25.0, 0.3, (60, 11))
        y = rng.normal(5.0, 0.3, 11)
        """,
        'mc.nmr.structure_posterior(pred, 0.3, y, sigma_exp=0.3, assignment="marginalize", '
        'method="exact")',
    )
