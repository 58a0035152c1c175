"""matchar.nmr.structure_posterior against brute-force references (tests/nmr/nmr_reference.py)."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
from nmr_reference import random_problem, reference_posterior

import matchar as mc

sp = mc.nmr.structure_posterior


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "offset,offset_prior",
    [("marginalize", None), ("marginalize", (29.0, 2.0)), ("fit", None), (30.5, None)],
)
@pytest.mark.parametrize("shape", [(1, 1), (3, 4), (7, 13)])
def test_given_assignment_matches_quad(dtype, offset, offset_prior, shape):
    rng = np.random.default_rng(sum(shape))
    pred, std, y, sig = random_problem(rng, *shape, dtype=dtype)
    res = sp(
        pred, std, y, sigma_exp=sig, offset=offset, offset_prior=offset_prior, return_details=True
    )
    ref_p, ref_z = reference_posterior(pred, std, y, sig, offset=offset, offset_prior=offset_prior)
    tol = 1e-9 if dtype == np.float64 else 2e-4
    np.testing.assert_allclose(res.log_evidence, ref_z, rtol=0, atol=tol * max(1, shape[1]))
    np.testing.assert_allclose(res.probabilities, ref_p, rtol=0, atol=tol * 10)
    assert res.probabilities.sum() == pytest.approx(1.0, abs=1e-12)


def test_site_contributions_and_offset():
    rng = np.random.default_rng(3)
    pred, std, y, sig = random_problem(rng, 4, 6)
    res = sp(pred, std, y, sigma_exp=sig, return_details=True)
    t = res.nuclei["shifts"]
    np.testing.assert_allclose(
        t.site_log_likelihood.sum(1) + t.offset_log_term, res.log_evidence, atol=1e-12
    )
    # flat prior: the posterior mean of the offset is the precision-weighted mean residual
    var = std**2 + sig**2
    b = np.sum((y + pred) / var, axis=1) / np.sum(1 / var, axis=1)
    np.testing.assert_allclose(t.offset, b, rtol=1e-12)
    # a fitted offset gives the same site terms at the same b and no Occam factor
    fit = sp(pred, std, y, sigma_exp=sig, offset="fit", return_details=True).nuclei["shifts"]
    np.testing.assert_allclose(fit.offset, b, rtol=1e-12)
    np.testing.assert_allclose(fit.site_log_likelihood, t.site_log_likelihood, atol=1e-12)


@functools.cache
def _bruteforce_case(dtype, labels, offset, offset_prior):
    n = 5 if labels is None else len(labels)
    rng = np.random.default_rng(11)
    pred, std, y, sig = random_problem(rng, 2, n, spread=3.0, dtype=np.dtype(dtype))
    ref_labels = np.zeros(n, int) if labels is None else labels
    ref_p, ref_z = reference_posterior(
        pred, std, y, sig, assignment_groups=ref_labels, offset=offset, offset_prior=offset_prior
    )
    return pred, std, y, sig, ref_p, ref_z


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("method", ["exact", "quadrature"])
@pytest.mark.parametrize(
    "labels,offset,offset_prior",
    [
        (None, "marginalize", None),
        ((0, 0, 1, 1, 1, 2), "marginalize", None),
        ((0, 1, 0, 1, 0, 1), "marginalize", (29.0, 1.5)),
        ((0, 0, 0, 1, 1, 1), 30.2, None),
        ((0, 0, 0, 0, 1), "fit", None),
    ],
)
def test_marginalised_assignment_matches_bruteforce(dtype, method, labels, offset, offset_prior):
    if offset == "fit" and method != "exact":
        pytest.skip("a fitted offset with marginalised assignments is enumeration-only")
    pred, std, y, sig, ref_p, ref_z = _bruteforce_case(dtype, labels, offset, offset_prior)
    res = sp(
        pred,
        std,
        y,
        sigma_exp=sig,
        assignment="marginalize",
        assignment_groups=labels,
        offset=offset,
        offset_prior=offset_prior,
        method=method,
        return_details=True,
    )
    tol = 1e-9 if dtype == "float64" else 1e-4
    np.testing.assert_allclose(res.log_evidence, ref_z, rtol=0, atol=tol)
    np.testing.assert_allclose(res.probabilities, ref_p, rtol=0, atol=tol)


@pytest.mark.parametrize("method", ["exact", "quadrature", "bethe", "sampling"])
def test_singleton_groups_reduce_to_given(method):
    rng = np.random.default_rng(5)
    pred, std, y, sig = random_problem(rng, 5, 9)
    given = sp(pred, std, y, sigma_exp=sig, return_details=True)
    marg = sp(
        pred,
        std,
        y,
        sigma_exp=sig,
        assignment="marginalize",
        assignment_groups=np.arange(9),
        method=method,
        return_details=True,
    )
    # Bethe/sampling use a coarser offset grid: exact to its trapezoid error (~1e-4)
    tol = 1e-10 if method in ("exact", "quadrature") else 1e-3
    np.testing.assert_allclose(marg.log_evidence, given.log_evidence, atol=tol)


def test_enumeration_with_thousands_of_fixed_peaks():
    # singleton groups are walked without recursion (no stack overflow), one group permuted
    rng = np.random.default_rng(9)
    pred, std, y, sig = random_problem(rng, 3, 3000, spread=20.0)
    labels = np.arange(3000)
    labels[:3] = 0
    kw = dict(
        sigma_exp=sig, assignment="marginalize", assignment_groups=labels, return_details=True
    )
    a = sp(pred, std, y, method="exact", **kw)
    b = sp(pred, std, y, method="quadrature", **kw)
    np.testing.assert_allclose(a.log_evidence, b.log_evidence, rtol=0, atol=1e-8)


def test_exact_methods_agree_at_ten_sites():
    rng = np.random.default_rng(8)
    pred, std, y, sig = random_problem(rng, 2, 10, spread=4.0)
    kw = dict(sigma_exp=sig, assignment="marginalize", return_details=True)
    a = sp(pred, std, y, method="exact", **kw)
    b = sp(pred, std, y, method="quadrature", **kw)
    np.testing.assert_allclose(a.log_evidence, b.log_evidence, atol=1e-9)


def test_non_contiguous_inputs():
    rng = np.random.default_rng(6)
    big_pred = rng.normal(25, 3, (10, 16))
    big_std = rng.uniform(0.1, 0.3, (10, 16))
    pred, std = big_pred[::2, ::3], big_std[::2, ::3]  # (5, 6), strided views
    y = rng.normal(5, 3, 6)
    for assignment in ("given", "marginalize"):
        a = sp(pred, std, y, sigma_exp=0.3, assignment=assignment, return_details=True)
        b = sp(
            np.ascontiguousarray(pred),
            np.ascontiguousarray(std),
            y,
            sigma_exp=0.3,
            assignment=assignment,
            return_details=True,
        )
        c = sp(
            np.asfortranarray(pred),
            np.asfortranarray(std),
            y,
            sigma_exp=0.3,
            assignment=assignment,
            return_details=True,
        )
        np.testing.assert_array_equal(a.log_evidence, b.log_evidence)
        np.testing.assert_array_equal(a.log_evidence, c.log_evidence)


@pytest.mark.parametrize(
    "kw",
    [
        dict(),
        dict(assignment="marginalize", method="exact"),
        dict(assignment="marginalize", method="quadrature"),
        dict(assignment="marginalize", method="bethe", exact_group_size=2),
        dict(assignment="marginalize", method="sampling"),
        dict(assignment="marginalize", method="banded"),
        dict(assignment="marginalize", method="banded", band=2),
    ],
)
@pytest.mark.filterwarnings("ignore:shifts. the adaptive band stopped")  # 8 sites in 5 ppm
def test_offset_invariance(kw):
    rng = np.random.default_rng(12)
    pred, std, y, sig = random_problem(rng, 6, 8, spread=5.0)
    p0 = sp(pred, std, y, sigma_exp=sig, **kw)
    for shift in (123.456, -1e3, 0.1):
        p1 = sp(pred, std, y + shift, sigma_exp=sig, **kw)
        assert np.max(np.abs(p1 - p0)) < 1e-9
    # shifting every prediction by a constant is the same (slope -1: opposite sign)
    p2 = sp(pred + 17.25, std, y, sigma_exp=sig, **kw)
    assert np.max(np.abs(p2 - p0)) < 1e-9


@pytest.mark.parametrize("assignment", ["given", "marginalize"])
def test_identical_candidates_give_uniform_posterior(assignment):
    rng = np.random.default_rng(13)
    pred, std, y, sig = random_problem(rng, 1, 7)
    p = sp(np.repeat(pred, 5, 0), np.repeat(std, 5, 0), y, sigma_exp=sig, assignment=assignment)
    np.testing.assert_array_equal(p, np.full(5, 0.2))


def test_many_sites_do_not_underflow():
    rng = np.random.default_rng(14)
    pred, std, y, sig = random_problem(rng, 4, 20000, spread=200.0)
    res = sp(pred, std, y, sigma_exp=sig, return_details=True)
    assert np.all(np.isfinite(res.log_evidence)) and res.log_evidence.max() < -1000
    assert np.all(np.isfinite(res.probabilities)) and res.probabilities.sum() == pytest.approx(1)
    # a hopeless candidate: probability exactly 0 after exp, never NaN
    pred[1] += rng.normal(0, 5, pred.shape[1])
    p = sp(pred, std, y, sigma_exp=sig)
    assert np.all(np.isfinite(p)) and p[1] == 0.0


def test_slope_and_shifts():
    rng = np.random.default_rng(15)
    pred, std, y, sig = random_problem(rng, 4, 6)
    a = sp(pred, std, y, sigma_exp=sig, return_details=True)  # shieldings, slope -1
    b = sp(-pred, std, y, sigma_exp=sig, slope=1.0, return_details=True)  # as shifts
    np.testing.assert_allclose(a.log_evidence, b.log_evidence, atol=1e-12)
    # a calibrated slope scales the predicted σ as well
    c = sp(pred, std, y, sigma_exp=sig, slope=-1.1, return_details=True)
    _ref_p, ref_z = reference_posterior(pred, std, y, sig, slope=-1.1)
    np.testing.assert_allclose(c.log_evidence, ref_z, atol=1e-9)
    # a full known calibration (slope and offset) is a plain Gaussian likelihood
    d = sp(pred, std, y, sigma_exp=sig, slope=-1.1, offset=33.0, return_details=True)
    var = 1.21 * std**2 + sig**2
    manual = np.sum(-0.5 * np.log(2 * np.pi * var) - 0.5 * (y - 33.0 + 1.1 * pred) ** 2 / var, 1)
    np.testing.assert_allclose(d.log_evidence, manual, atol=1e-10)


def test_equivalent_site_groups_average_predictions():
    rng = np.random.default_rng(16)
    pred = rng.normal(25, 3, (3, 7))
    std = rng.uniform(0.1, 0.3, (3, 7))
    groups = np.array([0, 0, 0, 1, 2, 2, 3])  # e.g. a methyl and a CH2
    y = rng.normal(5, 3, 4)
    res = sp(pred, std, y, sigma_exp=0.3, groups=groups, return_details=True)
    avg_p = np.stack([pred[:, groups == g].mean(1) for g in range(4)], 1)
    avg_s = np.stack([std[:, groups == g].mean(1) for g in range(4)], 1)
    _, ref_z = reference_posterior(avg_p, avg_s, y, 0.3)
    np.testing.assert_allclose(res.log_evidence, ref_z, atol=1e-9)
    with pytest.raises(ValueError, match="experimental has 5 shifts but predicted has 4"):
        sp(pred, std, np.ones(5), sigma_exp=0.3, groups=groups)
    with pytest.raises(ValueError, match="groups must use every peak"):
        sp(pred, std, y, sigma_exp=0.3, groups=[0, 0, 0, 1, 2, 2, 4])


def test_nuclei_combine_with_their_own_offsets():
    rng = np.random.default_rng(17)
    ph, sh, yh, _ = random_problem(rng, 4, 5)
    pc, sc, yc, _ = random_problem(rng, 4, 6, spread=150.0, noise=3.0)
    both = sp(
        {"H": ph, "C": pc},
        {"H": sh, "C": sc},
        {"H": yh, "C": yc},
        sigma_exp={"H": 0.3, "C": 2.0},
        assignment={"H": "given", "C": "marginalize"},
        return_details=True,
    )
    h = sp(ph, sh, yh, sigma_exp=0.3, return_details=True)
    c = sp(pc, sc, yc, sigma_exp=2.0, assignment="marginalize", return_details=True)
    np.testing.assert_allclose(both.log_evidence, h.log_evidence + c.log_evidence, atol=1e-10)
    prod = h.probabilities * c.probabilities
    np.testing.assert_allclose(both.probabilities, prod / prod.sum(), atol=1e-12)
    assert set(both.site_log_likelihood) == {"H", "C"}
    np.testing.assert_allclose(both.site_log_likelihood["C"], c.site_log_likelihood, atol=1e-12)
    assert both.site_log_likelihood["H"].shape == (4, 5)
    # offset invariance holds per nucleus
    moved = sp(
        {"H": ph, "C": pc},
        {"H": sh, "C": sc},
        {"H": yh + 3.0, "C": yc - 40.0},
        sigma_exp={"H": 0.3, "C": 2.0},
        assignment={"H": "given", "C": "marginalize"},
    )
    assert np.max(np.abs(moved - both.probabilities)) < 1e-9


def test_prior_weights():
    rng = np.random.default_rng(18)
    pred, std, y, sig = random_problem(rng, 4, 5)
    prior = np.array([1.0, 0.0, 2.0, 1.0])
    res = sp(pred, std, y, sigma_exp=sig, prior=prior, return_details=True)
    ref_p, _ = reference_posterior(pred, std, y, sig, prior=np.where(prior > 0, prior, 1e-300))
    assert res.probabilities[1] == 0.0 and np.isneginf(res.log_posterior[1])
    np.testing.assert_allclose(res.probabilities, ref_p, atol=1e-12)


def test_missing_sites_error_or_drop_consistently():
    rng = np.random.default_rng(19)
    pred, std, y, sig = random_problem(rng, 4, 6)
    pred[2, 3] = np.nan
    with pytest.raises(ValueError, match=r"missing values.*\(2, 3\).*missing='drop'"):
        sp(pred, std, y, sigma_exp=sig)
    res = sp(pred, std, y, sigma_exp=sig, missing="drop", return_details=True)
    keep = [0, 1, 2, 4, 5]
    ref = sp(pred[:, keep], std[:, keep], y[keep], sigma_exp=sig, return_details=True)
    np.testing.assert_array_equal(res.log_evidence, ref.log_evidence)
    np.testing.assert_array_equal(res.nuclei["shifts"].kept_peaks, keep)
    y2 = y.copy()
    y2[0] = np.nan
    with pytest.raises(ValueError, match=r"experimental peaks \[0\]"):
        sp(pred[:, keep], std[:, keep], y2[keep], sigma_exp=sig)
    res2 = sp(
        pred, std, y2, sigma_exp=sig, missing="drop", assignment="marginalize", return_details=True
    )
    np.testing.assert_array_equal(res2.nuclei["shifts"].kept_peaks, [1, 2, 4, 5])
    with pytest.raises(ValueError, match="every peak"):
        sp(pred, std, np.full(6, np.nan), sigma_exp=sig, missing="drop")


def test_inputs_are_not_modified():
    rng = np.random.default_rng(20)
    pred, std, y, sig = random_problem(rng, 3, 5)
    copies = [a.copy() for a in (pred, std, y)]
    sp(pred, std, y, sigma_exp=sig, assignment="marginalize", groups=[0, 1, 2, 3, 4])
    for a, b in zip((pred, std, y), copies):
        np.testing.assert_array_equal(a, b)


def test_exact_enumeration_limit():
    rng = np.random.default_rng(21)
    pred, std, y, sig = random_problem(rng, 2, 12)
    with pytest.raises(ValueError, match="max_permutations"):
        sp(pred, std, y, sigma_exp=sig, assignment="marginalize", method="exact")
    with pytest.raises(ValueError, match="up to 20 peaks"):
        pred, std, y, sig = random_problem(rng, 2, 21)
        sp(pred, std, y, sigma_exp=sig, assignment="marginalize", method="quadrature")


ONES = np.ones((2, 3))


@pytest.mark.parametrize(
    ("args", "kw", "match"),
    [
        ((np.ones(3), ONES, np.ones(3)), {}, r"predicted must be a 2-D array"),
        ((ONES, ONES, np.ones(4)), {}, r"experimental has 4 shifts but predicted has 3"),
        ((ONES, np.ones((2, 4)), np.ones(3)), {}, r"predicted_std must be a scalar or have"),
        ((ONES, -ONES, np.ones(3)), {}, r"predicted_std must be finite and >= 0"),
        ((ONES, 0.0, np.ones(3)), {}, r"zero variance .* sigma_exp"),
        ((ONES, None, np.ones(3)), {}, r"zero variance"),
        ((ONES, ONES, np.ones(3)), dict(sigma_exp=-1.0), r"sigma_exp must be finite and >= 0"),
        ((ONES, ONES, np.ones(3)), dict(sigma_exp=[1, 2]), r"sigma_exp must be a scalar or"),
        ((ONES * np.inf, ONES, np.ones(3)), {}, r"predicted holds infinite"),
        ((ONES, ONES, [1, np.inf, 2]), {}, r"experimental holds infinite"),
        ((ONES, ONES, np.ones(3)), dict(assignment="guess"), r"assignment must be 'given'"),
        ((ONES, ONES, np.ones(3)), dict(offset="float"), r"offset must be 'marginalize'"),
        ((ONES, ONES, np.ones(3)), dict(offset=np.nan), r"offset must be finite"),
        ((ONES, ONES, np.ones(3)), dict(offset_prior=(0, 0)), r"offset_prior std must be > 0"),
        ((ONES, ONES, np.ones(3)), dict(offset="fit", offset_prior=(0, 1)), r"only applies"),
        ((ONES, ONES, np.ones(3)), dict(slope=0.0), r"slope must be non-zero"),
        ((ONES, ONES, np.ones(3)), dict(prior=[1, 2, 3]), r"prior must have one weight"),
        ((ONES, ONES, np.ones(3)), dict(prior=[-1, 2]), r"prior must hold finite"),
        ((ONES, ONES, np.ones(3)), dict(prior=[0, 0]), r"positive sum"),
        ((ONES, ONES, np.ones(3)), dict(missing="skip"), r"missing must be"),
        ((ONES, ONES, np.ones(3)), dict(assignment="marginalize", method="magic"), r"method"),
        (
            (ONES, ONES, np.ones(3)),
            dict(assignment="marginalize", method="quadrature", offset="fit"),
            r"offset='fit'",
        ),
        ((ONES, ONES, np.ones(3)), dict(assignment_groups=[0, 1]), r"assignment_groups must"),
        ((ONES, ONES, np.ones(3)), dict(groups=[0.5, 1, 2]), r"groups must hold integer"),
        ((ONES, ONES, np.ones(3)), dict(groups=[-1, 0, 1]), r"groups labels must be >= 0"),
        ((np.ones((2, 0)), ONES, np.ones(3)), {}, r"predicted is empty"),
        ((ONES.astype(complex), ONES, np.ones(3)), {}, r"predicted must hold real numbers"),
        (({"H": ONES}, ONES, np.ones(3)), {}, r"experimental must be a dict"),
        (({"H": ONES}, ONES, {"C": np.ones(3)}), {}, r"experimental must have the same nuclei"),
        (
            ({"H": ONES, "C": np.ones((3, 3))}, 1.0, {"H": np.ones(3), "C": np.ones(3)}),
            {},
            r"has 3 candidates",
        ),
        ((ONES, ONES, {"H": np.ones(3)}), {}, r"experimental is a dict"),
        ((ONES, ONES, np.ones(3)), dict(slope={"H": 1.0}), r"slope is a dict"),
        (
            ({"H": ONES}, ONES, {"H": np.ones(3)}),
            dict(sigma_exp={"C": 1.0}),
            r"sigma_exp is a dict without an entry for nucleus 'H'",
        ),
        ((ONES, ONES, np.ones(3)), dict(n_samples=0), r"n_samples"),
    ],
)
def test_bad_input(args, kw, match):
    with pytest.raises(ValueError, match=match):
        sp(*args, **kw)


def test_log_permanent_kernel_against_itertools():
    import itertools

    rng = np.random.default_rng(22)
    for k in (1, 2, 3, 5, 7):
        la = rng.normal(0, 3, (k, k))
        exact = np.logaddexp.reduce(
            [la[np.arange(k), list(p)].sum() for p in itertools.permutations(range(k))]
        )
        assert mc._core.nmr.log_permanent(la) == pytest.approx(exact, abs=1e-12)
        bethe = mc._core.nmr.log_permanent(la, bethe=True)
        assert bethe <= exact + 1e-9  # Gurvits: the Bethe permanent is a lower bound
        assert bethe >= exact - k * math.log(2) / 2 - 1e-9  # and within 2^(k/2)
    # matchings that would underflow a linear-space recursion
    la = np.array([[-800.0, 0.0], [0.0, -2000.0]])
    assert mc._core.nmr.log_permanent(la) == pytest.approx(0.0, abs=1e-12)
    la = np.array([[0.0, -900.0], [-900.0, -1500.0]]) + 0.0
    la[0, 0] = -1000.0
    exact = np.logaddexp(la[0, 0] + la[1, 1], la[0, 1] + la[1, 0])
    assert mc._core.nmr.log_permanent(la) == pytest.approx(exact, rel=1e-12)


def test_plots():
    mpl = pytest.importorskip("matplotlib")
    mpl.use("Agg")
    rng = np.random.default_rng(23)
    pred, std, y, sig = random_problem(rng, 5, 6)
    res = sp(pred, std, y, sigma_exp=sig, return_details=True)
    ax = res.plot(labels=[f"form {i}" for i in range(5)], top=3)
    heights = next(line.get_ydata() for line in ax.get_lines())
    np.testing.assert_allclose(heights, np.sort(res.probabilities)[::-1][:3])
    ax = res.plot_parity(int(np.argmax(res.probabilities)))
    assert ax.get_xlabel().startswith("predicted shift")
    marg = sp(pred, std, y, sigma_exp=sig, assignment="marginalize", return_details=True)
    # marginalised: each peak against its most probable site, at the posterior-mean offset
    ax = marg.plot_parity(0)
    t = marg.nuclei["shifts"]
    site = np.argmax(t.assignment_probabilities[0], axis=1)
    x = ax.get_lines()[0].get_xdata()
    np.testing.assert_allclose(x, t.model_mean[0, site] + t.offset[0])
    fit = sp(
        pred, std, y, sigma_exp=sig, assignment="marginalize", offset="fit", return_details=True
    )
    with pytest.raises(ValueError, match="single offset"):
        fit.plot_parity(0)
    with pytest.raises(ValueError, match="labels must have 5"):
        res.plot(labels=["a"])
