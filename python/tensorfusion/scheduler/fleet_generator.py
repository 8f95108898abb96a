"""Synthetic fleets for simulations and benchmarks: identical nodes of one GPU model in one
pool, partly filled with running pods that obey the capacity rule.

Pods are sized in sixteenths of a GPU: requests are 1/8, 1/4, 1/2 or a whole GPU (per GPU,
as the annotations are), so that a fill of 1.0 packs every GPU exactly. Everything is built
as plain dicts, which keeps 10,000 nodes to a few seconds."""

from __future__ import annotations

import functools
import random
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tensorfusion.api.annotations import (
    ENABLED_LABEL,
    GPU_COUNT,
    GPU_IDS,
    GPU_POOL,
    NATIVE_GPU_RESOURCE,
    TFLOPS_LIMIT,
    TFLOPS_REQUEST,
    VRAM_LIMIT,
    VRAM_REQUEST,
)
from tensorfusion.api.base import API_VERSION
from tensorfusion.api.gpu_links import (
    DEFAULT_POOL_ANNOTATION,
    HOSTNAME_LABEL,
    OWNER_LABEL,
    POOL_LABEL,
)
from tensorfusion.api.names import dns_label_problem
from tensorfusion.api.node import USED_BY_TENSOR_FUSION
from tensorfusion.api.pool import Oversubscription
from tensorfusion.api.quantity import Quantity
from tensorfusion.api.scheduler_config import SCHEDULER_NAME
from tensorfusion.errors import ConfigError
from tensorfusion.gc_pause import collector_paused
from tensorfusion.scheduler.capacity import host_share, virtual_tflops, virtual_vram
from tensorfusion.scheduler.fleet import Fleet, Object
from tensorfusion.scheduler.gpu_models import GIB, GPUModel, lookup_model

UNITS = 16
"""A GPU is handed out in sixteenths: requests are even counts (whole eighths), limits any."""
MAX_GPUS_PER_NODE = 16
_REQUEST_SIZES = (2, 4, 8, 16)
_REQUEST_WEIGHTS = (35, 30, 20, 15)
_BURST_SHARE = 0.3
"""Share of pods whose limits exceed their requests."""
_TFLOPS_BURST = (2, 3, 4)
"""A bursting pod's TFLOPS limit is this many times its request."""
_MULTI_GPU_SHARE = 0.05
"""Share of pods of half a GPU or more that take two GPUs of one node."""
_ZONES = ("us-east-1a", "us-east-1b", "us-east-1c")
_REGION = "us-east-1"
_IMAGE = "pytorch/pytorch:2.4.0-cuda12.4-cudnn9-runtime"
_NAMESPACE = "default"
_UID_ROOT = uuid.uuid5(uuid.NAMESPACE_DNS, "fleet.tensor-fusion.ai")


def generate_fleet(
    nodes: int,
    gpus_per_node: int,
    model: str,
    fill: float = 0.0,
    *,
    seed: int = 0,
    pool: str = "default",
) -> Fleet:
    """`nodes` nodes of `gpus_per_node` GPUs each, with pods whose requests take `fill` of
    the pool's VRAM; the same arguments give the same fleet."""
    _check_whole("--nodes", nodes, 1, None)
    _check_whole("--gpus-per-node", gpus_per_node, 1, MAX_GPUS_PER_NODE)
    _check_whole("--seed", seed, None, None)
    if isinstance(fill, bool) or not isinstance(fill, int | float) or not 0 <= fill <= 1:
        raise ConfigError("--fill", f"must be a number from 0 to 1, got {fill!r}")
    if problem := dns_label_problem(pool):
        raise ConfigError("--pool", problem)
    try:
        gpu_model = lookup_model(model)
    except ConfigError as exc:
        raise ConfigError("--model", exc.message) from exc
    shape = _Shape.of(gpu_model, gpus_per_node, Oversubscription())
    with collector_paused():
        plans, used = _plan_pods(random.Random(f"{seed}/pods"), shape, nodes, fill)
        layout = _Layout(shape, pool, seed, nodes, used)
        fleet = Fleet(pools=[layout.pool_object()])
        for node in range(nodes):
            fleet.nodes.append(layout.node_object(node))
            fleet.gpu_nodes.append(layout.gpu_node_object(node))
            fleet.gpus.extend(layout.gpu_object(node, index) for index in range(gpus_per_node))
        fleet.pods = [layout.pod_object(number, plan) for number, plan in enumerate(plans)]
    return fleet


def _check_whole(flag: str, value: object, low: int | None, high: int | None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(flag, f"must be a whole number, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        bound = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise ConfigError(flag, f"must be {bound}, got {value}")


@dataclass(frozen=True)
class _Shape:
    """The amounts every node of the fleet shares."""

    model: GPUModel
    gpus: int
    oversubscription: Oversubscription
    cpu_cores: int
    memory_bytes: int
    disk_bytes: int
    tflops_unit: int
    """Milli-TFLOPS of a sixteenth, rounded down: sixteen of them never exceed the GPU even
    when each is rounded up to whole milli-TFLOPS, as the allocator counts."""
    vram_unit: int
    """Bytes of a sixteenth, rounded down."""
    tflops_cap: int
    """Sixteenths the TFLOPS limits on one GPU may add up to."""
    vram_cap: int
    """Sixteenths the VRAM limits on one GPU may add up to."""

    @classmethod
    def of(cls, model: GPUModel, gpus: int, oversubscription: Oversubscription) -> _Shape:
        host = model.host
        memory = host.memory_bytes * gpus // 8
        disk = host.disk_bytes * gpus // 8
        vram = virtual_vram(model.vram_bytes, oversubscription, host_share(memory, disk, gpus))
        return cls(
            model=model,
            gpus=gpus,
            oversubscription=oversubscription,
            cpu_cores=max(1, host.cpu_cores * gpus // 8),
            memory_bytes=memory,
            disk_bytes=disk,
            tflops_unit=model.tflops.milli_value() // UNITS,
            vram_unit=model.vram_bytes // UNITS,
            # The rule for a GPU of sixteen units: its virtual TFLOPS in the same units.
            tflops_cap=virtual_tflops(UNITS, oversubscription),
            vram_cap=vram * UNITS // model.vram_bytes,
        )

    @property
    def tflops_milli(self) -> int:
        return self.model.tflops.milli_value()

    @property
    def allocatable_cpu(self) -> int:
        """The node's CPUs less one for the system daemons."""
        return max(1, self.cpu_cores - 1)

    @property
    def allocatable_memory(self) -> int:
        """The node's memory less about 5% (whole GiB) for the system daemons."""
        return self.memory_bytes - (self.memory_bytes // 20 // GIB + 1) * GIB


@dataclass(frozen=True)
class _PodPlan:
    """One pod, in sixteenths of a GPU (per GPU), and the fleet-wide indices of its GPUs."""

    gpus: tuple[int, ...]
    request: int
    tflops_limit: int
    vram_limit: int


class _FreeGpus:
    """GPUs grouped by free sixteenths, so that a random GPU with room is found without
    scanning the fleet."""

    def __init__(self, count: int) -> None:
        self.free = [UNITS] * count
        self._groups: list[list[int]] = [[] for _ in range(UNITS + 1)]
        self._groups[UNITS] = list(range(count))
        self._slot = list(range(count))

    def largest(self) -> int:
        return next((free for free in range(UNITS, 0, -1) if self._groups[free]), 0)

    def pick(self, rng: random.Random, need: int) -> int:
        """A GPU with at least `need` free, every such GPU equally likely."""
        groups = self._groups[need:]
        position = rng.randrange(sum(map(len, groups)))
        for group in groups[:-1]:
            if position < len(group):
                return group[position]
            position -= len(group)
        return groups[-1][position]

    def take(self, gpu: int, units: int) -> None:
        group, slot = self._groups[self.free[gpu]], self._slot[gpu]
        last = group.pop()
        if last != gpu:
            group[slot] = last
            self._slot[last] = slot
        self.free[gpu] -= units
        target = self._groups[self.free[gpu]]
        self._slot[gpu] = len(target)
        target.append(gpu)


def _plan_pods(
    rng: random.Random, shape: _Shape, nodes: int, fill: float
) -> tuple[list[_PodPlan], list[int]]:
    """The pods, and the sixteenths requested on each GPU."""
    count = nodes * shape.gpus
    free = _FreeGpus(count)
    # Limits above requests, per GPU: capped so that the rest of the GPU can still be
    # requested at limit == request without the limits passing the virtual capacity.
    tflops_extra = [0] * count
    vram_extra = [0] * count
    remaining = 2 * round(fill * UNITS / 2 * count)
    plans: list[_PodPlan] = []
    while remaining > 0:
        size = min(rng.choices(_REQUEST_SIZES, _REQUEST_WEIGHTS)[0], remaining, free.largest())
        gpus = _pick_gpus(rng, free, shape.gpus, size, remaining)
        tflops_limit = vram_limit = size
        if rng.random() < _BURST_SHARE:
            burst = size * (rng.choice(_TFLOPS_BURST) - 1)
            if all(tflops_extra[gpu] + burst <= shape.tflops_cap - UNITS for gpu in gpus):
                tflops_limit += burst
            if all(vram_extra[gpu] + size // 2 <= shape.vram_cap - UNITS for gpu in gpus):
                vram_limit += size // 2
        for gpu in gpus:
            free.take(gpu, size)
            tflops_extra[gpu] += tflops_limit - size
            vram_extra[gpu] += vram_limit - size
        remaining -= size * len(gpus)
        plans.append(_PodPlan(gpus, size, tflops_limit, vram_limit))
    return plans, [UNITS - left for left in free.free]


def _pick_gpus(
    rng: random.Random, free: _FreeGpus, per_node: int, size: int, remaining: int
) -> tuple[int, ...]:
    first = free.pick(rng, size)
    if size < UNITS // 2 or remaining < 2 * size or rng.random() >= _MULTI_GPU_SHARE:
        return (first,)
    base = first - first % per_node
    partners = [
        gpu for gpu in range(base, base + per_node) if gpu != first and free.free[gpu] >= size
    ]
    return (first, rng.choice(partners)) if partners else (first,)


class _Layout:
    """Names and objects of one generated fleet."""

    def __init__(self, shape: _Shape, pool: str, seed: int, nodes: int, used: list[int]) -> None:
        self.shape, self.pool, self.seed = shape, pool, seed
        self.used = used
        """Sixteenths requested on each GPU, by fleet-wide index."""
        self.node_names = [f"node-{node:05d}" for node in range(nodes)]
        self.gpu_names = [
            gpu_name(name, index) for name in self.node_names for index in range(shape.gpus)
        ]
        self.host = HostResources(
            cpu_cores=shape.cpu_cores,
            allocatable_cpu=shape.allocatable_cpu,
            memory_bytes=shape.memory_bytes,
            allocatable_memory=shape.allocatable_memory,
            disk_bytes=shape.disk_bytes,
        )
        self._pod_amounts: dict[tuple[int, int, int, int], tuple[str, ...]] = {}

    def uid(self, name: str) -> str:
        return str(uuid.uuid5(_UID_ROOT, f"{self.seed}/{name}"))

    def pool_object(self) -> Object:
        shape, nodes = self.shape, len(self.node_names)
        gpus = nodes * shape.gpus
        return pool_object(
            self.pool,
            shape.oversubscription,
            nodes=nodes,
            gpus=gpus,
            capacity=self._capacity(gpus, sum(self.used)),
        )

    def node_object(self, node: int) -> Object:
        shape, name = self.shape, self.node_names[node]
        model = shape.model
        return node_object(
            name,
            labels={
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "topology.kubernetes.io/region": _REGION,
                "topology.kubernetes.io/zone": _ZONES[node % len(_ZONES)],
                "node.kubernetes.io/instance-type": model.host.instance_type,
                "nvidia.com/gpu.product": model.product.replace(" ", "-"),
                "nvidia.com/gpu.count": str(shape.gpus),
            },
            host=self.host,
            gpus=shape.gpus,
        )

    def gpu_node_object(self, node: int) -> Object:
        shape, name = self.shape, self.node_names[node]
        first = node * shape.gpus
        used = sum(self.used[first : first + shape.gpus])
        return gpu_node_object(
            name,
            self.pool,
            gpu_model=shape.model.name,
            gpus=shape.gpus,
            ram_bytes=shape.memory_bytes,
            disk_bytes=shape.disk_bytes,
            capacity=self._capacity(shape.gpus, used),
        )

    def gpu_object(self, node: int, index: int) -> Object:
        shape, node_name = self.shape, self.node_names[node]
        first = node * shape.gpus
        name, used = self.gpu_names[first + index], self.used[first + index]
        peers = self.gpu_names[first : first + shape.gpus] if shape.model.nvlink else []
        facts = GpuFacts(
            name=name,
            model=shape.model.name,
            tflops_milli=shape.tflops_milli,
            vram_bytes=shape.model.vram_bytes,
            uuid=f"GPU-{self.uid(name)}",
            index=index,
            numa_node=index * 2 // shape.gpus,
            nvlink_peers=tuple(peer for peer in peers if peer != name),
        )
        available = (
            shape.tflops_milli - used * shape.tflops_unit,
            shape.model.vram_bytes - used * shape.vram_unit,
        )
        return gpu_object(facts, node_name, self.pool, available=available)

    def _capacity(self, gpus: int, used: int) -> dict[str, str]:
        """Totals over `gpus` GPUs on which `used` sixteenths are requested."""
        shape = self.shape
        over, tflops, vram = shape.oversubscription, shape.tflops_milli, shape.model.vram_bytes
        host = host_share(shape.memory_bytes, shape.disk_bytes, shape.gpus)
        return capacity_status(
            total=(gpus * tflops, gpus * vram),
            virtual=(gpus * virtual_tflops(tflops, over), gpus * virtual_vram(vram, over, host)),
            available=(
                gpus * tflops - used * shape.tflops_unit,
                gpus * vram - used * shape.vram_unit,
            ),
        )

    def pod_object(self, number: int, plan: _PodPlan) -> Object:
        name = f"worker-{number}"
        tflops_request, tflops_limit, vram_request, vram_limit, cpu, memory = self._amounts(plan)
        annotations = {
            TFLOPS_REQUEST: tflops_request,
            TFLOPS_LIMIT: tflops_limit,
            VRAM_REQUEST: vram_request,
            VRAM_LIMIT: vram_limit,
            GPU_POOL: self.pool,
            GPU_IDS: ",".join(self.gpu_names[gpu] for gpu in plan.gpus),
        }
        if len(plan.gpus) > 1:
            annotations[GPU_COUNT] = str(len(plan.gpus))
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": _NAMESPACE,
                "uid": self.uid(f"{_NAMESPACE}/{name}"),
                "labels": {ENABLED_LABEL: "true"},
                "annotations": annotations,
            },
            "spec": {
                "nodeName": self.node_names[plan.gpus[0] // self.shape.gpus],
                "schedulerName": SCHEDULER_NAME,
                "containers": [
                    {
                        "name": "worker",
                        "image": _IMAGE,
                        "resources": {"requests": {"cpu": cpu, "memory": memory}},
                    }
                ],
            },
            "status": {"phase": "Running"},
        }

    def _amounts(self, plan: _PodPlan) -> tuple[str, ...]:
        """The annotation values and container requests of a pod of this plan's sizes; there
        are only a few dozen kinds of pod, so each is formatted once."""
        key = (plan.request, plan.tflops_limit, plan.vram_limit, len(plan.gpus))
        found = self._pod_amounts.get(key)
        if found is None:
            shape = self.shape
            # Host CPU and memory in proportion to the GPU share, at half the node's rate so
            # that GPUs, not CPUs, are what runs out first.
            share, whole = plan.request * len(plan.gpus), 2 * UNITS * shape.gpus
            found = (
                _milli_text(plan.request * shape.tflops_unit),
                _milli_text(plan.tflops_limit * shape.tflops_unit),
                _bytes_text(plan.request * shape.vram_unit),
                _bytes_text(plan.vram_limit * shape.vram_unit),
                f"{shape.allocatable_cpu * 1000 * share // whole}m",
                _bytes_text(shape.allocatable_memory * share // whole),
            )
            self._pod_amounts[key] = found
        return found


# --- Object builders, shared with the node agent, which registers the GPUs it discovers ----

Amounts = tuple[int, int]
"""Milli-TFLOPS and bytes."""


@dataclass(frozen=True)
class HostResources:
    """What a node offers to pods besides its GPUs."""

    cpu_cores: int
    allocatable_cpu: int
    memory_bytes: int
    allocatable_memory: int
    disk_bytes: int
    """Local disk, where VRAM may spill to."""


@dataclass(frozen=True)
class GpuFacts:
    """One GPU as its node reports it."""

    name: str
    model: str
    tflops_milli: int
    vram_bytes: int
    uuid: str
    index: int
    numa_node: int | None
    nvlink_peers: tuple[str, ...]


def gpu_name(node: str, index: int) -> str:
    return f"{node}-gpu-{index}"


def capacity_status(
    total: Amounts, virtual: Amounts, available: Amounts | None = None
) -> dict[str, str]:
    """The capacity fields of a pool's or GPUNode's status; `available` is left out when no
    allocation is known."""
    status = {
        "totalTFlops": _milli_text(total[0]),
        "totalVRAM": _bytes_text(total[1]),
        "virtualTFlops": _milli_text(virtual[0]),
        "virtualVRAM": _bytes_text(virtual[1]),
    }
    if available is not None:
        status["availableTFlops"] = _milli_text(available[0])
        status["availableVRAM"] = _bytes_text(available[1])
    return status


def pool_object(
    name: str,
    oversubscription: Oversubscription,
    *,
    nodes: int,
    gpus: int,
    capacity: Mapping[str, str],
) -> Object:
    """The default GPUPool (pods that name no pool go there)."""
    return {
        "apiVersion": API_VERSION,
        "kind": "GPUPool",
        "metadata": {"name": name, "annotations": {DEFAULT_POOL_ANNOTATION: "true"}},
        "spec": {
            "capacityConfig": {"oversubscription": oversubscription.model_dump(by_alias=True)}
        },
        "status": {
            "phase": "Running",
            "totalNodes": nodes,
            "readyNodes": nodes,
            "totalGPUs": gpus,
            **capacity,
        },
    }


def node_object(name: str, *, labels: Mapping[str, str], host: HostResources, gpus: int) -> Object:
    """A Kubernetes Node with `gpus` GPUs; `labels` come after the hostname label."""
    common = {
        NATIVE_GPU_RESOURCE: str(gpus),
        # The kubelet's default 110, raised when eighths of every GPU would need more.
        "pods": str(max(110, 8 * gpus)),
        "ephemeral-storage": _bytes_text(host.disk_bytes),
    }
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {HOSTNAME_LABEL: name, **labels}},
        "spec": {},
        "status": {
            "capacity": {
                "cpu": str(host.cpu_cores),
                "memory": _bytes_text(host.memory_bytes),
                **common,
            },
            "allocatable": {
                "cpu": str(host.allocatable_cpu),
                "memory": _bytes_text(host.allocatable_memory),
                **common,
            },
        },
    }


def gpu_node_object(
    name: str,
    pool: str,
    *,
    gpu_model: str,
    gpus: int,
    ram_bytes: int,
    disk_bytes: int,
    capacity: Mapping[str, str],
) -> Object:
    """The GPUNode of a node: its host RAM and disk bound VRAM expansion."""
    return {
        "apiVersion": API_VERSION,
        "kind": "GPUNode",
        "metadata": {"name": name, "labels": {OWNER_LABEL: pool}},
        "spec": {"manageMode": "AutoSelect"},
        "status": {
            "phase": "Running",
            "totalGPUs": gpus,
            "managedGPUs": gpus,
            **capacity,
            "nodeInfo": {
                "hostname": name,
                "gpuModel": gpu_model,
                "gpuCount": gpus,
                "ramSize": _bytes_text(ram_bytes),
                "dataDiskSize": _bytes_text(disk_bytes),
            },
        },
    }


def gpu_object(gpu: GpuFacts, node: str, pool: str, *, available: Amounts | None = None) -> Object:
    """A GPU of `node` in `pool`, running and shared through TensorFusion."""
    status: dict[str, Any] = {
        "phase": "Running",
        "vendor": "NVIDIA",
        "gpuModel": gpu.model,
        "capacity": {"tflops": _milli_text(gpu.tflops_milli), "vram": _bytes_text(gpu.vram_bytes)},
    }
    if available is not None:
        status["available"] = {
            "tflops": _milli_text(available[0]),
            "vram": _bytes_text(available[1]),
        }
    status.update(uuid=gpu.uuid, index=gpu.index)
    if gpu.numa_node is not None:
        status["numaNode"] = gpu.numa_node
    status.update(
        nodeSelector={HOSTNAME_LABEL: node},
        nvlinkPeers=list(gpu.nvlink_peers),
        usedBy=USED_BY_TENSOR_FUSION,
    )
    return {
        "apiVersion": API_VERSION,
        "kind": "GPU",
        "metadata": {"name": gpu.name, "labels": {OWNER_LABEL: node, POOL_LABEL: pool}},
        "status": status,
    }


@functools.cache
def _milli_text(milli: int) -> str:
    """Milli-units as a plain decimal: 61812 -> "61.812"."""
    whole, part = divmod(milli, 1000)
    return f"{whole}.{part:03d}".rstrip("0") if part else str(whole)


@functools.cache
def _bytes_text(count: int) -> str:
    """Bytes in the largest binary unit that divides them (Gi, Mi), else plain."""
    for suffix, size in (("Gi", GIB), ("Mi", 1024**2)):
        if count % size == 0 and count:
            return f"{count // size}{suffix}"
    return str(Quantity.from_int(count))
