"""GPUResourcesFit's kernel: filter and score every GPU of the fleet for one pod's request,
choose the GPUs on each node, and pick the best node, in one native call.

The fleet is struct-of-arrays (`GpuArrays`), used in place: the native side reads the numpy
buffers without copying and without the GIL. `gpu_fit_reference` computes the same result with
plain Python loops; tests hold the two equal bit for bit."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from enum import IntEnum
from functools import partial
from numbers import Integral, Real
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tensorfusion import _native
from tensorfusion.api.workload import MAX_GPU_COUNT
from tensorfusion.errors import ConfigError, FleetError

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
PPM_SCALE = 1_000_000
"""Percent-mode TFLOPS are parts per million of a GPU's physical TFLOPS."""


class GpuState(IntEnum):
    READY = 0
    DEVICE_PLUGIN = 1
    """Held by the NVIDIA device plugin; never ours to give."""
    NOT_READY = 2


class PlacementCode(IntEnum):
    COMPACT_FIRST = 0
    LOW_LOAD_FIRST = 1
    NODE_COMPACT_GPU_LOW_LOAD = 2


class GpuReason(IntEnum):
    """Why a GPU (or, for the node codes, a node) was rejected; FITS when it was not. A GPU
    gets the first failing check in the order NODE_FILTERED, TOO_MANY_WORKERS, DEVICE_PLUGIN,
    NOT_READY, POOL_MISMATCH, MODEL_MISMATCH, INSUFFICIENT_TFLOPS, INSUFFICIENT_VRAM,
    TFLOPS_LIMIT_OVER_VIRTUAL, VRAM_LIMIT_OVER_VIRTUAL."""

    FITS = 0
    NODE_FILTERED = 1
    DEVICE_PLUGIN = 2
    NOT_READY = 3
    POOL_MISMATCH = 4
    MODEL_MISMATCH = 5
    INSUFFICIENT_TFLOPS = 6
    INSUFFICIENT_VRAM = 7
    TFLOPS_LIMIT_OVER_VIRTUAL = 8
    VRAM_LIMIT_OVER_VIRTUAL = 9
    TOO_MANY_WORKERS = 10
    NOT_ENOUGH_GPUS = 11
    """Node only: fewer than gpu_count of its GPUs fit."""
    NO_GPUS = 12
    """Node only: it has no GPU at all."""

    def describe(self) -> str:
        """A short phrase for diagnoses, e.g. "insufficient VRAM"."""
        return _REASON_PHRASES[self]


_REASON_PHRASES = {
    GpuReason.FITS: "fits",
    GpuReason.NODE_FILTERED: "node rejected by an earlier filter",
    GpuReason.DEVICE_PLUGIN: "held by the NVIDIA device plugin",
    GpuReason.NOT_READY: "GPU not ready",
    GpuReason.POOL_MISMATCH: "GPU in another pool",
    GpuReason.MODEL_MISMATCH: "different GPU model",
    GpuReason.INSUFFICIENT_TFLOPS: "insufficient TFLOPS",
    GpuReason.INSUFFICIENT_VRAM: "insufficient VRAM",
    GpuReason.TFLOPS_LIMIT_OVER_VIRTUAL: "TFLOPS limit over the virtual capacity",
    GpuReason.VRAM_LIMIT_OVER_VIRTUAL: "VRAM limit over the virtual capacity",
    GpuReason.TOO_MANY_WORKERS: "too many workers on the node",
    GpuReason.NOT_ENOUGH_GPUS: "not enough GPUs fit",
    GpuReason.NO_GPUS: "no GPUs on the node",
}

AMOUNT_FIELDS = (
    "tflops_capacity",
    "vram_capacity",
    "tflops_virtual",
    "vram_virtual",
    "tflops_requested",
    "vram_requested",
    "tflops_limited",
    "vram_limited",
)
"""Milli-TFLOPS and bytes: capacity, virtual capacity (the bound for limits), and the sums of
the requests and limits already placed."""

GPU_DTYPES: dict[str, type[np.generic]] = {
    "node": np.int32,
    "state": np.uint8,
    "pool": np.int32,
    "model": np.int32,
    **dict.fromkeys(AMOUNT_FIELDS, np.int64),
}


def check_column(
    value: object,
    name: str,
    dtype: type[np.generic],
    fail: Callable[[str, str], ValueError],
    length: tuple[int, str] | None = None,
) -> NDArray[Any]:
    """`value` as a 1-D, C-contiguous, aligned array of exactly `dtype` (TypeError otherwise;
    nothing is converted, since a copy would hide the caller's mistake), `length[0]` long
    (the length of `length[1]`) when given. Layout and length problems go through `fail`."""
    if not isinstance(value, np.ndarray):
        raise TypeError(
            f"{name}: expected a numpy array of {np.dtype(dtype)}, got {type(value).__name__}"
        )
    if value.dtype != np.dtype(dtype):
        raise TypeError(f"{name}: expected dtype {np.dtype(dtype)}, got {value.dtype}")
    if value.ndim != 1:
        raise fail(name, f"must be 1-D, got {value.ndim} dimensions")
    if not (value.flags.c_contiguous and value.flags.aligned):
        raise fail(name, "must be C-contiguous and aligned")
    if length is not None and len(value) != length[0]:
        raise fail(name, f"length {len(value)}, expected {length[0]} (the length of {length[1]})")
    return value


def reject_first(
    fail: Callable[[str, str], ValueError],
    name: str,
    values: NDArray[Any],
    bad: NDArray[np.bool_],
    problem: str,
) -> None:
    """Raises `fail` for the first entry of `values` where `bad` holds, naming value and index."""
    hits = np.flatnonzero(bad)
    if len(hits):
        index = int(hits[0])
        raise fail(name, f"value {values[index]} at index {index} {problem}")


@dataclass(frozen=True)
class GpuArrays:
    """One entry per GPU; the GPUs of a node are contiguous and nodes ascend (`node` is
    non-decreasing). The arrays are shared, not copied: whoever owns them may update them in
    place between calls."""

    node: NDArray[np.int32]
    state: NDArray[np.uint8]
    """A GpuState."""
    pool: NDArray[np.int32]
    """Pool id, -1 for none."""
    model: NDArray[np.int32]
    """Model id, -1 for unknown."""
    tflops_capacity: NDArray[np.int64]
    vram_capacity: NDArray[np.int64]
    tflops_virtual: NDArray[np.int64]
    vram_virtual: NDArray[np.int64]
    tflops_requested: NDArray[np.int64]
    vram_requested: NDArray[np.int64]
    tflops_limited: NDArray[np.int64]
    vram_limited: NDArray[np.int64]

    @classmethod
    def zeros(cls, count: int) -> GpuArrays:
        """`count` ready GPUs of node 0, no pool, unknown model, all amounts zero."""
        arrays = {name: np.zeros(count, dtype=dtype) for name, dtype in GPU_DTYPES.items()}
        arrays["pool"][:] = -1
        arrays["model"][:] = -1
        return cls(**arrays)

    @property
    def count(self) -> int:
        """The number of GPUs."""
        return len(self.node)

    def columns(self) -> dict[str, Any]:
        """The arrays by field name, as the native functions take them as keywords."""
        return {spec.name: getattr(self, spec.name) for spec in fields(self)}

    def check(self) -> None:
        """TypeError for a non-array or a wrong dtype; FleetError naming the field for a wrong
        shape, layout or length, a decreasing or negative node, an unknown state, or a
        negative amount."""
        fail = partial(FleetError, "GpuArrays")
        check_column(self.node, "node", np.int32, fail)
        length = (self.count, "node")
        for spec in fields(self):
            check_column(getattr(self, spec.name), spec.name, GPU_DTYPES[spec.name], fail, length)
        reject_first(fail, "node", self.node, self.node < 0, "must be >= 0")
        descending = np.concatenate(([False], self.node[1:] < self.node[:-1]))
        reject_first(
            fail,
            "node",
            self.node,
            descending,
            "is below the previous GPU's node; the GPUs of a node must be contiguous, nodes in "
            "ascending order",
        )
        reject_first(
            fail,
            "state",
            self.state,
            self.state > GpuState.NOT_READY,
            "is not a GPU state (0 ready, 1 device plugin, 2 not ready)",
        )
        for name in AMOUNT_FIELDS:
            values = getattr(self, name)
            reject_first(fail, name, values, values < 0, "must be >= 0")


def check_fit_inputs(
    arrays: GpuArrays, node_mask: NDArray[np.uint8], node_workers: NDArray[np.int32]
) -> None:
    """Checks `arrays` and the per-node arrays against them (see GpuArrays.check); every
    GPU's node must index node_mask, and worker counts must be >= 0."""
    arrays.check()
    fail = partial(FleetError, "nodes")
    check_column(node_mask, "node_mask", np.uint8, fail)
    check_column(node_workers, "node_workers", np.int32, fail, (len(node_mask), "node_mask"))
    reject_first(
        partial(FleetError, "GpuArrays"),
        "node",
        arrays.node,
        arrays.node >= len(node_mask),
        f"is not an index into node_mask ({len(node_mask)} nodes)",
    )
    reject_first(fail, "node_workers", node_workers, node_workers < 0, "must be >= 0")


def _checked_int(name: str, value: object, low: int, high: int) -> int:
    if not isinstance(value, Integral) or isinstance(value, bool):
        raise ConfigError(name, f"must be an integer, got {type(value).__name__}")
    if not low <= int(value) <= high:
        raise ConfigError(name, f"must be from {low} to {high}, got {value}")
    return int(value)


def _checked_weight(name: str, value: object) -> float:
    if not isinstance(value, Real) or isinstance(value, bool):
        raise ConfigError(name, f"must be a number, got {type(value).__name__}")
    try:
        number = float(value)
    except OverflowError:  # an int beyond the float range
        number = math.inf
    if not (math.isfinite(number) and number >= 0.0):
        raise ConfigError(name, f"must be a finite number >= 0, got {value}")
    return number


_REQUEST_RANGES = {
    "tflops_request": (0, INT64_MAX),
    "tflops_limit": (0, INT64_MAX),
    "vram_request": (0, INT64_MAX),
    "vram_limit": (0, INT64_MAX),
    "percent_request_ppm": (-1, PPM_SCALE),
    "percent_limit_ppm": (-1, PPM_SCALE),
    "gpu_count": (1, MAX_GPU_COUNT),
    "pool_id": (-1, INT32_MAX),
    "model_id": (-1, INT32_MAX),
    "max_worker_per_node": (1, INT64_MAX),
    "mode": (min(PlacementCode), max(PlacementCode)),
}


@dataclass(frozen=True, kw_only=True)
class GpuFitRequest:
    """One pod's GPU request. TFLOPS in milli-TFLOPS, VRAM in bytes. Values are checked on
    construction (ConfigError naming the field); numpy integers are accepted and stored as int.
    """

    tflops_request: int
    tflops_limit: int
    vram_request: int
    vram_limit: int
    percent_request_ppm: int = -1
    """-1: unused; otherwise the TFLOPS request on GPU g is ceil(tflops_capacity[g] * ppm /
    1e6) instead of tflops_request."""
    percent_limit_ppm: int = -1
    """Likewise for the limit."""
    gpu_count: int = 1
    pool_id: int = -1
    """-1: any pool."""
    model_id: int = -1
    """-1: any model."""
    max_worker_per_node: int = 256
    mode: PlacementCode = PlacementCode.NODE_COMPACT_GPU_LOW_LOAD
    vram_weight: float = 0.7
    tflops_weight: float = 0.3

    def __post_init__(self) -> None:
        for name, (low, high) in _REQUEST_RANGES.items():
            object.__setattr__(self, name, _checked_int(name, getattr(self, name), low, high))
        object.__setattr__(self, "mode", PlacementCode(self.mode))
        for name in ("vram_weight", "tflops_weight"):
            object.__setattr__(self, name, _checked_weight(name, getattr(self, name)))


@dataclass(frozen=True)
class GpuFitResult:
    """What one request found: per GPU, per node, and the best placement."""

    gpu_reason: NDArray[np.uint8]
    """A GpuReason per GPU."""
    gpu_score: NDArray[np.int32]
    """0-100 per GPU, -1 where it does not fit."""
    node_reason: NDArray[np.uint8]
    """Per node: FITS (feasible), NODE_FILTERED, TOO_MANY_WORKERS, NO_GPUS or NOT_ENOUGH_GPUS."""
    node_score: NDArray[np.int32]
    """0-100 per node, -1 where infeasible."""
    node_gpus: NDArray[np.int32]
    """(nodes, gpu_count): the chosen GPUs by score descending, then index; -1 rows where
    infeasible."""
    best_node: int
    """The feasible node with the highest score (ties to the lower index), -1 if none."""
    best_gpus: tuple[int, ...]
    """Its row of node_gpus; empty if there is no best node."""


def fit_gpus(
    arrays: GpuArrays,
    node_mask: NDArray[np.uint8],
    node_workers: NDArray[np.int32],
    request: GpuFitRequest,
) -> GpuFitResult:
    """Filter and score every GPU for `request` in one native call (no copies, GIL released).

    `node_mask[n]` is 0 where an earlier filter rejected node n; `node_workers[n]` counts the
    pods with GPUs already there. The native side checks its input itself, so nothing is
    checked twice: a wrong dtype is a TypeError, anything else that check_fit_inputs rejects
    is a ValueError with the same "field: problem" message."""
    return _native_fit(arrays, node_mask, node_workers, request)


def refit_gpus(
    arrays: GpuArrays,
    node_mask: NDArray[np.uint8],
    node_workers: NDArray[np.int32],
    request: GpuFitRequest,
    *,
    previous: GpuFitResult,
    changed: NDArray[np.int32],
) -> GpuFitResult:
    """`fit_gpus` for the same request after only the `changed` nodes moved on (their GPUs,
    worker count or mask): the same result, at the cost of those nodes. The GPUs' layout
    (which node each GPU is on, in order) must be the one `previous` was computed on, which
    checked it; it is not checked again. `previous` is left as it was (its arrays are copied
    first, since an earlier cycle may still read them)."""
    outputs = (
        previous.gpu_reason.copy(),
        previous.gpu_score.copy(),
        previous.node_reason.copy(),
        previous.node_score.copy(),
        previous.node_gpus.copy(),
    )
    return _native_fit(arrays, node_mask, node_workers, request, changed=changed, previous=outputs)


def _native_fit(
    arrays: GpuArrays,
    node_mask: NDArray[np.uint8],
    node_workers: NDArray[np.int32],
    request: GpuFitRequest,
    **incremental: Any,
) -> GpuFitResult:
    gpu_reason, gpu_score, node_reason, node_score, node_gpus, best_node = _native.fit_gpus(
        **arrays.columns(),
        node_mask=node_mask,
        node_workers=node_workers,
        **{spec.name: getattr(request, spec.name) for spec in fields(request)},
        **incremental,
    )
    best_gpus = tuple(node_gpus[best_node].tolist()) if best_node >= 0 else ()
    return GpuFitResult(
        gpu_reason, gpu_score, node_reason, node_score, node_gpus, best_node, best_gpus
    )
