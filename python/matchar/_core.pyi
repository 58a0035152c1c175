# Hand-kept stubs for matchar's compiled core. Keep in sync with cpp/bindings/.
from typing import Any

import numpy as np
from numpy.typing import NDArray

__version__: str

def get_num_threads() -> int: ...
def set_num_threads(n: int) -> None: ...
def build_info() -> dict[str, Any]: ...
def parallel_team_size() -> int: ...

class _GPModule:
    """matchar._core.gp (a submodule at run time)."""

    @staticmethod
    def polynomial_kernel_f32(
        X: NDArray[np.float32], Y: NDArray[np.float32] | None, zeta: int, normalize: bool
    ) -> NDArray[np.float32]: ...
    @staticmethod
    def polynomial_kernel_f64(
        X: NDArray[np.float64], Y: NDArray[np.float64] | None, zeta: int, normalize: bool
    ) -> NDArray[np.float64]: ...

gp: _GPModule

class _ImagingModule:
    """matchar._core.imaging (a submodule at run time)."""

    @staticmethod
    def select_shifts(window: int, n_shifts: int) -> NDArray[np.int32]: ...
    @staticmethod
    def local_correlation_map_f32(
        image: NDArray[np.float32], patch: int, window: int, shifts: NDArray[np.int32], stride: int
    ) -> NDArray[np.float32]: ...
    @staticmethod
    def local_correlation_map_f64(
        image: NDArray[np.float64], patch: int, window: int, shifts: NDArray[np.int32], stride: int
    ) -> NDArray[np.float32]: ...
    @staticmethod
    def symmetry_map_f32(
        image: NDArray[np.float32], patch: int, transforms: NDArray[np.float64], stride: int
    ) -> NDArray[np.float32]: ...
    @staticmethod
    def symmetry_map_f64(
        image: NDArray[np.float64], patch: int, transforms: NDArray[np.float64], stride: int
    ) -> NDArray[np.float32]: ...

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
    ) -> None: ...
    @property
    def n_features(self) -> int: ...
    @property
    def n_coefficients(self) -> int: ...
    def power_spectrum_f32(
        self,
        positions: NDArray[np.float64],
        species: NDArray[np.int32],
        offsets: NDArray[np.int64],
        cells: NDArray[np.float64],
        pbc: NDArray[np.bool_],
        centers: NDArray[np.int64],
        normalize: bool,
        out: NDArray[np.float32] | None = None,
    ) -> NDArray[np.float32]: ...
    def power_spectrum_f64(
        self,
        positions: NDArray[np.float64],
        species: NDArray[np.int32],
        offsets: NDArray[np.int64],
        cells: NDArray[np.float64],
        pbc: NDArray[np.bool_],
        centers: NDArray[np.int64],
        normalize: bool,
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
