"""The one validation layer for scalar arguments and fitted state.

Every public function checks its scalar arguments here before any work, so that a bad
value gives one message naming the argument, the value and what was expected, instead
of a silent truncation (``2.5`` -> ``2``), a NaN result, a pybind11 signature dump
(integers that do not fit a C++ ``int``) or a crash. Arrays go through
:func:`matchar._arrays.as_array`.
"""

from __future__ import annotations

import math
import numbers
import operator
from typing import Any

from sklearn.exceptions import NotFittedError as _SklearnNotFittedError

#: Limits of the C++ integer types the kernels take.
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1


class NotFittedError(_SklearnNotFittedError, RuntimeError):
    """An estimator was used before ``fit``.

    scikit-learn's ``NotFittedError`` (so ``sklearn.utils.validation.check_is_fitted``
    and code that catches it work), and also a ``RuntimeError``, which some matchar
    classes raised before.
    """


def _range_text(low: Any, high: Any, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {low}"
    if high is not None:
        return f"{'<' if high_open else '<='} {high}"
    return ""


def check_int(
    value: Any,
    name: str,
    *,
    low: int | None = None,
    high: int | None = INT32_MAX,
    allow_none: bool = False,
) -> int | None:
    """Return ``value`` as a Python ``int`` after checking it is an integer in range.

    Accepts Python and NumPy integers and integral floats (``4.0``); refuses bools,
    strings, ``2.5``, NaN and values outside ``[low, high]``. ``high`` defaults to the
    largest C++ ``int`` (2**31 - 1) so that nothing reaching a kernel can overflow; pass
    ``high=None`` for no upper limit (Python-only counts) or ``INT64_MAX``.

    Raises
    ------
    ValueError
        Naming ``name``, the value received and the expected range.
    """
    if value is None and allow_none:
        return None
    expected = " ".join(s for s in ("an integer", _range_text(low, high, False, False)) if s)
    if isinstance(value, bool):
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    try:
        out = operator.index(value)
    except TypeError:
        if isinstance(value, numbers.Real) and math.isfinite(value) and float(value).is_integer():
            out = int(value)
        else:
            raise ValueError(f"{name} must be {expected}, got {value!r}") from None
    if (low is not None and out < low) or (high is not None and out > high):
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return out


def check_float(
    value: Any,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    allow_none: bool = False,
    allow_inf: bool = False,
) -> float | None:
    """Return ``value`` as a finite Python ``float`` in the given range.

    ``low_open`` / ``high_open`` make the bounds strict (``> low``, ``< high``). NaN is
    always refused; infinities only with ``allow_inf``. Bools and strings are refused.

    Raises
    ------
    ValueError
        Naming ``name``, the value received and the expected range.
    """
    if value is None and allow_none:
        return None
    rng = _range_text(low, high, low_open, high_open)
    expected = ("a finite number" if not allow_inf else "a number") + (f" {rng}" if rng else "")
    if isinstance(value, (bool, str, bytes)) or not isinstance(value, numbers.Real):
        try:  # 0-d arrays and other objects with __float__ but not numbers.Real
            if isinstance(value, (bool, str, bytes)):
                raise TypeError
            out = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be {expected}, got {value!r}") from None
    else:
        out = float(value)
    if math.isnan(out) or (math.isinf(out) and not allow_inf):
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    if low is not None and (out < low or (low_open and out == low)):
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    if high is not None and (out > high or (high_open and out == high)):
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return out


def check_choice(value: Any, name: str, choices: tuple) -> Any:
    """Return ``value`` if it is one of ``choices``; otherwise a ValueError naming them."""
    try:
        ok = value in choices
    except TypeError:  # unhashable or incomparable
        ok = False
    if not ok:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value


def check_fitted(estimator: Any, attribute: str, what: str | None = None) -> None:
    """Raise :class:`NotFittedError` when ``estimator`` lacks ``attribute`` (or it is None).

    ``what`` names the estimator in the message (its class name by default).
    """
    if getattr(estimator, attribute, None) is None:
        name = what or type(estimator).__name__
        raise NotFittedError(f"this {name} is not fitted yet: call fit() first")
