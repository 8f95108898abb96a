"""GPUResourcesFit: does a slice of the requested size fit on `gpu-count` GPUs of a node,
under the capacity rule, and how well does it pack (or spread) by the pool's placement mode.

Filter and Score are one native call over every GPU (`fit_gpus`), or, when the cycle only
needs the winner, a search that visits just the nodes that can still win (`search`); Reserve
records the chosen GPUs in the allocator. PreEnqueue keeps pods that ask for gang scheduling
out of the queue: that is not built yet, and placing a gang member alone would break what it
asks."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

from tensorfusion.api.annotations import (
    GANG_ANNOTATION_KEYS,
    GPU_COUNT,
    GPU_IDS,
    GPU_INDICES,
    GPU_MODEL,
    GPU_POOL,
    WorkloadRequest,
    read_gang_request,
)
from tensorfusion.api.scheduler_config import GPUResourcesFitArgs
from tensorfusion.api.scheduling_template import PlacementMode
from tensorfusion.errors import AllocationError
from tensorfusion.scheduler.allocation import Allocation
from tensorfusion.scheduler.fragmentation import NEUTRAL_SCORE, HostRequest, PodSide
from tensorfusion.scheduler.fragmentation_memo import FragmentationMemo, NodeStamps
from tensorfusion.scheduler.framework import (
    BIND_ANNOTATIONS,
    BoolArray,
    ClusterView,
    CycleState,
    FilterResult,
    ScoreArray,
    Status,
)
from tensorfusion.scheduler.gpu_demand import GpuDemand, demand_of
from tensorfusion.scheduler.gpu_fit import (
    GpuFitRequest,
    GpuFitResult,
    GpuReason,
    PlacementCode,
    fit_gpus,
    refit_gpus,
)
from tensorfusion.scheduler.gpu_search import NodeSummaries, search_gpus
from tensorfusion.scheduler.pod_info import PodInfo
from tensorfusion.scheduler.request_mix import RequestClass, RequestMix

PLACEMENT_CODES: dict[PlacementMode, PlacementCode] = {
    "CompactFirst": PlacementCode.COMPACT_FIRST,
    "LowLoadFirst": PlacementCode.LOW_LOAD_FIRST,
    "NodeCompactGPULowLoad": PlacementCode.NODE_COMPACT_GPU_LOW_LOAD,
    # The kernel's compact scores rank GPUs for the diagnosis and stand while the pool's
    # request mix is still empty; the fragmentation scores replace them after.
    "FragmentationAware": PlacementCode.COMPACT_FIRST,
}
FRAGMENTATION_AWARE: PlacementMode = "FragmentationAware"


MEMO_REQUESTS = 32
"""How many distinct requests' answers are kept for incremental refits."""
REFIT_SHARE = 4
"""Refit when at most 1/REFIT_SHARE of the nodes changed; a full scan is cheaper beyond."""


@dataclass(frozen=True)
class _Memo:
    result: GpuFitResult
    mask: NDArray[np.uint8]
    versions: NDArray[np.int64]
    structure: int


@dataclass(frozen=True)
class PreparedRequest:
    """What PreFilter works out once per attempt for Filter, Score and Reserve."""

    demand: GpuDemand
    request: GpuFitRequest
    pool: str
    fragmentation_aware: bool


class GPUResourcesFit:
    name: ClassVar[str] = "GPUResourcesFit"
    PREPARED = "GPUResourcesFit/request"
    RESULT = "GPUResourcesFit/result"
    CHOICE = "GPUResourcesFit/choice"
    """Key under which another plugin may leave a `Callable[[int], tuple[int, ...] | None]`
    choosing the GPUs of a node (topology-aware placement); the kernel's choice otherwise."""
    RESERVED = "GPUResourcesFit/reserved"
    HOST = "GPUResourcesFit/host"
    """For a pod without GPUs: the FragmentationAware pools and their request mixes that
    Score weighs its cores and memory against."""
    SEARCHED = "GPUResourcesFit/searched"
    """(node, GPUs) that `search` chose, when it stood in for Filter and Score."""

    def __init__(self, args: GPUResourcesFitArgs | None = None) -> None:
        self.args = args or GPUResourcesFitArgs()
        self._memo: dict[GpuFitRequest, _Memo] = {}
        self._summaries = NodeSummaries()
        self._prepared: dict[tuple[int, int, int, str], tuple[WorkloadRequest, PreparedRequest]]
        self._prepared = {}
        """Requests worked out for the workloads seen lately (replicas share one)."""
        self._mixes: dict[str, RequestMix] = {}
        """The recent requests of each FragmentationAware pool."""
        self._fragmentation = FragmentationMemo(MEMO_REQUESTS)

    # --- PreEnqueue ----------------------------------------------------------------------

    def pre_enqueue(self, pod: PodInfo) -> Status:
        gang, problems = read_gang_request(pod.annotations)
        if problems:
            return Status.unresolvable(self.name, *map(str, problems))
        if gang is None:
            return Status.success()
        key = next(key for key in GANG_ANNOTATION_KEYS if key in pod.annotations)
        return Status.unresolvable(self.name, f"{key}: gang scheduling is not supported yet")

    # --- PreFilter -----------------------------------------------------------------------

    def pre_filter(self, state: CycleState, pod: PodInfo, cluster: ClusterView) -> Status:
        workload = pod.workload
        if workload is None:
            if pod.workload_problems:
                return Status.unresolvable(self.name, *map(str, pod.workload_problems))
            return self._pre_filter_host(state, pod, cluster)
        if pod.workload_problems:
            return Status.unresolvable(self.name, *map(str, pod.workload_problems))
        pool = cluster.pools.resolve(workload.pool)
        if isinstance(pool, str):
            return Status.unresolvable(self.name, pool)
        gpus = cluster.gpus
        pool_id = gpus.pool_id(pool.name)
        if pool_id is None:
            return Status.unschedulable(self.name, f"{GPU_POOL}: pool {pool.name!r} has no GPUs")
        model_id = -1
        if workload.gpu_model is not None:
            found = gpus.model_id(workload.gpu_model)
            if found is None:
                return Status.unschedulable(
                    self.name, f"{GPU_MODEL}: no GPU of model {workload.gpu_model!r} exists"
                )
            model_id = found
        if workload.gpu_count > 1:
            most = _most_gpus_on_a_node(cluster, pool_id)
            if workload.gpu_count > most:
                return Status.unschedulable(
                    self.name,
                    f"{GPU_COUNT}: {workload.gpu_count} GPUs on one node requested, but no node "
                    f"of pool {pool.name!r} has more than {most}",
                )
        key = (id(workload), pool_id, model_id, pool.placement)
        cached = self._prepared.get(key)
        if cached is not None and cached[0] is workload:
            prepared = cached[1]
        else:
            prepared = self._prepare(workload, pool_id, model_id, pool.name, pool.placement)
            if len(self._prepared) >= MEMO_REQUESTS * 8:
                self._prepared.clear()
            # The workload is kept with its answer so that its id cannot be reused meanwhile.
            self._prepared[key] = (workload, prepared)
        if prepared.fragmentation_aware:
            arrival = RequestClass.of(
                prepared.request, pod.requests.get("cpu", 0), pod.requests.get("memory", 0)
            )
            self._mixes.setdefault(pool.name, RequestMix()).record(pod.uid, arrival)
        state.write(self.PREPARED, prepared)
        return Status.success()

    def _pre_filter_host(self, state: CycleState, pod: PodInfo, cluster: ClusterView) -> Status:
        """A pod without GPUs takes none, but its cores and memory may be what a GPU pod of
        a FragmentationAware pool needs beside the GPUs of a node: it passes Filter and is
        scored by the fragmentation it would add (other nodes score as if it added none)."""
        pools = [
            (pool.name, mix)
            for pool in cluster.pools.pools.values()
            if pool.placement == FRAGMENTATION_AWARE
            and (mix := self._mixes.get(pool.name)) is not None
            and len(mix)
        ]
        if not pools or pod.native_gpus:
            return Status.skip()
        state.write(self.HOST, pools)
        return Status.success()

    def _prepare(
        self,
        workload: WorkloadRequest,
        pool_id: int,
        model_id: int,
        pool: str,
        placement: PlacementMode,
    ) -> PreparedRequest:
        demand = demand_of(workload)
        request = demand.fit_request(
            pool_id=pool_id,
            model_id=model_id,
            max_worker_per_node=self.args.max_worker_per_node,
            mode=PLACEMENT_CODES[placement],
            vram_weight=self.args.vram_weight,
            tflops_weight=self.args.tflops_weight,
        )
        return PreparedRequest(demand, request, pool, placement == FRAGMENTATION_AWARE)

    # --- Filter / Score ------------------------------------------------------------------

    def filter(
        self, state: CycleState, pod: PodInfo, cluster: ClusterView, candidates: BoolArray
    ) -> FilterResult:
        if self.HOST in state.data:
            return FilterResult(candidates.copy())
        prepared: PreparedRequest = state.read(self.PREPARED)
        result = self._fit(cluster, candidates.view(np.uint8), prepared.request)
        if prepared.fragmentation_aware:
            result = self._least_fragmenting(cluster, pod, prepared, result)
        state.write(self.RESULT, result)
        return FilterResult(
            result.node_reason == 0,
            detail=lambda: _node_reasons(result, cluster, prepared.request.gpu_count),
        )

    def _fit(
        self, cluster: ClusterView, mask: NDArray[np.uint8], request: GpuFitRequest
    ) -> GpuFitResult:
        """The kernel's answer for this request. Pods of one workload ask the same thing one
        after another, and between them only the nodes that took a pod (or whose mask
        changed) move: those are recomputed, the rest of the last answer stands. The result
        is the one a full scan gives (the kernel's tests hold both to it)."""
        gpus = cluster.gpus
        arrays = gpus.arrays()
        count = len(mask)
        workers = gpus.node_workers(count)
        versions = gpus.node_versions(count)
        memo = self._memo.pop(request, None)
        result: GpuFitResult | None = None
        if (
            memo is not None
            and memo.structure == gpus.structure_version
            and len(memo.mask) == count
        ):
            changed = np.flatnonzero((memo.mask != mask) | (memo.versions != versions))
            if len(changed) <= count // REFIT_SHARE:
                result = refit_gpus(
                    arrays,
                    mask,
                    workers,
                    request,
                    previous=memo.result,
                    changed=changed.astype(np.int32),
                )
        if result is None:
            result = fit_gpus(arrays, mask, workers, request)
        self._memo[request] = _Memo(result, mask.copy(), versions.copy(), gpus.structure_version)
        while len(self._memo) > MEMO_REQUESTS:
            self._memo.pop(next(iter(self._memo)))
        return result

    def _least_fragmenting(
        self, cluster: ClusterView, pod: PodInfo, prepared: PreparedRequest, result: GpuFitResult
    ) -> GpuFitResult:
        """`result` with each feasible node scored, and its GPUs chosen, by the expected
        fragmentation the pod would add there (see scheduler/fragmentation.py)."""
        mix = self._mixes[prepared.pool].mix()
        feasible = np.flatnonzero(result.node_reason == GpuReason.FITS).astype(np.int32)
        if not len(feasible) or not mix.total_weight:
            return result
        side = _pod_side(cluster, pod)
        found = self._fragmentation.scores(
            cluster.gpus.arrays(),
            (result.gpu_reason == GpuReason.FITS).view(np.uint8),
            feasible,
            pod=prepared.request,
            side=side,
            mix=mix,
            nodes=_node_stamps(cluster, side),
        )
        node_score = result.node_score.copy()
        node_score[feasible] = found.score
        node_gpus = result.node_gpus.copy()
        node_gpus[feasible] = found.gpus
        best = int(feasible[np.argmax(found.score)])
        return replace(
            result,
            node_score=node_score,
            node_gpus=node_gpus,
            best_node=best,
            best_gpus=tuple(node_gpus[best].tolist()),
        )

    def searchable(self, state: CycleState, cluster: ClusterView) -> bool:
        """Whether `search` may stand in for Filter and Score: not for a FragmentationAware
        pool (its scores are not the kernel's, which the search bounds), nor when this
        request's last answer stands but for a few nodes (replicas one after another), as
        refitting those is cheaper than searching."""
        if self.HOST in state.data:
            return False
        prepared: PreparedRequest = state.read(self.PREPARED)
        if prepared.fragmentation_aware:
            return False
        memo = self._memo.get(prepared.request)
        gpus = cluster.gpus
        count = len(cluster.nodes.present)
        if memo is None or memo.structure != gpus.structure_version or len(memo.mask) != count:
            return True
        moved = np.count_nonzero(memo.versions != gpus.node_versions(count))
        return bool(moved > count // REFIT_SHARE)

    def search(
        self,
        state: CycleState,
        cluster: ClusterView,
        candidates: BoolArray,
        bonus: ScoreArray,
        weight: int,
    ) -> int:
        """Filter and Score in one: among the candidates this plugin's Filter would pass,
        the node with the highest weight * score + bonus (ties to the lower index), -1 if
        none. Only the nodes that can still win are visited; Reserve then takes its GPUs."""
        node, chosen = self._search(state, cluster, candidates, bonus, weight)
        if node >= 0:
            state.write(self.SEARCHED, (node, chosen))
        return node

    def fits_any(self, state: CycleState, cluster: ClusterView, nodes: BoolArray) -> bool:
        """Whether this plugin's Filter would pass any of `nodes`: a search where every node
        scores alike, which stops at the first that fits. Leaves `state` as it was."""
        if not nodes.any():
            return False
        bonus = np.zeros(len(nodes), np.int64)
        return self._search(state, cluster, nodes, bonus, 0)[0] >= 0

    def _search(
        self,
        state: CycleState,
        cluster: ClusterView,
        candidates: BoolArray,
        bonus: ScoreArray,
        weight: int,
    ) -> tuple[int, tuple[int, ...]]:
        prepared: PreparedRequest = state.read(self.PREPARED)
        gpus = cluster.gpus
        arrays = gpus.arrays()
        count = len(candidates)
        self._summaries.refresh(
            arrays, gpus.node_versions(count), gpus.structure_version, prepared.request
        )
        return search_gpus(
            arrays,
            self._summaries,
            candidates.view(np.uint8),
            gpus.node_workers(count),
            prepared.request,
            bonus=bonus,
            gpu_weight=weight,
        )

    def score(
        self, state: CycleState, pod: PodInfo, cluster: ClusterView, feasible: BoolArray
    ) -> ScoreArray:
        host: list[tuple[str, RequestMix]] | None = state.data.get(self.HOST)
        if host is not None:
            return self._host_scores(cluster, pod, feasible, host)
        result: GpuFitResult = state.read(self.RESULT)
        return result.node_score.astype(np.int64)

    def _host_scores(
        self,
        cluster: ClusterView,
        pod: PodInfo,
        feasible: BoolArray,
        pools: list[tuple[str, RequestMix]],
    ) -> ScoreArray:
        gpus = cluster.gpus
        arrays = gpus.arrays()
        scores = np.full(len(feasible), NEUTRAL_SCORE, np.int64)
        no_gpu = np.zeros(arrays.count, np.uint8)
        side = _pod_side(cluster, pod)
        stamps = _node_stamps(cluster, side)
        for pool, mix in pools:
            pool_id = gpus.pool_id(pool)
            if pool_id is None:
                continue
            held = np.zeros(len(feasible), bool)
            held[arrays.node[arrays.pool == pool_id]] = True
            nodes = np.flatnonzero(held & feasible).astype(np.int32)
            found = self._fragmentation.scores(
                arrays,
                no_gpu,
                nodes,
                pod=HostRequest(pool_id),
                side=side,
                mix=mix.mix(),
                nodes=stamps,
            )
            scores[nodes] = found.score
        return scores

    def normalize(self, scores: ScoreArray, feasible: BoolArray) -> ScoreArray:
        return scores

    # --- Reserve -------------------------------------------------------------------------

    def chosen_gpus(self, state: CycleState, node: int) -> tuple[int, ...]:
        chooser = state.data.get(self.CHOICE)
        if chooser is not None and (choice := chooser(node)) is not None:
            return tuple(choice)
        searched: tuple[int, tuple[int, ...]] | None = state.data.get(self.SEARCHED)
        if searched is not None and searched[0] == node:
            return searched[1]
        result: GpuFitResult = state.read(self.RESULT)
        return tuple(result.node_gpus[node].tolist())

    def reserve(self, state: CycleState, pod: PodInfo, cluster: ClusterView, node: int) -> Status:
        if self.HOST in state.data:
            return Status.success()  # no GPU to hold
        prepared: PreparedRequest = state.read(self.PREPARED)
        gpus = cluster.gpus
        indices = self.chosen_gpus(state, node)
        assert pod.workload is not None
        allocation = Allocation(
            pod.uid,  # already the pod's key: its UID, else namespace/name
            pod.namespace,
            pod.name,
            tuple(gpus.records[i].name for i in indices),
            gpus.shares_for(prepared.demand, indices),
            pod.workload.effective_qos(),
        )
        try:
            gpus.reserve(allocation)
        except AllocationError as exc:
            return Status.unschedulable(self.name, str(exc))
        state.write(self.RESERVED, allocation)
        annotations = state.data.setdefault(BIND_ANNOTATIONS, {})
        annotations[GPU_IDS] = ",".join(allocation.gpus)
        known = [index for i in indices if (index := gpus.records[i].index) is not None]
        if len(known) == len(indices):  # a declared GPU may have no device index
            annotations[GPU_INDICES] = ",".join(str(index) for index in sorted(known))
        return Status.success()

    def unreserve(self, state: CycleState, pod: PodInfo, cluster: ClusterView, node: int) -> None:
        allocation: Allocation | None = state.data.pop(self.RESERVED, None)
        if allocation is not None:
            cluster.gpus.release(allocation.uid)

    # --- Permit --------------------------------------------------------------------------

    def permit(
        self, state: CycleState, pod: PodInfo, cluster: ClusterView, node: int
    ) -> tuple[Status, float]:
        """Upstream holds gang members here until their peers are reserved; gang pods never
        get this far (PreEnqueue keeps them out), so every pod is let through."""
        return Status.success(), 0.0


def _pod_side(cluster: ClusterView, pod: PodInfo) -> PodSide:
    nodes = cluster.nodes
    return PodSide(
        pod.requests.get("cpu", 0),
        pod.requests.get("memory", 0),
        nodes.free("cpu"),
        nodes.free("memory"),
    )


def _node_stamps(cluster: ClusterView, side: PodSide) -> NodeStamps:
    gpus = cluster.gpus
    return NodeStamps(gpus.node_versions(len(side.node_cpu_free)), gpus.structure_version)


def _most_gpus_on_a_node(cluster: ClusterView, pool_id: int) -> int:
    arrays = cluster.gpus.arrays()
    mine = arrays.node[(arrays.pool == pool_id) & (arrays.state == 0)]
    return int(np.bincount(mine).max()) if len(mine) else 0


def _node_reasons(
    result: GpuFitResult, cluster: ClusterView, gpu_count: int
) -> tuple[tuple[str, ...], NDArray[np.uint8]]:
    """One phrase per rejected node: the node-level reason, or what stopped its GPUs
    ("insufficient VRAM on every GPU", "only 1 of 8 GPUs fit, 2 needed", ...)."""
    node_count = len(result.node_reason)
    gpu_node = cluster.gpus.arrays().node
    reasons: list[str] = ["fits"]
    index: dict[str, int] = {"fits": 0}
    codes = np.zeros(node_count, dtype=np.uint8)

    def code_of(text: str) -> int:
        if text not in index:
            index[text] = len(reasons)
            reasons.append(text)
        return index[text]

    width = max(int(r) for r in GpuReason) + 1
    per_node = np.bincount(
        gpu_node.astype(np.int64) * width + result.gpu_reason, minlength=node_count * width
    ).reshape(node_count, width)
    for node in np.flatnonzero(result.node_reason != 0).tolist():
        reason = GpuReason(int(result.node_reason[node]))
        if reason is GpuReason.NOT_ENOUGH_GPUS:
            text = _gpu_breakdown(per_node[node], gpu_count)
        else:
            text = reason.describe()
        codes[node] = code_of(text)
    return tuple(reasons), codes


def _gpu_breakdown(counts: NDArray[np.int64], gpu_count: int) -> str:
    """Counts are per reason code for one node's GPUs. The phrase names the reasons but not
    the per-node numbers, so that nodes in the same situation group together."""
    failing = sorted(GpuReason(r) for r, n in enumerate(counts.tolist()) if r and n)
    if counts[0]:
        return f"fewer than {gpu_count} GPUs fit"
    if len(failing) == 1:
        return f"{failing[0].describe()} on every GPU"
    return f"no GPU fits ({', '.join(reason.describe() for reason in failing)})"
