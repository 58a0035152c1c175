"""Brute-force references for matchar.nmr: itertools over assignments, scipy quad over b.

Written from the model itself (docs/nmr.md, eq. 1), not from the closed forms the library
uses: y_j = b + slope * p_{pi(j)} + e_j, e_j ~ N(0, slope^2 s_{pi(j)}^2 + sigma_exp_j^2).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from scipy import integrate, optimize


def _loglik(y, mu, var, b):
    return float(np.sum(-0.5 * np.log(2 * np.pi * var) - 0.5 * (y - mu - b) ** 2 / var))


def log_evidence_one(y, mu, var, offset="marginalize", offset_prior=None):
    """log p(y) for one assignment; mu = slope * predicted, var = total variance (ppm^2)."""
    y, mu, var = (np.asarray(a, dtype=np.float64) for a in (y, mu, var))
    if not isinstance(offset, str):
        return _loglik(y, mu, var, float(offset))
    w = 1.0 / var
    bhat = float(np.sum(w * (y - mu)) / np.sum(w))
    if offset == "fit":
        res = optimize.minimize_scalar(
            lambda b: -_loglik(y, mu, var, b), bracket=(bhat - 1, bhat + 1)
        )
        return -res.fun

    def logf(b):
        v = _loglik(y, mu, var, b)
        if offset_prior is not None:
            m0, s0 = offset_prior
            v += -0.5 * np.log(2 * np.pi * s0**2) - 0.5 * (b - m0) ** 2 / s0**2
        return v

    center = bhat
    if offset_prior is not None:
        m0, s0 = offset_prior
        w0 = 1 / s0**2
        center = (np.sum(w * (y - mu)) + w0 * m0) / (np.sum(w) + w0)
    sd = 1.0 / math.sqrt(np.sum(w))
    top = logf(center)
    val, _ = integrate.quad(
        lambda b: math.exp(logf(b) - top),
        center - 40 * sd,
        center + 40 * sd,
        points=[center],
        epsabs=0.0,
        epsrel=1e-13,
        limit=500,
    )
    return top + math.log(val)


def log_evidence(y, mu, var, assignment_groups=None, offset="marginalize", offset_prior=None):
    """log p(y | candidate) summed over every assignment within the groups (uniform prior).

    mu, var: (n_peaks,) model mean/variance per predicted peak; var[k] + var_exp[j] must be
    passed as a function: here var is (n_peaks, n_peaks) total variance of peak j on site k.
    """
    y = np.asarray(y, dtype=np.float64)
    n = y.size
    if assignment_groups is None:
        return log_evidence_one(y, mu, np.diag(var), offset, offset_prior)
    labels = np.asarray(assignment_groups)
    blocks = [np.flatnonzero(labels == g) for g in np.unique(labels)]
    terms = []
    for combo in itertools.product(*[itertools.permutations(b) for b in blocks]):
        site = np.empty(n, dtype=int)
        for block, chosen in zip(blocks, combo):
            site[block] = chosen
        terms.append(log_evidence_one(y, mu[site], var[np.arange(n), site], offset, offset_prior))
    log_count = sum(math.lgamma(len(b) + 1) for b in blocks)
    return float(np.logaddexp.reduce(terms) - log_count)


def reference_posterior(
    predicted,
    predicted_std,
    experimental,
    sigma_exp,
    slope=-1.0,
    assignment_groups=None,
    offset="marginalize",
    offset_prior=None,
    prior=None,
):
    """Posterior over candidates (rows of predicted) and the log-evidences, brute force."""
    pred = np.asarray(predicted, dtype=np.float64)
    std = np.broadcast_to(np.asarray(predicted_std, dtype=np.float64), pred.shape)
    sig = np.broadcast_to(np.asarray(sigma_exp, dtype=np.float64), pred.shape[1:])
    logz = []
    for c in range(pred.shape[0]):
        mu = slope * pred[c]
        var = slope**2 * std[c][None, :] ** 2 + sig[:, None] ** 2  # (peak j, site k)
        logz.append(log_evidence(experimental, mu, var, assignment_groups, offset, offset_prior))
    logz = np.array(logz)
    lp = np.zeros_like(logz) if prior is None else np.log(np.asarray(prior) / np.sum(prior))
    joint = logz + lp
    post = np.exp(joint - np.logaddexp.reduce(joint))
    return post, logz


def random_problem(rng, n_cand, n_sites, spread=8.0, noise=0.5, dtype=np.float64):
    """Shieldings of n_cand candidates, their σ, experimental shifts and σ_exp."""
    truth = rng.uniform(0.0, spread, n_sites)
    pred = -(truth[None, :] + rng.normal(0.0, noise, (n_cand, n_sites))) + 30.0
    std = rng.uniform(0.1, 0.4, (n_cand, n_sites))
    y = truth + rng.normal(0.0, 0.3, n_sites)
    return pred.astype(dtype), std.astype(dtype), y, 0.3
