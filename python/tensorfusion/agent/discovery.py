"""The GPUs this control plane pools: discovered through NVML, or declared in a fleet file; and
their registration in the store.

Registration makes the store match the objects while leaving alone what belongs to running
work: pods already stored (their allocations survive restarts) and the allocation fields of a
status, which the scheduler and reconcilers own.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from tensorfusion.agent.host import host_resources
from tensorfusion.agent.nvml import NvmlDevice, read_devices
from tensorfusion.api.gpu_links import text_at
from tensorfusion.api.names import dns_subdomain_problem
from tensorfusion.api.pool import Oversubscription
from tensorfusion.errors import AlreadyExistsError, ConfigError, ConflictError, NotFoundError
from tensorfusion.scheduler.capacity import host_share, virtual_tflops, virtual_vram
from tensorfusion.scheduler.fleet import load_fleet
from tensorfusion.scheduler.fleet_generator import (
    GpuFacts,
    HostResources,
    capacity_status,
    gpu_name,
    gpu_node_object,
    gpu_object,
    node_object,
    pool_object,
)
from tensorfusion.scheduler.gpu_models import lookup_model
from tensorfusion.store.interface import ClusterStore

log = logging.getLogger(__name__)

Object = dict[str, Any]

DEFAULT_POOL = "default-pool"
REGISTERED_KINDS = ("SchedulingConfigTemplate", "GPUPool", "Node", "GPUNode", "GPU", "Pod")
ALLOCATION_FIELDS = frozenset(
    {"available", "availableTFlops", "availableVRAM", "allocatedPods", "runningApps"}
)
"""Status fields that describe what is allocated, not the hardware: registration keeps the
stored values."""
Outcome = Literal["created", "updated", "unchanged"]
_ATTEMPTS = 3
"""Tries per object when another writer changes it between our read and write."""


def discover_nvml(node_name: str, state_dir: Path) -> list[Object] | None:
    """The objects that describe this host and its GPUs, as NVML reports them, in the default
    pool; None when there is no driver or it reports no GPU."""
    if problem := dns_subdomain_problem(node_name):
        raise ConfigError("node name", problem)
    devices = read_devices()
    if not devices:
        if devices is not None:
            log.info("the NVIDIA driver reports no GPU on this host")
        return None
    return host_objects(node_name, devices, host_resources(state_dir))


def host_objects(node: str, devices: list[NvmlDevice], host: HostResources) -> list[Object]:
    """A default GPUPool, the Node, its GPUNode and one GPU per device.

    A GPU whose model is not in the model table has no known peak TFLOPS: it is registered
    with 0 TFLOPS and phase Pending, which the scheduler never places work on (rather than
    guessing a peak that limits would then be paced against); its status message says how to
    declare it instead."""
    oversubscription = Oversubscription()
    names = {device.index: gpu_name(node, device.index) for device in devices}
    facts = [_gpu_facts(device, names) for device in devices]
    share = host_share(host.memory_bytes, host.disk_bytes, len(devices))
    capacity = capacity_status(
        total=(sum(gpu.tflops_milli for gpu in facts), sum(gpu.vram_bytes for gpu in facts)),
        virtual=(
            sum(virtual_tflops(gpu.tflops_milli, oversubscription) for gpu in facts),
            sum(virtual_vram(gpu.vram_bytes, oversubscription, share) for gpu in facts),
        ),
    )
    objects = [
        pool_object(DEFAULT_POOL, oversubscription, nodes=1, gpus=len(devices), capacity=capacity),
        node_object(node, labels={}, host=host, gpus=len(devices)),
        gpu_node_object(
            node,
            DEFAULT_POOL,
            gpu_model=", ".join(sorted({gpu.model for gpu in facts})),
            gpus=len(devices),
            ram_bytes=host.memory_bytes,
            disk_bytes=host.disk_bytes,
            capacity=capacity,
        ),
    ]
    for device, gpu in zip(devices, facts, strict=True):
        obj = gpu_object(gpu, node, DEFAULT_POOL)
        if gpu.tflops_milli == 0:
            log.warning(
                "GPU %d (%s) is not in the model table: registered as Pending, without TFLOPS",
                device.index,
                device.name,
            )
            obj["status"].update(
                phase="Pending",
                message=f"unknown GPU model {device.name!r}: its peak TFLOPS is unknown, so no "
                "work is placed on it; declare it in a fleet file with status.capacity.tflops",
            )
        objects.append(obj)
    return objects


def _gpu_facts(device: NvmlDevice, names: Mapping[int, str]) -> GpuFacts:
    try:
        model = lookup_model(device.name)
        model_name, tflops_milli = model.name, model.tflops.milli_value()
    except ConfigError:
        model_name, tflops_milli = device.name, 0
    return GpuFacts(
        name=names[device.index],
        model=model_name,
        tflops_milli=tflops_milli,
        vram_bytes=device.memory_bytes,
        uuid=device.uuid,
        index=device.index,
        numa_node=device.numa_node,
        nvlink_peers=tuple(names[peer] for peer in device.nvlink_peers),
    )


def fleet_objects(path: Path) -> list[Object]:
    """The objects of a fleet file, each after those it refers to; FleetError naming the
    object and field of the first problem (and how many more there are)."""
    return list(load_fleet(path).documents())


@dataclass
class RegisterReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0

    def __str__(self) -> str:
        return f"{self.created} created, {self.updated} updated, {self.unchanged} unchanged"


def register(store: ClusterStore, objects: Iterable[Mapping[str, Any]]) -> RegisterReport:
    """Makes the store hold `objects`: missing ones are created; present ones get the given
    spec, labels, annotations and status (keeping the stored allocation fields), except pods,
    which stay as stored. Running it again with the same objects changes nothing."""
    report = RegisterReport()
    for obj in objects:
        kind = obj.get("kind")
        if kind not in REGISTERED_KINDS:
            raise ConfigError("kind", f"must be one of {', '.join(REGISTERED_KINDS)}, got {kind!r}")
        for attempt in range(_ATTEMPTS):
            try:
                outcome = _register_one(store, kind, obj)
                break
            except (ConflictError, AlreadyExistsError):
                if attempt == _ATTEMPTS - 1:
                    raise
        setattr(report, outcome, getattr(report, outcome) + 1)
    return report


def _register_one(store: ClusterStore, kind: str, obj: Mapping[str, Any]) -> Outcome:
    name = text_at(obj, "metadata", "name")
    if name is None:
        raise ConfigError("metadata.name", f"required: a {kind} is known by its name")
    try:
        stored = store.get(kind, name, text_at(obj, "metadata", "namespace"))
    except NotFoundError:
        store.create(obj)
        return "created"
    if kind == "Pod":
        return "unchanged"
    merged = _merged(stored, obj)
    if merged == stored:
        return "unchanged"
    store.update(merged)
    return "updated"


def _merged(stored: Object, desired: Mapping[str, Any]) -> Object:
    """`stored` with the desired labels, annotations, spec and status, keeping its metadata
    (uid, resourceVersion: the update is refused if another writer came first) and its
    allocation fields."""
    merged = dict(stored)
    metadata = merged["metadata"] = dict(stored["metadata"])
    wanted = desired.get("metadata") or {}
    for key in ("labels", "annotations"):
        if wanted.get(key):
            metadata[key] = dict(wanted[key])
        else:
            metadata.pop(key, None)
    if "spec" in desired:
        merged["spec"] = desired["spec"]
    else:
        merged.pop("spec", None)
    kept = {k: v for k, v in (stored.get("status") or {}).items() if k in ALLOCATION_FIELDS}
    given = {k: v for k, v in (desired.get("status") or {}).items() if k not in ALLOCATION_FIELDS}
    if kept or given:
        merged["status"] = {**given, **kept}
    else:
        merged.pop("status", None)
    return merged
