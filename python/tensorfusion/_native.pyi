"""Type stub for the C++ extension module built from bindings/ (see CMakeLists.txt)."""

import numpy as np
from numpy.typing import NDArray

def build_info() -> dict[str, str | bool]:
    """version, compiler_id, compiler_version, cxx_standard, build_type (str); werror (bool)."""

def set_log_level(name: str) -> None:
    """Raises ValueError naming the valid levels for an unknown name."""

def log_level() -> str: ...
def log(level: str, message: str) -> None:
    """Writes ``tensorfusion[native] LEVEL: message`` to stderr if ``level`` is enabled."""

def init_log_from_env() -> str:
    """Reads TF_LOG_LEVEL; returns "" or an error message (the level then falls back to info)."""

def fit_gpus(
    *,
    node: NDArray[np.int32],
    state: NDArray[np.uint8],
    pool: NDArray[np.int32],
    model: NDArray[np.int32],
    tflops_capacity: NDArray[np.int64],
    vram_capacity: NDArray[np.int64],
    tflops_virtual: NDArray[np.int64],
    vram_virtual: NDArray[np.int64],
    tflops_requested: NDArray[np.int64],
    vram_requested: NDArray[np.int64],
    tflops_limited: NDArray[np.int64],
    vram_limited: NDArray[np.int64],
    node_mask: NDArray[np.uint8],
    node_workers: NDArray[np.int32],
    tflops_request: int,
    tflops_limit: int,
    vram_request: int,
    vram_limit: int,
    percent_request_ppm: int,
    percent_limit_ppm: int,
    gpu_count: int,
    pool_id: int,
    model_id: int,
    max_worker_per_node: int,
    mode: int,
    vram_weight: float,
    tflops_weight: float,
) -> tuple[
    NDArray[np.uint8],
    NDArray[np.int32],
    NDArray[np.uint8],
    NDArray[np.int32],
    NDArray[np.int32],
    int,
]:
    """(gpu_reason, gpu_score, node_reason, node_score, node_gpus, best_node); see
    tensorfusion.scheduler.gpu_fit. TypeError for a wrong dtype, ValueError naming the argument
    for any other bad input."""

def broken_linear(
    requested: NDArray[np.int64],
    capacity: NDArray[np.int64],
    utilization: NDArray[np.int64],
    score: NDArray[np.int64],
) -> NDArray[np.int64]:
    """RequestedToCapacityRatio scores; see tensorfusion.scheduler.shape."""
