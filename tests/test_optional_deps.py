"""Each job's optional dependencies (the extras edx, imaging, nmr): importing matchar needs
none of them, and a job used without its extra fails with one line naming the extra."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import matchar as mc
import matchar.cli
from matchar import _demo
from matchar._optional import MissingDependency, require

OPTIONAL = ("onnxruntime", "xraylib", "ase", "networkx")


def _block(monkeypatch, *modules: str) -> None:
    """Make ``import <module>`` (and its submodules) fail as if it were not installed."""
    for name in list(sys.modules):
        if name.partition(".")[0] in modules:
            monkeypatch.delitem(sys.modules, name)
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)


def _hint(extra: str) -> str:
    return f"pip install 'matchar[{extra}]'"


def test_require_names_the_package_and_the_extra(monkeypatch):
    _block(monkeypatch, "onnxruntime")
    with pytest.raises(ImportError) as info:
        require("onnxruntime", "imaging", "CrystalClassifier")
    err = info.value
    assert isinstance(err, MissingDependency)
    assert str(err) == (
        "CrystalClassifier needs onnxruntime, which is not installed: "
        "pip install 'matchar[imaging]'"
    )
    assert (err.package, err.extra, err.name) == ("onnxruntime", "imaging", "onnxruntime")
    _block(monkeypatch, "ase")
    with pytest.raises(MissingDependency, match=r"^map_sites needs ase, .*matchar\[nmr\]'$"):
        require("ase.neighborlist", feature="map_sites")  # the extra from the package


def test_require_returns_the_module():
    assert require("numpy.linalg", "test", "x") is np.linalg


def test_crystal_classifier_needs_imaging(monkeypatch):
    from matchar.imaging import _classifier

    path = _classifier._MODELS / "crystal_classifier.onnx"
    _block(monkeypatch, "onnxruntime")
    with pytest.raises(ImportError, match=r"CrystalClassifier needs onnxruntime.*\[imaging\]"):
        mc.imaging.CrystalClassifier(path)
    _classifier._load_default.cache_clear()  # a classifier loaded earlier would not ask
    image = mc.imaging.simulate_haadf("fcc", (1, 1, 0), 3.61, shape=(96, 96), pixel_size=0.15)
    with pytest.raises(ImportError, match=r"pip install 'matchar\[imaging\]'"):
        mc.imaging.CrystalClassifier.default().predict(image, 0.15)
    with pytest.raises(ImportError, match=r"pip install 'matchar\[imaging\]'"):
        mc.imaging.classify_map(image, 0.15)


def test_edx_model_needs_edx(monkeypatch):
    _block(monkeypatch, "xraylib")
    with pytest.raises(ImportError, match=r"^EDXModel needs xraylib, .*'matchar\[edx\]'$"):
        mc.spectral.EDXModel(["Fe", "O"], (0.0, 0.02, 500))


def test_structures_need_nmr(monkeypatch):
    import ase.build

    mol = ase.build.molecule("CH3CH2OH")
    model = mc.nmr.ShiftModel.pretrained("H")
    _block(monkeypatch, "ase", "networkx")
    hint = r"pip install 'matchar\[nmr\]'$"
    with pytest.raises(ImportError, match=r"^ShiftModel needs ase, .*" + hint):
        model.predict(mol)
    with pytest.raises(ImportError, match=r"^ShiftModel\.pretrained needs ase.*" + hint):
        mc.nmr.ShiftModel.pretrained("H")
    with pytest.raises(ImportError, match=r"^map_sites needs networkx, .*" + hint):
        mc.nmr.map_sites([mol, mol])
    with pytest.raises(ImportError, match=r"^SOAP needs ase, .*" + hint):
        mc.atoms.SOAP(cutoff=3.0, species=["H", "C", "O"]).compute(mol)


def test_nmr_without_structures_needs_no_extra(monkeypatch):
    _block(monkeypatch, *OPTIONAL)
    p = mc.nmr.structure_posterior(
        [[1.0, 2.0], [1.5, 2.5]], [[0.1, 0.1], [0.1, 0.1]], [1.0, 2.0], sigma_exp=0.2
    )
    assert np.argmax(p) == 0


def test_cli_error_is_one_line_naming_the_extra(monkeypatch, tmp_path, capsys):
    from matchar.imaging import _classifier

    image = mc.imaging.simulate_haadf("fcc", (1, 1, 0), 3.61, shape=(96, 96), pixel_size=0.15)
    np.save(tmp_path / "img.npy", image)
    (tmp_path / "w.xyz").write_text("1\n\nH 0 0 0\n")
    _block(monkeypatch, *OPTIONAL)
    _classifier._load_default.cache_clear()
    argv = ["identify", str(tmp_path / "img.npy"), "--pixel-size", "0.15"]
    assert matchar.cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err == (
        "matchar identify: error: CrystalClassifier needs onnxruntime, which is not "
        "installed: pip install 'matchar[imaging]'\n"
    )
    assert matchar.cli.main(["soap", str(tmp_path / "w.xyz"), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("matchar soap: error: ")
    assert err.rstrip().endswith("needs ase, which is not installed: pip install 'matchar[nmr]'")


def test_demo_skips_a_job_whose_extra_is_missing(monkeypatch, tmp_path, capsys):
    jobs = dict(_demo.JOBS)
    monkeypatch.setattr(
        _demo, "JOBS", [("edx", jobs["edx"]), ("nmr_posterior", jobs["nmr_posterior"])]
    )
    _block(monkeypatch, "xraylib")
    assert matchar.cli.main(["demo", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert (
        "  [skipped] edx: EDXModel needs xraylib, which is not installed: "
        "pip install 'matchar[edx]'\n" in out
    )
    summary = json.loads((tmp_path / "report.json").read_text())
    assert set(summary["jobs"]) == {"nmr_posterior"}
    assert summary["skipped"] == {"edx": "EDXModel needs xraylib, which is not installed: "
                                         "pip install 'matchar[edx]'"}  # fmt: skip
    assert "matchar[edx]" in (tmp_path / "report.html").read_text()


def test_bench_skips_the_soap_cases_without_nmr(monkeypatch):
    from matchar import _bench

    monkeypatch.setattr(_bench, "_nmf_cases", lambda quick, repeat: [])
    monkeypatch.setattr(_bench, "_pca_case", lambda quick, repeat: [])
    monkeypatch.setattr(_bench, "_kernel_case", lambda quick, repeat: [])
    _block(monkeypatch, "ase")
    with pytest.warns(UserWarning, match=r"^skipped: the SOAP benchmark needs ase, .*\[nmr\]'$"):
        assert _bench.run_bench(quick=True, repeat=1) == []


def test_import_needs_no_optional_dependency(tmp_path):
    """``import matchar`` and every subpackage, with the optional packages not importable."""
    code = textwrap.dedent(
        f"""
        import importlib.abc, sys

        class Missing(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.partition(".")[0] in {OPTIONAL!r}:
                    raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
                return None

        sys.meta_path.insert(0, Missing())
        import matchar, matchar.spectral, matchar.imaging, matchar.nmr, matchar.atoms
        import matchar.gp, matchar.io, matchar.datasets, matchar.distributed, matchar.cli
        matchar.cli.build_parser()
        loaded = sorted(m for m in sys.modules if m.partition(".")[0] in {OPTIONAL!r})
        assert not loaded, loaded
        try:
            matchar.spectral.EDXModel(["Fe"], (0.0, 0.02, 100))
        except ImportError as err:
            print(err)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == (
        "EDXModel needs xraylib, which is not installed: pip install 'matchar[edx]'\n"
    )
