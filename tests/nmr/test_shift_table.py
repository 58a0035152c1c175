"""Experimental shift tables (CSV), partial assignment knowledge (``allowed`` sets) against
brute-force enumeration, and ``matchar rank`` end to end on a CSD-1000R pool of mixed Z."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from ase.build import molecule
from scipy.special import logsumexp

import matchar as mc
import matchar.cli
from matchar.io import FileFormatError


def _brute_force(pred, std, y, allowed, sigma_exp):
    """Evidence averaged over every bijection peak j -> site perm[j] allowed by the sets,
    each one a given-assignment evidence (closed form, docs/nmr.md)."""
    n = len(y)
    logs = []
    for perm in itertools.permutations(range(n)):
        if all(a is None or perm[j] in a for j, a in enumerate(allowed)):
            yy = np.empty(n)
            yy[list(perm)] = y
            logs.append(
                mc.nmr.structure_posterior(
                    pred, std, yy, sigma_exp=sigma_exp, return_details=True
                ).log_evidence
            )
    return logsumexp(np.array(logs), axis=0) - np.log(len(logs))


@pytest.mark.parametrize(
    "allowed",
    [
        [[0], [1, 2], [1, 2], [3, 4, 5], [3, 4], [3, 4, 5]],  # forced pairs propagate
        [None] * 6,  # nothing known: the plain marginalised evidence
        [[k] for k in range(6)],  # everything assigned: the given evidence
        [[0, 1], [1, 2], [2, 3], [3, 4], [4, 5], [5, 0]],  # a cycle: enumerated
        [[2], None, None, [0, 4], None, [5]],
    ],
)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_allowed_sets_match_brute_force_enumeration(allowed, dtype):
    rng = np.random.default_rng(1)
    pred = rng.normal(25.0, 2.0, (4, 6)).astype(dtype)
    std = rng.uniform(0.1, 0.5, (4, 6)).astype(dtype)
    y = 30.0 - pred[0].astype(np.float64) + rng.normal(0.0, 0.3, 6)
    res = mc.nmr.structure_posterior(
        pred, std, y, sigma_exp=0.3, assignment="marginalize", allowed=allowed,
        return_details=True,
    )  # fmt: skip
    ref = _brute_force(pred.astype(np.float64), std.astype(np.float64), y, allowed, 0.3)
    tol = 1e-9 if dtype == np.float64 else 2e-4 * np.abs(ref).max()
    np.testing.assert_allclose(res.log_evidence, ref, rtol=0, atol=tol)
    P = res.nuclei["shifts"].assignment_probabilities
    np.testing.assert_allclose(P.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(P.sum(axis=2), 1.0, atol=1e-6)
    for j, a in enumerate(allowed):  # no weight outside the sets
        if a is not None:
            assert P[:, j, [k for k in range(6) if k not in a]].max(initial=0) == 0


def test_allowed_bad_input():
    pred, y = np.zeros((2, 3)), np.zeros(3)
    kw = dict(sigma_exp=0.3, assignment="marginalize")
    for bad, msg in [
        ([[0], [], None], "empty set"),
        ([[0], [0], None], "no assignment .* consistent"),
        ([[0], [1]], "one entry per peak"),
        ([[0], [7], None], "outside 0..2"),
        ([[0], [1.5], None], "set of site indices"),
    ]:
        with pytest.raises(ValueError, match=msg):
            mc.nmr.structure_posterior(pred, 0.2, y, allowed=bad, **kw)
    with pytest.raises(ValueError, match="needs assignment='marginalize'"):
        mc.nmr.structure_posterior(pred, 0.2, y, sigma_exp=0.3, allowed=[None] * 3)


def _ethanol_reference():
    ref, _ = mc.nmr.map_sites([molecule("CH3CH2OH")])
    return ref  # C1 C2 O3, H4..H9 (H4 on O3; H5-H7 on the methyl C; H8, H9)


def _write(tmp_path, text, name="exp.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_csv_groups_ambiguity_and_unknown_peaks(tmp_path):
    ref = _ethanol_reference()
    methyl = sorted(k + 1 for k in ref.rotor_groups("H")[0])
    others = [k + 1 for k in ref.sites("H") if k + 1 not in methyl]
    text = (
        "# ethanol, 1H\n"
        "peak,shift,sites\n"
        f'Me,1.2,"{",".join(map(str, methyl))}"\n'
        f"A,3.6,H{others[1]}|H{others[2]}\n"
        f"B,3.7,{others[1]} | {others[2]}\n"
        "OH,5.0,\n"
    )
    table = mc.nmr.read_shift_table(_write(tmp_path, text))
    assert table.labels == ["Me", "A", "B", "OH"] and table.has_sites
    np.testing.assert_array_equal(table.shifts, [1.2, 3.6, 3.7, 5.0])
    prob = table.problem(ref, "H")
    assert len(prob.units) == 4 and not prob.fully_assigned
    me_unit = prob.unit_labels.index(",".join(f"H{k}" for k in methyl))
    assert prob.allowed[0] == [me_unit] and prob.allowed[3] is None
    assert prob.allowed[1] == prob.allowed[2] and len(prob.allowed[1]) == 2
    # every H site belongs to one unit; the three methyl H share theirs
    assert sorted(np.bincount(prob.groups).tolist()) == [1, 1, 1, 3]
    plain = mc.nmr.read_shift_table(_write(tmp_path, "1.0\n2.5\n", "plain.csv"))
    assert not plain.has_sites and plain.shifts.tolist() == [1.0, 2.5]


@pytest.mark.parametrize(
    ("rows", "match"),
    [
        ("a,1.0,2\nb,2,3\nc,3,4\nd,4,5\ne,5,6\nf,6,7\n", "site 2, which is C2, not an H site"),
        ("a,1.0,42\n", "refers to site 42; the reference molecule has atoms 1..9"),
        ('a,1,"5,6,7"\nb,2,"6,8"\nc,3,\nd,4,\n', "overlapping groups"),
        ("a,1,4\nb,2,4\nc,3,\nd,4,\ne,5,\nf,6,\n", "site H4 is given to two peaks, 'a' and 'b'"),
        ("a,1,4\nb,2,\n", "lists 2 peaks, but .* 6 H sites form 6 sites"),
        ('a,1,"4,4"\n', "lists a site twice"),
    ],
)
def test_table_problems_name_the_peak_and_site(tmp_path, rows, match):
    ref = _ethanol_reference()
    table = mc.nmr.read_shift_table(_write(tmp_path, "peak,shift,sites\n" + rows))
    with pytest.raises(ValueError, match=match):
        table.problem(ref, "H")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("peak,shift,sites\na,1.0,4|\n", "empty set of sites"),
        ("peak,shift,sites\na,1.0,H-4\n", "cannot read site"),
        ("peak,shift\na,x\n", "not a number"),
        ("peak,shift\na,1\na,2\n", "used twice"),
        ("peak,value\na,1\n", "no 'shift' column"),
    ],
)
def test_malformed_csv_is_one_error_naming_the_file(tmp_path, text, match):
    path = _write(tmp_path, text)
    with pytest.raises(FileFormatError, match=match) as info:
        mc.nmr.read_shift_table(path)
    assert str(path) in str(info.value)


# --- a CSD-1000R pool: the crystal, its shuffled 2Z supercell, and two repacked decoys


def _repacked(crystal, scale, seed):
    """A decoy packing: every molecule moved rigidly (centre scaled by ``scale``, small
    random rotation), cell scaled."""
    from scipy.spatial.transform import Rotation

    decoy = crystal.copy()
    rng = np.random.default_rng(seed)
    for m in mc.nmr.find_molecules(crystal):
        centre = m.positions.mean(axis=0)
        R = Rotation.from_rotvec(rng.normal(0.0, 0.15, 3)).as_matrix()
        decoy.positions[m.atoms] = (m.positions - centre) @ R.T + scale * centre
    decoy.set_cell(crystal.cell * scale, scale_atoms=False)
    return decoy


@pytest.fixture(scope="module")
def pool(shared_data):
    frames, cs = mc.nmr.load_chemiscope(shared_data / "CSD-1000R.json.gz")
    crystal, shieldings = frames[1], cs[1]  # C5H10N2O4, Z = 4, 10 H sites
    crystal.info["name"] = "true-Z4"
    double = crystal.repeat((2, 1, 1))
    double = double[np.random.default_rng(0).permutation(len(double))]
    double.info["name"] = "true-Z8"
    decoys = [_repacked(crystal, s, k) for k, s in enumerate([1.04, 0.97])]
    for k, d in enumerate(decoys):
        d.info["name"] = f"decoy-{k}"
    ref, (smap,) = mc.nmr.map_sites([crystal])
    h = ref.sites("H")
    experimental = 31.0 - smap.average(shieldings, h)  # GIPAW "experiment"
    return [crystal, double, *decoys], ref, experimental


def _z4_z8_tolerance(frames, ref, experimental) -> float:
    """How far apart the posteriors of true-Z4 and true-Z8 may be: their site-averaged
    predictions are the same up to float32 rounding (the SOAP and kernel sums run in
    another order in the doubled, permuted cell; checked here), and a change dmu_i of a
    prediction moves a Gaussian log-likelihood by at most |dmu_i| (|r_i| + 5 s) / s²,
    r_i the residual after the offset, s >= sigma_exp the total sigma. Returned: the bound
    on |p_Z4 - p_Z8| that follows, max(p) (exp(dL) - 1) <= exp(dL) - 1."""
    model = mc.nmr.ShiftModel.pretrained("H")
    ref2, maps = mc.nmr.map_sites(frames[:2])  # the reference of frames[0], as `ref`
    assert list(ref2.labels) == list(ref.labels)
    h = ref.sites("H")
    pred = []
    for frame, smap in zip(frames[:2], maps):
        full = np.full(len(frame), np.nan)
        full[frame.numbers == 1] = model.predict([frame])
        pred.append(smap.average(full, h))
    dmu = np.abs(pred[0] - pred[1])
    assert dmu.max() <= 64 * np.finfo(np.float32).eps * np.abs(pred[0]).max(), dmu.max()
    r = experimental + pred[0]  # slope -1: constant up to the model's errors
    s = 0.33  # sigma_exp of 1H, the smallest total sigma
    dL = float(np.sum(dmu * (np.abs(r - r.mean()) + 5 * s) / s**2))
    return float(np.expm1(dL))


def test_rank_cli_on_a_mixed_z_pool(tmp_path, capsys, pool):
    import ase.io

    frames, ref, experimental = pool
    ase.io.write(tmp_path / "cands.extxyz", frames)
    h = ref.sites("H")
    rows = ["peak,shift,sites"]
    rows += [f"{ref.labels[k]},{v:.4f},{k + 1}" for k, v in zip(h, experimental)]
    _write(tmp_path, "\n".join(rows) + "\n")
    out = tmp_path / "rank"
    args = ["rank", str(tmp_path / "cands.extxyz"), "--experimental", str(tmp_path / "exp.csv")]
    assert matchar.cli.main([*args, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "reference molecule C5H10N2O4" in printed and "most probable: true-Z" in printed
    lines = (out / "posterior.csv").read_text().splitlines()
    assert lines[0] == "candidate,name,posterior,log_evidence,rank,molecules"
    table = {r.split(",")[1].strip('"'): r.split(",") for r in lines[1:]}
    p = {k: float(v[2]) for k, v in table.items()}
    assert table["true-Z4"][5] == "4" and table["true-Z8"][5] == "8"
    assert abs(sum(p.values()) - 1.0) < 1e-5
    tol = _z4_z8_tolerance(frames, ref, experimental)
    assert tol < 1e-2  # the two are the same structure: their posteriors nearly equal
    # identical per-site predictions up to float32 rounding; 1e-6: the CSV's 6 digits
    assert abs(p["true-Z4"] - p["true-Z8"]) <= tol + 1e-6
    assert p["true-Z4"] + p["true-Z8"] > max(p["decoy-0"], p["decoy-1"])
    for name in ("posterior.png", "parity.png", "similarity.png", "sites.txt"):
        assert (out / name).exists()
    # the same case from the API, modes compared: assigned peaks never do worse here
    res = {
        how: mc.nmr.rank_candidates(frames, tmp_path / "exp.csv", "H", assignment=how)
        for how in ("auto", "given", "marginalize")
    }
    np.testing.assert_allclose(res["auto"].probabilities, res["given"].probabilities, atol=1e-9)
    assert res["auto"].candidate_names == ("true-Z4", "true-Z8", "decoy-0", "decoy-1")
    # methyl rotors as one averaged peak each: plain shifts, one per unit, marginalised
    rotors = ref.rotor_groups("H")
    assert len(rotors) == 2
    grouped = set().union(*rotors)
    units = sorted([tuple(g) for g in rotors] + [(k,) for k in h if k not in grouped])
    shift = dict(zip(h.tolist(), experimental))
    per_unit = [np.mean([shift[k] for k in u]) for u in units]
    res = mc.nmr.rank_candidates(frames, per_unit, "H", groups="rotors")
    assert res.site_labels is not None and len(res.site_labels) == 6
    assert abs(res.probabilities[0] - res.probabilities[1]) <= tol


def test_rank_cli_errors_are_one_line(tmp_path, capsys, pool):
    import ase.io

    frames, _, experimental = pool
    bad = frames[0].copy()
    del bad[[int(np.flatnonzero(bad.numbers == 1)[0])]]  # a missing H
    bad.info["name"] = "broken"
    ase.io.write(tmp_path / "cands.extxyz", [frames[0], bad])
    _write(tmp_path, "\n".join(f"{v:.3f}" for v in experimental) + "\n")
    args = ["rank", str(tmp_path / "cands.extxyz"), "--experimental", str(tmp_path / "exp.csv")]
    assert matchar.cli.main([*args, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "broken, molecule" in err[0] and "C5H9N2O4" in err[0]
