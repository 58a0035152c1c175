"""scikit-learn's estimator checks, the executable spec of the estimator API."""

from __future__ import annotations

import inspect
import warnings

import pytest
from sklearn.utils.estimator_checks import check_estimator

import matchar as mc


@pytest.mark.parametrize(
    "estimator",
    [mc.spectral.NMF(2), mc.spectral.NMF(2, loss="frobenius"), mc.spectral.PCA(2)],
    ids=["NMF-kl", "NMF-frobenius", "PCA"],
)
def test_check_estimator(estimator):
    if "on_fail" not in inspect.signature(check_estimator).parameters:
        pytest.skip("needs scikit-learn >= 1.6 (check_estimator(on_fail=None))")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(estimator, on_fail=None)
    failed = [
        (r["check_name"], str(r["exception"])[:200]) for r in results if r["status"] == "failed"
    ]
    assert not failed
