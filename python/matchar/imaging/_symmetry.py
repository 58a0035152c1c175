"""Rotation and mirror descriptors, computed by the C++ core."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from .. import _core
from .._validation import check_float, check_int
from ._correlation import CONSTANT_IMAGE, as_image, finite_rescaled

DEFAULT_FOLDS = (2, 3, 4, 6)
DEFAULT_MIRRORS_DEG = (0.0, 30.0, 45.0, 60.0, 90.0, 120.0, 135.0, 150.0)


def symmetry_transforms(
    folds: Sequence[int] = DEFAULT_FOLDS,
    mirror_angles_deg: Sequence[float] = DEFAULT_MIRRORS_DEG,
) -> tuple[np.ndarray, list[str]]:
    """The 2 × 2 matrices (acting on offsets ``(dy, dx)``) of :func:`symmetry_map`.

    Rotations by ``360°/n`` for each ``n`` in ``folds``, then reflections across the lines
    through the pixel at each angle of ``mirror_angles_deg`` (measured from the +x axis
    towards +y, i.e. clockwise on screen since image rows go down).

    Returns
    -------
    transforms : numpy.ndarray, shape (T, 2, 2), float64
    names : list of str
        ``"rot<n>"`` and ``"mirror<angle>"``, in the order of ``transforms``.

    Example
    -------
    >>> import matchar as mc
    >>> M, names = mc.imaging.symmetry_transforms(folds=(4,), mirror_angles_deg=(0,))
    >>> names, M.round(6).tolist()
    (['rot4', 'mirror0'], [[[0.0, 1.0], [-1.0, 0.0]], [[-1.0, 0.0], [0.0, 1.0]]])
    """
    for name, seq in (("folds", folds), ("mirror_angles_deg", mirror_angles_deg)):
        if isinstance(seq, (str, bytes)) or not hasattr(seq, "__iter__"):
            raise ValueError(f"{name} must be a sequence of numbers, got {seq!r}")
    mats, names = [], []
    for n in folds:
        n_int = check_int(n, "folds", low=2)
        t = 2 * math.pi / n_int
        mats.append([[math.cos(t), math.sin(t)], [-math.sin(t), math.cos(t)]])
        names.append(f"rot{n_int}")
    for a in mirror_angles_deg:
        a = check_float(a, "mirror_angles_deg")
        t = 2 * math.radians(a)
        mats.append([[-math.cos(t), math.sin(t)], [math.sin(t), math.cos(t)]])
        names.append(f"mirror{float(a):g}")
    if not mats:
        raise ValueError("at least one rotation fold or mirror angle is needed")
    return np.array(mats, dtype=np.float64), names


def symmetry_map(
    image: ArrayLike,
    patch: int = 20,
    stride: int = 1,
    *,
    folds: Sequence[int] = DEFAULT_FOLDS,
    mirror_angles_deg: Sequence[float] = DEFAULT_MIRRORS_DEG,
) -> tuple[np.ndarray, list[str]]:
    """Rotation and mirror descriptors: how symmetric each pixel's neighbourhood is.

    For output pixel ``p`` and transform ``M`` (a rotation by ``360°/n`` or a reflection
    across a line through ``p``), the Pearson correlation over the disc ``|o| <= patch``
    between ``f(p + o)`` and ``f(p + M o)``, reading ``f`` by bilinear interpolation. This
    completes :func:`local_correlation_map`, which sees translations only (the Patterson
    symmetry): e.g. a twin and its matrix have mirror-related motifs.

    Computed in C++ (double sums on the mean-centred image, OpenMP over rows, GIL
    released, Ctrl-C polled). Cost O(H' W' T patch²): use a ``stride`` of a few pixels.

    **Border:** no padding; output ``[i, j]`` is pixel ``(m + i·stride, m + j·stride)``
    with ``m = patch + 1``, ``H' = ceil((H - 2m) / stride)``, ``W'`` likewise. A flat disc
    gives 0, not NaN.

    Parameters
    ----------
    image : array_like, shape (H, W)
        Intensity image (float, or integers such as uint16); sides > ``2 (patch + 1)``.
    patch : int, default 20
        Radius of the disc in pixels.
    stride : int, default 1
        Step between output pixels.
    folds : sequence of int, default (2, 3, 4, 6)
        Rotations by ``360°/n``.
    mirror_angles_deg : sequence of float, default (0, 30, 45, 60, 90, 120, 135, 150)
        Mirror lines, degrees from +x towards +y.

    Returns
    -------
    maps : numpy.ndarray, shape (H', W', T), float32
        Correlations in ``[-1, 1]``.
    names : list of str
        The transform of each channel (``"rot2"``, ..., ``"mirror150"``).

    Raises
    ------
    ValueError
        Bad image (not 2-D, RGB, NaN/inf, constant, too small) or parameters.
    MemoryError
        If the output cannot fit in memory (before allocating).

    Example
    -------
    >>> import numpy as np, matchar as mc
    >>> y, x = np.mgrid[:64, :64] - 1.0  # 4-fold about pixels 1, 9, 17, ...
    >>> image = np.cos(2 * np.pi * x / 8) + np.cos(2 * np.pi * y / 8)
    >>> maps, names = mc.imaging.symmetry_map(image, patch=8, stride=8, folds=(4,),
    ...                                       mirror_angles_deg=(0,))
    >>> bool(np.allclose(maps[..., 0], 1.0, atol=1e-5)), names  # pixels 9, 17, ...
    (True, ['rot4', 'mirror0'])
    """
    patch = check_int(patch, "patch", low=1)
    stride = check_int(stride, "stride", low=1)
    transforms, names = symmetry_transforms(folds, mirror_angles_deg)
    img = as_image(image)
    H, W = img.shape
    if H <= 2 * (patch + 1) or W <= 2 * (patch + 1):
        raise ValueError(
            f"image of shape ({H}, {W}) is too small for patch={patch}: both sides must "
            f"exceed 2 * (patch + 1) = {2 * (patch + 1)}"
        )
    side = -(-(H - 2 * (patch + 1)) // stride), -(-(W - 2 * (patch + 1)) // stride)
    _core.check_allocation(side[0] * side[1] * len(transforms), 4, "symmetry_map output")
    _core.check_allocation(H * W, 8, "symmetry_map centred image")
    img = finite_rescaled(img, constant=CONSTANT_IMAGE)
    return _core.imaging.symmetry_map(img, patch, transforms, stride), names
