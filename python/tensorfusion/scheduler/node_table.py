"""Every node of the cluster as arrays, so that a plugin answers for all nodes at once with a
few numpy operations.

A node keeps its index for the table's lifetime: a removed node is marked absent (and gets
its old index back if it returns), because the GPU allocator refers to nodes by index.
Arrays handed out are read-only views of the live part; they see later pod changes, but a
node added (which may reallocate) needs them fetched again. Masks cover every index, absent
nodes included: callers keep to `present` nodes."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import numpy as np
from numpy.typing import NDArray

from tensorfusion.errors import FleetError, QuantityError
from tensorfusion.scheduler.framework import BoolArray
from tensorfusion.scheduler.plugins.host_ports import HostPort
from tensorfusion.scheduler.plugins.resource_amounts import CPU, MEMORY, PODS, resource_amount
from tensorfusion.scheduler.plugins.spec_reader import json_type
from tensorfusion.scheduler.plugins.taints import TAINT_EFFECTS, NodeTaint

if TYPE_CHECKING:
    from tensorfusion.scheduler.pod_info import PodInfo

Int64Array = NDArray[np.int64]
Aspect = Literal["labels", "taints", "allocatable"]
"""What a cached value is derived from; a node update clears only the aspects it changed."""
LABELS: Aspect = "labels"
TAINTS: Aspect = "taints"
ALLOCATABLE: Aspect = "allocatable"
_ASPECTS: tuple[Aspect, ...] = (LABELS, TAINTS, ALLOCATABLE)

DEFAULT_MAX_PODS = 110
"""kubelet's default `maxPods`, used when a node does not report allocatable pods."""
ABSENT = int(np.iinfo(np.int16).max)
"""Position of a taint on a node that does not carry it."""
_MEMO_LIMIT = 1024
"""Cached masks per aspect; beyond it the oldest is dropped (a DaemonSet gives every pod
its own node-name term, and those masks must not pile up)."""
_NON_ZERO = (CPU, MEMORY)
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class LabelColumn:
    """One label key over all nodes: `values[codes[i]]` is node i's value, or the node lacks
    the label when `codes[i]` is -1."""

    codes: NDArray[np.int32]
    values: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TaintColumns:
    """Every distinct taint of the table and where it sits on each node:
    `positions[t, i]` is the index of `taints[t]` in node i's taint list, or ABSENT."""

    taints: tuple[NodeTaint, ...]
    positions: NDArray[np.int16]


@dataclass(frozen=True, slots=True)
class _Node:
    name: str
    labels: Mapping[str, str]
    unschedulable: bool
    taints: tuple[NodeTaint, ...]
    allocatable: Mapping[str, int]


class _Column:
    """One resource over all nodes; `free` is kept equal to allocatable - requested."""

    __slots__ = ("allocatable", "free", "requested")

    def __init__(self, capacity: int) -> None:
        self.allocatable = np.zeros(capacity, np.int64)
        self.requested = np.zeros(capacity, np.int64)
        self.free = np.zeros(capacity, np.int64)

    def grow(self, capacity: int) -> None:
        self.allocatable = _grown(self.allocatable, capacity)
        self.requested = _grown(self.requested, capacity)
        self.free = _grown(self.free, capacity)

    def set_allocatable(self, index: int, amount: int) -> None:
        self.allocatable[index] = amount
        self.free[index] = amount - self.requested[index]

    def add(self, index: int, amount: int) -> None:
        self.requested[index] += amount
        self.free[index] -= amount


class NodeTable:
    """Nodes, their allocatable resources and the sums of the pods placed on them.

    `add_pod` / `remove_pod` trust the caller: adding the same pod twice counts it twice,
    so the caller keeps each pod's placement keyed by its uid."""

    def __init__(self, nodes: Iterable[Mapping[str, Any]] = (), capacity: int = 64) -> None:
        self._size = 0
        self._capacity = max(capacity, 1)
        self._present = np.zeros(self._capacity, np.bool_)
        self._unschedulable = np.zeros(self._capacity, np.bool_)
        self._pod_count = np.zeros(self._capacity, np.int64)
        self._non_zero = {name: np.zeros(self._capacity, np.int64) for name in _NON_ZERO}
        self._columns: dict[str, _Column] = {PODS: _Column(self._capacity)}
        self._names: list[str] = []
        self._labels: list[Mapping[str, str]] = []
        self._taints: list[tuple[NodeTaint, ...]] = []
        self._ports: list[Counter[HostPort]] = []
        self._port_users: dict[tuple[str, int], dict[int, Counter[str]]] = {}
        self._index_of: dict[str, int] = {}
        self._former: dict[str, int] = {}
        self._allocations: list[Mapping[str, int]] = []
        self._memo: dict[Aspect, dict[Hashable, Any]] = {aspect: {} for aspect in _ASPECTS}
        self._views: dict[Hashable, NDArray[Any]] = {}
        for node in nodes:
            self.add_node(node)

    # --- nodes ------------------------------------------------------------------------

    def add_node(self, node: Mapping[str, Any]) -> int:
        """Add a node; its index (the old one when a removed node comes back)."""
        record = _read_node(node)
        if record.name in self._index_of:
            raise FleetError(f"Node/{record.name}", "metadata.name", "is already in the node table")
        index = self._former.pop(record.name, None)
        if index is None:
            index = self._append(record.name)
        self._index_of[record.name] = index
        self._present[index] = True
        self._store(index, record)
        self._invalidate(*_ASPECTS)
        return index

    def update_node(self, node: Mapping[str, Any]) -> int:
        """Replace a node's labels, taints, schedulability and allocatable; its pods stay."""
        record = _read_node(node)
        index = self._known(record.name)
        changed = [
            aspect
            for aspect, old, new in (
                (LABELS, self._labels[index], record.labels),
                (TAINTS, self._taints[index], record.taints),
                (ALLOCATABLE, self._allocations[index], record.allocatable),
            )
            if old != new
        ]
        self._store(index, record)
        self._invalidate(*changed)
        return index

    def remove_node(self, name: str) -> int:
        """Mark a node absent. The sums of its pods stay with the index: the caller removes
        those pods, or they count again if the node returns."""
        index = self._known(name)
        del self._index_of[name]
        self._former[name] = index
        self._present[index] = False
        self._store(index, _Node(name, {}, False, (), {}))
        self._invalidate(*_ASPECTS)
        return index

    def _known(self, name: str) -> int:
        index = self._index_of.get(name)
        if index is None:
            raise FleetError(f"Node/{name}", "", "is not in the node table")
        return index

    def _append(self, name: str) -> int:
        if self._size == self._capacity:
            self._grow(self._capacity * 2)
        index = self._size
        self._size += 1
        self._names.append(name)
        self._labels.append({})
        self._taints.append(())
        self._allocations.append({})
        self._ports.append(Counter())
        return index

    def _grow(self, capacity: int) -> None:
        # Doubling keeps adds amortised O(1).
        self._capacity = capacity
        self._present = _grown(self._present, capacity)
        self._unschedulable = _grown(self._unschedulable, capacity)
        self._pod_count = _grown(self._pod_count, capacity)
        self._non_zero = {name: _grown(array, capacity) for name, array in self._non_zero.items()}
        for column in self._columns.values():
            column.grow(capacity)

    def _store(self, index: int, record: _Node) -> None:
        self._labels[index] = record.labels
        self._taints[index] = record.taints
        self._allocations[index] = record.allocatable
        self._unschedulable[index] = record.unschedulable
        for name in record.allocatable.keys() - self._columns.keys():
            self._columns[name] = _Column(self._capacity)
        for name, column in self._columns.items():
            column.set_allocatable(index, record.allocatable.get(name, 0))

    def _invalidate(self, *aspects: Aspect) -> None:
        for aspect in aspects:
            self._memo[aspect].clear()
        self._views.clear()

    # --- pods -------------------------------------------------------------------------

    def add_pod(self, index: int, pod: PodInfo) -> None:
        """Count a pod placed on node `index` (a present node)."""
        if not (0 <= index < self._size and self._present[index]):
            raise FleetError(f"Pod/{pod.namespace}/{pod.name}", "", f"no node has index {index}")
        self._count(index, pod, 1)
        for port in pod.host_ports:
            self._ports[index][port] += 1
            users = self._port_users.setdefault((port.protocol, port.port), {})
            users.setdefault(index, Counter())[port.host_ip] += 1

    def remove_pod(self, index: int, pod: PodInfo) -> None:
        """Undo `add_pod` (also on a node removed since)."""
        if not 0 <= index < self._size:
            raise FleetError(f"Pod/{pod.namespace}/{pod.name}", "", f"no node has index {index}")
        self._count(index, pod, -1)
        for port in pod.host_ports:
            _decrement(self._ports[index], port)
            users = self._port_users[(port.protocol, port.port)]
            _decrement(users[index], port.host_ip)
            if not users[index]:
                del users[index]

    def _count(self, index: int, pod: PodInfo, sign: int) -> None:
        self._pod_count[index] += sign
        for name, amount in pod.requests.items():
            if amount:
                column = self._columns.get(name)
                if column is None:
                    column = self._columns[name] = _Column(self._capacity)
                    self._views.clear()
                column.add(index, sign * amount)
        for name, array in self._non_zero.items():
            array[index] += sign * pod.non_zero_requests.get(name, 0)

    # --- reads ------------------------------------------------------------------------

    @property
    def size(self) -> int:
        """Number of indices in use, absent nodes included; every array has this length."""
        return self._size

    @property
    def present(self) -> BoolArray:
        return self._view("present", self._present)

    @property
    def unschedulable(self) -> BoolArray:
        return self._view("unschedulable", self._unschedulable)

    @property
    def pod_count(self) -> Int64Array:
        return self._view("pods", self._pod_count)

    @property
    def names(self) -> Sequence[str]:
        return self._names

    @property
    def index_of(self) -> Mapping[str, int]:
        """Present nodes only."""
        return self._index_of

    @property
    def labels(self) -> Sequence[Mapping[str, str]]:
        return self._labels

    @property
    def taints(self) -> Sequence[tuple[NodeTaint, ...]]:
        return self._taints

    @property
    def resources(self) -> tuple[str, ...]:
        """Resources some node has or some pod requested."""
        return tuple(self._columns)

    def allocatable(self, resource: str) -> Int64Array:
        """Per node, in PodInfo's units; 0 where a node lacks the resource."""
        return self._column_view(resource, "allocatable")

    def requested(self, resource: str) -> Int64Array:
        return self._column_view(resource, "requested")

    def free(self, resource: str) -> Int64Array:
        """allocatable - requested (negative when a node shrank under its pods)."""
        return self._column_view(resource, "free")

    def _column_view(
        self, resource: str, part: Literal["allocatable", "requested", "free"]
    ) -> Int64Array:
        column = self._columns.get(resource)
        if column is None:
            return self._zeros()
        return self._view((part, resource), getattr(column, part))

    def non_zero_requested(self, resource: str) -> Int64Array:
        """What kube scores with: for cpu and memory, requests with kube's defaults for
        containers that set none; for other resources the plain `requested`."""
        array = self._non_zero.get(resource)
        if array is None:
            return self.requested(resource)
        return self._view(("non-zero", resource), array)

    def used_ports(self, index: int) -> Mapping[HostPort, int]:
        """Host ports bound on a node, with how many pods bind each."""
        return self._ports[index]

    def port_users(self, protocol: str, port: int) -> Mapping[int, Mapping[str, int]]:
        """Nodes where (protocol, port) is bound, each with the host IPs bound."""
        return self._port_users.get((protocol, port), {})

    def label_column(self, key: str) -> LabelColumn:
        return self.memo(LABELS, ("column", key), lambda: self._label_column(key))

    def taint_columns(self) -> TaintColumns:
        return self.memo(TAINTS, "columns", self._taint_columns)

    def memo(self, aspect: Aspect, key: Hashable, build: Callable[[], _T]) -> _T:
        """A value derived from the nodes' `aspect`, built once until that aspect changes.
        Arrays built here are shared: they are made read-only."""
        cache = self._memo[aspect]
        if key in cache:
            return cache[key]  # type: ignore[no-any-return]
        value = build()
        if isinstance(value, np.ndarray):
            value.flags.writeable = False
        if len(cache) >= _MEMO_LIMIT:
            del cache[next(iter(cache))]
        cache[key] = value
        return value

    def _view(self, key: Hashable, array: NDArray[Any]) -> NDArray[Any]:
        view = self._views.get(key)
        if view is None:
            view = self._views[key] = array[: self._size]
            view.flags.writeable = False
        return view

    def _zeros(self) -> Int64Array:
        view = self._views.get("zeros")
        if view is None:
            view = self._view("zeros", np.zeros(self._size, np.int64))
        return view

    def _label_column(self, key: str) -> LabelColumn:
        codes = np.full(self._size, -1, np.int32)
        values: dict[str, int] = {}
        for index, labels in enumerate(self._labels):
            value = labels.get(key)
            if value is not None:
                codes[index] = values.setdefault(value, len(values))
        return LabelColumn(codes, tuple(values))

    def _taint_columns(self) -> TaintColumns:
        rows: dict[NodeTaint, int] = {}
        for taints in self._taints:
            for taint in taints:
                rows.setdefault(taint, len(rows))
        positions = np.full((len(rows), self._size), ABSENT, np.int16)
        for index, taints in enumerate(self._taints):
            for position, taint in enumerate(taints):
                row = rows[taint]
                # A taint listed twice counts where it first appears.
                positions[row, index] = min(int(positions[row, index]), position)
        positions.flags.writeable = False
        return TaintColumns(tuple(rows), positions)


def _grown(array: NDArray[Any], capacity: int) -> NDArray[Any]:
    bigger = np.zeros(capacity, array.dtype)
    bigger[: len(array)] = array
    return bigger


def _decrement(counter: Counter[Any], key: object) -> None:
    counter[key] -= 1
    if counter[key] <= 0:
        del counter[key]


def _read_node(node: Mapping[str, Any]) -> _Node:
    """A node document as the table keeps it; FleetError names the field at fault."""
    if not isinstance(node, Mapping):
        raise FleetError("Node", "", f"must be an object, got {json_type(node)}")
    metadata = node.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    if not isinstance(metadata, Mapping) or not isinstance(name, str) or not name:
        raise FleetError("Node", "metadata.name", "must be a non-empty string")
    obj = f"Node/{name}"
    labels = metadata.get("labels")
    labels = {} if labels is None else labels
    if not isinstance(labels, Mapping) or not all(
        isinstance(key, str) and isinstance(value, str) for key, value in labels.items()
    ):
        raise FleetError(obj, "metadata.labels", "must map strings to strings")
    spec = _section(node, "spec", obj)
    unschedulable = spec.get("unschedulable")
    unschedulable = False if unschedulable is None else unschedulable
    if not isinstance(unschedulable, bool):
        raise FleetError(obj, "spec.unschedulable", f"must be a boolean, got {unschedulable!r}")
    status = _section(node, "status", obj)
    # The API server defaults allocatable to capacity.
    field = "allocatable" if status.get("allocatable") is not None else "capacity"
    return _Node(
        name,
        dict(labels),
        unschedulable,
        _read_taints(spec.get("taints"), obj),
        _read_allocatable(status.get(field), f"status.{field}", obj),
    )


def _section(node: Mapping[str, Any], key: str, obj: str) -> Mapping[str, Any]:
    section = node.get(key)
    section = {} if section is None else section
    if not isinstance(section, Mapping):
        raise FleetError(obj, key, f"must be an object, got {json_type(section)}")
    return section


def _read_taints(value: object, obj: str) -> tuple[NodeTaint, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise FleetError(obj, "spec.taints", f"must be a list, got {json_type(value)}")
    taints = []
    for index, item in enumerate(value):
        path = f"spec.taints[{index}]"
        if not isinstance(item, Mapping):
            raise FleetError(obj, path, f"must be an object, got {json_type(item)}")
        key, taint_value, effect = item.get("key"), item.get("value") or "", item.get("effect")
        if not isinstance(key, str) or not key:
            raise FleetError(obj, f"{path}.key", "must be a non-empty string")
        if not isinstance(taint_value, str):
            raise FleetError(
                obj, f"{path}.value", f"must be a string, got {json_type(taint_value)}"
            )
        for known in TAINT_EFFECTS:
            if effect == known:
                taints.append(NodeTaint(key, taint_value, known))
                break
        else:
            raise FleetError(
                obj, f"{path}.effect", f"must be one of {', '.join(TAINT_EFFECTS)}, got {effect!r}"
            )
    return tuple(taints)


def _read_allocatable(value: object, path: str, obj: str) -> dict[str, int]:
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        raise FleetError(obj, path, f"must be an object, got {json_type(value)}")
    amounts = {PODS: DEFAULT_MAX_PODS}
    for name, quantity in value.items():
        try:
            amounts[str(name)] = resource_amount(str(name), quantity)[0]
        except QuantityError as exc:
            raise FleetError(obj, f"{path}.{name}", str(exc)) from None
    return amounts
