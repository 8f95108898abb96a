"""Node -> GPUNode: a node that a pool's `nodeManagerConfig.nodeSelector` selects (or, for a
pool that provisions its nodes, one labelled with the pool's name) gets a
GPUNode of the same name, labelled with that pool (the first such pool by name) and owned by
the node; when no pool selects it any more, or the node is gone, that GPUNode is deleted.
GPUNodes made by hand or by the agent (not owned by their node) are left alone."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tensorfusion.api.base import API_VERSION
from tensorfusion.api.gpu_links import OWNER_LABEL, POOL_LABEL, text_at
from tensorfusion.operator.reconcilers.cache import owner_name
from tensorfusion.operator.reconcilers.context import Context
from tensorfusion.operator.reconcilers.work_queue import Key, Result
from tensorfusion.scheduler.plugins.node_selection import NodeSelectorTerm, read_required
from tensorfusion.scheduler.plugins.spec_reader import SpecReader

PROVISIONING_MODES = ("Karpenter", "Provisioned")


def pool_selects(pool: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    """Whether the pool takes the node: a pool that provisions its nodes takes those labelled
    with its name (as it labels the nodes it provisions); otherwise its node selector picks
    it, and a pool without one (nodes registered by hand) or with a malformed one picks none."""
    manager = (pool.get("spec") or {}).get("nodeManagerConfig") or {}
    if manager.get("provisioningMode") in PROVISIONING_MODES and text_at(
        node, "metadata", "labels", POOL_LABEL
    ) == text_at(pool, "metadata", "name"):
        return True
    selector = manager.get("nodeSelector")
    reader = SpecReader()
    terms = read_required(reader, selector, "spec.nodeManagerConfig.nodeSelector")
    if terms is None or reader.problems:
        return False
    labels = (node.get("metadata") or {}).get("labels") or {}
    name = text_at(node, "metadata", "name")
    return any(_term_selects(term, labels, name) for term in terms)


def _term_selects(term: NodeSelectorTerm, labels: Mapping[str, str], name: str | None) -> bool:
    if term.empty:
        return False
    return all(req.matches(labels.get(req.key)) for req in term.expressions) and all(
        (field.name == name) != field.negated for field in term.fields
    )


def reconcile_node(ctx: Context, key: Key) -> Result:
    node = ctx.cache.get("Node", key.name)
    gpu_node = ctx.cache.get("GPUNode", key.name)
    pool = None
    if node is not None:
        pool = next((p for p in ctx.cache.all("GPUPool") if pool_selects(p, node)), None)
    if pool is None:
        if gpu_node is not None and owner_name(gpu_node, "Node") == key.name:
            ctx.delete(gpu_node)
        return Result()
    assert node is not None
    pool_name = pool["metadata"]["name"]
    if gpu_node is None:
        ctx.create(
            {
                "apiVersion": API_VERSION,
                "kind": "GPUNode",
                "metadata": {
                    "name": key.name,
                    "labels": {OWNER_LABEL: pool_name},
                    "ownerReferences": [_owned_by(node)],
                },
                "spec": {"manageMode": "AutoSelect"},
            }
        )
    elif (
        owner_name(gpu_node, "Node") == key.name
        and text_at(gpu_node, "metadata", "labels", OWNER_LABEL) != pool_name
    ):
        ctx.patch(gpu_node, {"metadata": {"labels": {OWNER_LABEL: pool_name}}})
    return Result()


def _owned_by(node: Mapping[str, Any]) -> dict[str, Any]:
    metadata = node["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "name": metadata["name"],
        "uid": metadata.get("uid"),
    }
