"""Objects for reconciler tests: a cluster whose one pool selects nodes labelled
`gpu=yes`, its nodes and GPUs, and pods holding GPUs by their `gpu-ids`."""

from __future__ import annotations

from typing import Any

from tensorfusion.api.base import API_VERSION
from tensorfusion.scheduler.fleet_generator import (
    GpuFacts,
    HostResources,
    gpu_name,
    gpu_node_object,
    gpu_object,
    node_object,
)
from tensorfusion.scheduler.gpu_models import GIB
from tests.unit.scheduler.cluster_builders import tf_pod

GPU_LABEL = {"gpu": "yes"}
HOST = HostResources(
    cpu_cores=8,
    allocatable_cpu=8,
    memory_bytes=64 * GIB,
    allocatable_memory=60 * GIB,
    disk_bytes=400 * GIB,
)
TFLOPS_MILLI = 100_000
VRAM = 40 * GIB
OVERSUBSCRIPTION = {
    "tflopsOversellRatio": 300,
    "vramExpandToHostMem": 50,
    "vramExpandToHostDisk": 10,
}


def cluster(pools: list[dict[str, Any]] | None = None, name: str = "c") -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "TensorFusionCluster",
        "metadata": {"name": name},
        "spec": {"gpuPools": [pool_entry("p")] if pools is None else pools},
    }


def pool_entry(name: str, oversubscription: dict[str, int] | None = None) -> dict[str, Any]:
    selector = {
        "nodeSelectorTerms": [
            {"matchExpressions": [{"key": "gpu", "operator": "In", "values": ["yes"]}]}
        ]
    }
    return {
        "name": name,
        "isDefault": True,
        "specTemplate": {
            "capacityConfig": {"oversubscription": oversubscription or OVERSUBSCRIPTION},
            "nodeManagerConfig": {"nodeSelector": selector},
        },
    }


def node(name: str, labels: dict[str, str] | None = None, gpus: int = 2) -> dict[str, Any]:
    return node_object(name, labels=GPU_LABEL if labels is None else labels, host=HOST, gpus=gpus)


def agent_gpu_node(name: str, pool: str, gpus: int = 2) -> dict[str, Any]:
    """A GPUNode as the agent registers it: host RAM and disk in `nodeInfo`."""
    obj = gpu_node_object(
        name,
        pool,
        gpu_model="A100-40",
        gpus=gpus,
        ram_bytes=HOST.memory_bytes,
        disk_bytes=HOST.disk_bytes,
        capacity={},
    )
    obj["status"] = {"nodeInfo": obj["status"]["nodeInfo"]}
    return obj


def gpu(node_name: str, index: int, pool: str) -> dict[str, Any]:
    facts = GpuFacts(
        name=gpu_name(node_name, index),
        model="A100-40",
        tflops_milli=TFLOPS_MILLI,
        vram_bytes=VRAM,
        uuid=f"GPU-{node_name}-{index}",
        index=index,
        numa_node=0,
        nvlink_peers=(),
    )
    return gpu_object(facts, node_name, pool)


def pod(name: str, node_name: str, gpu_names: list[str], tflops: str, vram: str) -> dict[str, Any]:
    """A running pod holding `tflops` and `vram` (requests and limits) on each GPU named."""
    obj = tf_pod(
        name,
        node_name=node_name,
        tflops_request=tflops,
        tflops_limit=tflops,
        vram_request=vram,
        vram_limit=vram,
        gpu_ids=",".join(gpu_names),
        gpu_count=str(len(gpu_names)),
    )
    obj["status"] = {"phase": "Running"}
    return obj
