"""Defragmentation proposals (`nodeCompaction.defrag`): which TensorFusion workers could move
so that whole nodes hold none and compaction can release them. Only proposed, never carried
out: moving a worker restarts it, which a person decides.

Nodes used below `utilizationThresholdPercent` (the larger of their requested TFLOPS and VRAM
shares) are tried in ascending order of that share, then name. A node is freed when every
worker on it fits elsewhere: workers largest first (VRAM, then TFLOPS), each on the first GPUs
that take it, by node name then GPU order, on nodes that already hold TensorFusion workers (an
empty node is compaction's to release: moving onto it frees nothing), are not leaving, not
freed by an earlier proposal, and schedulable. Whether a worker fits a GPU is the scheduler's
own rule: the allocator's reservation check, on a copy of the pool's allocations built from
the view."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from tensorfusion.errors import AllocationError
from tensorfusion.operator.nodepool.plan import Action
from tensorfusion.operator.nodepool.release import cordoned, may_disrupt
from tensorfusion.operator.nodepool.view import PoolView
from tensorfusion.scheduler.allocation import Allocation
from tensorfusion.scheduler.allocator import GpuAllocator
from tensorfusion.scheduler.cluster_state import ClusterState
from tensorfusion.scheduler.fleet import Fleet
from tensorfusion.scheduler.gpu_demand import GpuDemand, demand_of
from tensorfusion.scheduler.pod_info import PodInfo

ACTION = "move-worker"
_PROBE = "\0defrag-probe"
"""The UID of a trial reservation (no pod has it)."""


@dataclass(frozen=True)
class _Worker:
    info: PodInfo
    held: Allocation
    demand: GpuDemand

    @property
    def key(self) -> str:
        return f"{self.info.namespace}/{self.info.name}"

    def size(self) -> tuple[int, int]:
        shares = self.held.shares
        return sum(s.vram_request for s in shares), sum(s.tflops_request for s in shares)


def defrag_moves(view: PoolView, leaving: Collection[str], threshold_percent: int) -> list[Action]:
    """The proposed moves (actions "move-worker", state "proposed") that free whole nodes of
    the pool; `leaving` are nodes already being released (neither freed nor moved onto)."""
    state, _ = ClusterState.build(
        Fleet(
            nodes=list(view.nodes.values()),
            gpu_nodes=view.gpu_nodes,
            gpus=[gpu for gpus in view.gpus.values() for gpu in gpus],
            pools=[view.pool],
            pods=[pod for pods in view.pods.values() for pod in pods],
        )
    )
    allocator = state.gpus
    occupied = _workers(state)
    workers = {node: found for node, found in occupied.items() if found is not None}
    shares = _shares(allocator)
    sources = sorted(
        (
            node
            for node in workers
            if node not in leaving
            and shares.get(node, 1.0) * 100 < threshold_percent
            and may_disrupt(view.nodes[node])
            and not state.native_gpus.get(state.nodes.index_of[node])
        ),
        key=lambda node: (shares[node], node),
    )
    closed = {*leaving, *(n for n, obj in view.nodes.items() if cordoned(obj))}
    freed: set[str] = set()
    receivers: set[str] = set()
    actions: list[Action] = []
    for source in sources:
        if source in receivers:
            continue
        targets = sorted(set(occupied) - closed - freed - {source})
        moves = _empty(allocator, workers[source], targets)
        if moves is None:
            continue
        freed.add(source)
        for worker, node, gpus in moves:
            receivers.add(node)
            actions.append(
                Action(
                    ACTION,
                    worker,
                    f"frees node {source}",
                    state="proposed",
                    detail={"fromNode": source, "toNode": node, "toGPUs": gpus, "frees": source},
                )
            )
    return actions


def _workers(state: ClusterState) -> dict[str, list[_Worker] | None]:
    """Per node with TensorFusion workers, those workers; None for a node with a worker that
    holds no readable allocation (it cannot be moved, so the node cannot be freed)."""
    found: dict[str, list[_Worker] | None] = {}
    allocations = state.gpus.allocations
    for index, info in state.bound.values():
        if info.workload is None and not info.workload_problems:
            continue
        node = state.nodes.names[index]
        held = allocations.get(info.uid)
        listed = found.setdefault(node, [])
        if held is None or info.workload is None or listed is None:
            found[node] = None
            continue
        listed.append(_Worker(info, held, demand_of(info.workload)))
    return found


def _shares(allocator: GpuAllocator) -> dict[str, float]:
    """Per node, the larger of its requested TFLOPS and VRAM shares (0 to 1)."""
    arrays = allocator.arrays()  # first: it may reorder the records
    sums: dict[str, list[int]] = {}
    for i, record in enumerate(allocator.records):
        row = sums.setdefault(record.node, [0, 0, 0, 0])
        row[0] += int(arrays.tflops_requested[i])
        row[1] += int(arrays.tflops_capacity[i])
        row[2] += int(arrays.vram_requested[i])
        row[3] += int(arrays.vram_capacity[i])
    return {node: max(_ratio(row[0], row[1]), _ratio(row[2], row[3])) for node, row in sums.items()}


def _ratio(used: int, capacity: int) -> float:
    return 1.0 if capacity == 0 else used / capacity


def _empty(
    allocator: GpuAllocator, workers: list[_Worker], targets: list[str]
) -> list[tuple[str, str, list[str]]] | None:
    """(worker, node, GPUs) for every worker moved onto `targets`, reserved in `allocator`;
    None, with `allocator` as it was, when one of them fits nowhere."""
    moved: list[_Worker] = []
    moves: list[tuple[str, str, list[str]]] = []
    for worker in sorted(workers, key=lambda w: (*w.size(), w.key), reverse=True):
        allocator.release(worker.held.uid)
        placed = _place(allocator, worker, targets)
        if placed is None:
            allocator.reserve(worker.held, check=False)
            for earlier in moved:
                allocator.release(earlier.held.uid)
                allocator.reserve(earlier.held, check=False)
            return None
        moved.append(worker)
        moves.append((worker.key, *placed))
    return moves


def _place(
    allocator: GpuAllocator, worker: _Worker, targets: list[str]
) -> tuple[str, list[str]] | None:
    """Reserve the worker on the first target node with enough GPUs that each take its share
    (and are of its model, when it names one); (node, GPUs) or None."""
    model = worker.info.workload.gpu_model if worker.info.workload else None
    for node in targets:
        fitting = [
            record.name
            for record in allocator.records
            if record.node == node
            and (model is None or record.model == model)
            and _fits(allocator, worker, record.name)
        ]
        if len(fitting) >= worker.demand.gpu_count:
            gpus = tuple(sorted(fitting, key=lambda g: allocator.index_of[g]))
            gpus = gpus[: worker.demand.gpu_count]
            held = worker.held
            allocator.reserve(
                Allocation(
                    held.uid,
                    held.namespace,
                    held.name,
                    gpus,
                    allocator.shares_for(worker.demand, (allocator.index_of[g] for g in gpus)),
                    held.qos,
                )
            )
            return node, list(gpus)
    return None


def _fits(allocator: GpuAllocator, worker: _Worker, gpu: str) -> bool:
    trial = Allocation(
        _PROBE,
        worker.held.namespace,
        worker.held.name,
        (gpu,),
        allocator.shares_for(worker.demand, (allocator.index_of[gpu],)),
    )
    try:
        allocator.reserve(trial)
    except AllocationError:
        return False
    allocator.release(_PROBE)
    return True
