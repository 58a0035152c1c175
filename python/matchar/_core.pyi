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
