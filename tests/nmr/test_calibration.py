"""Calibration: on synthetic problems whose truth is drawn from the model's own noise, the
posterior of each candidate must match how often it is the truth (reliability diagram)."""

from __future__ import annotations

import numpy as np

import matchar as mc

sp = mc.nmr.structure_posterior
MIN_PAIRS = 300  # a "populated" bin: binomial noise sd <= 0.029 there


def reliability(probs, hits, n_bins=10):
    probs, hits = np.concatenate(probs), np.concatenate(hits)
    idx = np.minimum((probs * n_bins).astype(int), n_bins - 1)
    rows = []
    for b in range(n_bins):
        m = idx == b
        if m.sum() >= MIN_PAIRS:
            rows.append((b, int(m.sum()), probs[m].mean(), hits[m].mean()))
    return rows


def synthetic(rng, n_cand, n_sites, marginalize, b=None):
    """Candidates' shieldings, σ, and shifts of a random true candidate, model noise."""
    base = rng.uniform(20.0, 32.0, n_sites)
    pred = base + rng.normal(0.0, 0.45, (n_cand, n_sites))
    std = rng.uniform(0.1, 0.4, (n_cand, n_sites))
    sig = 0.3
    t = rng.integers(n_cand)
    site = rng.permutation(n_sites) if marginalize else np.arange(n_sites)
    b = rng.uniform(-50.0, 50.0) if b is None else b
    noise = rng.normal(0.0, 1.0, n_sites) * np.sqrt(std[t, site] ** 2 + sig**2)
    y = b - pred[t, site] + noise  # slope -1
    return pred, std, y, sig, t


def check(rows, min_bins):
    assert len(rows) >= min_bins, rows
    for b, n, p, f in rows:
        assert abs(f - p) <= 0.05, f"bin {b}: {n} pairs, mean posterior {p:.3f}, frequency {f:.3f}"


def test_calibrated_with_given_assignment():
    rng = np.random.default_rng(2024)
    probs, hits = [], []
    for _ in range(4000):
        pred, std, y, sig, t = synthetic(rng, 5, 6, marginalize=False)
        p = sp(pred, std, y, sigma_exp=sig)
        probs.append(p)
        hits.append(np.arange(5) == t)
    check(reliability(probs, hits), min_bins=5)


def test_calibrated_with_marginalised_assignment():
    rng = np.random.default_rng(7)
    probs, hits = [], []
    for _ in range(1500):
        pred, std, y, sig, t = synthetic(rng, 4, 5, marginalize=True)
        p = sp(pred, std, y, sigma_exp=sig, assignment="marginalize", method="exact")
        probs.append(p)
        hits.append(np.arange(4) == t)
    check(reliability(probs, hits), min_bins=4)


def test_calibrated_with_gaussian_offset_prior():
    rng = np.random.default_rng(99)
    probs, hits = [], []
    for _ in range(2000):
        # the offset comes from the prior the posterior is told about
        pred, std, y, sig, t = synthetic(rng, 5, 4, False, b=rng.normal(10.0, 0.5))
        p = sp(pred, std, y, sigma_exp=sig, offset_prior=(10.0, 0.5))
        probs.append(p)
        hits.append(np.arange(5) == t)
    check(reliability(probs, hits), min_bins=4)


def test_a_wrong_noise_model_is_detected():
    # The diagnostic has power: ignoring the predicted σ (and fitting the offset) makes the
    # posterior overconfident, which the reliability diagram must show.
    rng = np.random.default_rng(5)
    probs, hits = [], []
    for _ in range(1500):
        pred, _std, y, sig, t = synthetic(rng, 5, 6, marginalize=False)
        p = sp(pred, 0.0, y, sigma_exp=sig, offset="fit")
        probs.append(p)
        hits.append(np.arange(5) == t)
    rows = reliability(probs, hits)
    assert max(abs(f - p) for _, _, p, f in rows) > 0.05
