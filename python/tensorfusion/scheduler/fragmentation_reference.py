"""The rules of `fragmentation.fragmentation_scores` as plain Python: the readable statement
of what the native kernel computes, and the oracle its tests compare against. All arithmetic
is on integers, so the two agree exactly."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from functools import partial

import numpy as np
from numpy.typing import NDArray

from tensorfusion.errors import FleetError
from tensorfusion.scheduler.fragmentation import (
    NEUTRAL_SCORE,
    TIE_DIVISOR,
    FragmentationResult,
    GpuShape,
    HostRequest,
    Mix,
    PodSide,
)
from tensorfusion.scheduler.gpu_fit import (
    AMOUNT_FIELDS,
    PPM_SCALE,
    GpuArrays,
    GpuFitRequest,
    GpuState,
    check_column,
    check_fit_inputs,
    reject_first,
)


@dataclass(frozen=True)
class _Gpu:
    """One GPU's amounts, as placing a request changes them."""

    index: int
    model: int
    tflops_capacity: int
    vram_capacity: int
    tflops_virtual: int
    vram_virtual: int
    tflops_requested: int
    vram_requested: int
    tflops_limited: int
    vram_limited: int


def _tflops(amount: int, ppm: int, capacity: int) -> int:
    """A request's TFLOPS on a GPU of this capacity: its share where one is given."""
    return -(-capacity * ppm // PPM_SCALE) if ppm >= 0 else amount


def _share_ppm(free: int, capacity: int) -> int:
    if capacity <= 0 or free <= 0:
        return 0
    return min(free * PPM_SCALE // capacity, PPM_SCALE)


def _free_ppm(gpu: _Gpu) -> int:
    """The GPU's free share: the lower of its free TFLOPS and free VRAM shares."""
    return min(
        _share_ppm(gpu.tflops_capacity - gpu.tflops_requested, gpu.tflops_capacity),
        _share_ppm(gpu.vram_capacity - gpu.vram_requested, gpu.vram_capacity),
    )


def _fits(gpu: _Gpu, shape: GpuShape) -> bool:
    if shape.model_id >= 0 and gpu.model != shape.model_id:
        return False
    cap = gpu.tflops_capacity
    return (
        gpu.tflops_requested + _tflops(shape.tflops_request, shape.percent_request_ppm, cap) <= cap
        and gpu.vram_requested + shape.vram_request <= gpu.vram_capacity
        and gpu.tflops_limited + _tflops(shape.tflops_limit, shape.percent_limit_ppm, cap)
        <= gpu.tflops_virtual
        and gpu.vram_limited + shape.vram_limit <= gpu.vram_virtual
    )


def _placed(gpu: _Gpu, shape: GpuShape) -> _Gpu:
    cap = gpu.tflops_capacity
    return replace(
        gpu,
        tflops_requested=gpu.tflops_requested
        + _tflops(shape.tflops_request, shape.percent_request_ppm, cap),
        vram_requested=gpu.vram_requested + shape.vram_request,
        tflops_limited=gpu.tflops_limited
        + _tflops(shape.tflops_limit, shape.percent_limit_ppm, cap),
        vram_limited=gpu.vram_limited + shape.vram_limit,
    )


def _expected_fragmentation(
    gpus: list[_Gpu], cpu_free: int, memory_free: int, shapes: list[GpuShape], mix: Mix
) -> int:
    """Sum over the classes of weight x the free share the class cannot use on the node."""
    free = [_free_ppm(gpu) for gpu in gpus]
    total_free = sum(free)
    fits = [[_fits(gpu, shape) for gpu in gpus] for shape in shapes]
    classes = mix.classes
    total = 0
    for c in range(len(classes.shape)):
        fitting = fits[int(classes.shape[c])]
        hosts = (
            cpu_free >= int(classes.cpu[c])
            and memory_free >= int(classes.memory[c])
            and sum(fitting) >= int(classes.gpu_count[c])
        )
        unusable = (
            sum(f for f, fit in zip(free, fitting, strict=True) if not fit) if hosts else total_free
        )
        total += int(classes.weight[c]) * unusable
    return total


@dataclass(frozen=True)
class _NodeState:
    gpus: list[_Gpu]
    """The node's ready GPUs of the pod's pool."""
    left: tuple[int, int]
    """Its free cores and memory once the pod is there."""
    before: int
    """Its expected fragmentation without the pod."""

    def change(self, on: set[int], own: GpuShape, shapes: list[GpuShape], mix: Mix) -> int:
        """The expected fragmentation added by placing the pod on the GPUs `on`, plus the
        best-fit tie-break: what those GPUs have left (all the node's GPUs for a pod without
        any, which thus goes where the fewest are free), weighed 1/TIE_DIVISOR."""
        placed = [_placed(gpu, own) if gpu.index in on else gpu for gpu in self.gpus]
        added = _expected_fragmentation(placed, *self.left, shapes, mix) - self.before
        left_on = sum(_free_ppm(gpu) for gpu in placed if gpu.index in on or not on)
        return added + mix.total_weight * left_on // TIE_DIVISOR


def _score(delta: int, half: int) -> int:
    """NEUTRAL_SCORE - NEUTRAL_SCORE * delta / (|delta| + half), rounded half away from the
    middle."""
    size = abs(delta)
    if size == 0:
        return NEUTRAL_SCORE
    step = (2 * NEUTRAL_SCORE * size + size + half) // (2 * (size + half))
    return NEUTRAL_SCORE - step if delta > 0 else NEUTRAL_SCORE + step


def _check(
    arrays: GpuArrays,
    gpu_fits: NDArray[np.uint8],
    candidates: NDArray[np.int32],
    *,
    pod: GpuFitRequest | HostRequest,
    side: PodSide,
    mix: Mix,
) -> None:
    node_count = len(side.node_cpu_free)
    check_fit_inputs(arrays, np.ones(node_count, np.uint8), np.zeros(node_count, np.int32))
    mix.check()
    fail = partial(FleetError, "nodes")
    check_column(gpu_fits, "gpu_fits", np.uint8, fail, (arrays.count, "node"))
    check_column(side.node_cpu_free, "node_cpu_free", np.int64, fail)
    check_column(
        side.node_memory_free, "node_memory_free", np.int64, fail, (node_count, "node_cpu_free")
    )
    check_column(candidates, "candidates", np.int32, fail)
    outside = (candidates < 0) | (candidates >= node_count)
    reject_first(fail, "candidates", candidates, outside, f"is not a node index ({node_count})")
    ascending = np.concatenate(([False], candidates[1:] <= candidates[:-1]))
    reject_first(fail, "candidates", candidates, ascending, "must be strictly ascending")


def fragmentation_scores_reference(
    arrays: GpuArrays,
    gpu_fits: NDArray[np.uint8],
    candidates: NDArray[np.int32],
    *,
    pod: GpuFitRequest | HostRequest,
    side: PodSide,
    mix: Mix,
    half_score_ppm: int,
) -> FragmentationResult:
    """Same contract and result as `fragmentation.fragmentation_scores`, in pure Python."""
    _check(arrays, gpu_fits, candidates, pod=pod, side=side, mix=mix)
    col = {spec.name: getattr(arrays, spec.name).tolist() for spec in fields(arrays)}
    shapes = [
        GpuShape(*(int(getattr(mix.shapes, spec.name)[s]) for spec in fields(mix.shapes)))
        for s in range(len(mix.shapes.tflops_request))
    ]
    own = GpuShape(
        pod.tflops_request,
        pod.tflops_limit,
        pod.percent_request_ppm,
        pod.percent_limit_ppm,
        pod.vram_request,
        pod.vram_limit,
        -1,  # the GPUs that may take it were chosen by gpu_fits
    )
    k = pod.gpu_count
    scores: list[int] = []
    chosen_rows: list[list[int]] = []
    for node in candidates.tolist():
        members = [
            _Gpu(i, col["model"][i], *(col[name][i] for name in AMOUNT_FIELDS))
            for i, n in enumerate(col["node"])
            if n == node
            and col["state"][i] == GpuState.READY
            and (pod.pool_id < 0 or col["pool"][i] == pod.pool_id)
        ]
        cpu, memory = int(side.node_cpu_free[node]), int(side.node_memory_free[node])
        before = _expected_fragmentation(members, cpu, memory, shapes, mix)
        left = (cpu - side.cpu, memory - side.memory)

        node_state = _NodeState(members, left, before)
        options = sorted(
            (node_state.change({gpu.index}, own, shapes, mix), gpu.index)
            for gpu in members
            if gpu_fits[gpu.index]
        )
        if len(options) < k:
            raise FleetError("nodes", "gpu_fits", f"node {node} has fewer than {k} GPUs that fit")
        chosen = [index for _, index in options[:k]]
        added = node_state.change(set(chosen), own, shapes, mix)
        scores.append(_score(added, mix.total_weight * half_score_ppm))
        chosen_rows.append(chosen)
    return FragmentationResult(
        np.array(scores, dtype=np.int32),
        np.array(chosen_rows, dtype=np.int32).reshape(len(scores), k),
    )
