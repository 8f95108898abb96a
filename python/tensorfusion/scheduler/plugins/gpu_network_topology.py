"""GPUNetworkTopologyAware: a multi-GPU pod should get GPUs that talk over NVLink, else GPUs
on one NUMA node; and a node serving remote workers should not be driven past its intranet
bandwidth budget (`totalIntranetBandWidthGBps`), judged on measured rx + tx."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

from tensorfusion.api.scheduler_config import GPUNetworkTopologyAwareArgs
from tensorfusion.scheduler.framework import (
    MAX_NODE_SCORE,
    BoolArray,
    ClusterView,
    CycleState,
    FilterResult,
    ScoreArray,
    Status,
)
from tensorfusion.scheduler.gpu_fit import GpuFitResult
from tensorfusion.scheduler.plugins.gpu_resources_fit import GPUResourcesFit
from tensorfusion.scheduler.pod_info import PodInfo

NVLINK_TIER = 2
NUMA_TIER = 1
TIER_SCORE = {NVLINK_TIER: MAX_NODE_SCORE, NUMA_TIER: MAX_NODE_SCORE // 2}


@dataclass(frozen=True)
class _Plan:
    gpu_count: int
    bandwidth_budget: float | None
    """Set when this pod is a remote worker and measurements exist to judge the budget."""


class GPUNetworkTopologyAware:
    name: ClassVar[str] = "GPUNetworkTopologyAware"
    PLAN = "GPUNetworkTopologyAware/plan"

    def __init__(self, args: GPUNetworkTopologyAwareArgs | None = None) -> None:
        self.args = args or GPUNetworkTopologyAwareArgs()

    def pre_filter(self, state: CycleState, pod: PodInfo, cluster: ClusterView) -> Status:
        workload = pod.workload
        if workload is None or pod.workload_problems:
            return Status.skip()
        budget = self.args.total_intranet_band_width_gbps
        if workload.is_local_gpu is not False or budget is None:
            budget = None
        elif _usage(cluster) is None:
            state.notes.append(
                f"{self.name}: the {budget:g} GB/s per-node budget for remote workers is not "
                "enforced: no rx/tx measurements of every node (monitoring does not provide "
                "them yet)"
            )
            budget = None
        if workload.gpu_count == 1 and budget is None:
            return Status.skip()
        state.write(self.PLAN, _Plan(workload.gpu_count, budget))
        return Status.success()

    def filter(
        self, state: CycleState, pod: PodInfo, cluster: ClusterView, candidates: BoolArray
    ) -> FilterResult:
        plan: _Plan = state.read(self.PLAN)
        if plan.gpu_count > 1:
            state.write(GPUResourcesFit.CHOICE, lambda node: _choose(state, cluster, node))
        usage = _usage(cluster)
        if plan.bandwidth_budget is None or usage is None:
            return FilterResult(np.ones(len(candidates), dtype=np.bool_))
        # A node without a measurement (NaN) is not held to a budget nobody can check.
        return FilterResult(
            ~(usage >= plan.bandwidth_budget),
            (
                f"intranet traffic has reached the {plan.bandwidth_budget:g} GB/s budget for "
                "remote workers",
            ),
        )

    def score(
        self, state: CycleState, pod: PodInfo, cluster: ClusterView, feasible: BoolArray
    ) -> ScoreArray:
        plan: _Plan = state.read(self.PLAN)
        parts: list[ScoreArray] = []
        if plan.gpu_count > 1:
            result: GpuFitResult = state.read(GPUResourcesFit.RESULT)
            tiers = _tiers(result, cluster, plan.gpu_count, len(feasible))
            parts.append(
                np.where(tiers == NVLINK_TIER, TIER_SCORE[NVLINK_TIER], 0)
                + np.where(tiers == NUMA_TIER, TIER_SCORE[NUMA_TIER], 0)
            )
        usage = _usage(cluster)
        if plan.bandwidth_budget is not None and usage is not None:
            headroom = (plan.bandwidth_budget - usage) * MAX_NODE_SCORE / plan.bandwidth_budget
            headroom = np.nan_to_num(headroom, nan=0.0)
            parts.append(np.clip(headroom, 0, MAX_NODE_SCORE).astype(np.int64))
        combined = parts[0] if len(parts) == 1 else (parts[0] + parts[1]) // 2
        return combined.astype(np.int64)

    def normalize(self, scores: ScoreArray, feasible: BoolArray) -> ScoreArray:
        return scores


def _usage(cluster: ClusterView) -> NDArray[np.float64] | None:
    """Measured traffic per node index, or None unless there is a value for every node."""
    usage = cluster.network_gbps
    count = len(cluster.nodes.present)
    if usage is None or len(usage) < count:
        return None
    return usage[:count]


def _tiers(
    result: GpuFitResult, cluster: ClusterView, gpu_count: int, node_count: int
) -> NDArray[np.int64]:
    """Per node: 2 if `gpu_count` fitting GPUs share an NVLink clique, 1 if they share a
    NUMA node, else 0."""
    gpu_node = cluster.gpus.arrays().node
    groups, numa = cluster.gpus.topology()
    fits = result.gpu_reason == 0
    tiers = np.zeros(node_count, dtype=np.int64)
    on_numa = fits & (numa >= 0)
    if on_numa.any():
        width = int(numa[on_numa].max()) + 1
        keys = gpu_node[on_numa].astype(np.int64) * width + numa[on_numa]
        per_numa = np.bincount(keys, minlength=node_count * width).reshape(node_count, width)
        tiers[per_numa.max(axis=1) >= gpu_count] = NUMA_TIER
    linked = fits & (groups >= 0)
    if linked.any():
        group_size = np.bincount(groups[linked])
        group_node = np.zeros(len(group_size), dtype=np.int64)
        group_node[groups[linked]] = gpu_node[linked]
        largest = np.zeros(node_count, dtype=np.int64)
        np.maximum.at(largest, group_node, group_size)
        tiers[largest >= gpu_count] = NVLINK_TIER
    return tiers


def _choose(state: CycleState, cluster: ClusterView, node: int) -> tuple[int, ...] | None:
    """The best-scoring `gpu_count` fitting GPUs of the node within one NVLink clique, else
    within one NUMA node; None leaves the choice to GPUResourcesFit."""
    plan: _Plan = state.read(GPUNetworkTopologyAware.PLAN)
    result: GpuFitResult = state.read(GPUResourcesFit.RESULT)
    gpu_node = cluster.gpus.arrays().node
    groups, numa = cluster.gpus.topology()
    first, last = np.searchsorted(gpu_node, [node, node + 1])
    mine = [i for i in range(int(first), int(last)) if result.gpu_reason[i] == 0]
    for labels in (groups, numa):
        best: tuple[float, tuple[int, ...]] | None = None
        by_label: dict[int, list[int]] = {}
        for i in mine:
            if labels[i] >= 0:
                by_label.setdefault(int(labels[i]), []).append(i)
        for members in by_label.values():
            if len(members) < plan.gpu_count:
                continue
            ranked = sorted(members, key=lambda i: (-int(result.gpu_score[i]), i))
            chosen = tuple(ranked[: plan.gpu_count])
            mean = sum(int(result.gpu_score[i]) for i in chosen) / plan.gpu_count
            if best is None or mean > best[0]:
                best = (mean, chosen)
        if best is not None:
            return best[1]
    return None
