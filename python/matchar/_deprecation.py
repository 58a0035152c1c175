"""Deprecated parameter names, kept working for one release.

A renamed parameter keeps its old keyword through :func:`renamed_parameters`: the call
works as before (the value converted to the new unit where the unit changed) and gives a
``FutureWarning`` that names the new parameter, pointing at the caller. The names follow
the convention of docs/developing.md ("Names and units"). A value whose meaning moves to
another parameter (not a keyword that changes name) warns from the function itself.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


class Renamed(NamedTuple):
    """The new name of a parameter, and how an old value converts to the new unit."""

    new: str
    #: The new value from the old one (Å -> nm: ``lambda t: t / 10``); None = the same.
    convert: Callable[[float], float] | None = None
    #: What the conversion says in the warning ("thickness was in Å: divided by 10").
    note: str = ""


def _convert(value: Any, convert: Callable[[float], float] | None) -> Any:
    if convert is None or value is None:
        return value
    try:
        return convert(float(value))
    except (TypeError, ValueError, OverflowError):
        return value  # the new parameter's check names what is wrong with it


def renamed_parameters(**renames: str | Renamed) -> Callable[[F], F]:
    """Decorator: keyword arguments under an old name go to the new one, with a
    ``FutureWarning`` ("``f(old=...)`` is deprecated and will be removed in the next
    release: pass ``new=...``"); passing both names is a ``TypeError``.

    ``renames`` maps each old name to the new one, or to a :class:`Renamed` when the
    unit changed too.
    """
    table = {old: Renamed(r) if isinstance(r, str) else r for old, r in renames.items()}

    def wrap(func: F) -> F:
        name = func.__qualname__

        @functools.wraps(func)
        def inner(*args: Any, **kwargs: Any) -> Any:
            for old, r in table.items():
                if old not in kwargs:
                    continue
                if r.new in kwargs:
                    raise TypeError(
                        f"{name}() got both {old}= (deprecated) and {r.new}=: pass {r.new} only"
                    )
                note = f" ({r.note})" if r.note else ""
                warnings.warn(
                    f"{name}({old}=...) is deprecated and will be removed in the next "
                    f"release: pass {r.new}=...{note}",
                    FutureWarning,
                    stacklevel=2,
                )
                kwargs[r.new] = _convert(kwargs.pop(old), r.convert)
            return func(*args, **kwargs)

        return inner  # type: ignore[return-value]

    return wrap
