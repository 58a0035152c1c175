"""Assignment marginals and per-peak contributions with marginalised assignments.

References are brute force in NumPy: itertools over the permutations (optionally only
those within a band), with the offset integrated per permutation in closed form.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from nmr_reference import log_evidence_one, random_problem

import matchar as mc

sp = mc.nmr.structure_posterior
perm_marginals = mc._core.nmr.permanent_marginals


def _brute_marginals(la, band=None):
    k = la.shape[0]
    perms = [
        p
        for p in itertools.permutations(range(k))
        if band is None or all(abs(p[i] - i) <= band for i in range(k))
    ]
    vals = np.array([la[np.arange(k), list(p)].sum() for p in perms])
    logz = np.logaddexp.reduce(vals)
    m = np.zeros((k, k))
    for p, w in zip(perms, np.exp(vals - logz)):
        m[np.arange(k), list(p)] += w
    return logz, m


@pytest.mark.parametrize("k", [1, 2, 3, 5, 7])
@pytest.mark.parametrize("band", [None, 0, 1, 2, 3])
def test_permanent_marginals_kernel(k, band):
    rng = np.random.default_rng(k * 10 + (band or 9))
    la = rng.normal(0.0, 2.0, (k, k))
    la[0, -1] = -800.0  # a near-zero entry (linear recursion must not lose it)
    ref_logz, ref = _brute_marginals(la, band)
    logz, m = perm_marginals(la, -1 if band is None else band)
    assert logz == pytest.approx(ref_logz, rel=1e-12, abs=1e-12)
    np.testing.assert_allclose(m, ref, atol=1e-12)
    # non-contiguous input, and the input is not modified
    big = np.zeros((k, 2 * k))
    big[:, ::2] = la
    before = big.copy()
    logz2, m2 = perm_marginals(big[:, ::2], -1 if band is None else band)
    np.testing.assert_array_equal(big, before)
    assert logz2 == logz
    np.testing.assert_array_equal(m2, m)


@pytest.mark.parametrize("k", [2, 4, 5, 7])
def test_permanent_marginals_when_every_matching_underflows(k):
    """Shifts entered in Hz (400 times the ppm) against predictions in ppm: every
    matching's weight is below 1e-300 even after balancing the matrix, so the marginals
    come from the log-space recursion, against brute force in log space (it used to
    raise "the assignment marginals underflowed")."""
    rng = np.random.default_rng(k)
    x = np.sort(rng.uniform(0.0, 8.0, k))
    y = 400.0 * (x + rng.normal(0.0, 0.3, k))
    la = -((y[:, None] - x[None, :] - 2.0) ** 2) / (2 * 0.33**2)
    ref_logz, ref = _brute_marginals(la)
    assert ref_logz < -1e5
    logz, m = perm_marginals(la, -1)
    assert logz == pytest.approx(ref_logz, rel=1e-12)
    np.testing.assert_allclose(m, ref, atol=1e-9)
    np.testing.assert_allclose(m.sum(axis=1), 1.0, rtol=1e-12)


def test_banded_kernel_far_from_diagonal_weight():
    # Weight that needs long moves: the band drops it, and says so when nothing remains.
    la = np.full((5, 5), -1e3)
    la[np.arange(5), np.arange(5)[::-1]] = 0.0
    with pytest.raises(ValueError, match="band"):
        perm_marginals(np.where(np.eye(5) > 0, -np.inf, la), 1)
    logz, m = perm_marginals(la, 4)
    np.testing.assert_allclose(m, np.eye(5)[::-1], atol=1e-12)
    assert logz == pytest.approx(0.0, abs=1e-12)


def _brute_posterior_details(pred, std, y, sig, slope=-1.0, labels=None, offset_prior=None):
    """P[c, j, k], posterior-mean offset and expected per-peak log-likelihoods."""
    n_cand, n = pred.shape
    labels = np.zeros(n, int) if labels is None else np.asarray(labels)
    blocks = [np.flatnonzero(labels == g) for g in np.unique(labels)]
    P = np.zeros((n_cand, n, n))
    bmean = np.zeros(n_cand)
    site = np.zeros((n_cand, n))
    for c in range(n_cand):
        mu = slope * pred[c]
        var = slope**2 * std[c][None, :] ** 2 + np.full((n, 1), sig**2)  # (peak j, site k)
        terms, bhats, sites = [], [], []
        for combo in itertools.product(*[itertools.permutations(b) for b in blocks]):
            s = np.empty(n, dtype=int)
            for block, chosen in zip(blocks, combo):
                s[block] = chosen
            v = var[np.arange(n), s]
            # Gaussian integral over b in closed form (the prior as a pseudo-observation);
            # checked against scipy quad in test_offset_integral_closed_form below.
            r, w = y - mu[s], 1.0 / v
            rr, ww = r, w
            if offset_prior is not None:
                rr = np.append(r, offset_prior[0])
                ww = np.append(w, 1.0 / offset_prior[1] ** 2)
            bh = np.sum(ww * rr) / np.sum(ww)
            terms.append(_closed_form(r, v, offset_prior))
            bhats.append(bh)  # posterior mean of b for this assignment
            sites.append(s)
        wts = np.exp(np.array(terms) - np.logaddexp.reduce(terms))
        for s, wt, bh in zip(sites, wts, bhats):
            P[c, np.arange(n), s] += wt
            bmean[c] += wt * bh
        ll = -0.5 * np.log(2 * np.pi * var) - 0.5 * (y[:, None] - bmean[c] - mu[None, :]) ** 2 / var
        site[c] = (P[c] * ll).sum(axis=1)
    return P, bmean, site


def _closed_form(r, v, offset_prior):
    """log of the integral over b of prod_j N(r_j; b, v_j) (times the prior N(b; m, s^2))."""
    w = 1.0 / v
    rr, ww, lc = r, w, -0.5 * np.sum(np.log(2 * np.pi * v))
    if offset_prior is not None:
        rr = np.append(r, offset_prior[0])
        ww = np.append(w, 1.0 / offset_prior[1] ** 2)
        lc += -0.5 * np.log(2 * np.pi * offset_prior[1] ** 2)
    bh = np.sum(ww * rr) / np.sum(ww)
    return lc - 0.5 * np.sum(ww * (rr - bh) ** 2) + 0.5 * np.log(2 * np.pi / np.sum(ww))


@pytest.mark.parametrize("offset_prior", [None, (1.0, 0.7)])
def test_offset_integral_closed_form(offset_prior):
    rng = np.random.default_rng(0)
    r, v = rng.normal(0.5, 0.3, 5), rng.uniform(0.05, 0.2, 5)
    assert _closed_form(r, v, offset_prior) == pytest.approx(
        log_evidence_one(r, np.zeros(5), v, "marginalize", offset_prior), abs=1e-10
    )


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    "labels, offset_prior, method",
    [
        (None, None, "quadrature"),
        ((0, 1, 0, 1, 0, 1, 1), None, "quadrature"),
        (None, (29.0, 1.5), "quadrature"),
        (None, None, "exact"),
        (None, None, "banded"),  # band 6 >= 7 - 1: all permutations
    ],
)
def test_assignment_probabilities_match_bruteforce(dtype, labels, offset_prior, method):
    rng = np.random.default_rng(5)
    pred, std, y, sig = random_problem(rng, 3, 7, spread=4.0, dtype=dtype)
    P, bmean, site = _brute_posterior_details(
        pred.astype(np.float64),
        std.astype(np.float64),
        y,
        sig,
        labels=labels,
        offset_prior=offset_prior,
    )
    res = sp(
        pred,
        std,
        y,
        sigma_exp=sig,
        assignment="marginalize",
        assignment_groups=labels,
        offset_prior=offset_prior,
        method=method,
        band=6,
        return_details=True,
    )
    t = res.nuclei["shifts"]
    tol = 1e-9 if dtype == np.float64 and method != "banded" else 2e-4
    got = t.assignment_probabilities
    assert got.shape == (3, 7, 7)
    np.testing.assert_allclose(got, P, atol=tol)
    np.testing.assert_allclose(got.sum(axis=2), 1.0, atol=1e-12)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-9)
    if labels is not None:  # no mass across assignment groups
        lab = np.asarray(labels)
        assert np.all(got[:, lab[:, None] != lab[None, :]] == 0.0)
    np.testing.assert_allclose(t.offset, bmean, atol=100 * tol)
    np.testing.assert_allclose(t.site_log_likelihood, site, atol=100 * tol)
    np.testing.assert_allclose(
        t.site_log_likelihood.sum(axis=1) + t.offset_log_term, t.log_evidence, atol=1e-12
    )


def test_banded_marginals_within_band_match_restricted_bruteforce():
    # A fixed offset (one node): the marginals are those of the band-restricted sum over
    # permutations in sorted order, checked by brute force over exactly those.
    rng = np.random.default_rng(12)
    pred, std, y, sig = random_problem(rng, 2, 7, spread=3.0)
    res = sp(
        pred,
        std,
        y,
        sigma_exp=sig,
        assignment="marginalize",
        method="banded",
        band=2,
        offset=30.0,
        return_details=True,
    )
    t = res.nuclei["shifts"]
    for c in range(2):
        mu = -pred[c]
        var = std[c][None, :] ** 2 + sig**2
        la = -0.5 * np.log(2 * np.pi * var) - 0.5 * (y[:, None] - 30.0 - mu[None, :]) ** 2 / var
        ro, co = np.argsort(y, kind="stable"), np.argsort(mu, kind="stable")
        logz, m = _brute_marginals(la[np.ix_(ro, co)], band=2)
        ref = np.zeros((7, 7))
        ref[np.ix_(ro, co)] = m
        np.testing.assert_allclose(t.assignment_probabilities[c], ref, atol=1e-12)
        assert t.log_evidence[c] == pytest.approx(logz - math.lgamma(8), abs=1e-10)


def test_given_assignment_probabilities_are_identity_and_fit_has_none():
    rng = np.random.default_rng(3)
    pred, std, y, sig = random_problem(rng, 2, 4)
    g = sp(pred, std, y, sigma_exp=sig, return_details=True).nuclei["shifts"]
    np.testing.assert_array_equal(g.assignment_probabilities, np.broadcast_to(np.eye(4), (2, 4, 4)))
    f = sp(
        pred, std, y, sigma_exp=sig, assignment="marginalize", offset="fit", return_details=True
    ).nuclei["shifts"]
    assert f.assignment_probabilities is None and f.site_log_likelihood is None


def test_sampling_details_come_from_the_exact_quadrature():
    rng = np.random.default_rng(4)
    pred, std, y, sig = random_problem(rng, 2, 6)
    kw = dict(sigma_exp=sig, assignment="marginalize", return_details=True)
    s = sp(pred, std, y, method="sampling", n_samples=50, **kw).nuclei["shifts"]
    q = sp(pred, std, y, method="quadrature", **kw).nuclei["shifts"]
    np.testing.assert_array_equal(s.assignment_probabilities, q.assignment_probabilities)
    np.testing.assert_array_equal(s.site_log_likelihood, q.site_log_likelihood)


def test_discriminating_peak_shows_in_site_contributions():
    # Candidate 1 differs from the truth at one peak, far from every other: that peak's
    # expected contribution is where candidate 1 loses.
    y = np.array([1.0, 3.0, 5.0, 7.0, 9.0])
    good = -(y - 30.0)
    bad = good.copy()
    bad[2] -= 1.5  # predicts 6.5 ppm for the 5 ppm peak
    res = sp(
        np.stack([good, bad]), 0.1, y, sigma_exp=0.2, assignment="marginalize", return_details=True
    )
    diff = res.site_log_likelihood[0] - res.site_log_likelihood[1]
    assert np.argmax(diff) == 2 and diff[2] > 5.0


@pytest.mark.parametrize("band", [0, 11, 2.5, "3"])
def test_bad_band(band):
    with pytest.raises(ValueError, match="band"):
        sp(
            np.ones((2, 3)),
            0.1,
            np.ones(3),
            sigma_exp=0.1,
            assignment="marginalize",
            method="banded",
            band=band,
        )
