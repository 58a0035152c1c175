"""Calibration of a GP's predicted uncertainty on its errors.

The scale α, or the affine form ``σ' = sqrt(α² σ² + β²)``, fitted to validation errors
by :meth:`~matchar.gp.SparseGPR.calibrate`: Musil's committee formula, maximum
likelihood, or the Gaussian 1σ/2σ coverages.
"""

from __future__ import annotations

import numpy as np

_COVERAGE_1 = 0.6826894921370859  # P(|z| <= 1), P(|z| <= 2) for a standard normal z
_COVERAGE_2 = 0.9544997361036416


# Half-widths of the coverage bands that "band" calibration centres the errors in:
# 0.683 ± 0.05 within 1σ and 0.954 ± 0.03 within 2σ.
_BAND_HALF_WIDTHS = (0.05, 0.03)


def _coverage_calibration(
    err: np.ndarray,
    sigma: np.ndarray,
    n_beta: int = 201,
    units: tuple[float, float] | None = None,
):
    """(α, β) of ``σ' = sqrt(α² σ² + β²)`` whose 1σ' and 2σ' coverages of ``|err|`` are
    closest to the Gaussian values (minimax), each deviation measured in ``units``: by
    default the binomial spreads ``sqrt(p (1 - p))``, or a pair of band half-widths.

    For a given β, ``|e| <= k σ'`` holds exactly when ``α² >= (e²/k² - β²) / σ²``, so each
    coverage is a step function of α² with steps at those thresholds: every step is tried.
    """
    err2 = np.square(err)
    sigma2 = np.square(np.maximum(sigma, np.finfo(np.float64).tiny))
    n = len(err2)
    if units is None:
        units = (np.sqrt(_COVERAGE_1 * (1 - _COVERAGE_1)), np.sqrt(_COVERAGE_2 * (1 - _COVERAGE_2)))
    w1, w2 = units
    best = (np.inf, 1.0, 0.0)
    for beta in np.linspace(0.0, float(np.sqrt(np.mean(err2))), n_beta):
        t1 = np.sort((err2 - beta**2) / sigma2)  # alpha² thresholds for 1σ'
        t2 = np.sort((err2 / 4.0 - beta**2) / sigma2)  # and for 2σ'
        cand = np.unique(np.concatenate([t1, t2, [0.0]]).clip(min=0.0))
        c1 = np.searchsorted(t1, cand, side="right") / n
        c2 = np.searchsorted(t2, cand, side="right") / n
        dev = np.maximum(np.abs(c1 - _COVERAGE_1) / w1, np.abs(c2 - _COVERAGE_2) / w2)
        i = int(np.argmin(dev))
        if dev[i] < best[0] - 1e-12:
            best = (float(dev[i]), float(np.sqrt(cand[i])), float(beta))
    alpha = best[1] if best[1] > 0 else float(np.finfo(np.float64).eps)
    return alpha, best[2]


_CALIBRATION_METHODS = ("musil", "ml", "affine", "coverage", "band")


def _check_calibration_method(method: str) -> None:
    if method not in _CALIBRATION_METHODS:
        raise ValueError(
            f"method must be one of {', '.join(map(repr, _CALIBRATION_METHODS))}, got {method!r}"
        )


def fit_calibration(
    err: np.ndarray, sd: np.ndarray, method: str, n_committee
) -> tuple[float, float]:
    """(α, β) of ``σ' = sqrt(α² σ² + β²)`` fitted by ``method`` (one of
    :data:`_CALIBRATION_METHODS`, see ``SparseGPR.calibrate``) to the errors ``err`` and
    uncalibrated standard deviations ``sd`` (checked: finite, 1-D, same length, sd >= 0)
    of a GP whose committee has ``n_committee`` members (0: the GP variance)."""
    var = np.maximum(sd**2, np.finfo(np.float64).tiny)
    err2 = err**2
    ratio = float(np.mean(err2 / var))
    eps = np.finfo(np.float64).eps
    alpha, beta = 1.0, 0.0
    if method == "musil" and n_committee:
        nc = n_committee
        alpha = float(np.sqrt(max(-1.0 / nc + (nc - 3.0) / (nc - 1.0) * ratio, eps)))
    elif method in ("musil", "ml"):
        alpha = float(np.sqrt(max(ratio, eps)))
    elif method in ("coverage", "band"):
        units = _BAND_HALF_WIDTHS if method == "band" else None
        alpha, beta = _coverage_calibration(np.sqrt(err2), np.sqrt(var), units=units)
    else:
        import scipy.optimize

        def nll(p: np.ndarray) -> float:
            v = np.exp(2 * p[0]) * var + np.exp(2 * p[1])
            return float(np.sum(np.log(v) + err2 / v))

        p0 = np.array([0.5 * np.log(max(ratio, eps)), np.log(np.sqrt(np.mean(err2)) / 10 + eps)])
        p = scipy.optimize.minimize(nll, p0, method="Nelder-Mead").x
        alpha, beta = float(np.exp(p[0])), float(np.exp(p[1]))
    return alpha, beta
