"""The cluster's GPUs, nodes and pools as the management API lists them: capacity, virtual
capacity and what is allocated, summed from the allocator's columns. TFLOPS are numbers,
VRAM integers of bytes (docs/api.md)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tensorfusion.scheduler.allocator import DEVICE_PLUGIN
from tensorfusion.scheduler.cluster_state import ClusterState

_AMOUNTS = {
    "capacity": ("tflops_capacity", "vram_capacity"),
    "virtualCapacity": ("tflops_virtual", "vram_virtual"),
    "allocated": ("tflops_requested", "vram_requested"),
    "allocatedLimits": ("tflops_limited", "vram_limited"),
}


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


def _columns(state: ClusterState) -> dict[str, NDArray[np.int64]]:
    arrays = state.gpus.arrays()
    return {name: getattr(arrays, name) for pair in _AMOUNTS.values() for name in pair}


def _workers_by_gpu(state: ClusterState) -> dict[str, list[str]]:
    workers: dict[str, list[str]] = defaultdict(list)
    for allocation in state.gpus.allocations.values():
        for gpu in allocation.gpus:
            workers[gpu].append(f"{allocation.namespace}/{allocation.name}")
    return workers


def gpu_inventory(state: ClusterState) -> list[dict[str, Any]]:
    """Every GPU in the cluster, by name."""
    allocator = state.gpus
    amounts = _per_gpu_amounts(_columns(state))
    present = allocator.present()
    plugin_held = (allocator.arrays().state == int(DEVICE_PLUGIN)).tolist()
    workers = _workers_by_gpu(state)
    rows = []
    for index in np.flatnonzero(present).tolist():
        record = allocator.records[index]
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


def _group_rows(state: ClusterState, key: str) -> dict[str, NDArray[np.intp]]:
    """Present GPU indices grouped by their record's `key` attribute (node or pool)."""
    groups: dict[str, list[int]] = defaultdict(list)
    records = state.gpus.records
    for index in np.flatnonzero(state.gpus.present()).tolist():
        value = getattr(records[index], key)
        if value is not None:
            groups[value].append(index)
    return {name: np.array(rows, dtype=np.intp) for name, rows in groups.items()}


def _worker_counts(state: ClusterState, key: str) -> dict[str, int]:
    """Pods with GPUs per node or pool (a pod counts once, on its first GPU's group)."""
    counts: dict[str, int] = defaultdict(int)
    allocator = state.gpus
    for allocation in state.gpus.allocations.values():
        index = allocator.index_of.get(allocation.gpus[0])
        if index is not None:
            value = getattr(allocator.records[index], key)
            if value is not None:
                counts[value] += 1
    return counts


def node_inventory(state: ClusterState) -> list[dict[str, Any]]:
    """Every node with GPUs: their count, workers and summed amounts."""
    columns = _columns(state)
    groups = _group_rows(state, "node")
    workers = _worker_counts(state, "node")
    pools = _group_pools(state, groups)
    node_index = {name: index for index, name in enumerate(state.nodes.names)}
    unschedulable = state.nodes.unschedulable
    rows = []
    for name in sorted(groups):
        index = node_index.get(name, -1)
        rows.append(
            {
                "name": name,
                "pool": pools.get(name),
                "gpus": len(groups[name]),
                "workers": workers.get(name, 0),
                "schedulable": index >= 0 and not bool(unschedulable[index]),
                **_amounts(columns, groups[name]),
            }
        )
    return rows


def _group_pools(state: ClusterState, groups: dict[str, NDArray[np.intp]]) -> dict[str, str]:
    """The pool of each node's first GPU."""
    records = state.gpus.records
    return {
        node: pool
        for node, rows in groups.items()
        if (pool := records[int(rows[0])].pool) is not None
    }


def pool_inventory(state: ClusterState) -> list[dict[str, Any]]:
    """Every pool, with its oversubscription, placement and summed amounts."""
    columns = _columns(state)
    groups = _group_rows(state, "pool")
    workers = _worker_counts(state, "pool")
    empty = np.array([], dtype=np.intp)
    records = state.gpus.records
    rows = []
    for name in sorted(set(state.pools) | set(groups)):
        info = state.pools.get(name)
        members = groups.get(name, empty)
        rows.append(
            {
                "name": name,
                "default": bool(info and info.is_default),
                "placementMode": info.placement if info else None,
                "oversubscription": info.oversubscription.model_dump(by_alias=True)
                if info
                else None,
                "nodes": len({records[i].node for i in members.tolist()}),
                "gpus": len(members),
                "workers": workers.get(name, 0),
                **_amounts(columns, members),
            }
        )
    return rows
