"""GPU allocation state as struct-of-arrays, so the native kernels see every GPU at once.

The allocator is the scheduler's memory: which pod holds how much of which GPU. It is
rebuilt from the pods' `gpu-ids` annotations on start (the store is the truth), and its
snapshot is the body of `GET /api/allocation`. Reserve, release and adjust are keyed by pod
UID and idempotent, so a retried bind or a replayed watch event never double-counts."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tensorfusion.api.annotations import (
    GPU_COUNT,
    GPU_IDS,
    QOS,
    gpu_ids_of,
    read_workload_request,
)
from tensorfusion.api.quantity import Quantity
from tensorfusion.errors import AllocationError
from tensorfusion.gc_pause import collector_paused
from tensorfusion.scheduler.allocation import Allocation, GpuRecord, GpuShare, RebuildReport
from tensorfusion.scheduler.gpu_demand import GpuDemand, demand_of
from tensorfusion.scheduler.gpu_fit import GpuArrays, GpuState
from tensorfusion.scheduler.gpu_topology import numa_nodes, nvlink_cliques
from tensorfusion.scheduler.pod_keys import DEMAND_ANNOTATIONS, pod_key

READY, DEVICE_PLUGIN, NOT_READY = GpuState.READY, GpuState.DEVICE_PLUGIN, GpuState.NOT_READY
STATE_NAMES: dict[int, str] = {
    READY: "ready",
    DEVICE_PLUGIN: "nvidia-device-plugin",
    NOT_READY: "not-ready",
}
TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})

_RESTORED_ANNOTATIONS = (*DEMAND_ANNOTATIONS, QOS)
_STRUCTURE_VERSIONS = itertools.count(0, 1 << 32)
"""Process-wide starting structure versions, far apart so bumps never reach the next."""
_USAGE_FIELDS = ("tflops_requested", "vram_requested", "tflops_limited", "vram_limited")
_SHARE_FIELDS = {
    "tflops_requested": "tflops_request",
    "vram_requested": "vram_request",
    "tflops_limited": "tflops_limit",
    "vram_limited": "vram_limit",
}
"""The `GpuShare` field each usage column sums."""
_FIELD_DTYPES: dict[str, type[np.generic]] = {
    "node": np.int32,
    "state": np.uint8,
    "pool": np.int32,
    "model": np.int32,
    "tflops_capacity": np.int64,
    "vram_capacity": np.int64,
    "tflops_virtual": np.int64,
    "vram_virtual": np.int64,
    "tflops_requested": np.int64,
    "vram_requested": np.int64,
    "tflops_limited": np.int64,
    "vram_limited": np.int64,
}


class GpuAllocator:
    """Every GPU of the cluster in arrays ordered by node index (the kernels rely on the
    GPUs of a node being contiguous), plus the allocations by pod UID."""

    def __init__(self) -> None:
        self._count = 0
        self._columns: dict[str, NDArray[Any]] = {
            name: np.zeros(16, dtype=dtype) for name, dtype in _FIELD_DTYPES.items()
        }
        self._present = np.zeros(16, dtype=np.bool_)
        self._workers = np.zeros(16, dtype=np.int32)
        self.records: list[GpuRecord] = []
        self.index_of: dict[str, int] = {}
        self._pool_ids: dict[str, int] = {}
        self._model_ids: dict[str, int] = {}
        self._node_workers = np.zeros(16, dtype=np.int32)
        self._node_versions = np.zeros(16, dtype=np.int64)
        self.structure_version = next(_STRUCTURE_VERSIONS)
        """Bumped when GPUs are added, reordered or move between nodes: results computed
        before are void. Changes within a node bump that node's version instead. Each
        allocator starts from its own value, so a cache keyed on it never mistakes a
        rebuilt allocator for the one it replaced."""
        self._sorted = True
        self._topology: tuple[NDArray[np.int32], NDArray[np.int32]] | None = None
        self.allocations: dict[str, Allocation] = {}
        self._snapshot: tuple[tuple[int, int], dict[str, Any]] | None = None

    # --- GPUs ----------------------------------------------------------------------------

    @property
    def count(self) -> int:
        return self._count

    def add_gpu(
        self,
        record: GpuRecord,
        node_index: int,
        *,
        state: int,
        capacity: tuple[int, int],
        virtual: tuple[int, int],
    ) -> None:
        """Add a GPU, or refresh its facts and capacity if it is known (usage is kept).
        `capacity` and `virtual` are (milli-TFLOPS, bytes)."""
        index = self.index_of.get(record.name)
        if index is None:
            index = self._append(record)
            self.structure_version += 1
        else:
            self.records[index] = record
        nodes = self._columns["node"]
        if int(nodes[index]) != node_index:
            self.structure_version += 1
        moved = int(nodes[index]) != node_index and bool(self._workers[index])
        # Only the pairs around this GPU can break the by-node order.
        if (index > 0 and int(nodes[index - 1]) > node_index) or (
            index + 1 < self._count and int(nodes[index + 1]) < node_index
        ):
            self._sorted = False
        columns = self._columns
        columns["node"][index] = node_index
        columns["state"][index] = state
        columns["pool"][index] = self._intern(self._pool_ids, record.pool)
        columns["model"][index] = self._intern(self._model_ids, record.model)
        columns["tflops_capacity"][index], columns["vram_capacity"][index] = capacity
        columns["tflops_virtual"][index], columns["vram_virtual"][index] = virtual
        self._present[index] = True
        self._topology = None
        self._grow_nodes(node_index + 1)
        self._node_versions[node_index] += 1
        if moved:
            self._recount_node_workers()

    def remove_gpu(self, name: str) -> None:
        """The GPU left the cluster: it takes no new work. Allocations on it stay (their pods
        still exist) until released, and are reported by the snapshot."""
        index = self.index_of.get(name)
        if index is not None:
            self._columns["state"][index] = NOT_READY
            self._present[index] = False
            self._node_versions[self._columns["node"][index]] += 1

    def set_state(self, name: str, state: int) -> None:
        index = self.index_of[name]
        self._columns["state"][index] = state
        self._node_versions[self._columns["node"][index]] += 1

    def pool_id(self, pool: str) -> int | None:
        return self._pool_ids.get(pool)

    def model_id(self, model: str) -> int | None:
        """The id of a model known under this name, compared case-insensitively."""
        folded = model.casefold()
        for name, ident in self._model_ids.items():
            if name.casefold() == folded:
                return ident
        return None

    def arrays(self) -> GpuArrays:
        """Views of the live columns (no copy), GPUs of a node contiguous."""
        if not self._sorted:
            self._sort_by_node()
        n = self._count
        return GpuArrays(**{name: column[:n] for name, column in self._columns.items()})

    def topology(self) -> tuple[NDArray[np.int32], NDArray[np.int32]]:
        """(NVLink clique id, NUMA node) per GPU, in the order of `arrays()`."""
        self.arrays()
        if self._topology is None:
            self._topology = nvlink_cliques(self.records), numa_nodes(self.records)
        return self._topology

    def node_workers(self, node_count: int) -> NDArray[np.int32]:
        """Pods with GPUs per node index, for the first `node_count` nodes."""
        self._grow_nodes(node_count)
        return self._node_workers[:node_count]

    def node_versions(self, node_count: int) -> NDArray[np.int64]:
        """A counter per node index, bumped by every change to the node's GPUs or workers:
        what a result computed earlier must recompute."""
        self._grow_nodes(node_count)
        return self._node_versions[:node_count]

    def gpu_workers(self) -> NDArray[np.int32]:
        return self._workers[: self._count]

    def present(self) -> NDArray[np.bool_]:
        """Whether each GPU (in the order of `arrays()`) is still in the cluster."""
        self.arrays()
        return self._present[: self._count]

    # --- allocations ---------------------------------------------------------------------

    def reserve(self, allocation: Allocation, *, check: bool = True) -> bool:
        """Record an allocation. Returns False when the same allocation is already held
        (idempotent); raises AllocationError when the pod holds a different one, a GPU is
        unknown, or (with `check`) the capacity rule would break."""
        held = self.allocations.get(allocation.uid)
        if held is not None:
            if held == allocation:
                return False
            raise AllocationError(
                f"pod {allocation.namespace}/{allocation.name} ({allocation.uid}) already holds "
                f"{', '.join(held.gpus)}; release or adjust it instead"
            )
        indices = self._indices(allocation)
        if check:
            self._check(allocation, indices, None)
        self._apply(allocation, indices, 1)
        self.allocations[allocation.uid] = allocation
        return True

    def release(self, uid: str) -> Allocation | None:
        """Free a pod's GPUs; releasing twice is harmless (returns None the second time)."""
        allocation = self.allocations.pop(uid, None)
        if allocation is not None:
            self._apply(allocation, self._indices(allocation), -1)
        return allocation

    def adjust(self, uid: str, shares: tuple[GpuShare, ...]) -> Allocation:
        """Change the amounts a pod holds on the same GPUs (vertical scaling), under the same
        capacity rule."""
        held = self.allocations.get(uid)
        if held is None:
            raise AllocationError(f"no allocation for pod UID {uid!r}")
        if len(shares) != len(held.gpus):
            raise AllocationError(f"{len(shares)} shares given for {len(held.gpus)} GPUs")
        updated = Allocation(held.uid, held.namespace, held.name, held.gpus, shares, held.qos)
        indices = self._indices(held)
        self._check(updated, indices, held)
        self._apply(held, indices, -1)
        self._apply(updated, indices, 1)
        self.allocations[uid] = updated
        return updated

    def shares_for(self, demand: GpuDemand, gpus: Iterable[int]) -> tuple[GpuShare, ...]:
        """The per-GPU shares of a demand on the given GPU indices (percent requests become
        TFLOPS of each GPU's capacity)."""
        capacity = self._columns["tflops_capacity"]
        shares = []
        for index in gpus:
            tflops_request, tflops_limit = demand.tflops_on(int(capacity[index]))
            shares.append(
                GpuShare(tflops_request, tflops_limit, demand.vram_request, demand.vram_limit)
            )
        return tuple(shares)

    def rebuild(self, pods: Iterable[Mapping[str, Any]]) -> RebuildReport:
        """Restore the allocations recorded on bound pods (their `gpu-ids` and request
        annotations). Pods already known by UID are skipped; terminated pods hold nothing,
        and neither does a pod not bound to a node: `gpu-ids` is written just before the
        binding, so a scheduler stopped between the two leaves a pending pod with GPUs it
        never got, which is scheduled afresh."""
        report = RebuildReport()
        restored: list[tuple[Allocation, list[int]]] = []
        try:
            with collector_paused():
                self._restore(pods, report, restored)
        finally:  # what is recorded is applied, even if a malformed pod stopped the rest
            self._apply_restored(restored)
        report.overcommitted = self._overcommitted()
        return report

    def _restore(
        self,
        pods: Iterable[Mapping[str, Any]],
        report: RebuildReport,
        restored: list[tuple[Allocation, list[int]]],
    ) -> None:
        """Record the allocations the pods hold, each with its GPUs' indices in `restored`,
        to be applied to the columns together. A start runs this for every pod of the
        cluster, so the loop reads each pod's few fields in place."""
        demands: dict[tuple[str | None, ...], _Demand | str] = {}
        capacity = self._columns["tflops_capacity"][: self._count].tolist()
        index_of, allocations = self.index_of, self.allocations
        for pod in pods:
            metadata = pod.get("metadata") or {}
            annotations = metadata.get("annotations") or {}
            if (
                not annotations.get(GPU_IDS)
                or (pod.get("status") or {}).get("phase") in TERMINAL_PHASES
                or not (pod.get("spec") or {}).get("nodeName")
            ):
                continue
            uid, namespace, name = pod_key(metadata)
            if uid in allocations:
                continue
            parsed = _cached_demand(demands, tuple(map(annotations.get, _RESTORED_ANNOTATIONS)))
            if isinstance(parsed, str):
                report.invalid.append((f"{namespace}/{name}", parsed))
                continue
            gpus = gpu_ids_of(annotations)
            problem = gpu_list_problem(gpus) or _count_problem(gpus, parsed.demand)
            if problem:
                report.invalid.append((f"{namespace}/{name}", f"{GPU_IDS}: {problem}"))
                continue
            try:
                indices = [index_of[g] for g in gpus]
            except KeyError:
                missing = tuple(g for g in gpus if g not in index_of)
                report.vanished.append((f"{namespace}/{name}", missing))
                continue
            # Pods of one workload on GPUs of one capacity hold the same share.
            shares = parsed.shares
            held = []
            for index in indices:
                share = shares.get(capacity[index])
                if share is None:
                    share = shares[capacity[index]] = self.shares_for(parsed.demand, [index])[0]
                held.append(share)
            allocation = Allocation(uid, namespace, name, gpus, tuple(held), parsed.qos)
            allocations[uid] = allocation
            restored.append((allocation, indices))
            report.restored += 1

    def _apply_restored(self, restored: list[tuple[Allocation, list[int]]]) -> None:
        """`_apply(allocation, indices, 1)` for each of many allocations, summed by array
        operations: a pod at a time, the element updates would take most of a rebuild."""
        if not restored:
            return
        indices = np.array([i for _, held in restored for i in held], dtype=np.intp)
        shares = [s for allocation, _ in restored for s in allocation.shares]
        columns = self._columns
        for usage in _USAGE_FIELDS:
            amounts = np.array([getattr(s, _SHARE_FIELDS[usage]) for s in shares], np.int64)
            np.add.at(columns[usage], indices, amounts)
        np.add.at(self._workers, indices, 1)
        first = np.array([held[0] for _, held in restored], dtype=np.intp)
        nodes = columns["node"][first]
        np.add.at(self._node_workers, nodes, 1)
        np.add.at(self._node_versions, nodes, 1)

    def snapshot(self) -> dict[str, Any]:
        """The allocation state as `/api/allocation` shows it (JSON-ready). Built again only
        after a change (every change bumps a node's version or the structure version), so a
        client polling it costs nothing in between; the answer is shared: do not modify it."""
        key = (self.structure_version, int(self._node_versions.sum()))
        if self._snapshot is None or self._snapshot[0] != key:
            self._snapshot = (key, self._build_snapshot())
        return self._snapshot[1]

    def _build_snapshot(self) -> dict[str, Any]:
        columns = {name: column[: self._count].tolist() for name, column in self._columns.items()}
        workers_by_gpu: dict[str, list[dict[str, Any]]] = {}
        allocations: dict[str, Any] = {}
        workers_per_node: dict[str, int] = {}
        for uid in sorted(self.allocations):
            allocation = self.allocations[uid]
            node = self.records[self.index_of[allocation.gpus[0]]].node
            workers_per_node[node] = workers_per_node.get(node, 0) + 1
            allocations[uid] = {
                "namespace": allocation.namespace,
                "name": allocation.name,
                "node": node,
                "gpus": list(allocation.gpus),
                "qos": allocation.qos,
                "shares": [_share_json(s) for s in allocation.shares],
            }
            for gpu, share in zip(allocation.gpus, allocation.shares, strict=True):
                workers_by_gpu.setdefault(gpu, []).append(
                    {"uid": uid, "namespace": allocation.namespace, "name": allocation.name}
                    | _share_json(share)
                )
        gpus = []
        for index, record in enumerate(self.records):
            gpus.append(
                {
                    "name": record.name,
                    "node": record.node,
                    "pool": record.pool,
                    "model": record.model,
                    "uuid": record.uuid,
                    "index": record.index,
                    "numaNode": record.numa_node,
                    "present": bool(self._present[index]),
                    "state": STATE_NAMES[columns["state"][index]],
                    "capacity": _amount(columns, "tflops_capacity", "vram_capacity", index),
                    "virtualCapacity": _amount(columns, "tflops_virtual", "vram_virtual", index),
                    "requested": _amount(columns, "tflops_requested", "vram_requested", index),
                    "limited": _amount(columns, "tflops_limited", "vram_limited", index),
                    "workers": len(workers_by_gpu.get(record.name, ())),
                }
            )
        gpus.sort(key=lambda gpu: str(gpu["name"]))
        return {
            "gpus": gpus,
            "workersPerNode": dict(sorted(workers_per_node.items())),
            "allocations": allocations,
            "gpuWorkers": dict(sorted(workers_by_gpu.items())),
        }

    # --- internals -----------------------------------------------------------------------

    def _indices(self, allocation: Allocation) -> list[int]:
        problem = gpu_list_problem(allocation.gpus)
        if problem:
            raise AllocationError(f"pod {allocation.namespace}/{allocation.name}: {problem}")
        try:
            return [self.index_of[gpu] for gpu in allocation.gpus]
        except KeyError as exc:
            raise AllocationError(
                f"pod {allocation.namespace}/{allocation.name}: unknown GPU {exc.args[0]!r}"
            ) from None

    def _check(self, allocation: Allocation, indices: list[int], held: Allocation | None) -> None:
        columns = self._columns
        for position, (index, share) in enumerate(zip(indices, allocation.shares, strict=True)):
            old = held.shares[position] if held is not None else GpuShare(0, 0, 0, 0)
            gpu = self.records[index].name
            if held is None and columns["state"][index] != READY:
                state = STATE_NAMES[int(columns["state"][index])]
                raise AllocationError(f"GPU {gpu} is {state}, not available to workloads")
            checks = (
                ("tflops_requested", "tflops_capacity", share.tflops_request, old.tflops_request),
                ("vram_requested", "vram_capacity", share.vram_request, old.vram_request),
                ("tflops_limited", "tflops_virtual", share.tflops_limit, old.tflops_limit),
                ("vram_limited", "vram_virtual", share.vram_limit, old.vram_limit),
            )
            for used, bound, amount, previous in checks:
                total = int(columns[used][index]) - previous + amount
                if total > int(columns[bound][index]):
                    raise AllocationError(
                        f"GPU {gpu}: {used.replace('_', ' ')} would be {total}, "
                        f"over its {bound.replace('_', ' ')} {int(columns[bound][index])}"
                    )

    def _apply(self, allocation: Allocation, indices: list[int], sign: int) -> None:
        columns = self._columns
        for index, share in zip(indices, allocation.shares, strict=True):
            columns["tflops_requested"][index] += sign * share.tflops_request
            columns["vram_requested"][index] += sign * share.vram_request
            columns["tflops_limited"][index] += sign * share.tflops_limit
            columns["vram_limited"][index] += sign * share.vram_limit
            self._workers[index] += sign
        node = columns["node"][indices[0]]
        self._node_workers[node] += sign
        self._node_versions[node] += 1

    def _recount_node_workers(self) -> None:
        """A GPU holding workers moved to another node: count each pod on the node of its
        first GPU again."""
        self._node_workers[:] = 0
        self.structure_version += 1
        for allocation in self.allocations.values():
            first = self.index_of[allocation.gpus[0]]
            self._node_workers[self._columns["node"][first]] += 1

    def _overcommitted(self) -> list[str]:
        n = self._count
        c = self._columns
        over = (
            (c["tflops_requested"][:n] > c["tflops_capacity"][:n])
            | (c["vram_requested"][:n] > c["vram_capacity"][:n])
            | (c["tflops_limited"][:n] > c["tflops_virtual"][:n])
            | (c["vram_limited"][:n] > c["vram_virtual"][:n])
        )
        return [self.records[i].name for i in np.flatnonzero(over).tolist()]

    def _append(self, record: GpuRecord) -> int:
        index = self._count
        if index == len(self._present):
            size = 2 * index
            self._columns = {name: _resized(col, size) for name, col in self._columns.items()}
            self._present = _resized(self._present, size)
            self._workers = _resized(self._workers, size)
        self._count += 1
        self.records.append(record)
        self.index_of[record.name] = index
        return index

    def _grow_nodes(self, size: int) -> None:
        if size > len(self._node_workers):
            grown = max(size, 2 * len(self._node_workers))
            self._node_workers = _resized(self._node_workers, grown)
            self._node_versions = _resized(self._node_versions, grown)

    def _sort_by_node(self) -> None:
        n = self._count
        order = np.argsort(self._columns["node"][:n], kind="stable")
        for column in self._columns.values():
            column[:n] = column[:n][order]
        self._present[:n] = self._present[:n][order]
        self._workers[:n] = self._workers[:n][order]
        self.records = [self.records[i] for i in order.tolist()]
        self.index_of = {record.name: i for i, record in enumerate(self.records)}
        self._sorted = True
        self.structure_version += 1

    @staticmethod
    def _intern(table: dict[str, int], name: str | None) -> int:
        if name is None:
            return -1
        return table.setdefault(name, len(table))


def gpu_list_problem(gpus: tuple[str, ...]) -> str | None:
    """Why a list of GPU names cannot be one pod's allocation, or None."""
    if not gpus:
        return "names no GPU"
    if len(set(gpus)) != len(gpus):
        return f"names a GPU more than once ({', '.join(gpus)})"
    return None


def _count_problem(gpus: tuple[str, ...], demand: GpuDemand) -> str | None:
    if len(gpus) != demand.gpu_count:
        return f"names {len(gpus)} GPUs but {GPU_COUNT} asks for {demand.gpu_count}"
    return None


def _resized(array: NDArray[Any], size: int) -> NDArray[Any]:
    grown = np.zeros(size, dtype=array.dtype)
    grown[: len(array)] = array
    return grown


@dataclass(slots=True)
class _Demand:
    """A recorded demand as a rebuild restores it, with the share it comes to on a GPU of
    each TFLOPS capacity met so far."""

    demand: GpuDemand
    qos: str
    shares: dict[int, GpuShare] = field(default_factory=dict)


def _cached_demand(
    cache: dict[tuple[str | None, ...], _Demand | str], recorded: tuple[str | None, ...]
) -> _Demand | str:
    """The demand and QoS as the scheduler recorded them when it placed the pod (the values
    of `_RESTORED_ANNOTATIONS`), or why the annotations cannot be read. Pods of one workload
    share their annotations, so each distinct set is parsed once."""
    parsed = cache.get(recorded)
    if parsed is None:
        subset = {
            k: v for k, v in zip(_RESTORED_ANNOTATIONS, recorded, strict=True) if v is not None
        }
        request, problems = read_workload_request({}, subset)
        parsed = (
            _Demand(demand_of(request), request.effective_qos())
            if request is not None
            else str(problems[0])
        )
        cache[recorded] = parsed
    return parsed


def _amount(columns: dict[str, list[int]], tflops: str, vram: str, index: int) -> dict[str, str]:
    return {"tflops": _milli(columns[tflops][index]), "vram": _bytes(columns[vram][index])}


def _share_json(share: GpuShare) -> dict[str, dict[str, str]]:
    return {
        "requests": {"tflops": _milli(share.tflops_request), "vram": _bytes(share.vram_request)},
        "limits": {"tflops": _milli(share.tflops_limit), "vram": _bytes(share.vram_limit)},
    }


# A snapshot writes the same few sizes tens of thousands of times: format each once.
@functools.lru_cache(maxsize=4096)
def _milli(count: int) -> str:
    """Milli-units as a quantity ("11500m", "100")."""
    return str(Quantity.from_milli(count))


@functools.lru_cache(maxsize=4096)
def _bytes(count: int) -> str:
    """A byte count as people write it ("80Gi" rather than "85899345920")."""
    return str(Quantity(count * 10**9, binary=True))
