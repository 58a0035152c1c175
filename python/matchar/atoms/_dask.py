"""Dask task graphs over the frames of a trajectory: SOAP descriptors and shift-model
predictions, one task per batch of frames (the calculator / model travel to the workers
by pickle). Public through :mod:`matchar.distributed`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .._optional import require, require_dask
from .._threads import task_threads
from .._validation import check_int

__all__ = ["predict_shieldings", "soap_features"]


def _dask():
    return require_dask("matchar.distributed")


def _batches(n: int, batch_size: Any) -> list[tuple[int, int]]:
    size = check_int(batch_size, "batch_size", low=1, high=None)
    return [(s, min(n, s + size)) for s in range(0, n, size)]


def _frames_list(frames: Any) -> list[Any]:
    ase = require("ase", "nmr", "matchar.distributed")

    if isinstance(frames, ase.Atoms):
        frames = [frames]
    if not isinstance(frames, Sequence):
        frames = list(frames)
    if len(frames) == 0:
        raise ValueError("frames is empty: at least one ase.Atoms is needed")
    for k, f in enumerate(frames):
        if not isinstance(f, ase.Atoms):
            raise ValueError(f"frames[{k}] must be an ase.Atoms, got {type(f).__name__}")
    return list(frames)


@task_threads
def _soap_batch(soap, frames, centers):
    return soap.compute(frames, centers)


def soap_features(
    soap: Any, frames: Any, centers: Sequence[int | str] | None = None, *, batch_size: int = 64
) -> Any:
    """SOAP power spectra of a list of frames as a dask array, one task per batch.

    Parameters
    ----------
    soap : matchar.atoms.SOAP
        The calculator. When its species are not fixed they are set from all frames
        here, before any task runs, so that every batch has the same feature layout.
    frames : sequence of ase.Atoms
        Positions in Å.
    centers : sequence of int or str, optional
        Centre species to keep (as :meth:`SOAP.compute`).
    batch_size : int, default 64
        Frames per task.

    Returns
    -------
    dask.array.Array, shape (n_envs, n_features)
        Rows in frame order, then atom order, exactly :meth:`SOAP.compute`'s rows;
        chunked by batch. ``.compute()`` to gather, or keep it lazy.

    Example
    -------
    >>> import ase.build, matchar as mc, matchar.distributed as mcd
    >>> si = ase.build.bulk("Si", "diamond", a=5.43)
    >>> soap = mc.atoms.SOAP(cutoff=3.0, max_radial=3, max_angular=2, species=[14])
    >>> mcd.soap_features(soap, [si] * 5, batch_size=2).compute().shape
    (10, 27)
    """
    dask, da = _dask()
    frames = _frames_list(frames)
    if soap.species_ is None:
        soap._set_species(np.unique(np.concatenate([f.numbers for f in frames])).tolist())
    keep = None
    if centers is not None:
        atomic_numbers = require("ase.data", "nmr", "matchar.distributed").atomic_numbers
        keep = {atomic_numbers[c] if isinstance(c, str) else int(c) for c in centers}
    task = dask.delayed(_soap_batch, pure=True)
    dtype = np.dtype(soap.dtype)
    parts = []
    for a, b in _batches(len(frames), batch_size):
        n = sum(
            len(f) if keep is None else int(np.isin(f.numbers, list(keep)).sum())
            for f in frames[a:b]
        )
        parts.append(
            da.from_delayed(
                task(soap, frames[a:b], centers), shape=(n, soap.n_features), dtype=dtype
            )
        )
    return da.concatenate(parts, axis=0)


@task_threads
def _predict_batch(model, frames, return_std):
    out = model.predict(frames, return_std=return_std)
    return out if return_std else (out,)


def predict_shieldings(
    model: Any, frames: Any, *, batch_size: int = 64, return_std: bool = False
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """:meth:`ShiftModel.predict` over batches of frames as dask tasks, gathered.

    Parameters
    ----------
    model : matchar.nmr.ShiftModel
        A fitted (or loaded / pretrained) model.
    frames : sequence of ase.Atoms
    batch_size : int, default 64
        Frames per task.
    return_std : bool, default False
        Also return the calibrated standard deviation (ppm).

    Returns
    -------
    mean : numpy.ndarray, shape (n_atoms_of_element,)
        Shieldings in ppm, frame order then atom order, equal to ``model.predict(frames)``.
    std : numpy.ndarray, same shape, only with ``return_std``

    Example
    -------
    >>> import ase.build, dask, matchar as mc, matchar.distributed as mcd
    >>> model = mc.nmr.ShiftModel.pretrained("H")
    >>> frames = [ase.build.molecule("CH4") for _ in range(6)]
    >>> mcd.predict_shieldings(model, frames, batch_size=2).shape   # 6 frames x 4 H
    (24,)
    """
    dask, _ = _dask()
    frames = _frames_list(frames)
    task = dask.delayed(_predict_batch, pure=True)
    parts = dask.compute(
        *[task(model, frames[a:b], return_std) for a, b in _batches(len(frames), batch_size)]
    )
    mean = np.concatenate([p[0] for p in parts])
    if return_std:
        return mean, np.concatenate([p[1] for p in parts])
    return mean
