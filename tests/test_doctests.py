"""The examples in matchar's docstrings run and print what they say (doctest).

One case per module of the package (``matchar`` and every submodule, private ones
included: their classes and functions are documented under the public names). Output is
compared with ``ELLIPSIS`` and ``NORMALIZE_WHITESPACE``. An example that needs a file of
the user's (a microscope file, an MD trajectory, a shift table) or minutes of work carries
``# doctest: +SKIP`` on each line and says why in the text around it; a docstring whose
examples import a package that is not installed (HyperSpy, ase, xraylib, ...: an extra)
is skipped, and runs wherever the package is.
"""

from __future__ import annotations

import ast
import doctest
import importlib
import importlib.util
import pkgutil

import pytest

import matchar

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _examples(name: str) -> list[doctest.DocTest]:
    module = importlib.import_module(name)
    tests = doctest.DocTestFinder().find(module, name)
    return sorted((t for t in tests if t.examples), key=lambda t: t.name)


_SUBMODULES = sorted(info.name for info in pkgutil.walk_packages(matchar.__path__, "matchar."))
#: Every module of matchar with at least one example.
MODULES = [name for name in ["matchar", *_SUBMODULES] if _examples(name)]


def _imported_packages(test: doctest.DocTest) -> set[str]:
    """Top-level names of the packages the examples of ``test`` import."""
    names = set()
    for example in test.examples:
        try:
            tree = ast.parse(example.source)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module.split(".")[0])
    return names


def _missing(packages: set[str]) -> list[str]:
    return sorted(p for p in packages if importlib.util.find_spec(p) is None)


@pytest.fixture(autouse=True)
def _figures_off_screen():
    """Plot examples draw on the Agg canvas; their figures are closed afterwards."""
    try:
        import matplotlib
    except ImportError:
        yield
        return
    matplotlib.use("Agg")
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    report: list[str] = []
    skipped = []
    for test in _examples(name):
        missing = _missing(_imported_packages(test))
        if missing:
            skipped.append(f"{test.name} (needs {', '.join(missing)})")
            continue
        runner.run(test, out=report.append)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, "".join(report)
    if skipped and not result.attempted:
        pytest.skip("; ".join(skipped))
