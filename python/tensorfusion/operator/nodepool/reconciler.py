"""The node-pool reconciler (key kind "NodePool", one per GPUPool): each part plans from the
same view at the same moment and carries out what is due; the pool's conditions of the parts'
types are written last, and the pool is looked at again when a plan says it may change with
time alone (a maintenance window opens, a batch interval or a compaction period ends)."""

from __future__ import annotations

import logging
from datetime import datetime

from tensorfusion.errors import NotFoundError
from tensorfusion.operator.nodepool.config import NodePoolConfig
from tensorfusion.operator.nodepool.parts import PARTS
from tensorfusion.operator.nodepool.plan import PartPlan, PoolCondition, PoolPlan
from tensorfusion.operator.nodepool.view import PoolView, pool_view
from tensorfusion.operator.reconcilers.cache import WATCHED_KINDS, ObjectCache, list_into
from tensorfusion.operator.reconcilers.conditions import merged_conditions
from tensorfusion.operator.reconcilers.context import Context
from tensorfusion.operator.reconcilers.work_queue import Key, Result
from tensorfusion.store.interface import ClusterStore

log = logging.getLogger(__name__)

KIND = "NodePool"
INVALID_SPEC = "InvalidSpec"
OWNED_CONDITIONS = tuple(kind for part in PARTS for kind in part.condition_types)


def _plans(view: PoolView, now: datetime, config: NodePoolConfig) -> list[PartPlan]:
    if view.spec is None:
        # A spec the model refuses is acted on by no part; each says so on the pool.
        return [
            PartPlan(
                part.name,
                conditions=tuple(
                    PoolCondition(kind, "False", INVALID_SPEC, view.problem or "")
                    for kind in part.condition_types
                ),
            )
            for part in PARTS
        ]
    return [part.plan(view, now, config) for part in PARTS]


def plan_for_pool(cache: ObjectCache, name: str, config: NodePoolConfig, now: datetime) -> PoolPlan:
    """What the reconciler would do for pool `name` at `now`; NotFoundError if none."""
    view = pool_view(cache, name, config)
    if view is None:
        raise NotFoundError(f"GPUPool {name!r} not found")
    return PoolPlan(name, now, _plans(view, now, config))


def plan_from_store(
    store: ClusterStore, name: str, config: NodePoolConfig, now: datetime
) -> PoolPlan:
    """`plan_for_pool` over a fresh read of the store (for a replica that holds no cache)."""
    cache = ObjectCache()
    for kind in WATCHED_KINDS:
        if kind != "DaemonSet":  # only the unpooled agents' reconciler reads DaemonSets
            list_into(cache, store, kind)
    return plan_for_pool(cache, name, config, now)


def reconcile_node_pool(ctx: Context, key: Key) -> Result:
    view = pool_view(ctx.cache, key.name, ctx.node_pools)
    if view is None:
        return Result()
    now = ctx.now()
    plans = _plans(view, now, ctx.node_pools)
    if view.spec is not None:
        for part, plan in zip(PARTS, plans, strict=True):
            part.apply(ctx, view, plan)
    pool = ctx.cache.get("GPUPool", key.name) or view.pool
    conditions = [c.to_json() for plan in plans for c in plan.conditions]
    ctx.write_status(
        pool, {"conditions": merged_conditions(pool, OWNED_CONDITIONS, conditions, now)}
    )
    wakes = [plan.wake_at for plan in plans if plan.wake_at is not None]
    if not wakes:
        return Result()
    return Result(requeue_after_s=max(0.0, (min(wakes) - now).total_seconds()))
