"""Dask task graphs for work that is too big for one process: frames and large images.

- :func:`soap_features` / :func:`predict_shieldings`: SOAP descriptors and
  :class:`~matchar.nmr.ShiftModel` predictions over the frames of a trajectory, one dask
  task per batch of frames (the calculator / model travel to the workers by pickle).
- :func:`local_correlation_map`: the local-periodicity descriptor of a large image with
  ``dask.array.map_overlap`` (halo ``patch + window``), equal to the in-memory result.
- :func:`segment`: full-resolution region labels of a large image: correlation maps per
  chunk (with a halo), PCA and clustering fitted on a subsample of grid points, then
  applied chunk by chunk; on an image that fits, the labels of
  :func:`matchar.imaging.segment`.

Spectral decompositions take dask arrays directly (``mc.spectral.NMF/PCA.fit``). All of
this runs on the default dask scheduler: the threaded one, or a ``distributed.Client``
when one exists. Needs the ``dask`` extra: ``pip install 'matchar[dask]'``.
"""

from __future__ import annotations

# Each area keeps its dask code next to its in-memory code.
from .atoms._dask import predict_shieldings, soap_features
from .imaging._dask import LazySegmentation, local_correlation_map, segment

__all__ = [
    "LazySegmentation",
    "local_correlation_map",
    "predict_shieldings",
    "segment",
    "soap_features",
]
