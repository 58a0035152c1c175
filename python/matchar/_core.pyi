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
        X: NDArray[np.float32], Y: NDArray[np.float32], zeta: int, normalize: bool
    ) -> NDArray[np.float32]: ...
    @staticmethod
    def polynomial_kernel_f64(
        X: NDArray[np.float64], Y: NDArray[np.float64], zeta: int, normalize: bool
    ) -> NDArray[np.float64]: ...

gp: _GPModule

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
    ) -> tuple[float, NDArray[np.floating], NDArray[np.floating] | None]: ...
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

spectral: _SpectralModule
