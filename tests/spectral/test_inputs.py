"""Bad input to the spectral estimators: clear errors naming the argument, or documented
handling."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import matchar as mc

X = np.random.default_rng(0).poisson(4.0, (30, 12)).astype(np.uint16)


@pytest.mark.parametrize(
    ("data", "exc", "match"),
    [
        (-X.astype(np.int32) - 1, ValueError, r"X contains negative values"),
        (np.where(X > 3, np.nan, X), ValueError, r"X contains NaN or infinite"),
        (np.where(X > 3, np.inf, X), ValueError, r"X contains NaN or infinite"),
        (np.ones(12), ValueError, r"X must be a 2-D .* or 3-D"),
        (np.ones((2, 3, 4, 5)), ValueError, r"X must be a 2-D"),
        (np.ones((0, 12)), ValueError, r"X is empty: 0 sample\(s\)"),
        (np.ones((3, 4), dtype=complex), ValueError, r"Complex data not supported"),
        (sp.csr_matrix(-np.ones((5, 4))), ValueError, r"X contains negative values"),
    ],
)
def test_bad_data(data, exc, match):
    with pytest.raises(exc, match=match):
        mc.spectral.NMF(2).fit(data)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        (dict(n_components=13), r"n_components=13 must be <= min"),
        (dict(n_components=0), r"n_components must be an integer in \[1, "),
        (dict(n_components=2.5), r"n_components must be an integer"),
        (dict(n_components=2, loss="l1"), r"loss must be 'kl' or 'frobenius'"),
        (dict(n_components=2, max_iter=0), r"max_iter must be"),
        (dict(n_components=2, tol=-1), r"tol must be"),
        (dict(n_components=2, init="svd"), r"init must be"),
        (dict(n_components=2, init=(np.ones((30, 3)), np.ones((2, 12)))), r"init W must have"),
        (dict(n_components=2, init=(np.ones((30, 2)), np.ones((2, 11)))), r"init H must have"),
        (dict(n_components=2, init=(-np.ones((30, 2)), np.ones((2, 12)))), r"non-negative"),
        (dict(n_components=2, dtype=np.float16), r"dtype must be float32 or float64"),
    ],
)
def test_bad_parameters(params, match):
    with pytest.raises(ValueError, match=match):
        mc.spectral.NMF(**params).fit(X)


def test_bad_masks():
    nmf = mc.spectral.NMF(2, max_iter=2)
    with pytest.raises(ValueError, match=r"pixel_mask must have shape"):
        nmf.fit(X, pixel_mask=np.zeros(29, bool))
    with pytest.raises(ValueError, match=r"channel_mask must have shape"):
        nmf.fit(X, channel_mask=np.zeros(13, bool))
    with pytest.raises(ValueError, match=r"channel_mask must be a boolean"):
        nmf.fit(X, channel_mask=np.zeros(12))
    with pytest.raises(ValueError, match=r"pixel_mask excludes everything"):
        nmf.fit(X, pixel_mask=np.ones(30, bool))
    cube = X.reshape(5, 6, 12)
    with pytest.raises(ValueError, match=r"pixel_mask must have shape \(5, 6\)"):
        nmf.fit(cube, pixel_mask=np.zeros((6, 5), bool))


def test_float16_is_converted_to_float32_and_bool_read_as_uint8():
    nmf = mc.spectral.NMF(2, max_iter=3, random_state=0).fit(X.astype(np.float16))
    assert nmf.components_.dtype == np.float32
    nmf = mc.spectral.NMF(2, max_iter=3, random_state=0).fit(X > 3)
    assert np.isfinite(nmf.components_).all()


def test_transform_checks():
    nmf = mc.spectral.NMF(2, max_iter=3).fit(X)
    with pytest.raises(ValueError, match="X has 11 features, but NMF is expecting 12"):
        nmf.transform(X[:, :11])
    with pytest.raises(ValueError, match=r"X must have shape \(N, 2\)"):
        nmf.inverse_transform(np.ones((4, 3)))
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        mc.spectral.NMF(2).transform(X)


def test_byte_swapped_input_object_dtype_and_pickled_estimators():
    import pickle

    ref = mc.spectral.NMF(2, max_iter=5, random_state=0, dtype=np.float64).fit(X)
    swapped = X.astype(">f8")
    est = mc.spectral.NMF(2, max_iter=5, random_state=0, dtype=np.float64).fit(swapped)
    np.testing.assert_allclose(est.components_, ref.components_, rtol=1e-10)
    obj = mc.spectral.NMF(2, max_iter=5, random_state=0, dtype=np.float64).fit(X.astype(object))
    np.testing.assert_allclose(obj.components_, ref.components_, rtol=1e-10)
    for model in (ref, mc.spectral.PCA(2, random_state=0).fit(X)):
        clone = pickle.loads(pickle.dumps(model))  # arrays come back with new dtype objects
        np.testing.assert_allclose(clone.transform(X), model.transform(X), rtol=1e-10)
