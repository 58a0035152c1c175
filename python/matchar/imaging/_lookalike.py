"""Look-alike classes of the crystal classifier: zone axes whose projected columns form
the same 2-D pattern up to scale, which only the column spacing tells apart, and the
split of a look-alike group's probability among its members by the training prior.

From the image alone the network sees the spacing d of the columns, not the lattice
constant; a class j of the group explains d with a = d / k_j (k_j: its nearest-column
distance in units of a). With a drawn uniformly from the model's training range for
every class, class j has the density 1 / (k_j (hi - lo)) of spacings on
[k_j lo, k_j hi], and the Bayes split of the group's total at d is in proportion to
1 / k_j over the members whose a = d / k_j lies in the range. The network learns this
split only approximately, and is over-confident within the groups on images unlike its
training data (scripts/evaluate_crystal_multislice.py: expected calibration error 0.124
with the learned split, 0.090 with this one, on abTEM multislice images).
"""

from __future__ import annotations

import numpy as np

from ._simulate import projected_cell

#: Groups of (prototype, zone axis) with the same projected pattern up to scale.
LOOKALIKE_GROUPS: tuple[tuple[tuple[str, tuple[int, ...]], ...], ...] = (
    (("fcc", (1, 0, 0)), ("bcc", (1, 0, 0)), ("diamond", (1, 0, 0))),  # square
    (("fcc", (1, 1, 1)), ("bcc", (1, 1, 1))),  # triangular
    (("fcc", (2, 1, 1)), ("hcp", (1, 0, -1, 0))),  # rectangular, sides 1 : sqrt(8/3)
)


def column_spacing(prototype: str, zone_axis: tuple[int, ...]) -> float:
    """Nearest-neighbour distance between the projected columns, in units of a."""
    cell = projected_cell(prototype, zone_axis)
    basis = np.stack([cell.a1, cell.a2])
    frac = cell.columns[:, :2]
    shifts = np.array([(i, j) for i in range(-2, 3) for j in range(-2, 3)], dtype=float)
    d = frac[None, :, None, :] - frac[:, None, None, :] + shifts[None, None, :, :]
    r = np.linalg.norm(d @ basis, axis=-1)
    return float(r[r > 1e-9].min())


def lookalike_groups(
    protos: list[str], zones: list[tuple[int, ...]]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(class indices, nearest-column distances k in units of a) of every look-alike
    group whose members are all among a model's classes."""
    index = {(p, tuple(z)): c for c, (p, z) in enumerate(zip(protos, zones))}
    out = []
    for members in LOOKALIKE_GROUPS:
        if all(m in index for m in members):
            idx = np.array([index[m] for m in members])
            k = np.array([column_spacing(p, z) for p, z in members])
            out.append((idx, k))
    return out


def split_lookalikes(
    probs: np.ndarray,
    log_a: np.ndarray,
    groups: list[tuple[np.ndarray, np.ndarray]],
    a_range: tuple[float, float],
) -> np.ndarray:
    """Class probabilities (..., C) with each look-alike group's total split by the
    training prior at the column spacing the network reads.

    Parameters
    ----------
    probs : numpy.ndarray, shape (..., C)
        Class probabilities (rows summing to 1), e.g. the mean of the Monte-Carlo samples.
    log_a : numpy.ndarray, shape (..., C)
        The network's log lattice constant (Å) of every class, same shape.
    groups : list of (indices, k)
        From :func:`lookalike_groups`.
    a_range : (float, float)
        The lattice constants the network was trained on, Å.

    Returns
    -------
    numpy.ndarray
        Same shape, float64: outside the groups the input; inside, the group's total times
        1 / k_j over the members whose d / k_j lies in ``a_range``, renormalised, where
        d = sum_j w_j a_j k_j is the spacing the members read (w_j their share of the
        group). A group no member of which explains d keeps the network's split.
    """
    p = np.array(probs, dtype=np.float64)
    a = np.exp(np.asarray(log_a, dtype=np.float64))
    lo, hi = a_range
    for idx, k in groups:
        pg = p[..., idx].sum(axis=-1, keepdims=True)
        w = p[..., idx] / np.clip(pg, 1e-300, None)
        d = np.sum(w * a[..., idx] * k, axis=-1, keepdims=True)
        dens = np.where((d >= k * lo) & (d <= k * hi), 1.0 / k, 0.0)
        total = dens.sum(axis=-1, keepdims=True)
        p[..., idx] = pg * np.where(total > 0, dens / np.where(total > 0, total, 1.0), w)
    return p


def mutual_information(
    probs_mc: np.ndarray, groups: list[tuple[np.ndarray, np.ndarray]] | tuple = ()
) -> np.ndarray:
    """Mutual information between the class and the Monte-Carlo sample, in nats:
    H(mean p) - mean H(p), the samples' disagreement.

    Parameters
    ----------
    probs_mc : numpy.ndarray, shape (N, T, C)
        Class probabilities of T samples (heads) for N windows, rows summing to 1.
    groups : list of (indices, k)
        From :func:`lookalike_groups`: each group's members are merged into one class
        before the information is taken, so that the samples' disagreement over the
        split within a group (which the training prior replaces from the image alone)
        does not count. Empty: per class.

    Returns
    -------
    numpy.ndarray, shape (N,)
        Float64, >= 0.
    """
    p = np.asarray(probs_mc, dtype=np.float64)
    if len(groups):
        keep = np.ones(p.shape[-1], bool)
        merged = []
        for idx, _k in groups:
            merged.append(p[..., idx].sum(axis=-1, keepdims=True))
            keep[idx] = False
        p = np.concatenate([p[..., keep], *merged], axis=-1)
    mean = p.mean(axis=1)
    ent = -np.sum(mean * np.log(np.clip(mean, 1e-12, None)), axis=-1)
    ent_t = -np.sum(p * np.log(np.clip(p, 1e-12, None)), axis=-1).mean(axis=1)
    return np.clip(ent - ent_t, 0.0, None)
