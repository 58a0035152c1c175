"""Old import paths of the private helpers a module split moved into sibling modules."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any


def forward_private(module_name: str, *homes: ModuleType) -> Callable[[str], Any]:
    """A module ``__getattr__`` (PEP 562) that also finds the private names (``_x``, not
    dunders) of ``homes``: the helpers a split moved out of ``module_name`` stay importable
    from it (``from matchar.nmr._posterior import _prepare_nucleus``)."""

    def __getattr__(name: str) -> Any:
        if name.startswith("_") and not name.startswith("__"):
            for home in homes:
                if name in vars(home):
                    return vars(home)[name]
        raise AttributeError(f"module {module_name!r} has no attribute {name!r}")

    return __getattr__
