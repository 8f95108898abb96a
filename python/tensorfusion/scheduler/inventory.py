"""The cluster's GPUs, nodes and pools as the management API lists them: capacity, virtual
capacity and what is allocated, summed from the allocator's columns. TFLOPS are numbers,
VRAM integers of bytes (docs/api.md).

`InventoryView.of` copies what the listings read out of a ClusterState; it is the only part
that must run while the scheduler holds still (under its lock), and costs a few copies of
arrays and dicts. The sums and rows are then computed without holding anything."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tensorfusion.scheduler.allocation import Allocation, GpuRecord
from tensorfusion.scheduler.allocator import DEVICE_PLUGIN
from tensorfusion.scheduler.cluster_state import ClusterState
from tensorfusion.scheduler.pools import PoolInfo

_AMOUNTS = {
    "capacity": ("tflops_capacity", "vram_capacity"),
    "virtualCapacity": ("tflops_virtual", "vram_virtual"),
    "allocated": ("tflops_requested", "vram_requested"),
    "allocatedLimits": ("tflops_limited", "vram_limited"),
}


@dataclass(frozen=True)
class InventoryView:
    columns: dict[str, NDArray[np.int64]]
    """The amount columns, one entry per GPU, in the order of `records`."""
    plugin_held: NDArray[np.bool_]
    present: NDArray[np.bool_]
    records: list[GpuRecord]
    index_of: dict[str, int]
    allocations: list[Allocation]
    """Sorted by pod UID."""
    pools: dict[str, PoolInfo]
    unschedulable: dict[str, bool]
    """By node name."""

    @classmethod
    def of(cls, state: ClusterState) -> InventoryView:
        allocator = state.gpus
        arrays = allocator.arrays()
        names = state.nodes.names
        flags = state.nodes.unschedulable.tolist()
        return cls(
            columns={
                name: getattr(arrays, name).copy() for pair in _AMOUNTS.values() for name in pair
            },
            plugin_held=arrays.state == int(DEVICE_PLUGIN),
            present=allocator.present().copy(),
            records=list(allocator.records),
            index_of=dict(allocator.index_of),
            allocations=[allocator.allocations[uid] for uid in sorted(allocator.allocations)],
            pools=dict(state.pools),
            unschedulable={name: bool(flags[i]) for i, name in enumerate(names)},
        )

    def record(self, gpu: str) -> GpuRecord:
        """A GPU's facts; kept for every GPU an allocation names, even one that has left."""
        return self.records[self.index_of[gpu]]


def _amounts(columns: dict[str, NDArray[np.int64]], rows: NDArray[np.intp]) -> dict[str, Any]:
    """Each figure summed over `rows`; milli-TFLOPS become TFLOPS."""
    return {
        key: {
            "tflops": int(columns[tflops][rows].sum()) / 1000,
            "vram": int(columns[vram][rows].sum()),
        }
        for key, (tflops, vram) in _AMOUNTS.items()
    }


def _per_gpu_amounts(columns: dict[str, NDArray[np.int64]]) -> list[dict[str, Any]]:
    """Every GPU's figures, in the order of the columns (plain Python numbers, read once per
    column rather than once per GPU and field)."""
    lists = {key: (columns[t].tolist(), columns[v].tolist()) for key, (t, v) in _AMOUNTS.items()}
    count = len(columns["tflops_capacity"])
    return [
        {key: {"tflops": t[i] / 1000, "vram": v[i]} for key, (t, v) in lists.items()}
        for i in range(count)
    ]


def _workers_by_gpu(view: InventoryView) -> dict[str, list[str]]:
    workers: dict[str, list[str]] = defaultdict(list)
    for allocation in view.allocations:
        for gpu in allocation.gpus:
            workers[gpu].append(f"{allocation.namespace}/{allocation.name}")
    return workers


def gpu_inventory(view: InventoryView) -> list[dict[str, Any]]:
    """Every GPU in the cluster, by name."""
    amounts = _per_gpu_amounts(view.columns)
    plugin_held = view.plugin_held.tolist()
    workers = _workers_by_gpu(view)
    rows = []
    for index in np.flatnonzero(view.present).tolist():
        record = view.records[index]
        rows.append(
            {
                "name": record.name,
                "node": record.node,
                "uuid": record.uuid,
                "index": record.index,
                "model": record.model,
                "pool": record.pool,
                "numaNode": record.numa_node,
                "usedBy": "nvidia-device-plugin" if plugin_held[index] else "tensor-fusion",
                **amounts[index],
                "workers": sorted(workers.get(record.name, ())),
            }
        )
    rows.sort(key=lambda row: str(row["name"]))
    return rows


def _group_rows(view: InventoryView, key: str) -> dict[str, NDArray[np.intp]]:
    """Present GPU indices grouped by their record's `key` attribute (node or pool)."""
    groups: dict[str, list[int]] = defaultdict(list)
    for index in np.flatnonzero(view.present).tolist():
        value = getattr(view.records[index], key)
        if value is not None:
            groups[value].append(index)
    return {name: np.array(rows, dtype=np.intp) for name, rows in groups.items()}


def _worker_counts(view: InventoryView, key: str) -> dict[str, int]:
    """Pods with GPUs per node or pool (a pod counts once, on its first GPU's group)."""
    counts: dict[str, int] = defaultdict(int)
    for allocation in view.allocations:
        index = view.index_of.get(allocation.gpus[0])
        if index is not None:
            value = getattr(view.records[index], key)
            if value is not None:
                counts[value] += 1
    return counts


def node_inventory(view: InventoryView) -> list[dict[str, Any]]:
    """Every node with GPUs: their count, workers and summed amounts."""
    groups = _group_rows(view, "node")
    workers = _worker_counts(view, "node")
    rows = []
    for name in sorted(groups):
        members = groups[name]
        rows.append(
            {
                "name": name,
                "pool": view.records[int(members[0])].pool,
                "gpus": len(members),
                "workers": workers.get(name, 0),
                "schedulable": not view.unschedulable.get(name, True),
                **_amounts(view.columns, members),
            }
        )
    return rows


def pool_inventory(view: InventoryView) -> list[dict[str, Any]]:
    """Every pool, with its oversubscription, placement and summed amounts."""
    groups = _group_rows(view, "pool")
    workers = _worker_counts(view, "pool")
    empty = np.array([], dtype=np.intp)
    rows = []
    for name in sorted(set(view.pools) | set(groups)):
        info = view.pools.get(name)
        members = groups.get(name, empty)
        rows.append(
            {
                "name": name,
                "default": bool(info and info.is_default),
                "placementMode": info.placement if info else None,
                "oversubscription": info.oversubscription.model_dump(by_alias=True)
                if info
                else None,
                "nodes": len({view.records[i].node for i in members.tolist()}),
                "gpus": len(members),
                "workers": workers.get(name, 0),
                **_amounts(view.columns, members),
            }
        )
    return rows
