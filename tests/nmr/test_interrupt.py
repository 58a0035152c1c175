"""Ctrl-C reaches the enumeration kernel (it polls between (candidate, first-site) tasks)
and the quadrature kernels (every 16 offset nodes and after each candidate)."""

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


def test_ctrl_c_interrupts_banded(ctrl_c):
    # 3000 candidates x 40 sites at band 6: minutes of work.
    ctrl_c(
        """
        import numpy as np, matchar as mc
        rng = np.random.default_rng(0)
        pred = rng.normal(25.0, 2.0, (3000, 40))
        y = rng.normal(5.0, 2.0, 40)
        """,
        'mc.nmr.structure_posterior(pred, 0.3, y, sigma_exp=0.3, assignment="marginalize", '
        'method="banded", band=6)',
    )
