"""What a provisioned GPU instance becomes in the cluster, for the stand-ins of Karpenter and
of EC2 node registration: its Node (host resources of its instance type) and the GPU objects
its node agent would report."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from tensorfusion.operator.nodepool.instance_types import INSTANCE_TYPE_KEY, NodeShape
from tensorfusion.scheduler.fleet_generator import (
    GpuFacts,
    HostResources,
    gpu_name,
    gpu_object,
    node_object,
)
from tensorfusion.store.interface import ClusterStore
from tensorfusion.store.timestamps import parse_rfc3339


def newest_node(store: ClusterStore) -> datetime:
    """When the newest Node registered (its creationTimestamp, stamped by the store)."""
    return max(parse_rfc3339(n["metadata"]["creationTimestamp"]) for n in store.list("Node"))


def register_instance_node(
    store: ClusterStore,
    name: str,
    shape: NodeShape,
    *,
    pool: str,
    labels: Mapping[str, str],
    cpu_cores: int,
    uuid_stem: str,
    spec: Mapping[str, Any] | None = None,
) -> None:
    """Create the Node `name` of `shape` (its instance-type label added to `labels`), then
    its GPUs, in `pool`, with UUIDs `GPU-<uuid_stem>-<index>`."""
    host = HostResources(
        cpu_cores=cpu_cores,
        allocatable_cpu=cpu_cores,
        memory_bytes=shape.ram_bytes,
        allocatable_memory=shape.ram_bytes,
        disk_bytes=shape.disk_bytes,
    )
    node = node_object(
        name, labels={**labels, INSTANCE_TYPE_KEY: shape.instance_type}, host=host, gpus=shape.gpus
    )
    if spec is not None:
        node["spec"] = dict(spec)
    store.create(node)
    for index in range(shape.gpus):
        facts = GpuFacts(
            name=gpu_name(name, index),
            model=shape.gpu_model,
            tflops_milli=shape.tflops_milli_per_gpu,
            vram_bytes=shape.vram_per_gpu,
            uuid=f"GPU-{uuid_stem}-{index}",
            index=index,
            numa_node=0,
            nvlink_peers=(),
        )
        store.create(gpu_object(facts, name, pool))
