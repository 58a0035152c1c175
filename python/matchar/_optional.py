"""The one place that imports a job's optional dependency.

``pip install matchar`` installs what every job needs (NumPy, SciPy, scikit-learn,
matplotlib, ...); each job's own dependencies come with an extra:

- ``edx``: xraylib (``EDXModel``, ``PhysicsNMF``'s element lookups);
- ``imaging``: onnxruntime (``CrystalClassifier``: crystal identification);
- ``nmr``: ase and networkx (structures: ``SOAP``, ``ShiftModel``, ``map_sites``,
  ``load_structures``).

``require`` imports such a module where it is used, or raises :class:`MissingDependency`
(an ``ImportError``) whose message is one line naming the extra to install.
"""

from __future__ import annotations

import importlib
from types import ModuleType

#: Extra of each optional package (the top-level module name) and its pip name.
EXTRAS: dict[str, tuple[str, str]] = {
    "xraylib": ("edx", "xraylib"),
    "onnxruntime": ("imaging", "onnxruntime"),
    "ase": ("nmr", "ase"),
    "networkx": ("nmr", "networkx"),
}


class MissingDependency(ImportError):
    """An optional dependency is not installed; ``extra`` names the extra that brings it."""

    def __init__(self, message: str, *, package: str, extra: str, feature: str) -> None:
        super().__init__(message, name=package)
        self.package = package
        self.extra = extra
        self.feature = feature


def install_hint(extra: str) -> str:
    """The pip command that installs ``extra``: ``pip install 'matchar[nmr]'``."""
    return f"pip install 'matchar[{extra}]'"


def require(module: str, extra: str | None = None, feature: str = "this feature") -> ModuleType:
    """Import ``module`` (e.g. ``"ase.neighborlist"``) or raise :class:`MissingDependency`.

    Parameters
    ----------
    module : str
        Dotted module name; its top-level package is the one named in the message.
    extra : str, optional
        The matchar extra that installs it; by default looked up in :data:`EXTRAS`.
    feature : str
        What needs it, in the user's words ("CrystalClassifier", "map_sites").

    Returns
    -------
    types.ModuleType
        The imported module.

    Examples
    --------
    >>> ort = require("onnxruntime", "imaging", "CrystalClassifier")  # doctest: +SKIP
    """
    top = module.partition(".")[0]
    known_extra, package = EXTRAS.get(top, (None, top))
    extra = extra or known_extra
    if extra is None:
        raise ValueError(f"require: no extra is known for {module!r}; pass extra=")
    try:
        return importlib.import_module(module)
    except ImportError as err:
        missing = getattr(err, "name", None)
        hint = install_hint(extra)
        if (
            isinstance(err, ModuleNotFoundError)
            and missing is not None
            and (missing == top or missing.startswith(top + "."))
        ):
            raise MissingDependency(
                f"{feature} needs {package}, which is not installed: {hint}",
                package=package,
                extra=extra,
                feature=feature,
            ) from None
        # Installed but broken (a missing shared library, a version clash): say which.
        detail = " ".join(str(err).split())
        raise MissingDependency(
            f"{feature} needs {package}, which could not be imported ({detail}): {hint}",
            package=package,
            extra=extra,
            feature=feature,
        ) from err


def require_dask(feature: str) -> tuple[ModuleType, ModuleType]:
    """Import ``dask`` and ``dask.array`` or raise an ImportError naming the ``dask`` extra.

    Parameters
    ----------
    feature : str
        What needs dask, in the user's words (``"matchar.distributed"``).

    Returns
    -------
    (types.ModuleType, types.ModuleType)
        ``dask`` and ``dask.array``.
    """
    try:
        import dask
        import dask.array as da
    except ImportError as err:  # pragma: no cover - an extra
        raise ImportError(
            f"{feature} needs dask: pip install 'matchar[dask]' (dask[array], distributed)"
        ) from err
    return dask, da
