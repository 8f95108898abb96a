"""FragmentationAware placement: put a pod where it adds the least expected fragmentation.

A node's fragmentation for one class of request is the free GPU share (parts per million of
a GPU, the lower of its free TFLOPS and free VRAM shares) that the class cannot use there:
every free share when the node cannot host the class at all (too little CPU or memory, too
few GPUs that fit), otherwise the free share of the GPUs that do not fit it. The node's
expected fragmentation weighs the classes by how often they arrived lately (`RequestMix`).
Each feasible node is scored by how much placing the pod there would change it, on the GPUs
that change it least (ties to the GPUs left fullest, as best-fit); CPU and memory count, so
that slices do not take the cores a whole-GPU pod would need beside the GPUs.

The measure is the one of "Beware of Fragmentation" (Weng et al., USENIX ATC 2023). One
native call scores every feasible node (`fragmentation_scores`); `fragmentation_reference`
states the same rules as plain Python, and tests hold the two equal."""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import partial
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from tensorfusion import _native
from tensorfusion.errors import FleetError
from tensorfusion.scheduler.gpu_fit import GpuArrays, GpuFitRequest, check_column, reject_first

HALF_SCORE_PPM = 250_000
"""A change in expected fragmentation of this much (a quarter of a GPU) moves the score
halfway from the middle (50) to its end; the score is 50 - 50 * d / (|d| + HALF_SCORE_PPM),
so small differences stay apart and large ones keep their order."""
TIE_DIVISOR = 100
"""Placements that add the same fragmentation are told apart as best-fit does: what the
chosen GPUs have left counts 1/TIE_DIVISOR as much as fragmentation (a free GPU left whole
weighs as 1% of a GPU fragmented), so slices fill used GPUs first when nothing else differs;
a pod without GPUs counts what its node's GPUs have left, so it goes where the fewest are free."""
MAX_CLASS_WEIGHT = 1_000_000
NEUTRAL_SCORE = 50
"""The score of a placement that leaves the expected fragmentation as it was."""

SHAPE_DTYPES: dict[str, type[np.generic]] = {
    "tflops_request": np.int64,
    "tflops_limit": np.int64,
    "percent_request_ppm": np.int64,
    "percent_limit_ppm": np.int64,
    "vram_request": np.int64,
    "vram_limit": np.int64,
    "model_id": np.int32,
}
CLASS_DTYPES: dict[str, type[np.generic]] = {
    "shape": np.int32,
    "gpu_count": np.int32,
    "cpu": np.int64,
    "memory": np.int64,
    "weight": np.int64,
}


class GpuShape(NamedTuple):
    """What a request takes on each of its GPUs (GpuFitRequest's units). Shapes and classes
    are tuples: the mix sorts and counts them once per arrival."""

    tflops_request: int
    tflops_limit: int
    percent_request_ppm: int
    percent_limit_ppm: int
    vram_request: int
    vram_limit: int
    model_id: int

    @classmethod
    def of(cls, request: GpuFitRequest) -> GpuShape:
        """The request's share of each GPU (any model where it names none)."""
        return cls(
            request.tflops_request,
            request.tflops_limit,
            request.percent_request_ppm,
            request.percent_limit_ppm,
            request.vram_request,
            request.vram_limit,
            request.model_id,
        )


@dataclass(frozen=True)
class RequestShapes:
    """What one GPU of a request takes, one entry per distinct shape (as in GpuFitRequest:
    milli-TFLOPS, or a share of the GPU's TFLOPS in ppm where the percent is >= 0; bytes of
    VRAM; the model it needs, -1 for any)."""

    tflops_request: NDArray[np.int64]
    tflops_limit: NDArray[np.int64]
    percent_request_ppm: NDArray[np.int64]
    percent_limit_ppm: NDArray[np.int64]
    vram_request: NDArray[np.int64]
    vram_limit: NDArray[np.int64]
    model_id: NDArray[np.int32]


@dataclass(frozen=True)
class RequestClasses:
    """The classes of request the measure weighs: a shape on `gpu_count` GPUs of one node
    with `cpu` millicores and `memory` bytes beside, and how much it weighs (arrivals)."""

    shape: NDArray[np.int32]
    gpu_count: NDArray[np.int32]
    cpu: NDArray[np.int64]
    memory: NDArray[np.int64]
    weight: NDArray[np.int64]


@dataclass(frozen=True)
class Mix:
    shapes: RequestShapes
    classes: RequestClasses

    @property
    def total_weight(self) -> int:
        return int(self.classes.weight.sum())

    def check(self) -> None:
        """FleetError naming the field for a wrong dtype, shape or value."""
        fail = partial(FleetError, "mix")
        shapes, classes = self.shapes, self.classes
        length = (len(shapes.tflops_request), "tflops_request")
        for name, dtype in SHAPE_DTYPES.items():
            values = check_column(getattr(shapes, name), name, dtype, fail, length)
            if name == "model_id" or name.startswith("percent"):
                reject_first(fail, name, values, values < -1, "must be >= -1")
            else:
                reject_first(fail, name, values, values < 0, "must be >= 0")
        for name in ("percent_request_ppm", "percent_limit_ppm"):
            values = getattr(shapes, name)
            reject_first(fail, name, values, values > 1_000_000, "must be <= 1000000")
        length = (len(classes.shape), "shape")
        for name, dtype in CLASS_DTYPES.items():
            values = check_column(getattr(classes, name), name, dtype, fail, length)
            reject_first(fail, name, values, values < 0, "must be >= 0")
        reject_first(
            fail,
            "shape",
            classes.shape,
            classes.shape >= len(shapes.tflops_request),
            "is not an index into the shapes",
        )
        reject_first(fail, "gpu_count", classes.gpu_count, classes.gpu_count < 1, "must be >= 1")
        reject_first(
            fail,
            "weight",
            classes.weight,
            classes.weight > MAX_CLASS_WEIGHT,
            f"must be <= {MAX_CLASS_WEIGHT}",
        )


@dataclass(frozen=True)
class PodSide:
    """What the pod takes beside its GPUs, and what the nodes have free of it."""

    cpu: int
    memory: int
    node_cpu_free: NDArray[np.int64]
    node_memory_free: NDArray[np.int64]


@dataclass(frozen=True)
class HostRequest:
    """A pod without GPUs, as `fragmentation_scores` takes it: nothing on any GPU, its cores
    and memory weighed against the GPUs of one pool."""

    pool_id: int
    tflops_request: int = 0
    tflops_limit: int = 0
    vram_request: int = 0
    vram_limit: int = 0
    percent_request_ppm: int = -1
    percent_limit_ppm: int = -1
    gpu_count: int = 0


@dataclass(frozen=True)
class FragmentationResult:
    """Per candidate node, in the order given: its score (0-100, higher is better) and the
    GPUs the pod would take there (the ones that add the least fragmentation, then by
    index)."""

    score: NDArray[np.int32]
    gpus: NDArray[np.int32]
    """(candidates, gpu_count)."""


def fragmentation_scores(
    arrays: GpuArrays,
    gpu_fits: NDArray[np.uint8],
    candidates: NDArray[np.int32],
    *,
    pod: GpuFitRequest | HostRequest,
    side: PodSide,
    mix: Mix,
) -> FragmentationResult:
    """Scores each of `candidates` (node indices, ascending) for placing `pod` there, on
    `pod.gpu_count` of the GPUs where `gpu_fits` is 1 (each candidate must have that many;
    none for a HostRequest).
    The GPUs counted for the measure are the ready ones of the pod's pool (any pool when
    `pod.pool_id` is -1); `side`'s arrays have one entry per node. One native call,
    GIL released; bad input is a ValueError naming the field ("field: problem"), a wrong
    dtype a TypeError."""
    score, gpus = _native.fragmentation_scores(
        **arrays.columns(),
        gpu_fits=gpu_fits,
        candidates=candidates,
        request=pod,
        pod_cpu=side.cpu,
        pod_memory=side.memory,
        node_cpu_free=side.node_cpu_free,
        node_memory_free=side.node_memory_free,
        **{f"shape_{spec.name}": getattr(mix.shapes, spec.name) for spec in fields(mix.shapes)},
        **{f"class_{spec.name}": getattr(mix.classes, spec.name) for spec in fields(mix.classes)},
        half_score_ppm=HALF_SCORE_PPM,
        tie_divisor=TIE_DIVISOR,
    )
    return FragmentationResult(score, gpus)
