"""The GPUs this control plane pools: discovered through NVML, or declared in a fleet file; and
their registration in the store.

Registration makes the store match the objects while leaving alone what belongs to running
work: pods already stored (their allocations survive restarts) and the allocation fields of a
status, which the scheduler and reconcilers own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tensorfusion.agent.host import host_resources
from tensorfusion.agent.nvml import NvmlDevice, read_devices
from tensorfusion.api.gpu_links import text_at
from tensorfusion.api.names import dns_subdomain_problem
from tensorfusion.api.pool import Oversubscription
from tensorfusion.errors import ConfigError
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
from tensorfusion.store.interface import ClusterStore, WriteOutcome

log = logging.getLogger(__name__)

Object = dict[str, Any]

DEFAULT_POOL = "default-pool"
REGISTERED_KINDS = ("SchedulingConfigTemplate", "GPUPool", "Node", "GPUNode", "GPU", "Pod")
ALLOCATION_FIELDS = frozenset(
    {"available", "availableTFlops", "availableVRAM", "allocatedPods", "runningApps"}
)
"""Status fields that describe what is allocated, not the hardware: registration keeps the
stored values."""
PROGRESS_EVERY_S = 1.0
"""Registration that runs longer than this reports its progress this often."""


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


def host_objects(
    node: str,
    devices: list[NvmlDevice],
    host: HostResources,
    *,
    declared_tflops: Callable[[str], int | None] | None = None,
) -> list[Object]:
    """A default GPUPool, the Node, its GPUNode and one GPU per device.

    A GPU whose model is not in the model table takes its peak from `declared_tflops` (given
    NVML's device name, milli-TFLOPS or None; in Kubernetes, a ProviderConfig's hardware
    metadata). Without either its peak is unknown: it is registered with 0 TFLOPS and phase
    Pending, which the scheduler never places work on (rather than guessing a peak that limits
    would then be paced against); its status message says how to declare it instead."""
    oversubscription = Oversubscription()
    names = {device.index: gpu_name(node, device.index) for device in devices}
    facts = [_gpu_facts(device, names, declared_tflops) for device in devices]
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
                "work is placed on it; declare it in a fleet file with status.capacity.tflops "
                "(in Kubernetes: a ProviderConfig's spec.hardwareMetadata[].fp16TFlops)",
            )
        objects.append(obj)
    return objects


def _gpu_facts(
    device: NvmlDevice,
    names: Mapping[int, str],
    declared_tflops: Callable[[str], int | None] | None,
) -> GpuFacts:
    try:
        model = lookup_model(device.name)
        model_name, tflops_milli = model.name, model.tflops.milli_value()
    except ConfigError:
        declared = declared_tflops(device.name) if declared_tflops is not None else None
        model_name, tflops_milli = device.name, declared or 0
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


def fleet_objects(path: Path, text: str | None = None) -> list[Object]:
    """The objects of a fleet file (or of `text`, read from it), each after those it refers
    to; FleetError naming the object and field of the first problem (and how many more there
    are)."""
    return list(load_fleet(path, text).documents())


@dataclass(frozen=True)
class RegisterReport:
    """What registration was given, and what became of it in the store."""

    nodes: int = 0
    """Distinct names of the Nodes and GPUNodes."""
    gpus: int = 0
    pools: int = 0
    pods: int = 0
    templates: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0

    @classmethod
    def of(
        cls, objects: Sequence[Mapping[str, Any]], outcomes: Sequence[WriteOutcome]
    ) -> RegisterReport:
        kinds = [obj["kind"] for obj in objects]
        node_names = {
            text_at(obj, "metadata", "name") for obj in objects if obj["kind"] in _NODE_KINDS
        }
        return cls(
            nodes=len(node_names),
            gpus=kinds.count("GPU"),
            pools=kinds.count("GPUPool"),
            pods=kinds.count("Pod"),
            templates=kinds.count("SchedulingConfigTemplate"),
            created=outcomes.count("created"),
            updated=outcomes.count("updated"),
            unchanged=outcomes.count("unchanged"),
        )

    def __str__(self) -> str:
        """`registered 2 nodes, 8 GPUs, 1 pool: 13 created`; pods and templates only when
        there are any, and only the outcomes that happened."""
        given = [(self.nodes, "node"), (self.gpus, "GPU"), (self.pools, "pool")]
        given += [(n, noun) for n, noun in ((self.pods, "pod"), (self.templates, _TEMPLATE)) if n]
        things = ", ".join(f"{n} {noun}{'s' * (n != 1)}" for n, noun in given)
        outcomes = [(self.created, "created"), (self.updated, "updated")]
        outcomes.append((self.unchanged, "unchanged"))
        done = ", ".join(f"{n} {outcome}" for n, outcome in outcomes if n)
        return f"registered {things}: {done or 'nothing'}"


_NODE_KINDS = frozenset({"Node", "GPUNode"})
_TEMPLATE = "scheduling template"


def register(
    store: ClusterStore,
    objects: Sequence[Mapping[str, Any]],
    *,
    progress: Callable[[str], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> RegisterReport:
    """Makes the store hold `objects`, in one transaction: missing ones are created; present
    ones get the given spec, labels, annotations and status (keeping the stored allocation
    fields), except pods, which stay as stored. Running it again with the same objects writes
    nothing. A registration that runs long reports its progress to `progress`."""
    for obj in objects:
        kind = obj.get("kind")
        if kind not in REGISTERED_KINDS:
            raise ConfigError("kind", f"must be one of {', '.join(REGISTERED_KINDS)}, got {kind!r}")
        if text_at(obj, "metadata", "name") is None:
            raise ConfigError("metadata.name", f"required: a {kind} is known by its name")
    reported = objects if progress is None else _reporting(objects, progress, clock)
    return RegisterReport.of(objects, store.upsert_many(reported, _MERGES))


def _reporting(
    objects: Sequence[Mapping[str, Any]],
    progress: Callable[[str], None],
    clock: Callable[[], float],
) -> Iterator[Mapping[str, Any]]:
    """`objects`, telling `progress` how many have been passed on, and how fast, every
    PROGRESS_EVERY_S."""
    start = clock()
    due = start + PROGRESS_EVERY_S
    for count, obj in enumerate(objects):
        if (now := clock()) >= due:
            due = now + PROGRESS_EVERY_S
            rate = count / (now - start)
            progress(f"registering: {count:,} of {len(objects):,} objects ({rate:,.0f}/s)")
        yield obj


def _merged(stored: Object, desired: Mapping[str, Any]) -> Object:
    """`stored` with the desired labels, annotations, spec and status, keeping its metadata
    and its allocation fields."""
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


# Stored pods stay as they are: their allocations survive restarts.
_MERGES = {kind: _merged for kind in REGISTERED_KINDS if kind != "Pod"}
