"""Property-based tests: bad inputs to public functions give a clear error or a finite result.

For a representative set of public functions, hypothesis generates NaN, inf, huge, tiny,
negative, non-integral, wrong-shape, wrong-dtype and empty inputs (arrays and scalar
parameters). Every call must either raise a clear exception (ValueError, TypeError or
MemoryError with a message, never pybind11's "incompatible function arguments") or
return a finite result; RuntimeWarnings are errors (a warning on the way to a NaN fails);
the input arrays are never modified.

In-process and small: sizes that could crash or allocate without bound belong to the
child-process reproducers (``test_reproducers.py``); an address-space limit guards this
module anyway (an unexpected huge allocation becomes a MemoryError, not an OOM kill).
Examples are derandomized (the same ones on every run) and not shrunk, to keep the time
bounded when a property fails.
"""

from __future__ import annotations

import copy
import math
import os
import sys
import warnings

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from harness import nonfinite  # noqa: E402
from hypothesis import HealthCheck, Phase, example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import matchar as mc  # noqa: E402

ALLOWED = (ValueError, TypeError, MemoryError)
UNCLEAR = "incompatible function arguments"

PROPERTY = settings(
    max_examples=50,
    deadline=None,
    derandomize=True,
    database=None,
    phases=(Phase.explicit, Phase.generate),
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(scope="module", autouse=True)
def address_space_guard():
    """Limit this process's address space to its current size + 4 GiB for the module."""
    if "libasan" in os.environ.get("LD_PRELOAD", ""):  # ASan's shadow needs terabytes
        yield
        return
    try:
        import resource

        with open("/proc/self/status") as f:
            vm = next(int(ln.split()[1]) * 1024 for ln in f if ln.startswith("VmSize:"))
    except (ImportError, OSError, StopIteration):
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = vm + 4 * 1024**3
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    if soft != resource.RLIM_INFINITY and soft <= limit:
        yield
        return
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _same(a, b) -> bool:
    if isinstance(a, np.ndarray):
        return (
            isinstance(b, np.ndarray)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and (
                np.array_equal(a, b, equal_nan=a.dtype.kind in "fc")
                if a.dtype.kind not in "OUSV"
                else a.tolist() == b.tolist()
            )
        )
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, (float, np.floating)) and math.isnan(a):  # np.float32(nan) too
        return isinstance(b, (float, np.floating)) and math.isnan(b)
    return a == b


def clear_or_finite(call, *inputs):
    """Run ``call()``: a clear error (returned) or a finite result (returned); the
    ``inputs`` must be unchanged either way."""
    before = [copy.deepcopy(x) for x in inputs]
    err = result = None
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        try:
            result = call()
        except ALLOWED as e:
            err = e
    for i, (x, b) in enumerate(zip(inputs, before)):
        assert _same(x, b), f"input {i} was modified"
    if err is not None:
        msg = str(err)
        assert UNCLEAR not in msg, f"pybind11 signature dump: {msg[:300]}"
        assert msg.strip(), f"{type(err).__name__} without a message"
        return err
    where = nonfinite(result)
    assert where is None, f"returned a non-finite result: {where}"
    return result


# -- strategies -------------------------------------------------------------------------

BAD_FLOATS = [
    math.nan,
    math.inf,
    -math.inf,
    0.0,
    -0.0,
    -1.0,
    1e-300,
    -1e-300,
    5e-324,
    1e300,
    -1e300,
    1.7976931348623157e308,
]
BAD_OTHER = [None, True, "1", 1 + 1j, np.float32("nan"), [], (1.0,), np.array([1.0, 2.0])]
BAD_INTS = [0, -1, -(2**31), 2.5, math.nan, math.inf, True, "2", None, 1 + 0j, np.float64(2.5)]


def bad_float():
    """A NaN, inf, huge, tiny, negative or non-number value, or any float."""
    return st.one_of(
        st.sampled_from(BAD_FLOATS + BAD_OTHER), st.floats(allow_nan=True, allow_infinity=True)
    )


def bad_int(big: bool = False):
    """A negative, zero, non-integral, NaN or non-number count; ``big`` adds 2**31, 2**63
    and 10**12 (only for parameters that cannot allocate in proportion)."""
    extra = [2**31, 2**32 + 5, 2**63, 10**12] if big else []
    return st.sampled_from(BAD_INTS + BAD_OTHER + extra)


@st.composite
def bad_array(draw, valid: np.ndarray):
    """``valid`` corrupted one way: bad entries, scale, dtype, shape, emptiness or layout
    (a layout change alone is a valid input)."""
    kind = draw(
        st.sampled_from(
            ["entries", "entries", "scale", "dtype", "shape", "empty", "layout", "list"]
        )
    )
    a = valid.copy()
    if kind == "entries":
        a = a.astype(np.float64)
        values = draw(
            st.lists(
                st.sampled_from([math.nan, math.inf, -math.inf, 1e300, 1e-300, -1.0, -1e-300]),
                min_size=1,
                max_size=3,
            )
        )
        flat = a.reshape(-1)
        for v in values:
            flat[draw(st.integers(0, flat.size - 1))] = v
        return a
    if kind == "scale":
        return a.astype(np.float64) * draw(st.sampled_from([1e300, 1e-300, 1e200, 1e-200, -1.0]))
    if kind == "dtype":
        dtype = draw(
            st.sampled_from(
                [np.complex128, np.bool_, object, np.str_, np.int8, np.uint64, np.float16]
            )
        )
        return a.astype(dtype)
    if kind == "shape":
        shape = draw(
            st.sampled_from(
                [(), (a.size,), (*a.shape, 1), (1, *a.shape), a.shape[::-1], (a.shape[0], 1)]
            )
        )
        if shape == ():
            return np.float64(a.reshape(-1)[0])
        if math.prod(shape) == a.size:
            return a.reshape(shape)
        return np.resize(a, shape)
    if kind == "empty":
        shapes = [(0, a.shape[-1]), (a.shape[0], 0), (0,), (0, 0)]
        return np.zeros(draw(st.sampled_from(shapes)))
    if kind == "layout":
        return np.asfortranarray(a) if draw(st.booleans()) else np.repeat(a, 2, axis=0)[::2]
    return a.tolist()


@st.composite
def arguments(draw, **params):
    """Keyword arguments with at most two bad ones: ``params`` maps each name to
    ``(valid value, strategy of bad values)``."""
    names = sorted(params)
    bad = draw(st.sets(st.sampled_from(names), max_size=2))
    out = {}
    for name in names:
        valid, strategy = params[name]
        out[name] = draw(strategy) if name in bad else copy.deepcopy(valid)
    return out


rng = np.random.default_rng(0)
COUNTS = rng.poisson(5, (40, 30)).astype(np.float64)
yy, xx = np.mgrid[:48, :48].astype(np.float64)
IMAGE = 2.5 + np.cos(2 * np.pi * xx / 6) + np.cos(2 * np.pi * yy / 6)
FEATURES = rng.random((30, 6))
PREDICTED = rng.normal(30.0, 2.0, (3, 6))
EXPERIMENTAL = 31.0 - PREDICTED[0] + rng.normal(0.0, 0.2, 6)


# -- spectral ---------------------------------------------------------------------------


@PROPERTY
@given(
    kw=arguments(
        X=(COUNTS, bad_array(COUNTS)),
        n_components=(2, bad_int(big=True)),
        max_iter=(5, bad_int()),
        tol=(1e-4, bad_float()),
        loss=("kl", st.sampled_from(["frobenius", "KL", "", None, 1])),
        inner_sweeps=(1, bad_int()),
    )
)
def test_nmf_fit(kw):
    X = kw.pop("X")

    def call():
        est = mc.spectral.NMF(random_state=0, **kw).fit(X)
        return est.components_, est.transform(X)

    clear_or_finite(call, X)


@PROPERTY
@given(
    kw=arguments(
        X=(COUNTS, bad_array(COUNTS)),
        n_components=(2, bad_int(big=True)),
        n_oversamples=(4, bad_int()),
        n_iter=("auto", st.one_of(st.just(2), bad_int())),
        poisson=(True, st.sampled_from([False, 0, "no", None])),
    )
)
def test_pca_fit(kw):
    X = kw.pop("X")

    def call():
        est = mc.spectral.PCA(random_state=0, **kw).fit(X)
        return est.components_, est.explained_variance_ratio_, est.transform(X)

    clear_or_finite(call, X)


@PROPERTY
@given(
    kw=arguments(
        energy_axis=(
            (0.0, 0.01, 256),
            st.tuples(
                st.one_of(st.just(0.0), bad_float()),
                st.one_of(st.just(0.01), bad_float()),
                st.one_of(st.just(256), bad_int()),
            ),
        ),
        beam_energy_keV=(200.0, bad_float()),
        n_background=(2, bad_int(big=True)),
        resolution_eV=(130.0, bad_float()),
        dead_layer_um=(0.03, bad_float()),
        crystal_um=(450.0, bad_float()),
        low_cut_keV=(0.15, bad_float()),
        thickness_nm=(0.0, bad_float()),
        takeoff_deg=(20.0, bad_float()),
        window=(
            [("Si3N4", 0.04, 0.0)],
            st.lists(st.tuples(st.just("Si3N4"), bad_float(), bad_float()), max_size=2),
        ),
    )
)
def test_edx_model_parameters(kw):
    if kw["thickness_nm"] != 0.0:  # self-absorption needs the film's composition, density
        kw.update(sample_composition={"Fe": 1.0}, density_g_cm3=7.87)
    clear_or_finite(lambda: mc.spectral.EDXModel(["Fe", "O"], **kw).G)


# -- imaging ----------------------------------------------------------------------------


@PROPERTY
@given(
    kw=arguments(
        image=(IMAGE, bad_array(IMAGE)),
        patch=(4, bad_int(big=True)),
        window=(4, bad_int(big=True)),
        n_shifts=(10, bad_int(big=True)),
        stride=(1, bad_int(big=True)),
        method=("auto", st.sampled_from(["direct", "fft", "FFT", "", None])),
    )
)
def test_local_correlation_map(kw):
    image = kw.pop("image")
    clear_or_finite(lambda: mc.imaging.local_correlation_map(image, **kw), image)


@PROPERTY
@given(
    kw=arguments(
        lattice_constant=(4.0, bad_float()),
        rotation_deg=(0.0, bad_float()),
        shape=(
            (48, 48),
            st.one_of(
                st.tuples(bad_int(), st.just(48)),
                st.sampled_from([(48,), (48, 48, 1), [], "48x48", (48.5, 48), None]),
            ),
        ),
        pixel_size=(0.12, bad_float()),
        dose=(None, bad_float()),
        thermal_sigma=(0.05, bad_float()),
        atomic_number=(29, bad_int(big=True)),
        background=(0.1, bad_float()),
        read_noise=(0.0, bad_float()),
        scan_jitter=(0.0, bad_float()),
        drift=((0.0, 0.0), st.one_of(st.tuples(bad_float(), bad_float()), st.just((1.0,)))),
        origin=(None, st.one_of(st.tuples(bad_float(), bad_float()), st.just((1.0, 2.0, 3.0)))),
        dtype=(np.float64, st.sampled_from([np.int32, np.complex128, "float16", object])),
    )
)
def test_simulate_haadf_parameters(kw):
    # Columns per image ~ (48 * pixel_size / lattice_constant)^2: a valid but huge count
    # is the child-process reproducers' business (it may take long before it is refused).
    try:
        n_cols = (48 * float(kw["pixel_size"]) / float(kw["lattice_constant"])) ** 2
        if math.isfinite(n_cols) and n_cols > 1e6:
            return
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        pass
    clear_or_finite(lambda: mc.imaging.simulate_haadf("fcc", (1, 1, 0), seed=0, **kw))


# -- gp ---------------------------------------------------------------------------------


@PROPERTY
@given(
    kw=arguments(
        X=(FEATURES, bad_array(FEATURES)),
        Y=(None, st.one_of(st.just(FEATURES[:7]), bad_array(FEATURES[:7]))),
        zeta=(2, bad_int(big=True)),
        normalize=(True, st.sampled_from([False, None, "yes"])),
    )
)
def test_polynomial_kernel(kw):
    clear_or_finite(lambda: mc.gp.polynomial_kernel(**kw), kw["X"], kw["Y"])


@PROPERTY
@given(
    kw=arguments(
        X=(FEATURES, bad_array(FEATURES)),
        n_select=(5, bad_int(big=True)),
        start=(0, bad_int(big=True)),
    )
)
def test_farthest_point_sampling(kw):
    X = kw["X"]
    result = clear_or_finite(lambda: mc.gp.farthest_point_sampling(**kw), X)
    if isinstance(result, np.ndarray):  # the selection: distinct valid row indices
        n = np.asarray(X).shape[0]
        assert result.dtype.kind in "iu"
        assert len(set(result.tolist())) == result.size
        assert ((result >= 0) & (result < n)).all()


# -- atoms ------------------------------------------------------------------------------


@PROPERTY
@given(
    kw=arguments(
        cutoff=(3.0, bad_float()),
        max_radial=(4, st.one_of(st.sampled_from([1, 24, 25]), bad_int())),
        max_angular=(3, st.one_of(st.sampled_from([0, 20, 21]), bad_int())),
        atomic_width=(0.3, bad_float()),
        smoothing=(0.5, bad_float()),
        center_weight=(1.0, bad_float()),
        radial_scaling=(None, st.tuples(bad_float(), bad_float(), bad_float())),
        normalize=(False, st.sampled_from([True, None, "no"])),
    )
)
def test_soap_parameters(kw):
    import ase.build

    frames = [ase.build.molecule("H2O")]
    clear_or_finite(lambda: mc.atoms.SOAP(species=["H", "O"], **kw).compute(frames))


# -- nmr --------------------------------------------------------------------------------


@PROPERTY
@given(
    kw=arguments(
        predicted=(PREDICTED, bad_array(PREDICTED)),
        predicted_std=(0.3, st.one_of(bad_float(), bad_array(np.full(6, 0.3)))),
        experimental=(EXPERIMENTAL, bad_array(EXPERIMENTAL)),
        sigma_exp=(None, bad_float()),
        assignment=("marginalize", st.sampled_from(["given", "other", None])),
        method=(
            "auto",
            st.sampled_from(["exact", "quadrature", "bethe", "sampling", "banded", "x", None]),
        ),
        offset_prior=(None, st.tuples(bad_float(), bad_float())),
        max_permutations=(4e7, bad_float()),
        n_samples=(50, bad_int()),
        exact_group_size=(8, bad_int(big=True)),
        band=(None, bad_int(big=True)),
    )
)
@example(  # counts that are not finite
    kw={
        "predicted": PREDICTED,
        "predicted_std": 0.3,
        "experimental": EXPERIMENTAL,
        "assignment": "marginalize",
        "method": "sampling",
        "n_samples": math.inf,
    }
)
def test_structure_posterior(kw):
    inputs = (kw["predicted"], kw["predicted_std"], kw["experimental"])
    result = clear_or_finite(lambda: mc.nmr.structure_posterior(**kw), *inputs)
    if isinstance(result, np.ndarray):  # probabilities
        assert (result >= 0).all() and abs(result.sum() - 1.0) < 1e-9, result


@PROPERTY
@given(
    kw=arguments(
        shielding=(PREDICTED[0], st.one_of(bad_array(PREDICTED[0]), bad_float())),
        reference=(31.0, bad_float()),
        slope=(-1.0, bad_float()),
    )
)
def test_shielding_to_shift(kw):
    clear_or_finite(lambda: mc.nmr.shielding_to_shift(**kw), kw["shielding"])


def test_property_helpers_catch_what_they_should():
    """The checks themselves: NaN results, modified inputs, unclear errors all fail."""
    a = np.ones(3)
    with pytest.raises(AssertionError, match="non-finite"):
        clear_or_finite(lambda: a * np.nan, a)
    with pytest.raises(AssertionError, match="modified"):
        clear_or_finite(lambda: a.__setitem__(0, 2.0), a)

    def unclear():
        raise TypeError(f"f(): {UNCLEAR}. The following argument types are supported: ...")

    with pytest.raises(AssertionError, match="signature dump"):
        clear_or_finite(unclear)
    with pytest.raises(RuntimeWarning):
        clear_or_finite(lambda: np.log(np.zeros(1)))
    with pytest.raises(IndexError):
        clear_or_finite(lambda: [][1])
    assert isinstance(clear_or_finite(lambda: float("x")), ValueError)
    assert sys.modules["harness"].nonfinite({"a": [1.0, (2.0, np.inf)]}) is not None
