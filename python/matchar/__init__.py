"""matchar: machine learning for materials characterization on a C++17/OpenMP core.

Five jobs, one library: hyperspectral EELS/EDX decomposition, STEM image segmentation,
crystal identification, NMR shielding prediction and Bayesian NMR structure
determination. See ``docs/`` and ``matchar demo``.
"""

from __future__ import annotations

import os as _os

# OpenMP threads that reach a barrier first spin before they sleep. libgomp's default
# spin (300,000 rounds, milliseconds on current CPUs) takes a core from other work on a
# busy machine; unless the user chose (OMP_WAIT_POLICY or GOMP_SPINCOUNT), matchar's
# threads spin for tens of microseconds and then sleep (docs/benchmarks.md, "threads
# under load"). Set before the OpenMP runtime loads; no effect if another library has
# loaded it already.
if "OMP_WAIT_POLICY" not in _os.environ and "GOMP_SPINCOUNT" not in _os.environ:
    _os.environ["GOMP_SPINCOUNT"] = "10000"

try:
    from . import _core  # noqa: F401  (fail early, with the message below)
except ImportError as err:  # pragma: no cover - depends on how the package was installed
    msg = (
        "matchar's compiled core (matchar._core) could not be imported. If you are running "
        "from a source checkout, install it first (`pip install .`) and run Python outside "
        "the source directory; if you installed a wheel, it may have been built for another "
        f"CPU or Python version (rebuild with `pip install --no-binary matchar matchar`).\n"
        f"Original error: {err}"
    )
    raise ImportError(msg) from err

from . import atoms, datasets, gp, imaging, io, nmr, spectral
from ._threads import get_num_threads, set_num_threads, threads
from ._validation import NotFittedError

__version__: str = "0.1.0"

__all__ = [
    "NotFittedError",
    "__version__",
    "atoms",
    "datasets",
    "get_num_threads",
    "gp",
    "imaging",
    "io",
    "nmr",
    "set_num_threads",
    "spectral",
    "threads",
]
