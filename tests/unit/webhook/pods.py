"""Pods, pools and a kubelet's reading of a container's environment, for the webhook's tests.
enabled-replicas counts go to an in-memory LocalStore, the store of embedded mode."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from tensorfusion.api.annotations import ENABLED_LABEL
from tensorfusion.api.gpu_links import DEFAULT_POOL_ANNOTATION
from tensorfusion.store.interface import ClusterStore
from tensorfusion.store.local import LocalStore
from tensorfusion.webhook.decision import Admission, Decision, decide
from tensorfusion.webhook.replica_slots import ReplicaSlots
from tests.kube.kubelet import resolved_env as kubelet_env
from tests.kube.patches import json_patch

IMAGE = "registry.example/tensor-fusion:1.2.3"


def pool(name: str, *, default: bool = False, default_qos: str | None = None) -> dict[str, Any]:
    obj: dict[str, Any] = {"apiVersion": "tensor-fusion.ai/v1", "kind": "GPUPool"}
    obj["metadata"] = {"name": name}
    if default:
        obj["metadata"]["annotations"] = {DEFAULT_POOL_ANNOTATION: "true"}
    if default_qos is not None:
        obj["spec"] = {"qosConfig": {"defaultQoS": default_qos}}
    return obj


POOLS = [pool("shared", default=True), pool("training")]


def tf_pod(
    annotations: Mapping[str, str] | None = None,
    *,
    containers: tuple[str, ...] = ("main",),
    enabled: str | None = "true",
) -> dict[str, Any]:
    """A pod with TFLOPS 100 and VRAM 16Gi limits unless `annotations` say otherwise."""
    labels = {} if enabled is None else {ENABLED_LABEL: enabled}
    given = (
        {"tensor-fusion.ai/tflops-limit": "100", "tensor-fusion.ai/vram-limit": "16Gi"}
        if annotations is None
        else dict(annotations)
    )
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "ns", "labels": labels, "annotations": given},
        "spec": {"containers": [{"name": name, "image": "cuda"} for name in containers]},
    }


def owned_by(pod: dict[str, Any], name: str = "rs", uid: str = "rs-uid") -> dict[str, Any]:
    """`pod` as a replica of ReplicaSet `name`."""
    reference = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": name, "uid": uid}
    pod["metadata"]["ownerReferences"] = [{**reference, "controller": True}]
    return pod


def admission(
    pools: list[dict[str, Any]] | None = None,
    *,
    store: ClusterStore | None = None,
    migration: bool = False,
) -> Admission:
    """`pools` (else POOLS), counts in `store` (else a fresh in-memory one)."""
    return Admission(
        pools=lambda: POOLS if pools is None else pools,
        slots=ReplicaSlots(LocalStore(":memory:") if store is None else store),
        image=IMAGE,
        progressive_migration=migration,
    )


def decided(pod: Mapping[str, Any], pools: list[dict[str, Any]] | None = None) -> Decision:
    return decide(pod, admission(pools))


def converted(pod: Mapping[str, Any], pools: list[dict[str, Any]] | None = None) -> Any:
    """`pod` with the webhook's patch applied, as the API server applies it."""
    decision = decided(pod, pools)
    assert decision.allowed, decision.message
    return json_patch(copy.deepcopy(pod), decision.patch)


def container(pod: Mapping[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in pod["spec"]["containers"] if c["name"] == name)


def resolved_env(pod: Mapping[str, Any], name: str) -> dict[str, str]:
    """A container's environment as the kubelet resolves it once the pod is stored and bound."""
    return kubelet_env(pod, container(pod, name))
