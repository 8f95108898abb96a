"""The cluster's GPUs, nodes and pools as the management API lists them: capacity, virtual
capacity and what is allocated, summed from the allocator's columns. TFLOPS are numbers,
VRAM integers of bytes (docs/api.md).

`InventoryView.of` copies what the listings read out of a ClusterState; it is the only part
that must run while the scheduler holds still (under its lock), and costs a few copies of
arrays and dicts. The sums and rows are then computed without holding anything."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, TypeVar

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
    """What the listings read, copied out of a ClusterState (see the module's docstring)."""

    columns: dict[str, NDArray[np.int64]]
    """The amount columns, one entry per GPU, in the order of `records`."""
    node_ids: NDArray[np.int32]
    pool_ids: NDArray[np.int32]
    """Per GPU, the allocator's number for its node and pool: what the sums group by."""
    node_workers: NDArray[np.int32]
    """Pods with GPUs per node number, each counted on its first GPU's node."""
    plugin_held: NDArray[np.bool_]
    present: NDArray[np.bool_]
    records: list[GpuRecord]
    index_of: dict[str, int]
    allocations: list[Allocation]
    """In the allocator's order (as they were made): sorting them would cost the lock tens of
    milliseconds on a large fleet, and no listing needs it (a GPU's `workers` are sorted)."""
    pools: dict[str, PoolInfo]
    unschedulable: dict[str, bool]
    """By node name."""

    @classmethod
    def of(cls, state: ClusterState) -> InventoryView:
        allocator = state.gpus
        arrays = allocator.arrays()
        names = state.nodes.names
        flags = state.nodes.unschedulable.tolist()
        node_count = _node_count(state)
        return cls(
            columns={
                name: getattr(arrays, name).copy() for pair in _AMOUNTS.values() for name in pair
            },
            node_ids=arrays.node.copy(),
            pool_ids=arrays.pool.copy(),
            node_workers=allocator.node_workers(node_count).copy(),
            plugin_held=arrays.state == int(DEVICE_PLUGIN),
            present=allocator.present().copy(),
            records=list(allocator.records),
            index_of=dict(allocator.index_of),
            allocations=list(allocator.allocations.values()),
            pools=dict(state.pools),
            unschedulable={name: bool(flags[i]) for i, name in enumerate(names)},
        )

    @cached_property
    def node_groups(self) -> _NodeGroups:
        """The nodes' groups, built on first use and shared by the listings of this view."""
        return _NodeGroups.of(self)

    @cached_property
    def pool_groups(self) -> _Groups:
        """The pools' groups, built on first use and shared by the listings of this view."""
        return _Groups.of(self, self.pool_ids)

    def present_gpus(self) -> set[str]:
        """The names of the GPUs still in the cluster."""
        return {self.records[i].name for i in np.flatnonzero(self.present).tolist()}

    def record(self, gpu: str) -> GpuRecord:
        """A GPU's facts; kept for every GPU an allocation names, even one that has left."""
        return self.records[self.index_of[gpu]]


def _node_count(state: ClusterState) -> int:
    """Node numbers to read per-node figures for: every number a GPU holds, whatever the node
    table holds."""
    nodes = state.gpus.arrays().node
    return max(len(state.nodes.names), int(nodes.max()) + 1 if len(nodes) else 0)


def inventory_version(state: ClusterState) -> tuple[Any, ...]:
    """What the listings' figures follow, compared with ==: the allocator's version (every
    allocation, release, or GPU change bumps a node's version or the structure version, as
    the `/api/allocation` snapshot relies on), the node table's names and flags, and the
    pools. Read under the scheduler's lock; costs far less than an `InventoryView`."""
    allocator = state.gpus
    versions = allocator.node_versions(_node_count(state))
    return (
        allocator.structure_version,
        int(versions.sum()),
        tuple(state.nodes.names),
        state.nodes.unschedulable.tobytes(),
        dict(state.pools),
    )


T = TypeVar("T")


@dataclass
class _Cached:
    state: ClusterState
    version: tuple[Any, ...]
    view: InventoryView
    listings: dict[tuple[Any, ...], Any] = field(default_factory=dict)


class InventoryCache:
    """The last InventoryView and the listings built from it, kept while the state and its
    `inventory_version` stay the same: a client polling unchanged listings costs a version
    read, not a copy of the columns and a build of rows. Listings are shared: do not modify
    them. Thread-safe (the listings of one version may be built twice by racing readers)."""

    MAX_LISTINGS = 256
    """Listings kept per version (each distinct query is one): a bound on what many filter
    texts can hold."""

    def __init__(self) -> None:
        self._cached: _Cached | None = None

    def listing(
        self,
        state: ClusterState,
        lock: threading.Lock,
        key: tuple[Any, ...],
        build: Callable[[InventoryView], T],
    ) -> T:
        """`build(view)` for the state as it is now, built once per version and `key`."""
        with lock:
            version = inventory_version(state)
            cached = self._cached
            if cached is None or cached.state is not state or cached.version != version:
                cached = self._cached = _Cached(state, version, InventoryView.of(state))
        if key in cached.listings:
            found: T = cached.listings[key]
            return found
        built = build(cached.view)
        if len(cached.listings) < self.MAX_LISTINGS:
            cached.listings[key] = built
        return built


def _amounts_of(lists: dict[str, tuple[list[int], list[int]]], i: int) -> dict[str, Any]:
    """Entry `i` of each figure's (milli-TFLOPS, bytes) lists; milli-TFLOPS become TFLOPS."""
    return {key: {"tflops": t[i] / 1000, "vram": v[i]} for key, (t, v) in lists.items()}


def _column_lists(
    columns: dict[str, NDArray[np.int64]], rows: NDArray[np.intp]
) -> dict[str, tuple[list[int], list[int]]]:
    """Each figure's column at `rows`, as plain Python numbers (read once per column rather
    than once per GPU and field)."""
    return {
        key: (columns[t][rows].tolist(), columns[v][rows].tolist())
        for key, (t, v) in _AMOUNTS.items()
    }


def stranded_workers(view: InventoryView) -> list[tuple[str, str]]:
    """The (namespace, name) of each pod whose allocation holds no GPU still in the cluster:
    the bound workers that wait for a GPU, found without reading any pod."""
    gone = {view.records[i].name for i in np.flatnonzero(~view.present).tolist()}
    if not gone:  # the common case: no allocation to look at
        return []
    return [
        (allocation.namespace, allocation.name)
        for allocation in view.allocations
        if gone.issuperset(allocation.gpus)
    ]


def _workers_by_gpu(view: InventoryView, gpus: set[str] | None) -> dict[str, list[str]]:
    """The pods (`namespace/name`) on each GPU, of `gpus` only when given."""
    workers: dict[str, list[str]] = defaultdict(list)
    for allocation in view.allocations:
        if gpus is not None and gpus.isdisjoint(allocation.gpus):
            continue
        for gpu in allocation.gpus:
            workers[gpu].append(f"{allocation.namespace}/{allocation.name}")
    return workers


def gpu_inventory(
    view: InventoryView, nodes: Collection[str] | None = None
) -> list[dict[str, Any]]:
    """Every GPU in the cluster, or only those of `nodes`, by name."""
    rows_of = np.flatnonzero(view.present) if nodes is None else view.node_groups.members(nodes)
    indices = rows_of.tolist()
    amounts = _column_lists(view.columns, rows_of)
    plugin_held = view.plugin_held[rows_of].tolist()
    named = None if nodes is None else {view.records[i].name for i in indices}
    workers = _workers_by_gpu(view, named)
    rows = []
    for position, index in enumerate(indices):
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
                "usedBy": "nvidia-device-plugin" if plugin_held[position] else "tensor-fusion",
                **_amounts_of(amounts, position),
                "workers": sorted(workers.get(record.name, ())),
            }
        )
    rows.sort(key=lambda row: str(row["name"]))
    return rows


@dataclass(frozen=True)
class _Groups:
    """Present GPUs grouped by an allocator number (node or pool), with each group's sums,
    kept as arrays: a listing reads the groups it shows only."""

    order: NDArray[np.intp]
    starts: NDArray[np.intp]
    """See `present_groups`."""
    first: NDArray[np.intp]
    """A member's record index per group: the group's name and pool come from its record."""
    sizes: NDArray[np.intp]
    sums: dict[str, NDArray[np.int64]]
    """Per amount column (as `InventoryView.columns` names them), one sum per group."""

    @classmethod
    def of(cls, view: InventoryView, ids: NDArray[np.int32]) -> _Groups:
        order, starts = present_groups(view, ids)
        sums = {
            column: np.add.reduceat(view.columns[column][order], starts)
            if len(order)
            else view.columns[column][:0]
            for pair in _AMOUNTS.values()
            for column in pair
        }
        sizes = np.diff(np.r_[starts, len(order)]).astype(np.intp)
        return cls(order, starts.astype(np.intp), order[starts], sizes, sums)

    def records(self, view: InventoryView) -> list[GpuRecord]:
        """Each group's member's record: the group's name (node or pool) is on it."""
        records = view.records
        return [records[index] for index in self.first.tolist()]

    def rows_of(self, groups: list[int]) -> NDArray[np.intp]:
        """The record indices of the members of `groups`."""
        spans = [self.order[self.starts[g] : self.starts[g] + self.sizes[g]] for g in groups]
        return np.concatenate(spans) if spans else self.order[:0]


def present_groups(
    view: InventoryView, ids: NDArray[np.int32]
) -> tuple[NDArray[np.intp], NDArray[np.integer[Any]]]:
    """The present GPUs ordered by `ids` (stably, so allocator order within a group), and
    where each group starts in that order: ready for `np.add.reduceat`."""
    present = np.flatnonzero(view.present)
    order = present[np.argsort(ids[present], kind="stable")]
    keys = ids[order]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]]) if len(keys) else keys
    return order, starts


@dataclass(frozen=True)
class _NodeGroups:
    """The nodes with a present GPU, one group each, and their order by name: what the node
    pages and the GPUs of some nodes read, built once per view."""

    groups: _Groups
    names: list[str]
    """Per group."""
    by_name: NDArray[np.intp]
    """The groups ordered by their names."""

    @classmethod
    def of(cls, view: InventoryView) -> _NodeGroups:
        groups = _Groups.of(view, view.node_ids)
        names = [record.node for record in groups.records(view)]
        by_name = sorted(range(len(names)), key=names.__getitem__)
        return cls(groups, names, np.array(by_name, dtype=np.intp))

    @cached_property
    def group_of(self) -> dict[str, int]:
        """The group of each node, by name."""
        return {name: group for group, name in enumerate(self.names)}

    def members(self, nodes: Collection[str]) -> NDArray[np.intp]:
        """The record indices of the present GPUs of `nodes` (names; unknown ones have none)."""
        group_of = self.group_of
        return self.groups.rows_of([group_of[node] for node in nodes if node in group_of])

    def rows(self, view: InventoryView, chosen: list[int]) -> list[dict[str, Any]]:
        """The rows of the `chosen` groups, in that order."""
        groups = self.groups
        amounts = _column_lists(groups.sums, np.array(chosen, dtype=np.intp))
        numbers = view.node_ids[groups.first[chosen]].tolist()
        sizes = groups.sizes[chosen].tolist()
        rows = []
        for position, group in enumerate(chosen):
            name = self.names[group]
            rows.append(
                {
                    "name": name,
                    "pool": view.records[int(groups.first[group])].pool,
                    "gpus": sizes[position],
                    "workers": int(view.node_workers[numbers[position]]),
                    "schedulable": not view.unschedulable.get(name, True),
                    **_amounts_of(amounts, position),
                }
            )
        return rows


def node_inventory(view: InventoryView) -> list[dict[str, Any]]:
    """Every node with GPUs, by name: their GPU and worker counts and summed amounts."""
    return node_page(view)[0]


def node_page(
    view: InventoryView,
    pool: str | None = None,
    match: str | None = None,
    limit: int | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """The first `limit` (all when None) nodes with a GPU in `pool` (see `nodes_in_pool`)
    that `match` finds (any pool, any node when None; see `nodes_matching`), by name, and
    how many nodes those are in all. Only the listed nodes' rows are built."""
    nodes = view.node_groups
    chosen = nodes.by_name
    if pool is not None:
        numbers = view.node_ids[nodes.groups.first[chosen]]
        chosen = chosen[nodes_in_pool(view, pool)[numbers]]
    if match is not None:
        found = nodes_matching(view, match)
        names = nodes.names
        kept = np.fromiter((names[g] in found for g in chosen.tolist()), np.bool_, len(chosen))
        chosen = chosen[kept]
    return nodes.rows(view, chosen[:limit].tolist()), len(chosen)


NO_POOL = "(no pool)"
"""The pool name that selects GPUs no pool names (no object name can hold a space)."""


def nodes_in_pool(view: InventoryView, pool: str) -> NDArray[np.bool_]:
    """Per node number: whether it has a present GPU in `pool` (`NO_POOL`: in none); a node
    whose GPUs are in two pools is in both."""
    wanted = None if pool == NO_POOL else pool
    groups = view.pool_groups
    records = groups.records(view)
    rows = groups.rows_of([g for g, record in enumerate(records) if record.pool == wanted])
    found = np.zeros(len(view.node_workers), dtype=np.bool_)
    found[view.node_ids[rows]] = True
    return found


def nodes_matching(view: InventoryView, needle: str) -> set[str]:
    """Nodes whose name, or a GPU's name, model or UUID, or the `namespace/name` of a pod on
    one of their GPUs contains `needle` (case-insensitive)."""
    needle = needle.lower()
    found: set[str] = set()
    for index in np.flatnonzero(view.present).tolist():
        record = view.records[index]
        words = (record.node, record.name, record.model or "", record.uuid or "")
        if any(needle in word.lower() for word in words):
            found.add(record.node)
    for allocation in view.allocations:
        if needle in f"{allocation.namespace}/{allocation.name}".lower():
            for gpu in allocation.gpus:
                held = view.index_of.get(gpu)
                if held is not None and view.present[held]:
                    found.add(view.records[held].node)
    return found


def pool_inventory(view: InventoryView) -> list[dict[str, Any]]:
    """Every pool, with its oversubscription, placement and summed amounts. A node counts in
    each pool it has GPUs in; a pod in the pool of its first GPU. GPUs in no pool are listed
    by the nodes under `NO_POOL`, not here."""
    groups = view.pool_groups
    nodes = _pool_nodes(view, groups)
    workers = _pool_workers(view)
    amounts = _column_lists(groups.sums, np.arange(len(groups.first)))
    by_name = {r.pool: g for g, r in enumerate(groups.records(view)) if r.pool is not None}
    empty = _amounts_of({key: ([0], [0]) for key in _AMOUNTS}, 0)
    rows = []
    for name in sorted(set(view.pools) | set(by_name)):
        info = view.pools.get(name)
        member = by_name.get(name)
        rows.append(
            {
                "name": name,
                "default": bool(info and info.is_default),
                "placementMode": info.placement if info else None,
                "oversubscription": info.oversubscription.model_dump(by_alias=True)
                if info
                else None,
                "nodes": nodes[member] if member is not None else 0,
                "gpus": int(groups.sizes[member]) if member is not None else 0,
                "workers": workers.get(name, 0),
                **(_amounts_of(amounts, member) if member is not None else empty),
            }
        )
    return rows


def _pool_nodes(view: InventoryView, groups: _Groups) -> list[int]:
    """Per pool group: its distinct nodes."""
    pool_group = np.repeat(np.arange(len(groups.sizes), dtype=np.int64), groups.sizes)
    nodes = view.node_ids[groups.order].astype(np.int64)
    # One number per (pool group, node) pair. They come nearly sorted (by pool, then in the
    # allocator's order, which is by node), which a stable sort takes in one pass: ten times
    # faster than `np.unique`, which hashes them.
    span = int(nodes.max()) + 1 if len(nodes) else 1
    keys = np.sort(pool_group * span + nodes, kind="stable")
    pairs = keys[np.r_[True, keys[1:] != keys[:-1]]] if len(keys) else keys
    counts: list[int] = np.bincount(pairs // span, minlength=len(groups.sizes)).tolist()
    return counts


def _pool_workers(view: InventoryView) -> dict[str, int]:
    """Pods with GPUs per pool, each in the pool of its own first GPU (whether or not that
    GPU is still present: its record is kept while an allocation names it)."""
    # `node_workers` counts each pod on the node of its first GPU: where every GPU of a node
    # (present or not) is in one pool, that node's pods are in it, and no allocation is read
    # (reading 26,000 of them costs about ten times this).
    node_row = np.full(len(view.node_workers), -1, dtype=np.intp)
    node_row[view.node_ids] = np.arange(len(view.node_ids))
    if np.array_equal(view.pool_ids[node_row[view.node_ids]], view.pool_ids):
        nodes = np.flatnonzero(node_row >= 0)
        return _per_pool(view, node_row[nodes], view.node_workers[nodes])
    index_of = view.index_of
    firsts = np.fromiter(
        (index_of[allocation.gpus[0]] for allocation in view.allocations),
        dtype=np.intp,
        count=len(view.allocations),
    )
    return _per_pool(view, firsts, np.ones(len(firsts), dtype=np.int64))


def _per_pool(
    view: InventoryView, rows: NDArray[np.intp], counts: NDArray[np.integer[Any]]
) -> dict[str, int]:
    """`counts` summed by the pool of the GPU at each of `rows` (GPUs in no pool left out)."""
    # Summed by the allocator's pool number; each number's name is that of a member.
    _, members, inverse = np.unique(view.pool_ids[rows], return_index=True, return_inverse=True)
    sums = np.zeros(len(members), dtype=np.int64)
    np.add.at(sums, inverse.reshape(-1), counts)
    totals: dict[str, int] = {}
    for member, total in zip(rows[members].tolist(), sums.tolist(), strict=True):
        if (pool := view.records[member].pool) is not None:
            totals[pool] = totals.get(pool, 0) + total
    return totals
