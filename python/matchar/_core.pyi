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

class _NMRModule:
    """matchar._core.nmr (a submodule at run time)."""

    @staticmethod
    def assignment_log_evidence_f32(
        mean: NDArray[np.float32],
        var: NDArray[np.float32],
        y: NDArray[np.float64],
        var_exp: NDArray[np.float64],
        group_sizes: NDArray[np.int64],
        offset_mode: int,
        offset_value: float,
        prior_mean: float,
        prior_std: float,
        method: int,
        step_factor: float,
        tail_nats: float,
        exact_group_size: int,
        max_bp_iterations: int,
        bp_tolerance: float,
        n_samples: int,
        seed: int,
    ) -> NDArray[np.float64]: ...
    @staticmethod
    def assignment_log_evidence_f64(
        mean: NDArray[np.float64],
        var: NDArray[np.float64],
        y: NDArray[np.float64],
        var_exp: NDArray[np.float64],
        group_sizes: NDArray[np.int64],
        offset_mode: int,
        offset_value: float,
        prior_mean: float,
        prior_std: float,
        method: int,
        step_factor: float,
        tail_nats: float,
        exact_group_size: int,
        max_bp_iterations: int,
        bp_tolerance: float,
        n_samples: int,
        seed: int,
    ) -> NDArray[np.float64]: ...
    @staticmethod
    def log_permanent(
        log_a: NDArray[np.float64], bethe: bool = False, max_iterations: int = 300,
        tolerance: float = 1e-10,
    ) -> float: ...

nmr: _NMRModule
