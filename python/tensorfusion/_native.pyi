"""Type stub for the C++ extension module built from bindings/ (see CMakeLists.txt)."""

import os
from typing import Any, overload

import numpy as np
from numpy.typing import NDArray

def build_info() -> dict[str, str | bool]:
    """version, compiler_id, compiler_version, cxx_standard, build_type (str); werror (bool)."""

def encode_columns(
    measurement: str,
    tag_columns: list[tuple[str, list[str]]],
    field_columns: list[tuple[str, str, NDArray[Any] | list[str]]],
    times_ns: NDArray[np.int64],
    unit_ns: int,
) -> str:
    """Line protocol for rows given as columns; field kinds f/i/u/b/s. Raises ConfigError
    naming the first bad cell. Use tensorfusion.metrics.line_protocol.encode_columns."""

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
    changed: NDArray[np.int32] | None = None,
    previous: tuple[
        NDArray[np.uint8],
        NDArray[np.int32],
        NDArray[np.uint8],
        NDArray[np.int32],
        NDArray[np.int32],
    ]
    | None = None,
) -> tuple[
    NDArray[np.uint8],
    NDArray[np.int32],
    NDArray[np.uint8],
    NDArray[np.int32],
    NDArray[np.int32],
    int,
]:
    """(gpu_reason, gpu_score, node_reason, node_score, node_gpus, best_node); see
    tensorfusion.scheduler.gpu_fit. With `changed` and `previous` (the outputs of an earlier
    call for the same request), only the changed nodes are recomputed, in `previous`'s arrays.
    TypeError for a wrong dtype, ValueError naming the argument for any other bad input."""

NODE_SUMMARY_WIDTH: int
"""Columns of the per-node summary search_gpus reads (cpp/scoring/gpu_search.h)."""

def summarize_gpu_nodes(
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
    node_start: NDArray[np.int64],
    summary: NDArray[np.float64],
    changed: NDArray[np.int32],
    vram_weight: float,
    tflops_weight: float,
) -> None:
    """Rewrites the summary entries of the `changed` nodes in place (flat float64,
    NODE_SUMMARY_WIDTH columns of one entry per node). ValueError naming the argument for bad
    input or a negative amount."""

def search_gpus(
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
    request: object,
    node_start: NDArray[np.int64],
    summary: NDArray[np.float64],
    bonus: NDArray[np.int64],
    gpu_weight: int,
) -> tuple[int, NDArray[np.int32]]:
    """The node fit_gpus finds feasible with the highest gpu_weight * node_score + bonus
    (ties to the lower index) and its chosen GPUs; -1 when none is feasible. `request` has a
    GpuFitRequest's fields; `summary` is summarize_gpu_nodes's, current for its weights."""

def fragmentation_scores(
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
    gpu_fits: NDArray[np.uint8],
    candidates: NDArray[np.int32],
    request: object,
    pod_cpu: int,
    pod_memory: int,
    node_cpu_free: NDArray[np.int64],
    node_memory_free: NDArray[np.int64],
    shape_tflops_request: NDArray[np.int64],
    shape_tflops_limit: NDArray[np.int64],
    shape_percent_request_ppm: NDArray[np.int64],
    shape_percent_limit_ppm: NDArray[np.int64],
    shape_vram_request: NDArray[np.int64],
    shape_vram_limit: NDArray[np.int64],
    shape_model_id: NDArray[np.int32],
    class_shape: NDArray[np.int32],
    class_gpu_count: NDArray[np.int32],
    class_cpu: NDArray[np.int64],
    class_memory: NDArray[np.int64],
    class_weight: NDArray[np.int64],
    half_score_ppm: int,
    tie_divisor: int,
) -> tuple[NDArray[np.int32], NDArray[np.int32]]:
    """(score per candidate, chosen GPUs per candidate x request.gpu_count); see
    tensorfusion.scheduler.fragmentation. `request` has a GpuFitRequest's amounts, percents,
    gpu_count (0: no GPUs) and pool_id."""

def broken_linear(
    requested: NDArray[np.int64],
    capacity: NDArray[np.int64],
    utilization: NDArray[np.int64],
    score: NDArray[np.int64],
) -> NDArray[np.int64]:
    """RequestedToCapacityRatio scores; see tensorfusion.scheduler.shape."""

class Limiter:
    """Token bucket over GPU busy time (cpp/include/tf/limiter.h). ValueError naming the
    argument for a share outside (0, 1] or a duration outside 1 ns..1 h."""

    def __init__(
        self,
        share: float,
        window_ns: int = 100_000_000,
        max_in_flight_ns: int = 20_000_000,
        max_wait_ns: int = 50_000_000,
    ) -> None: ...
    def admit(self, now_ns: int, cost_ns: int) -> int:
        """Wait in ns before the launch may go; 0 = go now (and cost_ns is charged)."""

    def complete(self, now_ns: int, busy_ns: int) -> None:
        """The oldest admitted launch finished after busy_ns of GPU time."""

    def noop(self, now_ns: int, cost_ns: int) -> int:
        """admit's argument handling alone, returning 0: the binding's own per-call cost."""

    def grant(self, now_ns: int, most_ns: int) -> int:
        """Busy time launches may spend without admit(), taken from the bucket now: the
        tokens above a quarter of the burst allowance, at most most_ns (0 below that)."""

    def refund(self, now_ns: int, unspent_ns: int) -> None:
        """Gives the unspent part of a grant back (up to the bucket's capacity)."""

    def set_share(self, share: float) -> None:
        """ValueError (and the share unchanged) unless 0 < share <= 1."""

    @property
    def share(self) -> float: ...
    @property
    def in_flight_ns(self) -> float: ...
    @property
    def tokens_ns(self) -> float: ...
    def counters(self) -> dict[str, int]:
        """launches, throttled, wait_ns, busy_ns."""

class CostEstimator:
    """Per launch-site exponential average of measured busy time. ValueError naming the
    argument for slots outside 1..2**20 or a weight outside (0, 1]."""

    @overload
    def __init__(self, slots: int = 1024, weight: float = 0.25) -> None: ...
    @overload
    def __init__(self, slots: int = 1024, *, rise_weight: float, fall_weight: float) -> None:
        """Measurements above the average weigh rise_weight, those below fall_weight."""
    def estimate(self, site: int, fallback_ns: int) -> int: ...
    def observe(self, site: int, busy_ns: int) -> None: ...

def limiter_admit_loop(
    limiter: Limiter, calls: int, start_ns: int, step_ns: int, cost_ns: int
) -> int:
    """`calls` admits in a C++ loop (clock += step_ns each); returns the launches admitted."""

SHM_LAYOUT_VERSION: int
SHM_KINDS: tuple[str, ...]
SHM_COUNTERS: tuple[str, ...]
SHM_GAUGES: tuple[str, ...]

class ShmSlot:
    """A process's claim on one slot of a ShmRegion (from join)."""

    @property
    def index(self) -> int: ...
    @property
    def pid(self) -> int: ...
    @property
    def incarnation(self) -> int: ...

class ShmRegion:
    """The shared region of one worker on one GPU (cpp/include/tf/shm.h). OSError (with the
    path as filename) when the file cannot be created, opened or mapped; ValueError for a file
    of another layout version, truncated or corrupt, and for bad arguments (naming them)."""

    @staticmethod
    def create(
        path: str | os.PathLike[str],
        *,
        slots: int,
        worker: str,
        vram_limit: int,
        tflops_limit: float,
        tflops_request: float,
        gpu_peak_tflops: float,
        host_limit: int = 0,
        disk_limit: int = 0,
    ) -> ShmRegion:
        """FileExistsError if `path` exists: a live region is never replaced. `host_limit` and
        `disk_limit` are the parts of `vram_limit` that may be paged out to pinned host memory
        and to disk (both 0: no paging)."""

    @staticmethod
    def open(path: str | os.PathLike[str]) -> ShmRegion: ...
    @property
    def path(self) -> str: ...
    @property
    def slot_count(self) -> int: ...
    def set_limits(
        self,
        *,
        vram_limit: int,
        tflops_limit: float,
        tflops_request: float,
        gpu_peak_tflops: float,
        host_limit: int = 0,
        disk_limit: int = 0,
    ) -> int:
        """Replaces the limits; returns the new generation."""

    def snapshot(self) -> dict[str, Any]:
        """Header fields, limits, total_bytes, members, and `slots`: one dict per live slot."""

    def join(self) -> ShmSlot:
        """OSError (ENOSPC) when every slot is held by a live process."""

    def leave(self, slot: ShmSlot) -> None: ...
    def rejoin_after_fork(self, slot: ShmSlot) -> ShmSlot:
        """In a forked child: a slot of its own (the parent keeps `slot`). Else `slot`."""

    def try_charge(self, slot: ShmSlot, kind: str, nbytes: int) -> bool:
        """False if the worker's total would exceed the VRAM limit."""

    def credit(self, slot: ShmSlot, kind: str, nbytes: int) -> None:
        """ValueError for more bytes than the slot holds of that kind."""

    def add(self, slot: ShmSlot, counter: str, amount: int) -> None: ...
    def set_gauge(self, slot: ShmSlot, gauge: str, value: int) -> None:
        """Sets the slot's own gauge (`host_bytes` or `disk_bytes`: bytes paged out there)."""

    def reap(self) -> int:
        """Frees the slots of dead processes; returns how many."""

    def charge_credit_loop(self, slot: ShmSlot, iterations: int) -> None:
        """Bench helper: `iterations` x (try_charge 1 byte + credit it), GIL released."""

def shm_noop_loop(iterations: int) -> None:
    """Bench baseline: `iterations` opaque no-op calls, GIL released."""
