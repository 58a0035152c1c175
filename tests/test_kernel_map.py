"""The map from Python functions to their C++ kernels in docs/developing.md is complete
and points at files that exist (a kernel is two hops from its Python function)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "developing.md"
PACKAGE = ROOT / "python" / "matchar"
CPP = ROOT / "cpp"


@pytest.fixture(scope="module")
def table() -> list[list[str]]:
    if not DOC.exists() or not CPP.exists():
        pytest.skip("the repository's docs/ and cpp/ are not beside this installation")
    text = DOC.read_text()
    section = text.split("## From a Python function to its kernel", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows[1:]]


def _paths(cell: str, suffixes: tuple[str, ...]) -> list[str]:
    return [p for p in re.findall(r"`([^`]+)`", cell) if p.endswith(suffixes) or p.endswith("/")]


def test_every_module_calling_core_is_mapped(table):
    mapped = {p for row in table for p in _paths(row[1], (".py",))}
    calling = set()
    for path in PACKAGE.rglob("*.py"):
        if re.search(r"_core\.(atoms|gp|imaging|nmr|spectral)\.", path.read_text()):
            calling.add(path.relative_to(PACKAGE).as_posix())
    assert calling, "no module calls _core: the pattern is out of date"
    assert calling <= mapped, f"modules calling _core missing from the map: {calling - mapped}"


def test_every_named_file_exists(table):
    named = 0
    for row in table:
        for p in _paths(row[1], (".py",)):
            assert (PACKAGE / p).exists(), p
            named += 1
        for p in _paths(row[2], (".cpp", ".hpp", ".inc")):
            assert (CPP / p).exists(), p
            named += 1
    assert named > 30


def test_every_binding_and_kernel_source_is_mapped(table):
    """Each source file of cpp/bindings (but the module set-up and shared headers) and
    each kernel source of cpp/src is named in the map, or lies in a folder it names."""
    text = " ".join(" ".join(row) for row in table)
    text += (
        DOC.read_text().split("## From a Python function to its kernel", 1)[1].split("\n## ", 1)[0]
    )
    named = set(re.findall(r"`([^`]+)`", text))
    folders = [n for n in named if n.endswith("/")]
    missing = []
    for path in sorted((CPP / "bindings").glob("bind_*.cpp")) + sorted(
        p for p in (CPP / "src").rglob("*") if p.suffix in (".cpp", ".inc")
    ):
        rel = path.relative_to(CPP).as_posix()
        if rel not in named and not any(rel.startswith(f) for f in folders):
            missing.append(rel)
    assert not missing, f"sources not in the map: {missing}"
