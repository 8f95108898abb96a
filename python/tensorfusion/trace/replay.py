"""A trace as the scheduler sees it: its nodes as a fleet (the fleet generator's objects, one
pool) and its pods as pending Pods, plus the inflation protocol that replays a pod list.

A pod's `gpu_milli` becomes a compute-percent request and limit, so its TFLOPS follow the
GPU it lands on. VRAM has no percent form: it is the same share of the smallest card the pod
may run on, so that on every card its VRAM share is at most its compute share and packing is
decided, as in the trace, by the share alone. Bytes are rounded down: shares that add up to a
whole GPU in the trace (470 + 530 thousandths) fit on one, as they did there."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction

from tensorfusion.api.annotations import (
    COMPUTE_PERCENT_LIMIT,
    COMPUTE_PERCENT_REQUEST,
    ENABLED_LABEL,
    GPU_COUNT,
    GPU_MODEL,
    GPU_POOL,
    VRAM_LIMIT,
    VRAM_REQUEST,
)
from tensorfusion.api.base import API_VERSION
from tensorfusion.api.names import dns_label_problem
from tensorfusion.api.pool import Oversubscription
from tensorfusion.api.scheduler_config import SCHEDULER_NAME
from tensorfusion.api.scheduling_template import PlacementMode
from tensorfusion.errors import ConfigError
from tensorfusion.scheduler.capacity import host_share, virtual_tflops, virtual_vram
from tensorfusion.scheduler.fleet import Fleet, Object
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
from tensorfusion.trace.gpu_specs import GpuSpec
from tensorfusion.trace.openb import MILLI, Trace, TraceNode, TracePod

MIB = 1024**2
NO_OVERSUBSCRIPTION = Oversubscription(
    tflopsOversellRatio=100, vramExpandToHostMem=0, vramExpandToHostDisk=0
)
"""What the trace's cluster had: every request and limit within the physical GPU."""
PRODUCT_LABEL = "nvidia.com/gpu.product"
_NAMESPACE = "default"
_IMAGE = "trace-replay"
_UID_ROOT = uuid.uuid5(uuid.NAMESPACE_DNS, "trace.tensor-fusion.ai")


def fleet_from_trace(
    trace: Trace,
    *,
    pool: str = "default",
    oversubscription: Oversubscription = NO_OVERSUBSCRIPTION,
    placement: PlacementMode | None = None,
) -> Fleet:
    """The trace's nodes and GPUs in one default pool, nothing allocated; with `placement`,
    the pool names a SchedulingConfigTemplate of that mode."""
    if problem := dns_label_problem(pool):
        raise ConfigError("--pool", problem)
    fleet = Fleet()
    totals = [0, 0, 0, 0]  # physical and virtual milli-TFLOPS and bytes of the pool
    for node in trace.nodes:
        fleet.nodes.append(_node(node))
        fleet.gpu_nodes.append(_gpu_node(node, pool, oversubscription, totals))
        fleet.gpus.extend(_gpus(node, pool))
    gpus = len(fleet.gpus)
    capacity = capacity_status(
        (totals[0], totals[1]), (totals[2], totals[3]), (totals[0], totals[1])
    )
    pool_doc = pool_object(
        pool, oversubscription, nodes=len(trace.nodes), gpus=gpus, capacity=capacity
    )
    if placement is not None:
        template = f"{pool}-{placement.lower()}"
        pool_doc["spec"]["schedulingConfigTemplate"] = template
        fleet.templates.append(
            {
                "apiVersion": API_VERSION,
                "kind": "SchedulingConfigTemplate",
                "metadata": {"name": template},
                "spec": {"placement": {"mode": placement}},
            }
        )
    fleet.pools.append(pool_doc)
    return fleet


def _host(node: TraceNode) -> HostResources:
    # The trace gives what pods may use; cores are rounded up here and set exactly below.
    cores = -(-node.cpu_milli // MILLI)
    memory = node.memory_mib * MIB
    return HostResources(cores, cores, memory, memory, disk_bytes=0)


def _node(node: TraceNode) -> Object:
    labels = {"nvidia.com/gpu.count": str(node.gpus)}
    if node.model is not None:
        labels[PRODUCT_LABEL] = _label_value(node.model)
    obj = node_object(node.name, labels=labels, host=_host(node), gpus=node.gpus)
    for section in ("capacity", "allocatable"):
        obj["status"][section]["cpu"] = f"{node.cpu_milli}m"
    return obj


def _gpu_node(
    node: TraceNode, pool: str, oversubscription: Oversubscription, totals: list[int]
) -> Object:
    model = node.model
    tflops, vram = (model.tflops.milli_value(), model.vram_bytes) if model else (0, 0)
    host = _host(node)
    share = host_share(host.memory_bytes, host.disk_bytes, node.gpus)
    amounts = (
        node.gpus * tflops,
        node.gpus * vram,
        node.gpus * virtual_tflops(tflops, oversubscription),
        node.gpus * virtual_vram(vram, oversubscription, share),
    )
    for position, amount in enumerate(amounts):
        totals[position] += amount
    return gpu_node_object(
        node.name,
        pool,
        gpu_model=model.name if model else "",
        gpus=node.gpus,
        ram_bytes=host.memory_bytes,
        disk_bytes=host.disk_bytes,
        capacity=capacity_status(amounts[:2], amounts[2:], amounts[:2]),
    )


def _gpus(node: TraceNode, pool: str) -> Iterator[Object]:
    model = node.model
    if model is None:
        return
    for index in range(node.gpus):
        name = gpu_name(node.name, index)
        facts = GpuFacts(
            name=name,
            model=model.name,
            tflops_milli=model.tflops.milli_value(),
            vram_bytes=model.vram_bytes,
            uuid=f"GPU-{uuid.uuid5(_UID_ROOT, name)}",
            index=index,
            numa_node=None,
            nvlink_peers=(),
        )
        yield gpu_object(facts, node.name, pool, available=(facts.tflops_milli, facts.vram_bytes))


def _label_value(model: GpuSpec) -> str:
    return model.product.replace(" ", "-")


@dataclass(frozen=True)
class PodShape:
    """How trace pods become Pods on one fleet."""

    smallest_vram: int
    """Bytes of the smallest card of the fleet: the VRAM basis of a pod that may run on any."""
    request_fraction: Fraction = Fraction(1)
    """Requests as a share of limits (the limits are the trace's shares); below 1 only on a
    pool whose oversubscription lets limits add up past the physical GPU."""

    @classmethod
    def of(cls, trace: Trace, request_fraction: Fraction = Fraction(1)) -> PodShape:
        cards = [node.model.vram_bytes for node in trace.nodes if node.model and node.gpus]
        return cls(min(cards, default=0), request_fraction)


def pod_object(pod: TracePod, name: str, shape: PodShape, pool: str = "default") -> Object:
    """A pending Pod asking what the trace's pod asked, for the tensor-fusion scheduler."""
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    if pod.num_gpu:
        limit = Fraction(pod.gpu_milli, MILLI)
        request = limit * shape.request_fraction
        basis = min((model.vram_bytes for model in pod.gpu_spec), default=shape.smallest_vram)
        labels[ENABLED_LABEL] = "true"
        annotations = {
            COMPUTE_PERCENT_REQUEST: _decimal(request * 100),
            COMPUTE_PERCENT_LIMIT: _decimal(limit * 100),
            VRAM_REQUEST: str(basis * request.numerator // request.denominator),
            VRAM_LIMIT: str(basis * limit.numerator // limit.denominator),
            GPU_POOL: pool,
        }
        if pod.num_gpu > 1:
            annotations[GPU_COUNT] = str(pod.num_gpu)
        if len(pod.gpu_spec) == 1:
            annotations[GPU_MODEL] = pod.gpu_spec[0].name
    spec: Object = {
        "schedulerName": SCHEDULER_NAME,
        "containers": [
            {
                "name": "main",
                "image": _IMAGE,
                "resources": {
                    "requests": {"cpu": f"{pod.cpu_milli}m", "memory": f"{pod.memory_mib}Mi"}
                },
            }
        ],
    }
    if len(pod.gpu_spec) > 1:
        # One gpu-model names one model; a set of them is a node affinity on the product.
        values = sorted({_label_value(model) for model in pod.gpu_spec})
        term = {"matchExpressions": [{"key": PRODUCT_LABEL, "operator": "In", "values": values}]}
        spec["affinity"] = {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}
            }
        }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": _NAMESPACE,
            "uid": str(uuid.uuid5(_UID_ROOT, f"{_NAMESPACE}/{name}")),
            "labels": labels,
            "annotations": annotations,
        },
        "spec": spec,
        "status": {"phase": "Pending"},
    }


def listed_pods(trace: Trace, shape: PodShape, pool: str = "default") -> Iterator[Object]:
    """Every pod of the trace's lists, each named after its list and itself (`default-p0`)."""
    for name, pods in trace.pod_lists.items():
        prefix = name.lower().replace("_", "-")
        for pod in pods:
            yield pod_object(pod, f"{prefix}-{pod.name}", shape, pool)


def _decimal(value: Fraction) -> str:
    """A percentage as a plain decimal, rounded up past the fourth place."""
    scaled = -(-value.numerator * 10_000 // value.denominator)
    whole, part = divmod(scaled, 10_000)
    return f"{whole}.{part:04d}".rstrip("0") if part else str(whole)


def inflated(
    pods: Sequence[TracePod], capacity_milli: int, until: Fraction, seed: int
) -> Iterator[TracePod]:
    """The inflation protocol: the pods shuffled, then drawn again with replacement, until
    the GPU demand that has arrived reaches `until` times the capacity (the last pod is the
    one that reaches it)."""
    if not any(pod.gpu_demand_milli for pod in pods):
        raise ValueError("the pod list asks for no GPU: its demand never arrives")
    rng = random.Random(seed)
    order = list(pods)
    rng.shuffle(order)
    target, arrived = capacity_milli * until, 0
    for pod in _topped_up(order, rng):
        if arrived >= target:
            return
        arrived += pod.gpu_demand_milli
        yield pod


def _topped_up(order: list[TracePod], rng: random.Random) -> Iterator[TracePod]:
    yield from order
    while True:
        yield rng.choice(order)
