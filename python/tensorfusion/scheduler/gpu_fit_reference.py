"""The rules of `gpu_fit.fit_gpus` as plain Python loops over lists: the readable statement of
what the native kernel computes, and the oracle its tests compare against.

Every float expression is the native one, operation for operation (Python floats are IEEE
doubles and the kernel is built without fused multiply-add), so the two agree bit for bit.
Sums that could pass int64 saturate at INT64_MAX, as the kernel's do."""

from __future__ import annotations

import math
from dataclasses import fields

import numpy as np
from numpy.typing import NDArray

from tensorfusion.scheduler.gpu_fit import (
    INT64_MAX,
    PPM_SCALE,
    GpuArrays,
    GpuFitRequest,
    GpuFitResult,
    GpuReason,
    GpuState,
    PlacementCode,
    check_fit_inputs,
)

Columns = dict[str, list[int]]

_LOAD_REASONS = frozenset(
    {
        GpuReason.FITS,
        GpuReason.INSUFFICIENT_TFLOPS,
        GpuReason.INSUFFICIENT_VRAM,
        GpuReason.TFLOPS_LIMIT_OVER_VIRTUAL,
        GpuReason.VRAM_LIMIT_OVER_VIRTUAL,
    }
)
"""GPUs the pod could use, full or not (state, pool and model passed): those whose load
NodeCompactGPULowLoad's node score counts."""


def _ceil_ppm(capacity: int, ppm: int) -> int:
    return -(-capacity * ppm // PPM_SCALE)


def _tflops_on(request: GpuFitRequest, capacity: int) -> tuple[int, int]:
    """The request's TFLOPS (request, limit) on a GPU of this capacity."""
    req = request.tflops_request
    if request.percent_request_ppm >= 0:
        req = _ceil_ppm(capacity, request.percent_request_ppm)
    limit = request.tflops_limit
    if request.percent_limit_ppm >= 0:
        limit = _ceil_ppm(capacity, request.percent_limit_ppm)
    return req, limit


def _used_share(used: int, capacity: int) -> float:
    return 100.0 if capacity == 0 else float(used) * 100.0 / float(capacity)


def _round_clamp(x: float) -> int:
    """clamp(floor(x + 0.5), 0, 100), with NaN scoring 0."""
    y = x + 0.5
    if not y >= 0.0:
        return 0
    if y >= 100.0:
        return 100
    return math.floor(y)


def _node_level_reason(mask: int, workers: int, request: GpuFitRequest) -> GpuReason:
    if mask == 0:
        return GpuReason.NODE_FILTERED
    if workers + 1 > request.max_worker_per_node:
        return GpuReason.TOO_MANY_WORKERS
    return GpuReason.FITS


def _gpu_reason(col: Columns, i: int, request: GpuFitRequest, tflops: tuple[int, int]) -> GpuReason:
    """Checks 2-9 for a GPU whose node passed checks 1 and 10."""
    req_t, lim_t = tflops
    if col["state"][i] == GpuState.DEVICE_PLUGIN:
        return GpuReason.DEVICE_PLUGIN
    if col["state"][i] == GpuState.NOT_READY:
        return GpuReason.NOT_READY
    if request.pool_id >= 0 and col["pool"][i] != request.pool_id:
        return GpuReason.POOL_MISMATCH
    if request.model_id >= 0 and col["model"][i] != request.model_id:
        return GpuReason.MODEL_MISMATCH
    if col["tflops_requested"][i] + req_t > col["tflops_capacity"][i]:
        return GpuReason.INSUFFICIENT_TFLOPS
    if col["vram_requested"][i] + request.vram_request > col["vram_capacity"][i]:
        return GpuReason.INSUFFICIENT_VRAM
    if col["tflops_limited"][i] + lim_t > col["tflops_virtual"][i]:
        return GpuReason.TFLOPS_LIMIT_OVER_VIRTUAL
    if col["vram_limited"][i] + request.vram_limit > col["vram_virtual"][i]:
        return GpuReason.VRAM_LIMIT_OVER_VIRTUAL
    return GpuReason.FITS


def _gpu_score(col: Columns, i: int, request: GpuFitRequest, req_t: int) -> int:
    vram_share = _used_share(
        col["vram_requested"][i] + request.vram_request, col["vram_capacity"][i]
    )
    tflops_share = _used_share(col["tflops_requested"][i] + req_t, col["tflops_capacity"][i])
    if request.mode == PlacementCode.COMPACT_FIRST:
        return _round_clamp(request.vram_weight * vram_share + request.tflops_weight * tflops_share)
    return _round_clamp(
        request.vram_weight * (100.0 - vram_share) + request.tflops_weight * (100.0 - tflops_share)
    )


def _node_load_score(
    col: Columns,
    members: list[int],
    reasons: list[GpuReason],
    chosen: list[int],
    request: GpuFitRequest,
) -> int:
    usable = [i for i in members if reasons[i] in _LOAD_REASONS]
    vram_used = sum(col["vram_requested"][i] for i in usable) + request.vram_request * len(chosen)
    tflops_used = sum(col["tflops_requested"][i] for i in usable) + sum(
        _tflops_on(request, col["tflops_capacity"][i])[0] for i in chosen
    )
    vram_share = _used_share(
        min(vram_used, INT64_MAX), min(sum(col["vram_capacity"][i] for i in usable), INT64_MAX)
    )
    tflops_share = _used_share(
        min(tflops_used, INT64_MAX), min(sum(col["tflops_capacity"][i] for i in usable), INT64_MAX)
    )
    return _round_clamp(request.vram_weight * vram_share + request.tflops_weight * tflops_share)


def fit_gpus_reference(
    arrays: GpuArrays,
    node_mask: NDArray[np.uint8],
    node_workers: NDArray[np.int32],
    request: GpuFitRequest,
) -> GpuFitResult:
    """Same contract and result as `gpu_fit.fit_gpus`, computed in pure Python."""
    check_fit_inputs(arrays, node_mask, node_workers)
    col: Columns = {spec.name: getattr(arrays, spec.name).tolist() for spec in fields(arrays)}
    node_count = len(node_mask)
    k = request.gpu_count

    node_reason = [
        _node_level_reason(mask, workers, request)
        for mask, workers in zip(node_mask.tolist(), node_workers.tolist(), strict=True)
    ]
    gpu_reason: list[GpuReason] = []
    gpu_score: list[int] = []
    members: list[list[int]] = [[] for _ in range(node_count)]
    for i, node in enumerate(col["node"]):
        members[node].append(i)
        tflops = _tflops_on(request, col["tflops_capacity"][i])
        reason = node_reason[node]
        if reason == GpuReason.FITS:
            reason = _gpu_reason(col, i, request, tflops)
        gpu_reason.append(reason)
        gpu_score.append(_gpu_score(col, i, request, tflops[0]) if reason == GpuReason.FITS else -1)

    node_score = [-1] * node_count
    node_gpus = [[-1] * k for _ in range(node_count)]
    best_node = -1
    for n in range(node_count):
        if node_reason[n] != GpuReason.FITS:
            continue
        fitting = [i for i in members[n] if gpu_reason[i] == GpuReason.FITS]
        if not members[n]:
            node_reason[n] = GpuReason.NO_GPUS
        elif len(fitting) < k:
            node_reason[n] = GpuReason.NOT_ENOUGH_GPUS
        else:
            chosen = sorted(fitting, key=lambda i: (-gpu_score[i], i))[:k]
            if request.mode == PlacementCode.NODE_COMPACT_GPU_LOW_LOAD:
                score = _node_load_score(col, members[n], gpu_reason, chosen, request)
            else:
                score = (2 * sum(gpu_score[i] for i in chosen) + k) // (2 * k)
            node_score[n] = score
            node_gpus[n] = chosen
            if best_node < 0 or score > node_score[best_node]:
                best_node = n

    return GpuFitResult(
        gpu_reason=np.array(gpu_reason, dtype=np.uint8),
        gpu_score=np.array(gpu_score, dtype=np.int32),
        node_reason=np.array(node_reason, dtype=np.uint8),
        node_score=np.array(node_score, dtype=np.int32),
        node_gpus=np.array(node_gpus, dtype=np.int32).reshape(node_count, k),
        best_node=best_node,
        best_gpus=tuple(node_gpus[best_node]) if best_node >= 0 else (),
    )
