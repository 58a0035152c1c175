"""``matchar bench``: matchar against whichever peers are installed, same data, same run.

Each case times matchar and its peer on identical inputs (best of ``repeat`` runs after
one warm-up) and reports the ratio peer / matchar. The full pytest-benchmark suites live
in the repository's ``benchmarks/`` folder; this is the installed, self-contained version,
and its data generators and NumPy peers are the ones those suites import.
"""

from __future__ import annotations

import importlib.util
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

import matchar as mc
from matchar._optional import MissingDependency, require


@dataclass
class BenchRow:
    """One comparison: times in seconds (None when the peer is not installed)."""

    case: str
    peer: str
    matchar_s: float
    peer_s: float | None

    @property
    def speedup(self) -> float | None:
        """peer time / matchar time (> 1: matchar is faster)."""
        return None if self.peer_s is None else self.peer_s / self.matchar_s


def _best(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm-up (first-touch, thread pools, caches)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _mixture(
    rng: np.random.Generator, n_pixels: int, n_channels: int, n_phases: int
) -> tuple[np.ndarray, np.ndarray]:
    """(abundances (N, K), Dirichlet; spectra (K, C), each summing to 1) drawn from rng."""
    E = np.linspace(0.2, 10.0, n_channels)
    S = np.empty((n_phases, n_channels))
    for k in range(n_phases):
        lines = rng.uniform(0.5, 9.5, size=3)
        S[k] = 0.2 * np.exp(-E / 3) + sum(np.exp(-0.5 * ((E - e) / 0.1) ** 2) for e in lines)
    S /= S.sum(1, keepdims=True)
    A = rng.dirichlet(np.full(n_phases, 0.5), size=n_pixels)
    return A, S


def poisson_cube(
    n_pixels: int, n_channels: int, n_phases: int = 4, counts: float = 1000.0, seed: int = 0
) -> np.ndarray:
    """A synthetic spectrum image of Poisson counts (the benchmarks' input).

    ``n_phases`` spectra (three Gaussian lines, σ = 0.1 keV, centred at random in
    0.5-9.5 keV, on a bremsstrahlung-like ``0.2 exp(-E / 3 keV)``; E from 0.2 to 10 keV
    over the channels) mixed with Dirichlet(0.5) abundances, drawn in blocks of 4096
    pixels (the float64 mean is never held whole).

    Parameters
    ----------
    n_pixels, n_channels : int
        Shape of the result.
    n_phases : int, default 4
    counts : float, default 1000.0
        Mean counts per pixel.
    seed : int, default 0

    Returns
    -------
    numpy.ndarray, shape (n_pixels, n_channels), uint16
        Counts.
    """
    rng = np.random.default_rng(seed)
    A, S = _mixture(rng, n_pixels, n_channels, n_phases)
    out = np.empty((n_pixels, n_channels), dtype=np.uint16)
    step = 4096
    for i in range(0, n_pixels, step):
        out[i : i + step] = rng.poisson(counts * A[i : i + step] @ S)
    return out


def poisson_cube_truth(
    n_pixels: int, n_channels: int, n_phases: int = 4, counts: float = 1000.0, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The expectation of :func:`poisson_cube` with the same arguments.

    Returns
    -------
    maps : numpy.ndarray, shape (n_pixels, n_phases)
        Abundances in counts.
    spectra : numpy.ndarray, shape (n_phases, n_channels)
        Each summing to 1: ``maps @ spectra`` is the Poisson mean.
    """
    A, S = _mixture(np.random.default_rng(seed), n_pixels, n_channels, n_phases)
    return counts * A, S


def kernel_features(
    n: int, m: int | None, d: int, dtype: str = "float32", seed: int = 0
) -> tuple[np.ndarray, np.ndarray | None]:
    """The polynomial-kernel benchmarks' data: rows of rank 16 (like SOAP features, whose
    rows span few directions), generated directly in ``dtype``.

    Parameters
    ----------
    n, m : int
        Rows of X and of Y (``m=None``: no Y, for a Gram matrix).
    d : int
        Features.
    dtype : {"float32", "float64"}
    seed : int

    Returns
    -------
    X : numpy.ndarray, shape (n, d)
    Y : numpy.ndarray, shape (m, d), or None
    """
    rng = np.random.default_rng(seed)
    basis = rng.random((16, d)).astype(dtype)
    X = rng.random((n, 16)).astype(dtype) @ basis
    Y = None if m is None else rng.random((m, 16)).astype(dtype) @ basis
    return X, Y


def numpy_polynomial_kernel(X: np.ndarray, Y: np.ndarray, zeta: int = 2) -> np.ndarray:
    """The NumPy chain that :func:`matchar.gp.polynomial_kernel` fuses (its peer).

    Parameters
    ----------
    X : numpy.ndarray, shape (n, d)
    Y : numpy.ndarray, shape (m, d)
    zeta : int, default 2

    Returns
    -------
    numpy.ndarray, shape (n, m)
        ``(X_i . Y_j / (|X_i| |Y_j|)) ** zeta``.
    """
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    Yn = Y / np.linalg.norm(Y, axis=1, keepdims=True)
    return (Xn @ Yn.T) ** zeta


def _nmf_cases(quick: bool, repeat: int) -> list[BenchRow]:
    from sklearn.decomposition import NMF as SkNMF

    n, c, k, it = (4096, 256, 4, 10) if quick else (16384, 1024, 4, 50)
    X16 = poisson_cube(n, c, k, counts=300.0)
    X = X16.astype(np.float32)
    rng = np.random.default_rng(1)
    avg = np.sqrt(X.mean() / k)
    W0 = (avg * rng.random((n, k)) + 1e-3).astype(np.float32)
    H0 = (avg * rng.random((k, c)) + 1e-3).astype(np.float32)
    rows = []
    for loss, kw, name in (
        ("kl", dict(solver="mu", beta_loss="kullback-leibler"), "mu"),
        ("frobenius", dict(solver="cd"), "cd"),
    ):

        def ours(loss=loss):
            mc.spectral.NMF(
                k, loss=loss, max_iter=it, tol=0, init=(W0, H0), compute_residual_map=False
            ).fit(X16)

        def peer(kw=kw):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                SkNMF(k, init="custom", max_iter=it, tol=0, **kw).fit_transform(
                    X, W=W0.copy(), H=H0.copy()
                )

        rows.append(
            BenchRow(
                f"NMF {loss} {n}x{c} K={k}, {it} it",
                f"scikit-learn {name}",
                _best(ours, repeat),
                _best(peer, repeat),
            )
        )
    return rows


def _pca_case(quick: bool, repeat: int) -> list[BenchRow]:
    from sklearn.decomposition import PCA as SkPCA

    n, c, k = (4096, 256, 8) if quick else (16384, 1024, 8)
    X16 = poisson_cube(n, c, 4, counts=300.0, seed=2)

    def ours():
        mc.spectral.PCA(k, poisson=False, random_state=0).fit(X16)

    def peer():
        SkPCA(k, svd_solver="randomized", random_state=0).fit(X16.astype(np.float64))

    return [
        BenchRow(
            f"PCA {n}x{c} K={k} (counts)",
            "scikit-learn randomized",
            _best(ours, repeat),
            _best(peer, repeat),
        )
    ]


def _kernel_case(quick: bool, repeat: int) -> list[BenchRow]:
    n, m, d = (2000, 500, 1000) if quick else (10000, 2000, 2000)
    rng = np.random.default_rng(3)
    X = rng.standard_normal((n, d))
    Y = rng.standard_normal((m, d))

    def ours():
        mc.gp.polynomial_kernel(X, Y, zeta=2)

    def peer():
        numpy_polynomial_kernel(X, Y, zeta=2)

    return [
        BenchRow(
            f"polynomial kernel {n}x{m}, {d} features",
            "NumPy (BLAS)",
            _best(ours, repeat),
            _best(peer, repeat),
        )
    ]


def _soap_cases(quick: bool, repeat: int) -> list[BenchRow]:
    bulk = require("ase.build", "nmr", "the SOAP benchmark").bulk
    rng = np.random.default_rng(4)
    frame = bulk("Si", "diamond", a=5.43, cubic=True).repeat((2, 2, 2) if quick else (3, 3, 3))
    frame.positions += rng.normal(scale=0.05, size=frame.positions.shape)
    frames = [frame]
    rc, nmax, lmax, sig, smooth = 5.0, 8, 6, 0.3, 0.5
    soap = mc.atoms.SOAP(rc, nmax, lmax, sig, smooth, species=[14])
    ours_s = _best(lambda: soap.compute(frames), repeat)
    case = f"SOAP Si {len(frame)} atoms, n=8 l=6"
    rows = []
    if _installed("featomic"):
        import featomic

        calc = featomic.SoapPowerSpectrum(
            cutoff={"radius": rc, "smoothing": {"type": "ShiftedCosine", "width": smooth}},
            density={"type": "Gaussian", "width": sig},
            basis={
                "type": "TensorProduct",
                "max_angular": lmax,
                "radial": {"type": "Gto", "max_radial": nmax - 1},
            },
        )
        rows.append(BenchRow(case, "featomic", ours_s, _best(lambda: calc.compute(frames), repeat)))
    else:
        rows.append(BenchRow(case, "featomic", ours_s, None))
    if _installed("dscribe"):
        from dscribe.descriptors import SOAP as DSoap

        ds = DSoap(species=[14], r_cut=rc, n_max=nmax, l_max=lmax, sigma=sig, periodic=True)
        rows.append(
            BenchRow(case, "dscribe", ours_s, _best(lambda: ds.create(frames, n_jobs=1), repeat))
        )
    else:
        rows.append(BenchRow(case, "dscribe", ours_s, None))
    return rows


def run_bench(quick: bool = False, repeat: int = 3) -> list[BenchRow]:
    """Time matchar against its peers on built-in synthetic data.

    Parameters
    ----------
    quick : bool, default False
        Small problems (a few seconds in all) instead of the default sizes (a minute or so).
    repeat : int, default 3
        Timed runs per implementation (the best is kept), after one warm-up run.

    Returns
    -------
    list of BenchRow
        ``case``, ``peer``, ``matchar_s``, ``peer_s`` (None: peer not installed),
        ``speedup`` (peer / matchar).

    Example
    -------
    Not run with the doctests: it times every case against its peer (minutes).

    >>> from matchar._bench import run_bench, format_table  # doctest: +SKIP
    >>> print(format_table(run_bench(quick=True)))          # doctest: +SKIP
    """
    if repeat < 1:
        raise ValueError(f"repeat must be >= 1, got {repeat}")
    rows: list[BenchRow] = []
    for part in (_nmf_cases, _pca_case, _kernel_case, _soap_cases):
        try:
            rows.extend(part(quick, repeat))
        except MissingDependency as err:  # a job's extra is not installed: skip its cases
            warnings.warn(f"skipped: {err}", UserWarning, stacklevel=2)
    return rows


def format_table(rows: list[BenchRow]) -> str:
    """The rows as an aligned text table (the ``matchar bench`` output)."""
    head = ("case", "peer", "matchar (s)", "peer (s)", "peer / matchar")
    body = [
        (
            r.case,
            r.peer,
            f"{r.matchar_s:.4f}",
            "not installed" if r.peer_s is None else f"{r.peer_s:.4f}",
            "-" if r.speedup is None else f"{r.speedup:.2f}x",
        )
        for r in rows
    ]
    widths = [max(len(str(x[i])) for x in [head, *body]) for i in range(len(head))]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(line, widths)) for line in [head, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
