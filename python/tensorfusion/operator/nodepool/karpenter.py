"""Karpenter NodeClaims for a pool: one per node to add, asking Karpenter for the chosen
instance type with the pool's node class, requirements, taints, labels and annotations.
Karpenter copies a claim's labels onto its node, so the pool label makes the node join the
pool.

A claimed node (a NodeClaim's, or a GPUNodeClaim's in provisioningMode Provisioned) is on its
way, its capacity counted as coming so that nothing is claimed twice for it, until it has
registered, its agent has reported its GPUs, and SETTLE has passed (`arriving`)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from tensorfusion.api.gpu_links import POOL_LABEL, text_at
from tensorfusion.api.pool import GPUPoolSpec
from tensorfusion.errors import ConfigError
from tensorfusion.operator.nodepool.instance_types import (
    CATALOG,
    INSTANCE_TYPE_KEY,
    NodeShape,
    interchangeable,
)
from tensorfusion.operator.nodepool.view import PoolView
from tensorfusion.store.objects import JsonObject
from tensorfusion.store.timestamps import parse_rfc3339

API_VERSION = "karpenter.sh/v1"
KIND = "NodeClaim"
PLANNED_TYPE_ANNOTATION = "tensor-fusion.ai/instance-type"
"""The instance type a claim was made for: its shape until its node says which it got."""
GPU_RESOURCE = "nvidia.com/gpu"
SETTLE = timedelta(seconds=30)
"""How long a registered node still counts as on its way: the scheduler retries the pending
pods when a node joins (after at most its 10 s backoff), and until it has, those pods would
otherwise look as if they needed yet another node."""


def arriving(view: PoolView, node_name: str | None, now: datetime) -> tuple[bool, datetime | None]:
    """Whether a claim's node `node_name` (None: not registered) is still on its way, and
    when a registered one with its GPUs stops being so (None: not known yet, or arrived).
    Until its GPUs are reported a registered node adds no capacity, so it counts as on its
    way however old it is."""
    node = view.nodes.get(node_name or "")
    created = text_at(node, "metadata", "creationTimestamp")
    if node is None or not view.gpus.get(node_name or "") or created is None:
        return True, None
    settled = parse_rfc3339(created) + SETTLE
    return (True, settled) if settled > now else (False, None)


def claim_names(pool: str, taken: set[str], count: int) -> list[str]:
    """`count` names for new claims of `pool` that no claim has: `<pool>-<digest>` of the
    lowest free ordinals, so that the same view always yields the same names."""
    names: list[str] = []
    ordinal = 0
    while len(names) < count:
        digest = hashlib.sha256(f"{pool}/{ordinal}".encode()).hexdigest()[:8]
        name = f"{pool}-{digest}"
        if name not in taken:
            names.append(name)
        ordinal += 1
    return names


def node_claim(
    view: PoolView, spec: GPUPoolSpec, name: str, shape: NodeShape, shapes: Sequence[NodeShape]
) -> JsonObject:
    """The NodeClaim for one node of `shape`. Karpenter may pick any of the pool's instance
    types with the same GPUs (model and count), the chosen one first: more GPUs than planned
    could pass maxResources."""
    provisioner = spec.node_manager_config.node_provisioner
    if provisioner is None or provisioner.karpenter_node_class_ref is None:
        raise ConfigError(
            "nodeProvisioner.karpenterNodeClassRef", "missing: no NodeClaim without it"
        )
    ref = provisioner.karpenter_node_class_ref
    types = interchangeable(shape, shapes)
    requirements: list[dict[str, Any]] = [
        {"key": INSTANCE_TYPE_KEY, "operator": "In", "values": types}
    ]
    requirements += [
        r.model_dump(by_alias=True, exclude_none=True)
        for r in provisioner.gpu_requirements
        if r.key != INSTANCE_TYPE_KEY
    ]
    metadata: dict[str, Any] = {
        "name": name,
        "labels": {**provisioner.gpu_node_labels, POOL_LABEL: view.name},
        "annotations": {
            **provisioner.gpu_node_annotations,
            PLANNED_TYPE_ANNOTATION: shape.instance_type,
        },
    }
    uid = text_at(view.pool, "metadata", "uid")
    if uid:
        # Claims go with their pool: a deleted pool leaves no node running.
        metadata["ownerReferences"] = [
            {
                "apiVersion": view.pool.get("apiVersion"),
                "kind": "GPUPool",
                "name": view.name,
                "uid": uid,
            }
        ]
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": metadata,
        "spec": {
            "nodeClassRef": {"group": ref.group, "kind": ref.kind, "name": ref.name},
            "requirements": requirements,
            "taints": [t.model_dump(by_alias=True) for t in provisioner.gpu_taints],
            "resources": {"requests": {GPU_RESOURCE: str(shape.gpus)}},
        },
    }


def claim_shape(view: PoolView, claim: JsonObject) -> NodeShape | None:
    """The shape of a claim's node: the instance type its node reports once registered,
    else the one it was made for; None when neither is known here."""
    node = view.nodes.get(text_at(claim, "status", "nodeName") or "")
    instance_type = text_at(node, "metadata", "labels", INSTANCE_TYPE_KEY) or text_at(
        claim, "metadata", "annotations", PLANNED_TYPE_ANNOTATION
    )
    return CATALOG.get(instance_type or "")


def in_flight(view: PoolView, now: datetime) -> tuple[list[NodeShape], datetime | None]:
    """The shapes of the pool's claims whose nodes are still on their way, and when the
    next registered one stops counting as such (None if none will)."""
    shapes: list[NodeShape] = []
    settles: list[datetime] = []
    for claim in view.node_claims:
        if (claim.get("metadata") or {}).get("deletionTimestamp"):
            continue
        shape = claim_shape(view, claim)
        if shape is None:
            continue
        on_its_way, settles_at = arriving(view, text_at(claim, "status", "nodeName"), now)
        if on_its_way:
            shapes.append(shape)
        if settles_at is not None:
            settles.append(settles_at)
    return shapes, min(settles, default=None)


def claims_cost(view: PoolView) -> Decimal:
    """Dollars per hour of the pool's claimed nodes, at on-demand prices."""
    shapes = (claim_shape(view, claim) for claim in view.node_claims)
    return sum((shape.cost_per_hour for shape in shapes if shape is not None), Decimal(0))
