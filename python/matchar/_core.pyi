# Hand-kept stubs for matchar's compiled core. Keep in sync with cpp/bindings/.
from typing import Any, Literal, TypeVar, overload

import numpy as np
from numpy.typing import NDArray

# The kernels bound once for float32 and float64 dispatch on the dtype of their deciding
# array (a TypeError for any other dtype), or take a `dtype` argument when no input
# decides it.
_F = TypeVar("_F", np.float32, np.float64)
_Float32 = type[np.float32] | np.dtype[np.float32] | Literal["float32"]
_Float64 = type[np.float64] | np.dtype[np.float64] | Literal["float64"]

__version__: str

def get_num_threads() -> int: ...
def set_num_threads(n: int) -> None: ...
def max_num_threads() -> int: ...
def build_info() -> dict[str, Any]: ...
def _set_cpu_level(level: str) -> None: ...
def parallel_team_size() -> int: ...
def check_allocation(n_elements: int, element_size: int, what: str) -> None: ...

class _GPModule:
    """matchar._core.gp (a submodule at run time)."""

    @staticmethod
    def kernel_row_scales(X: NDArray[_F], normalize: bool, name: str) -> NDArray[_F]: ...
    @staticmethod
    def scale_and_power(
        block: NDArray[_F],
        row_scale: NDArray[_F],
        col_scale: NDArray[_F],
        zeta: int,
        threads: int = 0,
    ) -> None: ...
    @staticmethod
    def polynomial_kernel(
        X: NDArray[_F], Y: NDArray[_F] | None, zeta: int, normalize: bool
    ) -> NDArray[_F]: ...

gp: _GPModule

class _ImagingModule:
    """matchar._core.imaging (a submodule at run time)."""

    @staticmethod
    def select_shifts(window: int, n_shifts: int) -> NDArray[np.int32]: ...
    @staticmethod
    def local_correlation_map(
        image: NDArray[_F], patch: int, window: int, shifts: NDArray[np.int32], stride: int
    ) -> NDArray[np.float32]: ...
    @staticmethod
    def symmetry_map(
        image: NDArray[_F], patch: int, transforms: NDArray[np.float64], stride: int
    ) -> NDArray[np.float32]: ...
    HAADF_N_PARAMS: int
    @overload
    @staticmethod
    def render_haadf(
        columns: NDArray[np.float64],
        column_offsets: NDArray[np.int64],
        motif_index: NDArray[np.int64],
        params: NDArray[np.float64],
        rows: int,
        cols: int,
        seed: int,
        dtype: _Float32,
    ) -> NDArray[np.float32]: ...
    @overload
    @staticmethod
    def render_haadf(
        columns: NDArray[np.float64],
        column_offsets: NDArray[np.int64],
        motif_index: NDArray[np.int64],
        params: NDArray[np.float64],
        rows: int,
        cols: int,
        seed: int,
        dtype: _Float64,
    ) -> NDArray[np.float64]: ...
    CBED_N_PARAMS: int
    @overload
    @staticmethod
    def render_cbed(
        reflections: NDArray[np.float64],
        refl_offsets: NDArray[np.int64],
        atoms: NDArray[np.float64],
        atom_offsets: NDArray[np.int64],
        volumes: NDArray[np.float64],
        motif_index: NDArray[np.int64],
        params: NDArray[np.float64],
        rows: int,
        cols: int,
        seed: int,
        dtype: _Float32,
    ) -> NDArray[np.float32]: ...
    @overload
    @staticmethod
    def render_cbed(
        reflections: NDArray[np.float64],
        refl_offsets: NDArray[np.int64],
        atoms: NDArray[np.float64],
        atom_offsets: NDArray[np.int64],
        volumes: NDArray[np.float64],
        motif_index: NDArray[np.int64],
        params: NDArray[np.float64],
        rows: int,
        cols: int,
        seed: int,
        dtype: _Float64,
    ) -> NDArray[np.float64]: ...
    @staticmethod
    def moliere_scattering_factor(z: float, g: float) -> float: ...

imaging: _ImagingModule

class _Soap:
    """matchar._core.atoms.Soap: a SOAP calculator (radial tables built once)."""

    def __init__(
        self,
        cutoff: float,
        n_radial: int,
        max_angular: int,
        atomic_width: float,
        smoothing: float,
        center_weight: float,
        exact_radial: bool,
        n_species: int,
        compress: bool,
        pair_mask: NDArray[np.bool_],
        scaling_radius: float = 0.0,
        scaling_rate: float = 1.0,
        scaling_exponent: float = 0.0,
    ) -> None: ...
    @property
    def n_features(self) -> int: ...
    @property
    def n_coefficients(self) -> int: ...
    @overload
    def power_spectrum(
        self,
        positions: NDArray[np.float64],
        species: NDArray[np.int32],
        offsets: NDArray[np.int64],
        cells: NDArray[np.float64],
        pbc: NDArray[np.bool_],
        centers: NDArray[np.int64],
        normalize: bool,
        dtype: _Float32,
        out: NDArray[np.float32] | None = None,
    ) -> NDArray[np.float32]: ...
    @overload
    def power_spectrum(
        self,
        positions: NDArray[np.float64],
        species: NDArray[np.int32],
        offsets: NDArray[np.int64],
        cells: NDArray[np.float64],
        pbc: NDArray[np.bool_],
        centers: NDArray[np.int64],
        normalize: bool,
        dtype: _Float64,
        out: NDArray[np.float64] | None = None,
    ) -> NDArray[np.float64]: ...
    def spherical_expansion(
        self,
        positions: NDArray[np.float64],
        species: NDArray[np.int32],
        offsets: NDArray[np.int64],
        cells: NDArray[np.float64],
        pbc: NDArray[np.bool_],
        centers: NDArray[np.int64],
    ) -> NDArray[np.float64]: ...

class _AtomsModule:
    """matchar._core.atoms (a submodule at run time)."""

    Soap: type[_Soap]
    @staticmethod
    def gto_radial_integral(
        cutoff: float,
        n_radial: int,
        max_angular: int,
        atomic_width: float,
        exact: bool,
        r: NDArray[np.float64],
    ) -> NDArray[np.float64]: ...
    @staticmethod
    def real_spherical_harmonics(
        max_angular: int, directions: NDArray[np.float64]
    ) -> NDArray[np.float64]: ...

atoms: _AtomsModule

class _OffsetMode:
    """matchar._core.nmr.OffsetMode (a pybind11 enum): how the reference offset is treated."""

    Marginal: _OffsetMode
    Profile: _OffsetMode
    Fixed: _OffsetMode
    def __init__(self, value: int) -> None: ...
    @property
    def name(self) -> str: ...
    @property
    def value(self) -> int: ...
    def __int__(self) -> int: ...

class _AssignmentMethod:
    """matchar._core.nmr.AssignmentMethod (a pybind11 enum)."""

    Enumerate: _AssignmentMethod
    Quadrature: _AssignmentMethod
    Bethe: _AssignmentMethod
    Sampling: _AssignmentMethod
    Banded: _AssignmentMethod
    def __init__(self, value: int) -> None: ...
    @property
    def name(self) -> str: ...
    @property
    def value(self) -> int: ...
    def __int__(self) -> int: ...

class _OffsetSpec:
    """matchar._core.nmr.OffsetSpec: the reference offset's mode and values."""

    mode: _OffsetMode
    value: float
    prior_mean: float
    prior_std: float
    def __init__(
        self,
        *,
        mode: _OffsetMode = ...,
        value: float = 0.0,
        prior_mean: float = 0.0,
        prior_std: float = ...,
    ) -> None: ...

class _QuadratureOptions:
    """matchar._core.nmr.QuadratureOptions: tuning of the non-enumerating methods."""

    step_factor: float
    tail_nats: float
    exact_group_size: int
    max_bp_iterations: int
    bp_tolerance: float
    n_samples: int
    seed: int
    band: int
    band_tolerance: float
    max_band: int
    def __init__(
        self,
        *,
        step_factor: float = 0.7,
        tail_nats: float = 45.0,
        exact_group_size: int = 8,
        max_bp_iterations: int = 300,
        bp_tolerance: float = 1e-10,
        n_samples: int = 2000,
        seed: int = 0,
        band: int = 0,
        band_tolerance: float = 1e-3,
        max_band: int = 7,
    ) -> None: ...

class _NMRModule:
    """matchar._core.nmr (a submodule at run time)."""

    OffsetMode: type[_OffsetMode]
    AssignmentMethod: type[_AssignmentMethod]
    OffsetSpec: type[_OffsetSpec]
    QuadratureOptions: type[_QuadratureOptions]
    @staticmethod
    def assignment_log_evidence(
        mean: NDArray[_F],
        var: NDArray[_F],
        y: NDArray[np.float64],
        var_exp: NDArray[np.float64],
        group_sizes: NDArray[np.int64],
        offset: _OffsetSpec,
        method: _AssignmentMethod,
        options: _QuadratureOptions,
        details: bool = False,
    ) -> tuple[Any, ...]: ...
    @staticmethod
    def permanent_marginals(
        log_a: NDArray[np.float64], band: int = -1
    ) -> tuple[float, NDArray[np.float64]]: ...
    @staticmethod
    def log_permanent(
        log_a: NDArray[np.float64],
        bethe: bool = False,
        max_iterations: int = 300,
        tolerance: float = 1e-10,
    ) -> float: ...

nmr: _NMRModule

class _SpectralModule:
    """matchar._core.spectral (a submodule at run time). X: uint8/16/32 or float32/64
    (dense, any strides); CSR data float32/64 with int32/int64 indices; factors float32/64."""

    @staticmethod
    def nmf_update(
        loss: str,
        X: NDArray[Any],
        W: NDArray[np.floating],
        H: NDArray[np.floating],
        pixel_mask: NDArray[np.uint8] | None = None,
        channel_mask: NDArray[np.uint8] | None = None,
        update_H: bool = True,
        with_loss: bool = True,
        sweeps: int = 1,
    ) -> tuple[float, NDArray[np.floating], NDArray[np.floating] | None]: ...
    @staticmethod
    def nmf_update_csr(
        loss: str,
        data: NDArray[np.floating],
        indices: NDArray[np.integer],
        indptr: NDArray[np.integer],
        n_cols: int,
        W: NDArray[np.floating],
        H: NDArray[np.floating],
        pixel_mask: NDArray[np.uint8] | None = None,
        channel_mask: NDArray[np.uint8] | None = None,
        update_H: bool = True,
        with_loss: bool = True,
        sweeps: int = 1,
    ) -> tuple[float, NDArray[np.floating], NDArray[np.floating] | None]: ...
    @staticmethod
    def nmf_hals_stats(
        X: NDArray[Any],
        W: NDArray[np.floating],
        H: NDArray[np.floating],
        pixel_mask: NDArray[np.uint8] | None = None,
        channel_mask: NDArray[np.uint8] | None = None,
        sweeps: int = 1,
    ) -> tuple[float, NDArray[np.floating], NDArray[np.float64], NDArray[np.float64]]: ...
    @staticmethod
    def nmf_kl_stats(
        X: NDArray[Any],
        W: NDArray[np.floating],
        H: NDArray[np.floating],
        pixel_mask: NDArray[np.uint8] | None = None,
        channel_mask: NDArray[np.uint8] | None = None,
        with_loss: bool = True,
    ) -> tuple[float, NDArray[np.floating], NDArray[np.float64], NDArray[np.float64]]: ...
    @staticmethod
    def nmf_kl_stats_csr(
        data: NDArray[np.floating],
        indices: NDArray[np.integer],
        indptr: NDArray[np.integer],
        n_cols: int,
        W: NDArray[np.floating],
        H: NDArray[np.floating],
        pixel_mask: NDArray[np.uint8] | None = None,
        channel_mask: NDArray[np.uint8] | None = None,
        with_loss: bool = True,
    ) -> tuple[float, NDArray[np.floating], NDArray[np.float64], NDArray[np.float64]]: ...
    @staticmethod
    def physics_kl_pass(
        X: NDArray[Any],
        A: NDArray[np.floating],
        H: NDArray[np.floating],
        beta: NDArray[np.float64],
        q: float = 0.0,
        simplex: bool = False,
        pixel_mask: NDArray[np.uint8] | None = None,
        channel_mask: NDArray[np.uint8] | None = None,
        with_loss: bool = True,
        n_bisect: int = 60,
    ) -> tuple[float, NDArray[np.floating], NDArray[np.float64], NDArray[np.float64]]: ...
    @staticmethod
    def physics_kl_pass_csr(
        data: NDArray[np.floating],
        indices: NDArray[np.integer],
        indptr: NDArray[np.integer],
        n_cols: int,
        A: NDArray[np.floating],
        H: NDArray[np.floating],
        beta: NDArray[np.float64],
        q: float = 0.0,
        simplex: bool = False,
        pixel_mask: NDArray[np.uint8] | None = None,
        channel_mask: NDArray[np.uint8] | None = None,
        with_loss: bool = True,
        n_bisect: int = 60,
    ) -> tuple[float, NDArray[np.floating], NDArray[np.float64], NDArray[np.float64]]: ...
    @staticmethod
    def poisson_deviance(
        X: NDArray[Any],
        W: NDArray[np.floating],
        H: NDArray[np.floating],
        pixel_mask: NDArray[np.uint8] | None = None,
        channel_mask: NDArray[np.uint8] | None = None,
    ) -> NDArray[np.float64]: ...
    @staticmethod
    def poisson_deviance_csr(
        data: NDArray[np.floating],
        indices: NDArray[np.integer],
        indptr: NDArray[np.integer],
        n_cols: int,
        W: NDArray[np.floating],
        H: NDArray[np.floating],
        pixel_mask: NDArray[np.uint8] | None = None,
        channel_mask: NDArray[np.uint8] | None = None,
    ) -> NDArray[np.float64]: ...
    @staticmethod
    def residual_window_scan(
        X: NDArray[Any],
        W: NDArray[np.float64],
        Hb: NDArray[np.float64],
        channel_mask: NDArray[np.uint8] | None,
        pixel_mask: NDArray[np.uint8] | None,
        group: int,
        windows: list[int],
        nav_rows: int,
        nav_cols: int,
        box: int = 1,
    ) -> tuple[
        NDArray[np.float64],
        NDArray[np.float64],
        NDArray[np.int32],
        NDArray[np.int32],
        NDArray[np.float64],
        NDArray[np.float64],
        NDArray[np.int32],
        NDArray[np.int32],
    ]: ...
    @staticmethod
    def residual_window_scan_csr(
        data: NDArray[np.floating[Any]],
        indices: NDArray[np.integer[Any]],
        indptr: NDArray[np.integer[Any]],
        n_cols: int,
        W: NDArray[np.float64],
        Hb: NDArray[np.float64],
        channel_mask: NDArray[np.uint8] | None,
        pixel_mask: NDArray[np.uint8] | None,
        group: int,
        windows: list[int],
        nav_rows: int,
        nav_cols: int,
        box: int = 1,
    ) -> tuple[NDArray[Any], ...]: ...
    @staticmethod
    def weighted_sums(
        X: NDArray[Any], r: NDArray[np.float64] | None = None, c: NDArray[np.float64] | None = None
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], float]: ...
    @staticmethod
    def weighted_project(
        X: NDArray[Any],
        r: NDArray[np.float64] | None,
        c: NDArray[np.float64] | None,
        V: NDArray[np.floating],
        offset: NDArray[np.float64] | None = None,
    ) -> NDArray[np.floating]: ...
    @staticmethod
    def weighted_gram_apply(
        X: NDArray[Any],
        r: NDArray[np.float64] | None,
        c: NDArray[np.float64] | None,
        V: NDArray[np.floating],
        offset: NDArray[np.float64] | None = None,
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]: ...
    @staticmethod
    def nmf_frobenius_stats(
        X: NDArray[Any],
        W: NDArray[np.floating],
        pixel_mask: NDArray[np.uint8] | None = None,
        channel_mask: NDArray[np.uint8] | None = None,
    ) -> tuple[float, NDArray[np.float64], NDArray[np.float64]]: ...
    @staticmethod
    def StreamingPCA(
        n_channels: int,
        n_components: int,
        poisson: bool = True,
        center: bool = True,
        n_oversamples: int = 10,
        seed: int = 0,
        dtype: _Float32 | _Float64 = "float64",
    ) -> _StreamingPCA: ...
    @staticmethod
    def OnlineNMF(
        n_channels: int,
        n_components: int,
        forget_factor: float = 1.0,
        inner_iter: int = 20,
        init_iter: int = 100,
        seed: int = 0,
        loss: str = "kl",
        dtype: _Float32 | _Float64 = "float64",
    ) -> _OnlineNMF: ...
    # the classes the two factories return, one per factor dtype
    StreamingPCA_float32: type[_StreamingPCA]
    StreamingPCA_float64: type[_StreamingPCA]
    OnlineNMF_float32: type[_OnlineNMF]
    OnlineNMF_float64: type[_OnlineNMF]

class _StreamingPCA:
    """Incremental Poisson-weighted PCA (cpp/include/matchar/spectral/streaming.hpp)."""

    def __init__(
        self,
        n_channels: int,
        n_components: int,
        poisson: bool = True,
        center: bool = True,
        n_oversamples: int = 10,
        seed: int = 0,
    ) -> None: ...
    def partial_fit(self, X: NDArray[Any]) -> None: ...
    def components(self) -> NDArray[np.float64]: ...
    def explained_variance(self) -> NDArray[np.float64]: ...
    def explained_variance_ratio(self) -> NDArray[np.float64]: ...
    def singular_values(self) -> NDArray[np.float64]: ...
    def mean(self) -> NDArray[np.float64]: ...
    def spectrum_weights(self) -> NDArray[np.float64]: ...
    def total_variance(self) -> float: ...
    def transform(self, X: NDArray[Any]) -> NDArray[np.float64]: ...
    @property
    def n_samples_seen(self) -> int: ...
    @property
    def n_channels(self) -> int: ...

class _OnlineNMF:
    """Online KL NMF (Lefevre et al. 2011) (cpp/include/matchar/spectral/streaming.hpp)."""

    def __init__(
        self,
        n_channels: int,
        n_components: int,
        forget_factor: float = 1.0,
        inner_iter: int = 20,
        init_iter: int = 100,
        seed: int = 0,
        loss: str = "kl",
    ) -> None: ...
    def set_components(self, H: NDArray[np.floating]) -> None: ...
    def partial_fit(self, X: NDArray[Any]) -> tuple[float, NDArray[np.floating]]: ...
    def transform(self, X: NDArray[Any], n_iter: int) -> NDArray[np.floating]: ...
    def components(self) -> NDArray[np.floating]: ...
    @property
    def n_samples_seen(self) -> int: ...
    @property
    def n_batches(self) -> int: ...
    @property
    def n_channels(self) -> int: ...

spectral: _SpectralModule
