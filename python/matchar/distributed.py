"""Dask task graphs for work that is too big for one process: frames and large images.

- :func:`soap_features` / :func:`predict_shieldings`: SOAP descriptors and
  :class:`~matchar.nmr.ShiftModel` predictions over the frames of a trajectory, one dask
  task per batch of frames (the calculator / model travel to the workers by pickle).
- :func:`local_correlation_map`: the local-periodicity descriptor of a large image with
  ``dask.array.map_overlap`` (halo ``patch + window``), equal to the in-memory result.

Spectral decompositions take dask arrays directly (``mc.spectral.NMF/PCA.fit``). All of
this runs on the default dask scheduler: the threaded one, or a ``distributed.Client``
when one exists. Needs the ``dask`` extra: ``pip install 'matchar[dask]'``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["local_correlation_map", "predict_shieldings", "soap_features"]


def _dask():
    try:
        import dask
        import dask.array as da
    except ImportError as err:  # pragma: no cover - an extra
        raise ImportError(
            "matchar.distributed needs dask: pip install 'matchar[dask]' (dask[array], distributed)"
        ) from err
    return dask, da


def _batches(n: int, batch_size: Any) -> list[tuple[int, int]]:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    return [(s, min(n, s + int(batch_size))) for s in range(0, n, int(batch_size))]


def _frames_list(frames: Any) -> list[Any]:
    import ase

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
        from ase.data import atomic_numbers

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
    >>> import matchar.distributed as mcd  # doctest: +SKIP
    >>> mcd.predict_shieldings(model, trajectory, batch_size=500)  # doctest: +SKIP
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


def _lcm_block(block: np.ndarray, patch: int, window: int, shifts: np.ndarray) -> np.ndarray:
    from .imaging import local_correlation_map as lcm

    return lcm(block, patch, window, shifts=shifts)[0]


def local_correlation_map(
    image: Any,
    patch: int = 20,
    window: int = 20,
    n_shifts: int = 100,
    *,
    shifts: Any = None,
    chunks: Any = None,
) -> tuple[Any, np.ndarray]:
    """:func:`matchar.imaging.local_correlation_map` of a large image, chunk by chunk.

    Each chunk is extended by a halo of ``patch + window`` pixels
    (``dask.array.map_overlap``, no padding at the image border) and its own pixels'
    correlation maps are computed in C++; the output covers the same pixels as the
    in-memory function and agrees with it to float32 rounding (each chunk is
    mean-centred on its own, which the Pearson correlation does not see).

    Parameters
    ----------
    image : numpy.ndarray or dask.array.Array, shape (H, W)
        Intensity image (float or integer counts).
    patch, window, n_shifts : int
        As :func:`matchar.imaging.local_correlation_map` (stride 1 only).
    shifts : array_like of int, shape (S, 2), optional
        Explicit shifts; default :func:`matchar.imaging.default_shifts`.
    chunks : int or tuple, optional
        Chunk shape for a NumPy ``image`` (default 1024 x 1024); a dask image keeps its
        chunks, merged where one is smaller than the halo.

    Returns
    -------
    maps : dask.array.Array, shape (H - 2m, W - 2m, S), float32, m = patch + window
    shifts : numpy.ndarray, shape (S, 2), int32

    Example
    -------
    >>> import numpy as np, matchar.distributed as mcd
    >>> img = np.random.default_rng(0).random((200, 180))
    >>> maps, s = mcd.local_correlation_map(img, patch=5, window=5, n_shifts=12, chunks=64)
    >>> maps.shape, s.shape
    ((180, 160, 12), (12, 2))
    """
    _, da = _dask()
    from .imaging import default_shifts

    for name, v in (("patch", patch), ("window", window)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
    S = (
        default_shifts(int(window), int(n_shifts))
        if shifts is None
        else np.ascontiguousarray(shifts, dtype=np.int32)
    )
    if S.ndim != 2 or S.shape[1] != 2 or S.shape[0] == 0:
        raise ValueError(f"shifts must have shape (S, 2), got {S.shape}")
    if np.abs(S).max() > window:
        raise ValueError(f"every shift must lie within +-window = {window}")
    img = (
        image if hasattr(image, "dask") else da.from_array(np.asarray(image), chunks=chunks or 1024)
    )
    if img.ndim != 2:
        raise ValueError(f"image must be 2-D (H, W), got shape {img.shape}")
    m = int(patch) + int(window)
    if min(img.shape) <= 2 * m:
        raise ValueError(
            f"both image sides must exceed 2 (patch + window) = {2 * m}, got {img.shape}"
        )
    # Every chunk must hold at least the halo (dask's rule) and, at the borders, more than
    # it (the border chunks lose m pixels of output).
    new_chunks = []
    for axis_chunks, size in zip(img.chunks, img.shape):
        c = max(max(axis_chunks), 2 * m + 1)
        new_chunks.append(c if c < size else size)
    if any(min(ch) <= m for ch in img.chunks) or any(max(ch) < 2 * m + 1 for ch in img.chunks):
        img = img.rechunk(tuple(new_chunks))
        # a short last chunk is merged into its neighbour
        fixed = []
        for ch in img.chunks:
            ch = list(ch)
            if len(ch) > 1 and ch[-1] <= m:
                ch[-2] += ch.pop()
            fixed.append(tuple(ch))
        img = img.rechunk(tuple(fixed))
    out_chunks = []
    for ch in img.chunks:
        sizes = list(ch)
        sizes[0] -= m
        sizes[-1] -= m
        out_chunks.append(tuple(sizes))
    maps = da.map_overlap(
        _lcm_block,
        img,
        depth=m,
        boundary="none",
        trim=False,
        new_axis=2,
        chunks=(*out_chunks, (S.shape[0],)),
        dtype=np.float32,
        meta=np.empty((0, 0, 0), np.float32),
        patch=int(patch),
        window=int(window),
        shifts=S,
    )
    return maps, S
