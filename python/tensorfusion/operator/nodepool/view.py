"""Everything a node-pool part reads about one pool, gathered from the reconcilers' cache
(or, for the management API, from a snapshot of the store): the pool and its parsed spec, the
cluster's computing vendor, its nodes with their GPUs and pods, the pods waiting for a GPU,
its claims, and the node agents' current revision."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from tensorfusion.api.cluster import ComputingVendor, TensorFusionCluster
from tensorfusion.api.field_errors import issues_from
from tensorfusion.api.gpu_links import text_at
from tensorfusion.api.pool import GPUPool, GPUPoolSpec
from tensorfusion.operator.nodepool.config import NodePoolConfig
from tensorfusion.operator.reconcilers.cache import ObjectCache, owner_name
from tensorfusion.scheduler.loop import UNSCHEDULABLE_REASON
from tensorfusion.store.objects import JsonObject

REVISION_LABEL = "controller-revision-hash"
"""What the DaemonSet controller labels each of its pods, and its ControllerRevisions, with:
the hash of the pod template the pod was made from."""


@dataclass(frozen=True)
class AgentRevision:
    """The node agents' DaemonSet as the rolling update sees it."""

    current: str | None
    """The newest ControllerRevision's hash: the template agents should run; None when the
    DaemonSet has no revision yet (or does not exist)."""
    pods: Mapping[str, JsonObject] = field(default_factory=dict)
    """Per node, the agent pod on it."""


@dataclass(frozen=True)
class PoolView:
    name: str
    pool: JsonObject
    spec: GPUPoolSpec | None
    """None when the pool's spec does not validate; `problem` says why."""
    problem: str | None
    vendor: ComputingVendor | None
    """The owning cluster's `computingVendor`, when it has one."""
    gpu_nodes: list[JsonObject]
    nodes: Mapping[str, JsonObject]
    """The Kubernetes Node of each of the pool's GPUNodes that has one, by name."""
    gpus: Mapping[str, list[JsonObject]]
    """Per node, its GPU objects."""
    pods: Mapping[str, list[JsonObject]]
    """Per node, the pods bound to it."""
    unscheduled: list[JsonObject]
    """Pods with no node whose scheduling failed (PodScheduled=False, Unschedulable), of
    every pool: which pool each wants is the provisioning's reading."""
    pools: list[JsonObject]
    """Every GPUPool (a pod without a pool annotation goes to the default one)."""
    node_claims: list[JsonObject]
    """Karpenter NodeClaims labelled with this pool."""
    gpu_node_claims: list[JsonObject]
    """GPUNodeClaims labelled with this pool."""
    agent: AgentRevision


def pool_view(cache: ObjectCache, name: str, config: NodePoolConfig) -> PoolView | None:
    """The view of pool `name`; None when there is no such pool."""
    pool = cache.get("GPUPool", name)
    if pool is None:
        return None
    spec, problem = _spec(pool)
    gpu_nodes = cache.children("GPUNode", name)
    node_names = [n["metadata"]["name"] for n in gpu_nodes]
    nodes = {n: node for n in node_names if (node := cache.get("Node", n)) is not None}
    pods = {n: cache.children("Pod", n) for n in node_names}
    return PoolView(
        name=name,
        pool=pool,
        spec=spec,
        problem=problem,
        vendor=_vendor(cache, pool),
        gpu_nodes=gpu_nodes,
        nodes=nodes,
        gpus={n: cache.children("GPU", n) for n in node_names},
        pods=pods,
        unscheduled=[p for p in cache.children("Pod", "") if unschedulable(p)],
        pools=cache.all("GPUPool"),
        node_claims=cache.children("NodeClaim", name),
        gpu_node_claims=cache.children("GPUNodeClaim", name),
        agent=_agent(cache, config, pods),
    )


def _spec(pool: JsonObject) -> tuple[GPUPoolSpec | None, str | None]:
    try:
        return GPUPool.model_validate(pool).spec, None
    except ValidationError as exc:
        issue = issues_from(exc)[0]
        return None, f"{issue.path}: {issue.message}"


def _vendor(cache: ObjectCache, pool: JsonObject) -> ComputingVendor | None:
    cluster_name = owner_name(pool, "TensorFusionCluster")
    cluster = cache.get("TensorFusionCluster", cluster_name) if cluster_name else None
    if cluster is None:
        return None
    try:
        return TensorFusionCluster.model_validate(cluster).spec.computing_vendor
    except ValidationError:
        return None  # the cluster reconciler reports it


def unschedulable(pod: Mapping[str, Any]) -> bool:
    """Whether the scheduler wrote that the pod fits no node (PodScheduled=False)."""
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(
        isinstance(c, Mapping)
        and c.get("type") == "PodScheduled"
        and c.get("status") == "False"
        and c.get("reason") == UNSCHEDULABLE_REASON
        for c in conditions
    )


def current_revision(cache: ObjectCache, config: NodePoolConfig) -> str | None:
    """The hash of the agent DaemonSet's newest ControllerRevision: the template its agents
    should run (None while it has none)."""
    revisions = [
        r
        for r in cache.all("ControllerRevision")
        if text_at(r, "metadata", "namespace") == config.agent_namespace
        and owner_name(r, "DaemonSet") == config.agent_daemonset
    ]
    newest = max(revisions, key=lambda r: int(r.get("revision") or 0), default=None)
    return revision_of(newest) if newest is not None else None


def is_agent(pod: Mapping[str, Any], config: NodePoolConfig) -> bool:
    """Whether the pod is a node agent of the DaemonSet, and not on its way out."""
    return (
        text_at(pod, "metadata", "namespace") == config.agent_namespace
        and owner_name(pod, "DaemonSet") == config.agent_daemonset
        and not (pod.get("metadata") or {}).get("deletionTimestamp")
    )


def revision_of(obj: Mapping[str, Any]) -> str | None:
    """The pod template hash an agent pod (or a ControllerRevision) carries."""
    return text_at(obj, "metadata", "labels", REVISION_LABEL)


def pod_ready(pod: Mapping[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(
        isinstance(c, Mapping) and c.get("type") == "Ready" and c.get("status") == "True"
        for c in conditions
    )


def _agent(
    cache: ObjectCache, config: NodePoolConfig, pods: Mapping[str, list[JsonObject]]
) -> AgentRevision:
    agents = {node: pod for node, listed in pods.items() for pod in listed if is_agent(pod, config)}
    return AgentRevision(current=current_revision(cache, config), pods=agents)
