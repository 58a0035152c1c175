"""Bad input to the NMR functions: a clear error naming the argument, or the right answer
(a flat posterior for huge uncertainties, the known-offset limit of a very narrow prior),
never NaN, a ZeroDivisionError or a "math domain error"."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

import matchar as mc

PRED = np.array([[30.1, 27.9, 24.2], [29.0, 28.5, 24.0]])
EXP = np.array([1.2, 3.4, 7.1])


def posterior(*args, **kwargs):
    return mc.nmr.structure_posterior(*args, **kwargs)


def test_shift_conversions_refuse_non_finite_references():
    with pytest.raises(ValueError, match=r"reference must be a finite number, got nan"):
        mc.nmr.shielding_to_shift([30.0], np.nan)
    with pytest.raises(ValueError, match=r"slope must be a finite number"):
        mc.nmr.shielding_to_shift([30.0], 31.0, slope=np.inf)
    with pytest.raises(ValueError, match=r"slope must be a finite number"):
        mc.nmr.shift_to_shielding([3.0], 31.0, slope=np.nan)
    with pytest.raises(ValueError, match=r"shielding must hold real numbers"):
        mc.nmr.shielding_to_shift([30.0 + 1j], 31.0)
    assert mc.nmr.shielding_to_shift([25.0], 31.0).tolist() == [6.0]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(method="exact", max_permutations=np.nan), r"max_permutations must be a number"),
        (dict(method="exact", max_permutations=-1), r"max_permutations must be a number >= 1"),
        (dict(method="bethe", exact_group_size=-1), r"exact_group_size must be .* \[0, 20\]"),
        (dict(method="bethe", exact_group_size=10**6), r"exact_group_size must be"),
        (dict(method="sampling", n_samples=2.5), r"n_samples must be an integer in \[1, "),
        (dict(method="sampling", n_samples=2**40), r"n_samples must be an integer in \[1, "),
        (dict(method="sampling", seed=-1), r"seed must be an integer in \[0, "),
        (dict(method="sampling", seed=2**64), r"seed must be an integer in \[0, "),
    ],
)
def test_structure_posterior_integer_and_count_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        posterior(PRED, 0.2, EXP, sigma_exp=0.3, assignment="marginalize", **kwargs)


def test_max_permutations_may_be_infinite():
    p = posterior(
        PRED, 0.2, EXP, sigma_exp=0.3, assignment="marginalize", method="exact",
        max_permutations=np.inf,
    )  # fmt: skip
    np.testing.assert_allclose(p.sum(), 1.0)


def test_nan_in_predicted_std_is_blamed_on_predicted_std():
    with pytest.raises(ValueError, match=r"missing values \(NaN\) in shifts: predicted_std \("):
        posterior(PRED, np.nan, EXP, sigma_exp=0.3)
    with pytest.raises(ValueError, match=r"in shifts: predicted \(candidate, peak\) \(0, 0\)\."):
        posterior(np.where(PRED > 30, np.nan, PRED), 0.2, EXP, sigma_exp=0.3)


@pytest.mark.parametrize("assignment", ["given", "marginalize"])
def test_huge_predicted_std_gives_a_flat_posterior(assignment):
    p = posterior(PRED, 1e300, EXP, sigma_exp=0.3, assignment=assignment)
    np.testing.assert_allclose(p, [0.5, 0.5])


@pytest.mark.parametrize("assignment", ["given", "marginalize"])
def test_evidence_is_exact_at_any_scale_of_the_shifts(assignment):
    s = 2.0**600  # every ppm value times s: squares beyond float64, rescaled inside
    ref = posterior(PRED, 0.2, EXP, sigma_exp=0.3, assignment=assignment, return_details=True)
    big = posterior(
        PRED * s, 0.2 * s, EXP * s, sigma_exp=0.3 * s, assignment=assignment,
        return_details=True,
    )  # fmt: skip
    np.testing.assert_allclose(big.probabilities, ref.probabilities, rtol=1e-10)
    # 3 peak densities scale by 1/s, the flat offset prior gives one s back
    np.testing.assert_allclose(big.log_evidence, ref.log_evidence - 2 * np.log(s), rtol=1e-12)
    terms, ref_terms = big.nuclei["shifts"], ref.nuclei["shifts"]
    np.testing.assert_allclose(terms.offset, ref_terms.offset * s, rtol=1e-10)
    np.testing.assert_allclose(
        terms.site_log_likelihood, ref_terms.site_log_likelihood - np.log(s), rtol=1e-10
    )


@pytest.mark.parametrize("assignment", ["given", "marginalize"])
def test_offset_prior_widths_from_a_delta_to_flat(assignment):
    known = posterior(
        PRED, 0.2, EXP, sigma_exp=0.3, assignment=assignment, offset=31.2, return_details=True
    )
    for std in (1e-300, 1e-150, 1e-6):
        res = posterior(
            PRED, 0.2, EXP, sigma_exp=0.3, assignment=assignment, offset_prior=(31.2, std),
            return_details=True,
        )  # fmt: skip
        np.testing.assert_allclose(res.log_evidence, known.log_evidence, rtol=1e-6)
    flat = posterior(PRED, 0.2, EXP, sigma_exp=0.3, assignment=assignment, return_details=True)
    wide = posterior(
        PRED, 0.2, EXP, sigma_exp=0.3, assignment=assignment, offset_prior=(31.2, 1e300),
        return_details=True,
    )  # fmt: skip
    np.testing.assert_allclose(wide.probabilities, flat.probabilities, rtol=1e-10)
    density = -np.log(1e300) - 0.5 * np.log(2 * np.pi)
    np.testing.assert_allclose(wide.log_evidence, flat.log_evidence + density, rtol=1e-12)


def test_shift_model_load_names_a_file_that_is_not_a_model(tmp_path):
    garbage = tmp_path / "garbage.npz"
    np.savez(garbage, a=np.ones(3))
    with pytest.raises(ValueError, match=r"garbage.npz' is not a matchar ShiftModel file"):
        mc.nmr.ShiftModel.load(garbage)
    text = tmp_path / "text.npz"
    text.write_text("not a model")
    with pytest.raises(ValueError, match=r"text.npz' is not a readable matchar ShiftModel"):
        mc.nmr.ShiftModel.load(text)
    partial = tmp_path / "partial.npz"
    config = json.dumps({"format": "matchar.ShiftModel/1"}).encode()
    np.savez(partial, config=np.frombuffer(config, dtype=np.uint8))
    with pytest.raises(ValueError, match=r"partial.npz' is not a readable .*env_offsets"):
        mc.nmr.ShiftModel.load(partial)
    with pytest.raises(FileNotFoundError):
        mc.nmr.ShiftModel.load(tmp_path / "missing.npz")


def test_shift_model_not_fitted_and_parameters_before_any_feature():
    model = mc.nmr.ShiftModel("H")
    for call in (lambda: model.predict([]), model.compress, lambda: model.save("x.npz")):
        with pytest.raises(mc.NotFittedError, match=r"ShiftModel is not fitted yet"):
            call()
    import ase.build

    frames = [ase.build.molecule("CH3CH2OH")] * 4
    shieldings = [np.ones(9)] * 4
    for kwargs, match in (
        (dict(validation_fraction=np.nan), r"validation_fraction must be a finite number"),
        (dict(calibration="bogus"), r"calibration must be one of"),
        (dict(zeta=2**40), r"zeta must be an integer in \[1, 2147483647\]"),
        (dict(n_committee=2.5), r"n_committee must be an integer"),
        (dict(calibration_folds=1), r"calibration_folds must be 0 or >= 2"),
        (dict(regularizer=-1.0), r"regularizer must be"),
    ):
        with pytest.raises(ValueError, match=match):
            mc.nmr.ShiftModel("H", **kwargs).fit(frames, shieldings)


def test_candidate_similarity_zeta():
    import ase.build

    frames = [ase.build.molecule("CH3CH2OH"), ase.build.molecule("CH3OCH3")]
    with pytest.raises(ValueError, match=r"zeta must be an integer in \[1, 2147483647\]"):
        mc.nmr.candidate_similarity(frames, zeta=2**63)


@pytest.mark.parametrize("bad", [np.nan, np.inf, [30.0, np.nan]])
def test_shift_conversions_refuse_nan_values(bad):
    with pytest.raises(ValueError, match="shielding must be finite"):
        mc.nmr.shielding_to_shift(bad, 31.0)
    with pytest.raises(ValueError, match="shift must be finite"):
        mc.nmr.shift_to_shielding(bad, 31.0)


def test_shift_conversion_overflow_is_an_error_not_inf():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="overflows"):
            mc.nmr.shielding_to_shift([1e308], 0.0, slope=-10.0)
