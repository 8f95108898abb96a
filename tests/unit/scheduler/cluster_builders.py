"""Small hand-built clusters for scheduler tests (generated fleets are used where size
matters)."""

from __future__ import annotations

from typing import Any

from tensorfusion.api.scheduler_config import SCHEDULER_NAME
from tensorfusion.scheduler.cluster_state import ClusterState
from tensorfusion.scheduler.fleet import Fleet

GI = 1024**3


def node(name: str, *, cpu: str = "64", memory: str = "512Gi", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "spec": {},
        "status": {"allocatable": {"cpu": cpu, "memory": memory, "pods": "110"}},
    }
    body.update(extra)
    return body


def gpu_node(
    name: str, pool: str = "pool-a", *, ram: str | None = "1Ti", disk: str | None = "4Ti"
) -> dict[str, Any]:
    info = {}
    if ram is not None:
        info["ramSize"] = ram
    if disk is not None:
        info["dataDiskSize"] = disk
    return {
        "apiVersion": "tensor-fusion.ai/v1",
        "kind": "GPUNode",
        "metadata": {"name": name, "labels": {"tensor-fusion.ai/owner": pool}},
        "status": {"nodeInfo": info},
    }


def gpu(
    name: str,
    node_name: str,
    *,
    tflops: str = "989",
    vram: str = "80Gi",
    pool: str = "pool-a",
    index: int = 0,
    **status: Any,
) -> dict[str, Any]:
    return {
        "apiVersion": "tensor-fusion.ai/v1",
        "kind": "GPU",
        "metadata": {
            "name": name,
            "labels": {"tensor-fusion.ai/owner": node_name, "tensor-fusion.ai/gpupool": pool},
        },
        "status": {
            "phase": "Running",
            "gpuModel": "H100",
            "capacity": {"tflops": tflops, "vram": vram},
            "index": index,
            **status,
        },
    }


def pool(
    name: str = "pool-a",
    *,
    template: str | None = None,
    oversubscription: dict[str, int] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"capacityConfig": {"oversubscription": oversubscription or {}}}
    if template:
        spec["schedulingConfigTemplate"] = template
    return {
        "apiVersion": "tensor-fusion.ai/v1",
        "kind": "GPUPool",
        "metadata": {"name": name},
        "spec": spec,
    }


def template(name: str, mode: str) -> dict[str, Any]:
    return {
        "apiVersion": "tensor-fusion.ai/v1",
        "kind": "SchedulingConfigTemplate",
        "metadata": {"name": name},
        "spec": {"placement": {"mode": mode}},
    }


def tf_pod(
    name: str, *, uid: str | None = None, node_name: str | None = None, **annotations: str
) -> dict[str, Any]:
    """A TensorFusion pod; annotation keyword names are the keys without the prefix, with
    underscores for dashes (vram_limit=...)."""
    spec: dict[str, Any] = {
        "schedulerName": SCHEDULER_NAME,
        "containers": [{"name": "main", "image": "cuda"}],
    }
    if node_name:
        spec["nodeName"] = node_name
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "default",
            "uid": uid or f"uid-{name}",
            "labels": {"tensor-fusion.ai/enabled": "true"},
            "annotations": {
                f"tensor-fusion.ai/{key.replace('_', '-')}": value
                for key, value in annotations.items()
            },
        },
        "spec": spec,
    }


def two_gpu_nodes(gpus_per_node: int) -> ClusterState:
    """Nodes n1 and n2 of pool-a, with H100s n1-gpu-0... and nothing allocated."""
    state, _ = ClusterState.build(
        Fleet(
            nodes=[node("n1"), node("n2")],
            gpu_nodes=[gpu_node("n1"), gpu_node("n2")],
            gpus=[
                gpu(f"n{n}-gpu-{i}", f"n{n}", index=i) for n in (1, 2) for i in range(gpus_per_node)
            ],
            pools=[pool("pool-a")],
            pods=[],
            templates=[],
        )
    )
    return state
