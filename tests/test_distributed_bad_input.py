"""matchar.distributed refuses bad sizes before building any task graph (needs only
dask.array: nothing is computed)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("dask.array")
ase_build = pytest.importorskip("ase.build")
mcd = pytest.importorskip("matchar.distributed")

import matchar as mc  # noqa: E402

IMAGE = np.random.default_rng(0).random((200, 180))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(chunks=0), r"chunks must be an integer in \[1, "),
        (dict(chunks=-64), r"chunks must be an integer"),
        (dict(chunks=2.5), r"chunks must be an integer"),
        (dict(chunks=(64, 0)), r"chunks must be an integer"),
        (dict(chunks=(64, 64, 1)), r"chunks must be an integer or a \(rows, columns\) pair"),
        (dict(n_shifts=2**40), r"n_shifts must be an integer in \[1, 2147483647\]"),
        (dict(patch=0), r"patch must be an integer"),
        (dict(window=2.5), r"window must be an integer"),
    ],
)
def test_local_correlation_map_sizes(kwargs, match):
    params = dict(patch=5, window=5, n_shifts=12, chunks=64)
    params.update(kwargs)
    with pytest.raises(ValueError, match=match):
        mcd.local_correlation_map(IMAGE, **params)


def test_local_correlation_map_accepts_integral_sizes():
    maps, shifts = mcd.local_correlation_map(IMAGE, patch=5.0, window=5, n_shifts=12, chunks=64.0)
    assert maps.shape == (180, 160, 12) and shifts.shape == (12, 2)


def test_batch_and_segment_sizes():
    soap = mc.atoms.SOAP(cutoff=3.0, max_radial=2, max_angular=1, species=[14])
    frames = [ase_build.bulk("Si", "diamond", a=5.43)] * 3
    for batch_size in (0, 2.5, np.nan, "2"):
        with pytest.raises(ValueError, match=r"batch_size must be an integer >= 1"):
            mcd.soap_features(soap, frames, batch_size=batch_size)
    with pytest.raises(ValueError, match=r"fit_size must be an integer >= 2"):
        mcd.segment(IMAGE, 2, patch=5, window=5, fit_size=1.5)
    with pytest.raises(ValueError, match=r"chunks \(pixels\) must be an integer"):
        mcd.segment(IMAGE, 2, patch=5, window=5, chunks=0)
