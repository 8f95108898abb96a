"""How a pool lets one of its nodes go, in the way it provisions them: with Karpenter, by
deleting the node's NodeClaim (Karpenter drains and terminates the node); with the pool's own
provisioning, by cordoning and draining the node and marking its GPUNodeClaim for release
(the provisioning part terminates the instance and deletes the claim). A pool that selects
existing nodes (AutoSelect) does not own them and never releases one."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tensorfusion.api.gpu_links import text_at
from tensorfusion.operator.nodepool.view import PoolView
from tensorfusion.operator.reconcilers.cache import owner_name
from tensorfusion.store.objects import JsonObject
from tensorfusion.store.timestamps import rfc3339

if TYPE_CHECKING:
    from tensorfusion.operator.reconcilers.context import Context

RELEASE_ANNOTATION = "tensor-fusion.ai/release-requested"
"""On a GPUNodeClaim: when its node was released (drained); its instance is to be terminated."""
DO_NOT_DISRUPT = "karpenter.sh/do-not-disrupt"
"""Karpenter's mark (annotation or label, "true") on a node that nothing may take away."""
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
"""A static pod's API mirror: the kubelet owns it, and deleting it drains nothing."""


def may_disrupt(node: Mapping[str, Any]) -> bool:
    """Whether the node is free of Karpenter's do-not-disrupt mark."""
    return all(
        text_at(node, "metadata", where, DO_NOT_DISRUPT) != "true"
        for where in ("annotations", "labels")
    )


def cordoned(node: Mapping[str, Any]) -> bool:
    """Whether the node is marked unschedulable: no new pod is placed on it."""
    return (node.get("spec") or {}).get("unschedulable") is True


def claim_of(view: PoolView, node: str) -> JsonObject | None:
    """The claim the node was provisioned through: the Karpenter NodeClaim (status.nodeName)
    or the GPUNodeClaim (spec.nodeName), by the pool's provisioningMode, a live one before one
    being released. None for an AutoSelect pool, and for a node no claim names (a claim whose
    node is not recorded yet, a node labelled by hand): the pool does not own such a node."""
    mode = view.spec.node_manager_config.provisioning_mode if view.spec else None
    if mode == "Karpenter":
        claims, path = view.node_claims, ("status", "nodeName")
    elif mode == "Provisioned":
        claims, path = view.gpu_node_claims, ("spec", "nodeName")
    else:
        return None
    named = [claim for claim in claims if text_at(claim, *path) == node]
    return min(named, key=releasing, default=None)


def releasing(claim: Mapping[str, Any]) -> bool:
    """Whether the claim's node is leaving: the claim is being deleted (Karpenter's finalizer
    holds it until the node is gone) or is marked for release."""
    metadata = claim.get("metadata") or {}
    marked = (metadata.get("annotations") or {}).get(RELEASE_ANNOTATION)
    return bool(metadata.get("deletionTimestamp") or marked)


def release_node(ctx: Context, view: PoolView, node: str, now: datetime) -> str | None:
    """Release `node` in the pool's provisioning way; returns what was done, or None when the
    node has no claim to release it through (AutoSelect pools have none) or is leaving.

    Draining deletes the pods: the store has no eviction call (the API server's eviction
    subresource would also honour PodDisruptionBudgets)."""
    claim = claim_of(view, node)
    if claim is None or releasing(claim):
        return None
    name = claim["metadata"]["name"]
    if claim["kind"] == "NodeClaim":
        ctx.delete(claim)
        return f"deleted NodeClaim {name}"
    current = ctx.cache.get("Node", node)
    if current is not None and not cordoned(current):
        ctx.patch(current, {"spec": {"unschedulable": True}})
    drained = [pod for pod in ctx.cache.children("Pod", node) if _drained(pod)]
    for pod in drained:
        ctx.delete(pod)
    latest = ctx.cache.get("GPUNodeClaim", name) or claim
    ctx.patch(latest, {"metadata": {"annotations": {RELEASE_ANNOTATION: rfc3339(now)}}})
    return f"cordoned, {len(drained)} pods deleted, GPUNodeClaim {name} marked for release"


def _drained(pod: Mapping[str, Any]) -> bool:
    """Whether draining the node deletes the pod: not a DaemonSet's (it would come back and
    is meant to run on every node), not a static pod's mirror, not already going."""
    metadata = pod.get("metadata") or {}
    return (
        owner_name(pod, "DaemonSet") is None
        and MIRROR_ANNOTATION not in (metadata.get("annotations") or {})
        and not metadata.get("deletionTimestamp")
    )
