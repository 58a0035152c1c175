"""candidate_similarity: structure-averaged SOAP kernel and its kernel-PCA map."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest

import matchar as mc

matplotlib.use("Agg")
ase_build = pytest.importorskip("ase.build")


@pytest.fixture(scope="module")
def frames():
    rng = np.random.default_rng(0)
    out = []
    for name in ["CH3CH2OH", "CH3OCH3", "CH3CH2OH", "C2H6", "CH3CHO"]:
        f = ase_build.molecule(name)
        f.positions += rng.normal(scale=0.03, size=f.positions.shape)
        out.append(f)
    return out


def reference_embedding(frames):
    """NumPy: mean SOAP per structure, normalised dot product squared, centred eigh."""
    species = sorted({int(z) for f in frames for z in f.numbers})
    soap = mc.atoms.SOAP(cutoff=5.0, max_radial=6, max_angular=4, species=species)
    M = np.stack([soap.compute([f]).mean(0) for f in frames])
    M /= np.linalg.norm(M, axis=1, keepdims=True)
    K = (M @ M.T) ** 2
    n = len(K)
    J = np.eye(n) - 1.0 / n
    w, V = np.linalg.eigh(J @ K @ J)
    w, V = w[::-1][:2], V[:, ::-1][:, :2]
    return K, V * np.sqrt(w)


def test_kernel_and_embedding_match_numpy_reference(frames):
    m = mc.nmr.candidate_similarity(frames)
    K, coords = reference_embedding(frames)
    np.testing.assert_allclose(m.kernel, K, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.diag(m.kernel), 1.0, rtol=1e-12)
    # the same embedding up to the sign of each axis
    for a in range(2):
        s = np.sign(coords[:, a] @ m.coordinates[:, a])
        np.testing.assert_allclose(m.coordinates[:, a], s * coords[:, a], atol=1e-8)
    assert np.all(m.explained > 0) and m.explained.sum() <= 1 + 1e-12


def test_invariances_and_identical_candidates(frames):
    moved = frames[0].copy()
    moved.rotate(37, "z", center="COM")
    moved.translate([1.0, -2.0, 0.5])
    moved = moved[np.random.default_rng(1).permutation(len(moved))]
    m = mc.nmr.candidate_similarity([frames[0], moved, frames[1]])
    assert m.kernel[0, 1] == pytest.approx(1.0, abs=1e-10)
    np.testing.assert_allclose(m.coordinates[0], m.coordinates[1], atol=1e-6)
    assert m.kernel[0, 2] < 0.999


def test_plot_and_errors(frames):
    m = mc.nmr.candidate_similarity(frames)
    p = np.array([0.6, 0.1, 0.2, 0.05, 0.05])
    ax = m.plot(p, labels=list("abcde"))
    offsets = ax.collections[0].get_offsets()
    assert len(offsets) == 5
    # most probable drawn last
    np.testing.assert_allclose(offsets[-1], m.coordinates[0])
    with pytest.raises(ValueError, match="probabilities"):
        m.plot(p[:3])
    with pytest.raises(ValueError, match="labels"):
        m.plot(p, labels=["a"])
    with pytest.raises(ValueError, match="at least 2"):
        mc.nmr.candidate_similarity(frames[:1])
