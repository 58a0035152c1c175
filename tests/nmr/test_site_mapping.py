"""Molecule-aware site mapping: molecules across periodic images, graph matching onto a
labelled reference, copies averaged; checked on CSD-1000R crystals rewritten as 2Z
supercells with shuffled atoms, and on hand-built cells with known answers."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import molecule

import matchar as mc


def _boxed(mol: Atoms, shift=(0.0, 0.0, 0.0), cell=12.0) -> Atoms:
    m = mol.copy()
    m.positions += np.asarray(shift)
    m.set_cell([cell, cell, cell])
    m.pbc = True
    return m


def _rotate(mol: Atoms, seed: int) -> Atoms:
    from scipy.spatial.transform import Rotation

    m = mol.copy()
    R = Rotation.random(random_state=seed).as_matrix()
    m.positions = (m.positions - m.positions.mean(0)) @ R.T
    return m


def _pair_distances(pos: np.ndarray) -> np.ndarray:
    return np.linalg.norm(pos[:, None] - pos[None], axis=-1)


def test_molecule_broken_across_the_cell_boundary_comes_out_whole():
    mol = molecule("CH3CH2OH")
    crystal = _boxed(mol, shift=(-0.6, 5.0, 5.0), cell=9.0)
    crystal.wrap()  # the molecule now straddles x = 0
    assert np.ptp(crystal.positions[:, 0]) > 5.0
    (found,) = mc.nmr.find_molecules(crystal)
    np.testing.assert_array_equal(found.atoms, np.arange(len(mol)))
    np.testing.assert_allclose(
        _pair_distances(found.positions), _pair_distances(mol.positions), atol=1e-9
    )
    assert len(found.edges) == 8  # C-C, C-O, O-H and five C-H


def test_shuffled_rotated_copies_map_atom_by_atom_onto_the_reference():
    # Z' = 2 by hand: two differently oriented copies, atoms interleaved in the file; the
    # values at each atom are its reference position, so the map is checked exactly.
    ref = molecule("CH3CH2OH")
    n = len(ref)
    a, b = _rotate(ref, 1), _rotate(ref, 2)
    a.positions += 3.0
    b.positions += 9.0
    cell = a + b
    order = np.random.default_rng(0).permutation(2 * n)
    cell = cell[order]
    cell.set_cell([13.0, 13.0, 13.0])
    cell.pbc = True
    truth = np.tile(np.arange(n, dtype=float), 2)[order]
    reference, (smap,) = mc.nmr.map_sites([cell], reference=ref)
    assert smap.n_molecules == 2
    for m in range(2):
        np.testing.assert_array_equal(truth[smap.atoms[m]], np.arange(n))
    np.testing.assert_allclose(smap.rmsd, 0.0, atol=1e-6)
    np.testing.assert_array_equal(smap.spread(truth), 0.0)
    assert reference.labels[:3] == ["C1", "C2", "O3"]


@pytest.mark.parametrize("name", ["C6H6", "C5H5N", "isobutane", "CH3COOH", "CH3CH2OH"])
def test_symmetric_molecules_map_to_the_geometrically_matching_atoms(name):
    # Benzene (12 ring automorphisms), pyridine (a ring flip), isobutane (three methyl
    # rotors on one carbon), acetic acid, ethanol (a flat C-C-O skeleton: only the H fix
    # the handedness): each permuted, rotated copy must land on the same geometry.
    ref = molecule(name)
    perm = np.random.default_rng(3).permutation(len(ref))
    cand = _boxed(_rotate(ref, 7)[perm], shift=(6.0, 6.0, 6.0), cell=14.0)
    _, (smap,) = mc.nmr.map_sites([cand], reference=ref)
    mapped = cand.positions[smap.atoms[0]]
    np.testing.assert_allclose(_pair_distances(mapped), _pair_distances(ref.positions), atol=1e-6)
    np.testing.assert_array_equal(cand.numbers[smap.atoms[0]], ref.numbers)


def test_rotor_groups_and_site_descriptions():
    ref = molecule("CH3CH2OH")  # C1 (CH2-O), C2 (CH3), O3, H4-H9
    ref_mol, _ = mc.nmr.map_sites([ref])
    rotors = ref_mol.rotor_groups("H")
    assert len(rotors) == 1 and len(rotors[0]) == 3
    assert {int(ref.numbers[k]) for k in rotors[0]} == {1}
    (methyl_c,) = {int(b) for k in rotors[0] for b in ref_mol.neighbours(k)}
    d = np.linalg.norm(ref.positions - ref.positions[methyl_c], axis=1)
    assert ((ref.numbers == 1) & (d < 1.2)).sum() == 3  # it carries three H
    text = ref_mol.describe("H")
    assert text.count("\n") == 5 and "bonded to O3" in text


def test_bad_candidates_are_named():
    ref = molecule("CH3CH2OH")
    ether = _boxed(molecule("CH3OCH3"))  # same formula, other bond graph
    with pytest.raises(ValueError, match=r"candidate 1, molecule 1 .*connectivity mismatch"):
        mc.nmr.map_sites([_boxed(ref), ether])
    no_h = _boxed(ref[[k for k in range(len(ref)) if k != 5]])
    no_h.info["name"] = "form-II"
    with pytest.raises(ValueError, match=r"form-II, molecule 1 .* is C2H5O, the reference"):
        mc.nmr.map_sites([_boxed(ref), no_h])
    chain = Atoms("C", positions=[[0, 0, 0]], cell=[1.5, 10, 10], pbc=True)
    with pytest.raises(ValueError, match="bonded to its own periodic image"):
        mc.nmr.find_molecules(chain)
    with pytest.raises(ValueError, match="2 separate molecules"):
        far = molecule("H2O")
        far.positions += 5.0
        mc.nmr.map_sites([_boxed(ref)], reference=molecule("H2O") + far)
    with pytest.raises(ValueError, match="bond_tolerance"):
        mc.nmr.find_molecules(ref, bond_tolerance=float("nan"))


def _csd(shared_data, index):
    frames, cs = mc.nmr.load_chemiscope(shared_data / "CSD-1000R.json.gz")
    return frames[index], cs[index]


@pytest.mark.parametrize("index", [61, 29])
def test_csd_crystal_and_its_shuffled_2z_supercell_give_identical_site_predictions(
    shared_data, index
):
    crystal, _ = _csd(shared_data, index)
    super_ = crystal.repeat((1, 2, 1))
    super_ = super_[np.random.default_rng(index).permutation(len(super_))]
    model = mc.nmr.ShiftModel.pretrained("H")
    ref, maps = mc.nmr.map_sites([crystal, super_])
    assert maps[1].n_molecules == 2 * maps[0].n_molecules
    per_site = []
    for frame, smap in zip([crystal, super_], maps):
        full = np.full(len(frame), np.nan)
        full[frame.numbers == 1] = model.predict(frame)
        per_site.append(smap.average(full, ref.sites("H")))
    assert np.all(np.isfinite(per_site[0]))
    # The model's SOAP features are float32, summed over neighbours in the order of the
    # atoms: a permuted supercell rounds them differently (a few float32 ulps), which the
    # kernel products carry into the predictions (9e-6 ppm seen on an AMD EPYC, below
    # 1e-8 on an Intel Xeon). A mapping error would move them by ppm.
    atol = 64 * np.finfo(np.float32).eps * float(np.abs(per_site[0]).max())
    np.testing.assert_allclose(per_site[1], per_site[0], rtol=0, atol=atol)


@pytest.mark.parametrize(
    ("name", "sizes"),
    [
        ("CH3CH2OH", [2, 3]),  # the CH2 pair, the methyl
        ("isobutane", [9]),  # three methyls on one carbon: one orbit of nine
        ("C5H5N", [2, 2]),  # ortho and meta pairs of the ring flip
        ("C6H6", [6]),
    ],
)
def test_symmetry_groups_are_the_automorphism_orbits(name, sizes):
    ref_mol, _ = mc.nmr.map_sites([molecule(name)])
    groups = ref_mol.symmetry_groups("H")
    assert sorted(len(g) for g in groups) == sizes
    for g in groups:  # every member is an H bonded to atoms of one element
        assert {int(ref_mol.numbers[k]) for k in g} == {1}
        assert len({int(ref_mol.numbers[ref_mol.neighbours(k)[0]]) for k in g}) == 1
