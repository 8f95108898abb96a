"""FragmentationAware scores kept from one pod to the next.

A node's score and chosen GPUs depend on that node alone (its GPUs, free cores and memory),
the request and the pool's mix. Placing a pod changes one node, and a pool's mix stays the
same for most arrivals, so the next pod with the same request is scored afresh only on the
nodes that changed since: the answer is the one a call over every candidate gives."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from tensorfusion.scheduler.fragmentation import (
    FragmentationResult,
    HostRequest,
    Mix,
    PodSide,
    fragmentation_scores,
)
from tensorfusion.scheduler.gpu_fit import GpuArrays, GpuFitRequest


@dataclass(frozen=True)
class NodeStamps:
    """What the allocator says of the nodes that a score depends on (besides free cores and
    memory, which `PodSide` holds)."""

    versions: NDArray[np.int64]
    """Per node: moves with any change to its GPUs."""
    structure: int
    """The allocator's structure version: node and GPU indices hold while it does."""


@dataclass
class _Kept:
    mix: Mix
    structure: int
    scored: NDArray[np.bool_]
    stamps: NDArray[np.int64]
    """(nodes, 3): version, free cores, free memory when scored."""
    score: NDArray[np.int32]
    gpus: NDArray[np.int32]


class FragmentationMemo:
    """`fragmentation_scores` for the last `size` distinct requests (with the pod's own cores
    and memory), recomputing only the candidates whose stamp moved."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._kept: dict[Hashable, _Kept] = {}

    def scores(
        self,
        arrays: GpuArrays,
        gpu_fits: NDArray[np.uint8],
        candidates: NDArray[np.int32],
        *,
        pod: GpuFitRequest | HostRequest,
        side: PodSide,
        mix: Mix,
        nodes: NodeStamps,
    ) -> FragmentationResult:
        """As `fragmentation_scores`; `nodes.versions` has one entry per node, as `side`'s
        arrays do."""
        count = len(side.node_cpu_free)
        # The candidates' stamps only: a pod is scored on a few nodes of a large cluster.
        stamps = np.stack(
            (
                nodes.versions[candidates],
                side.node_cpu_free[candidates],
                side.node_memory_free[candidates],
            ),
            axis=1,
        )
        key = (pod, side.cpu, side.memory)
        kept = self._kept.pop(key, None)
        if (
            kept is None
            or kept.mix is not mix
            or kept.structure != nodes.structure
            or len(kept.stamps) != count
        ):
            kept = _Kept(
                mix,
                nodes.structure,
                np.zeros(count, np.bool_),
                np.zeros((count, 3), np.int64),
                np.zeros(count, np.int32),
                np.zeros((count, pod.gpu_count), np.int32),
            )
        redo = (kept.stamps[candidates] != stamps).any(axis=1) | ~kept.scored[candidates]
        stale = candidates[redo]
        if len(stale):
            found = fragmentation_scores(arrays, gpu_fits, stale, pod=pod, side=side, mix=mix)
            kept.score[stale] = found.score
            kept.gpus[stale] = found.gpus
            kept.stamps[stale] = stamps[redo]
            kept.scored[stale] = True
        if self._size > 0:
            self._kept[key] = kept
            while len(self._kept) > self._size:
                self._kept.pop(next(iter(self._kept)))
        return FragmentationResult(kept.score[candidates], kept.gpus[candidates])
