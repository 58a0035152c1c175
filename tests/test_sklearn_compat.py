"""scikit-learn's estimator checks (what ``check_estimator`` runs) on matchar's estimators.

Every scikit-learn estimator of matchar (the ``BaseEstimator`` subclasses: NMF, PCA,
PhysicsNMF, SparseGPR) runs every check of the installed scikit-learn, one pytest case
per check and estimator. The instances are small (few components, few iterations or
sparse points) so that the whole module runs in seconds. Two need a setting that fits the
checks' data, which have 1 to 200 rows and 1 to 10 columns:

- ``PhysicsNMF``'s model fixes the channel count (its dictionary G has one row per
  channel): each check gets a :class:`~matchar.spectral.ReferenceModel` of random
  reference spectra on as many channels as that check's data have (``PHYSICS_CHANNELS``),
  as scikit-learn does for its own ``SparseCoder``, whose dictionary fixes the features.
- ``SparseGPR`` takes ``n_sparse=10``: ``n_sparse`` must not exceed the training rows,
  and the default (1000) exceeds them in every check.

No check is declared as an expected failure (``EXPECTED_FAILED_CHECKS`` is empty).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import sklearn
from sklearn.utils.fixes import parse_version

import matchar as mc

if parse_version(sklearn.__version__) < parse_version("1.6"):
    pytest.skip(
        "the checks are collected with estimator_checks_generator (scikit-learn >= 1.6)",
        allow_module_level=True,
    )

from sklearn.utils.estimator_checks import estimator_checks_generator

#: Channels of PhysicsNMF's model per check: the width of the data the check fits
#: (3 for every check not listed).
PHYSICS_CHANNELS = {
    "check_estimators_overwrite_params": 2,
    "check_estimators_fit_returns_self": 2,
    "check_readonly_memmap_input": 2,
    "check_fit_idempotent": 2,
    "check_fit_check_is_fitted": 2,
    "check_n_features_in": 2,
    "check_n_features_in_after_fitting": 4,
    "check_estimators_dtypes": 5,
    "check_dtype_object": 10,
    "check_fit2d_1sample": 10,
}

#: {estimator label: {check name: why it cannot pass}}; scikit-learn runs these checks
#: as expected failures (xfail). Empty: every check applies and passes.
EXPECTED_FAILED_CHECKS: dict[str, dict[str, str]] = {}


def _physics_nmf(check: str, **params):
    channels = PHYSICS_CHANNELS.get(check, 3)
    references = 0.5 + np.random.default_rng(0).random((channels, 2))
    model = mc.spectral.ReferenceModel(references, (1.0, 1.0, channels))
    return mc.spectral.PhysicsNMF(model, 1, max_iter=10, random_state=0, **params)


#: label -> (check name -> the instance that check runs on)
ESTIMATORS = {
    "NMF-kl": lambda check: mc.spectral.NMF(2, random_state=0),
    "NMF-frobenius": lambda check: mc.spectral.NMF(2, loss="frobenius", random_state=0),
    "PCA": lambda check: mc.spectral.PCA(2, random_state=0),
    "PCA-plain": lambda check: mc.spectral.PCA(2, poisson=False, center=False, random_state=0),
    "PhysicsNMF": _physics_nmf,
    "PhysicsNMF-regularised": functools.partial(
        _physics_nmf, smoothness=0.1, sparsity=0.1, simplex="H"
    ),
    "SparseGPR": lambda check: mc.gp.SparseGPR(n_sparse=10, random_state=0),
    "SparseGPR-linear": lambda check: mc.gp.SparseGPR(
        mc.gp.PolynomialKernel(1, normalize=False), n_sparse=10, random_state=0
    ),
    "SparseGPR-committee": lambda check: mc.gp.SparseGPR(n_sparse=5, n_committee=4, random_state=0),
}


def _check_name(check) -> str:
    return check.func.__name__ if isinstance(check, functools.partial) else check.__name__


def _cases():
    for label, make in ESTIMATORS.items():
        expected = EXPECTED_FAILED_CHECKS.get(label, {})
        generator = estimator_checks_generator(
            make(""), legacy=True, expected_failed_checks=expected, mark="xfail"
        )
        for case in generator:
            marks = ()
            if not isinstance(case, tuple):  # a pytest.param of an expected failure
                case, marks = case.values, case.marks
            _, check = case
            name = _check_name(check)
            options = getattr(check, "keywords", {})
            suffix = "".join(f"[{k}={v}]" for k, v in sorted(options.items()))
            yield pytest.param(label, check, id=f"{label}-{name}{suffix}", marks=marks)


@pytest.mark.parametrize(("label", "check"), list(_cases()))
def test_sklearn_check(label, check):
    check(ESTIMATORS[label](_check_name(check)))


def test_every_estimator_is_checked():
    """A new BaseEstimator subclass of matchar is added to ESTIMATORS."""
    from sklearn.base import BaseEstimator

    checked = {type(make("")) for make in ESTIMATORS.values()}
    found = set()
    for module in (mc.spectral, mc.gp, mc.imaging, mc.atoms, mc.nmr):
        for name in getattr(module, "__all__", dir(module)):
            obj = getattr(module, name, None)
            if isinstance(obj, type) and issubclass(obj, BaseEstimator):
                found.add(obj)
    assert found <= checked, sorted(c.__name__ for c in found - checked)
