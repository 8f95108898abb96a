"""GPUResourcesFit's best-node search: the node a full `fit_gpus` scan would pick, found
without visiting every GPU.

Each node keeps a summary of its GPUs (highest used and weighted free shares, smallest and
largest capacities, sums for the whole-node load, and per level of free VRAM the highest
weighted used share), refreshed only for the nodes whose version moved. From it the native
side bounds the score any request can reach on a node, visits nodes by that bound (plus the
other score plugins' fixed totals) and stops once no node left can beat the best one found.
The answer is the one the full scan gives; tests hold the two equal placement for placement."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from tensorfusion import _native
from tensorfusion.scheduler.gpu_fit import GpuArrays, GpuFitRequest


class NodeSummaries:
    """The per-node summaries of one allocator's GPUs for one pair of score weights,
    brought up to date on each use (cpp/scoring/gpu_search.h says what they hold)."""

    def __init__(self) -> None:
        self._weights = (-1.0, -1.0)
        self._structure = -1
        self._gpu_count = -1
        self._versions: NDArray[np.int64] = np.empty(0, np.int64)
        self.node_start: NDArray[np.int64] = np.zeros(1, np.int64)
        """GPUs of node n are [node_start[n], node_start[n + 1])."""
        self.table: NDArray[np.float64] = np.empty(0, np.float64)

    def refresh(
        self,
        arrays: GpuArrays,
        versions: NDArray[np.int64],
        structure: int,
        request: GpuFitRequest,
    ) -> None:
        """Brings the summaries up to date for `request`'s weights: `versions` holds a
        counter per node that moves with every change to its GPUs (the allocator's node
        versions), `structure` one that moves when GPUs are added or change nodes."""
        node_count = len(versions)
        weights = (request.vram_weight, request.tflops_weight)
        if (
            self._weights != weights
            or self._structure != structure
            or self._gpu_count != arrays.count
            or len(self._versions) != node_count
        ):
            self.node_start = np.searchsorted(
                arrays.node, np.arange(node_count + 1, dtype=np.int32)
            ).astype(np.int64)
            self.table = np.empty(node_count * _native.NODE_SUMMARY_WIDTH, np.float64)
            changed = np.arange(node_count, dtype=np.int32)
            self._structure, self._gpu_count = structure, arrays.count
            self._weights = weights
        else:
            changed = np.flatnonzero(versions != self._versions).astype(np.int32)
        if len(changed):
            _native.summarize_gpu_nodes(
                **arrays.columns(),
                node_start=self.node_start,
                summary=self.table,
                changed=changed,
                vram_weight=weights[0],
                tflops_weight=weights[1],
            )
        self._versions = versions.copy()


def search_gpus(
    arrays: GpuArrays,
    summaries: NodeSummaries,
    node_mask: NDArray[np.uint8],
    node_workers: NDArray[np.int32],
    request: GpuFitRequest,
    *,
    bonus: NDArray[np.int64],
    gpu_weight: int,
) -> tuple[int, tuple[int, ...]]:
    """Among the nodes `fit_gpus` finds feasible, the one with the highest
    gpu_weight * node_score + bonus[n] (ties to the lower index) and its chosen GPUs;
    (-1, ()) when none is feasible. `summaries` must be fresh for `arrays` and `request`."""
    node, chosen = _native.search_gpus(
        **arrays.columns(),
        node_mask=node_mask,
        node_workers=node_workers,
        request=request,
        node_start=summaries.node_start,
        summary=summaries.table,
        bonus=bonus,
        gpu_weight=gpu_weight,
    )
    return (node, tuple(chosen.tolist())) if node >= 0 else (-1, ())
