"""The node agents on nodes that no pool holds (a GPU node the agent DaemonSet runs on but no
pool selects): no pool's rolling update restarts them, so this reconciler (key kind
"UnpooledAgents", one key) does what the DaemonSet's own RollingUpdate would have: one
outdated agent at a time, and only while every agent the DaemonSet wants is there and Ready
(its `status.desiredNumberScheduled` counts them), so the next waits for the restarted one.
With no maintenance window to keep: these nodes run no TensorFusion worker."""

from __future__ import annotations

from tensorfusion.api.gpu_links import text_at
from tensorfusion.operator.nodepool.view import (
    current_revision,
    is_agent,
    pod_ready,
    revision_of,
)
from tensorfusion.operator.reconcilers.context import Context
from tensorfusion.operator.reconcilers.work_queue import Key, Result

KIND = "UnpooledAgents"
KEY = Key(KIND, "", "agents")
EVENT_REASON = "AgentUpdated"


def reconcile_unpooled_agents(ctx: Context, key: Key) -> Result:
    config = ctx.node_pools
    current = current_revision(ctx.cache, config)
    daemonset = ctx.cache.get("DaemonSet", config.agent_daemonset, config.agent_namespace)
    desired = ((daemonset or {}).get("status") or {}).get("desiredNumberScheduled")
    if current is None or not isinstance(desired, int):
        return Result()
    pooled = {
        gpu_node["metadata"]["name"]
        for pool in ctx.cache.all("GPUPool")
        for gpu_node in ctx.cache.children("GPUNode", pool["metadata"]["name"])
    }
    everywhere = [pod for pod in ctx.cache.all("Pod") if is_agent(pod, config)]
    unpooled = sorted(
        (
            (node, pod)
            for pod in everywhere
            if (node := text_at(pod, "spec", "nodeName")) and node not in pooled
        ),
        key=lambda item: item[0],
    )
    outdated = [(node, pod) for node, pod in unpooled if revision_of(pod) != current]
    if not outdated or len(everywhere) < desired or not all(pod_ready(p) for _, p in unpooled):
        return Result()  # the restarted agent's return, then its Ready, brings the next one
    node, pod = outdated[0]
    ctx.delete(pod)
    ctx.event(pod, "Normal", EVENT_REASON, f"node {node} is in no pool: its agent restarts")
    return Result()
