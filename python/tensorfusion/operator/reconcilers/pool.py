"""GPUPool status: the sums over the pool's GPUNodes, how many are ready, and the phase
(Running once it has nodes and all of them run)."""

from __future__ import annotations

from typing import Any

from tensorfusion.errors import FleetError
from tensorfusion.operator.reconcilers.cache import owner_name
from tensorfusion.operator.reconcilers.conditions import merged_conditions
from tensorfusion.operator.reconcilers.context import Context
from tensorfusion.operator.reconcilers.totals import summed_capacity
from tensorfusion.operator.reconcilers.work_queue import Key, Result
from tensorfusion.store.objects import JsonObject

READY = "Ready"


def reconcile_pool(ctx: Context, key: Key) -> Result:
    pool = ctx.cache.get("GPUPool", key.name)
    if pool is None:
        return Result()
    nodes = ctx.cache.children("GPUNode", key.name)
    statuses = [(f"GPUNode/{n['metadata']['name']}", n.get("status") or {}) for n in nodes]
    try:
        capacity = summed_capacity(statuses)
    except FleetError as exc:
        condition = {
            "type": READY,
            "status": "False",
            "reason": "BadCapacity",
            "message": str(exc),
        }
        ctx.write_status(pool, {"phase": "Unknown", "conditions": _ready(ctx, pool, [condition])})
        return Result()
    ready = sum(1 for _, status in statuses if status.get("phase") == "Running")
    ctx.write_status(
        pool,
        {
            **capacity,
            "phase": "Running" if nodes and ready == len(nodes) else "Pending",
            "cluster": owner_name(pool, "TensorFusionCluster"),
            "totalNodes": len(nodes),
            "readyNodes": ready,
            "notReadyNodes": len(nodes) - ready,
            "totalGPUs": sum(int(status.get("totalGPUs") or 0) for _, status in statuses),
            "conditions": _ready(ctx, pool, []),
        },
    )
    return Result()


def _ready(ctx: Context, pool: JsonObject, conditions: list[dict[str, str]]) -> list[Any]:
    """The pool's conditions with this reconciler's own (Ready) replaced; the node pool's
    upkeep writes the others."""
    return merged_conditions(pool, (READY,), conditions, ctx.now())
