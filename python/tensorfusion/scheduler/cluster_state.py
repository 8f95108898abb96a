"""The scheduler's picture of the cluster, built from Kubernetes-shaped objects (a fleet file
or the store) and kept current as they change: the node table, the GPU allocator, the
pools, and which pods are bound where.

Virtual capacity is computed here, once per GPU, from its pool's oversubscription and the
host RAM and disk its GPUNode reports."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from typing import Any, get_args

import numpy as np
from pydantic import ValidationError

from tensorfusion.api.field_errors import issues_from
from tensorfusion.api.gpu_capacity import checked_quantity, gpu_capacity
from tensorfusion.api.gpu_links import (
    gpu_node_name,
    gpu_nvlink_peers,
    gpu_pool_name,
    is_default_pool,
    text_at,
)
from tensorfusion.api.node import USED_BY_DEVICE_PLUGIN
from tensorfusion.api.pool import Oversubscription
from tensorfusion.api.scheduling_template import DEFAULT_PLACEMENT_MODE, PlacementMode
from tensorfusion.errors import FleetError
from tensorfusion.gc_pause import collector_paused
from tensorfusion.scheduler.allocation import GpuRecord, RebuildReport
from tensorfusion.scheduler.allocator import (
    DEVICE_PLUGIN,
    NOT_READY,
    READY,
    TERMINAL_PHASES,
    GpuAllocator,
)
from tensorfusion.scheduler.capacity import host_share, virtual_tflops, virtual_vram
from tensorfusion.scheduler.fleet import Fleet
from tensorfusion.scheduler.framework import ClusterView
from tensorfusion.scheduler.node_table import NodeTable
from tensorfusion.scheduler.pod_info import PodInfo
from tensorfusion.scheduler.pod_keys import pod_key
from tensorfusion.scheduler.pools import PoolDirectory, PoolInfo

PLACEMENT_MODES: tuple[PlacementMode, ...] = get_args(PlacementMode)


class ClusterState:
    def __init__(self) -> None:
        self.nodes = NodeTable()
        self.gpus = GpuAllocator()
        self.pools: dict[str, PoolInfo] = {}
        self.view = ClusterView(self.nodes, self.gpus, PoolDirectory(self.pools))
        self.gpu_nodes: dict[str, dict[str, Any]] = {}
        self.gpu_objects: dict[str, dict[str, Any]] = {}
        self.gpus_by_node: dict[str, set[str]] = {}
        self.native_gpus: dict[int, int] = {}
        """GPUs held through the device plugin by bound pods, per node index."""
        self.problems: list[str] = []
        """Objects that could not be taken in (a GPU of an unknown node, a malformed
        capacity): reported, and left out until they are fixed."""
        self.templates: dict[str, PlacementMode] = {}
        self.bound: dict[str, tuple[int, PodInfo]] = {}
        """Pods holding node resources, by UID: bound ones and those this scheduler has
        just placed (which the store will soon report as bound)."""

    @classmethod
    def build(cls, objects: Fleet) -> tuple[ClusterState, RebuildReport]:
        """A cluster state from a snapshot; the report says which pods' allocations could
        not be restored (their GPUs vanished, their annotations are unreadable)."""
        state = cls()
        # Millions of new objects and no garbage: each collection would walk them all again.
        with collector_paused():
            for template in objects.templates:
                state.upsert_template(template)
            for pool in objects.pools:
                state.guarded(pool, functools.partial(state.upsert_pool, pool, refresh=False))
            for node in objects.nodes:
                state.guarded(node, functools.partial(state.nodes.add_node, node))
            for gpu_node in objects.gpu_nodes:
                state.gpu_nodes[gpu_node["metadata"]["name"]] = gpu_node
            node_order = state.nodes.index_of
            gpus = sorted(objects.gpus, key=lambda g: node_order.get(gpu_node_name(g) or "", -1))
            for gpu in gpus:
                state._remember_gpu(gpu)
            state._refresh_gpus(gpus)
            report = state.gpus.rebuild(objects.pods)
            for pod in objects.pods:
                state._account_pod(pod)
        return state, report

    # --- objects -------------------------------------------------------------------------

    def guarded(self, obj: Mapping[str, Any], apply: Callable[[], object]) -> bool:
        """Apply a change for one object; an object that cannot be taken in is recorded in
        `problems` (naming it and the field) instead of stopping everything else."""
        try:
            apply()
        except FleetError as exc:
            self.problems.append(str(exc))
        except ValidationError as exc:
            issue = issues_from(exc)[0]
            name = text_at(obj, "metadata", "name")
            self.problems.append(f"{obj.get('kind')}/{name}: {issue.path}: {issue.message}")
        else:
            return True
        return False

    def upsert_template(self, template: Mapping[str, Any]) -> None:
        mode = text_at(template, "spec", "placement", "mode") or DEFAULT_PLACEMENT_MODE
        name = template["metadata"]["name"]
        self.templates[name] = mode if mode in PLACEMENT_MODES else DEFAULT_PLACEMENT_MODE
        self._refresh_pools()

    def upsert_pool(self, pool: Mapping[str, Any], *, refresh: bool = True) -> None:
        spec = pool.get("spec") or {}
        capacity = spec.get("capacityConfig") or {}
        oversubscription = Oversubscription.model_validate(capacity.get("oversubscription") or {})
        name = pool["metadata"]["name"]
        template = spec.get("schedulingConfigTemplate")
        self.pools[name] = PoolInfo(
            name, oversubscription, self._placement(template), is_default_pool(pool), template
        )
        if refresh:
            self._refresh_gpus(self.gpu_objects.values())

    def remove_pool(self, name: str) -> None:
        self.pools.pop(name, None)

    def upsert_node(self, node: Mapping[str, Any]) -> None:
        if node["metadata"]["name"] in self.nodes.index_of:
            self.nodes.update_node(node)
        else:
            self.nodes.add_node(node)

    def remove_node(self, name: str) -> None:
        self.nodes.remove_node(name)

    def upsert_gpu_node(self, gpu_node: dict[str, Any]) -> None:
        name = gpu_node["metadata"]["name"]
        self.gpu_nodes[name] = gpu_node
        self._refresh_node_gpus(name)

    def upsert_gpu(self, gpu: dict[str, Any]) -> None:
        previous = self.gpu_objects.get(gpu["metadata"]["name"])
        if previous is not None:
            self._forget_gpu(previous)
        self._remember_gpu(gpu)
        self._refresh_node_gpus(gpu_node_name(gpu) or "")

    def remove_gpu(self, name: str) -> None:
        gpu = self.gpu_objects.get(name)
        self.gpus.remove_gpu(name)
        if gpu is not None:
            self._forget_gpu(gpu)
            self._refresh_node_gpus(gpu_node_name(gpu) or "")

    def add_pod(self, pod: Mapping[str, Any]) -> RebuildReport:
        """A pod appeared or changed in the store. A bound pod takes its node resources and
        its GPUs (once, by UID); a pending one takes nothing."""
        report = self.gpus.rebuild([pod])
        self._account_pod(pod)
        return report

    def remove_pod(self, pod: Mapping[str, Any]) -> None:
        uid, _, _ = pod_key(pod.get("metadata") or {})
        self.gpus.release(uid)
        held = self.bound.pop(uid, None)
        if held is not None:
            self.nodes.remove_pod(*held)
            if held[1].native_gpus:
                self.native_gpus[held[0]] -= held[1].native_gpus
                self._mark_native_gpus(held[0])

    def assume(self, info: PodInfo, node: int) -> None:
        """Record a pod this scheduler placed (its node resources are already counted)."""
        self.bound[info.uid] = (node, info)

    # --- internals -----------------------------------------------------------------------

    def _account_pod(self, pod: Mapping[str, Any]) -> None:
        node_name = text_at(pod, "spec", "nodeName")
        if node_name is None or text_at(pod, "status", "phase") in TERMINAL_PHASES:
            return
        index = self.nodes.index_of.get(node_name)
        if index is None:
            return
        info = PodInfo.from_dict(pod)
        uid = info.uid
        if uid in self.bound:
            return
        self.nodes.add_pod(index, info)
        self.bound[uid] = (index, info)
        if info.native_gpus:
            self.native_gpus[index] = self.native_gpus.get(index, 0) + info.native_gpus
            self._mark_native_gpus(index)

    def _remember_gpu(self, gpu: dict[str, Any]) -> None:
        name = gpu["metadata"]["name"]
        self.gpu_objects[name] = gpu
        self.gpus_by_node.setdefault(gpu_node_name(gpu) or "", set()).add(name)

    def _forget_gpu(self, gpu: dict[str, Any]) -> None:
        name = gpu["metadata"]["name"]
        self.gpu_objects.pop(name, None)
        self.gpus_by_node.get(gpu_node_name(gpu) or "", set()).discard(name)

    def _refresh_node_gpus(self, node: str) -> None:
        """A node's GPUs share its host RAM and disk, so they are refreshed together."""
        self._refresh_gpus(self.gpu_objects[n] for n in sorted(self.gpus_by_node.get(node, ())))

    def _refresh_gpus(self, gpus: Iterable[dict[str, Any]]) -> None:
        batch = list(gpus)
        per_node = {node: len(names) for node, names in self.gpus_by_node.items()}
        for gpu in batch:
            try:
                self._refresh_gpu(gpu, per_node)
            except FleetError as exc:
                self.problems.append(str(exc))

    def _refresh_gpu(self, gpu: dict[str, Any], per_node: Mapping[str, int]) -> None:
        name = gpu["metadata"]["name"]
        node = gpu_node_name(gpu)
        node_index = self.nodes.index_of.get(node or "")
        if node is None or node_index is None:
            raise FleetError(
                f"GPU/{name}", "metadata.labels", f"its node {node!r} is not a known Node"
            )
        gpu_node = self.gpu_nodes.get(node)
        pool_name = gpu_pool_name(gpu, gpu_node)
        pool = self.pools.get(pool_name or "")
        status = gpu.get("status") or {}
        tflops_capacity, vram_capacity = gpu_capacity(name, gpu)
        tflops, vram = tflops_capacity.milli_value(), vram_capacity.value()
        info = (gpu_node or {}).get("status", {}).get("nodeInfo") or {}
        share = host_share(
            _optional_whole(node, "status.nodeInfo.ramSize", info.get("ramSize")),
            _optional_whole(node, "status.nodeInfo.dataDiskSize", info.get("dataDiskSize")),
            per_node.get(node, 1),
        )
        oversubscription = pool.oversubscription if pool else Oversubscription()
        phase = status.get("phase")
        state = READY
        if status.get("usedBy") == USED_BY_DEVICE_PLUGIN:
            state = DEVICE_PLUGIN
        elif phase is not None and phase != "Running":
            # A GPU written without a phase (a hand-made fleet) is taken as running.
            state = NOT_READY
        record = GpuRecord(
            name,
            node,
            pool_name,
            status.get("gpuModel"),
            status.get("uuid"),
            status.get("index"),
            status.get("numaNode"),
            tuple(gpu_nvlink_peers(gpu)),
        )
        self.gpus.add_gpu(
            record,
            node_index,
            state=state,
            capacity=(tflops, vram),
            virtual=(
                virtual_tflops(tflops, oversubscription),
                virtual_vram(vram, oversubscription, share),
            ),
        )

    def _placement(self, template: str | None) -> PlacementMode:
        """The mode of the template a pool names; the default without one (or before it
        arrives)."""
        return self.templates.get(template or "", DEFAULT_PLACEMENT_MODE)

    def _refresh_pools(self) -> None:
        for name, pool in list(self.pools.items()):
            self.pools[name] = PoolInfo(
                pool.name,
                pool.oversubscription,
                self._placement(pool.template),
                pool.is_default,
                pool.template,
            )

    def _mark_native_gpus(self, node: int) -> None:
        """Pods holding `nvidia.com/gpu` own whole GPUs through the device plugin: set that
        many GPUs of the node aside (ones without workers, highest index first) so they are
        never shared with TensorFusion workloads."""
        wanted = self.native_gpus.get(node, 0)
        arrays = self.gpus.arrays()
        workers = self.gpus.gpu_workers()
        first, last = np.searchsorted(arrays.node, [node, node + 1])
        mine = list(range(int(first), int(last)))
        declared = {
            i
            for i in mine
            if self.gpu_objects.get(self.gpus.records[i].name, {}).get("status", {}).get("usedBy")
            == USED_BY_DEVICE_PLUGIN
        }
        free = [
            i
            for i in reversed(mine)
            if i not in declared and workers[i] == 0 and arrays.state[i] != NOT_READY
        ]
        held = set(declared) | set(free[: max(wanted - len(declared), 0)])
        for i in mine:
            name = self.gpus.records[i].name
            if i in held and arrays.state[i] != DEVICE_PLUGIN:
                self.gpus.set_state(name, DEVICE_PLUGIN)
            elif i not in held and arrays.state[i] == DEVICE_PLUGIN:
                self.gpus.set_state(name, READY)


def _optional_whole(node: str, field: str, value: object) -> int | None:
    return None if value is None else checked_quantity(f"GPUNode/{node}", field, value).value()
