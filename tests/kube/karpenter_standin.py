"""A stand-in for Karpenter, for tests: no Karpenter runs here, so this registers, for each
NodeClaim that has no node yet, the Node Karpenter would bring up (the claim's labels, its
instance type's label, that type's GPUs) with the GPU objects the node agent would report,
and records the node on the claim. Also the Karpenter-mode pools and pending pods the tests
provision for (the NodeClaim CRD is `tests.kube.karpenter_crd.nodeclaim_crd`)."""

from __future__ import annotations

from typing import Any

from tensorfusion.api.base import API_VERSION
from tensorfusion.api.gpu_links import DEFAULT_POOL_ANNOTATION, POOL_LABEL, text_at
from tensorfusion.operator.nodepool.instance_types import CATALOG, INSTANCE_TYPE_KEY
from tensorfusion.store.interface import ClusterStore
from tests.kube.instance_node import register_instance_node
from tests.unit.scheduler.cluster_builders import tf_pod

NODE_CLASS_REF = {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "gpu"}


def karpenter_pool(
    name: str,
    instance_types: list[str],
    *,
    capacity: dict[str, Any] | None = None,
    provisioner: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A default GPUPool in provisioningMode Karpenter that may claim `instance_types`, with
    limits at most the requests, so no VRAM expansion is needed."""
    return {
        "apiVersion": API_VERSION,
        "kind": "GPUPool",
        "metadata": {
            "name": name,
            "uid": f"uid-{name}",
            "annotations": {DEFAULT_POOL_ANNOTATION: "true"},
        },
        "spec": {
            "capacityConfig": capacity or {},
            "nodeManagerConfig": {
                "provisioningMode": "Karpenter",
                "nodeProvisioner": {
                    "karpenterNodeClassRef": NODE_CLASS_REF,
                    "gpuRequirements": [
                        {"key": INSTANCE_TYPE_KEY, "operator": "In", "values": instance_types},
                        {
                            "key": "karpenter.sh/capacity-type",
                            "operator": "In",
                            "values": ["on-demand"],
                        },
                    ],
                    **(provisioner or {}),
                },
            },
        },
    }


def pending_pod(
    name: str, tflops: str, vram: str, gpus: int = 1, **annotations: str
) -> dict[str, Any]:
    """A TensorFusion pod asking `tflops` and `vram` (request = limit) on each of `gpus`
    GPUs, which the scheduler has found no room for (PodScheduled=False, Unschedulable)."""
    pod = tf_pod(
        name,
        tflops_request=tflops,
        tflops_limit=tflops,
        vram_request=vram,
        vram_limit=vram,
        gpu_count=str(gpus),
        **annotations,
    )
    pod["status"] = {
        "phase": "Pending",
        "conditions": [
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": "0/0 nodes are available",
            }
        ],
    }
    return pod


def register_claimed_nodes(store: ClusterStore) -> list[str]:
    """Bring up a node for every NodeClaim without one, as Karpenter and then the node agent
    would; returns the names of the nodes registered."""
    registered = []
    for claim in store.list("NodeClaim"):
        if text_at(claim, "status", "nodeName"):
            continue
        name = claim["metadata"]["name"]
        requirement = claim["spec"]["requirements"][0]
        assert requirement["key"] == INSTANCE_TYPE_KEY
        shape = CATALOG[requirement["values"][0]]  # Karpenter's pick: the first, cheapest
        labels = claim["metadata"].get("labels", {})
        register_instance_node(
            store,
            name,
            shape,
            pool=labels[POOL_LABEL],
            labels=labels,
            cpu_cores=32,
            uuid_stem=name,
        )
        store.patch(
            "NodeClaim", name, {"status": {"nodeName": name, "providerID": f"stand-in://{name}"}}
        )
        registered.append(name)
    return registered
