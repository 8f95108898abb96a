"""The leader's allocation tables, from the scheduler's picture of the cluster:

- `tf_node_metrics`, `tf_pool_metrics`, `tf_gpu_metrics`: what is allocated (the sum of
  requests) against physical and virtual capacity, per node, pool and GPU; pools also carry
  the sum of limits against virtual capacity, which is what oversubscription spends, and,
  from the pool objects' status, what node provisioning reports: the provisioned nodes' cost
  per hour (an estimate at on-demand prices; spot capacity costs less), whether a limit
  (maxResources or the daily budget) holds capacity back and which, and the daily budget.
- `tf_worker_resources`: each worker's per-GPU request and limit, and its GPU count.
- `tf_gpu_allocation`: which GPUs (model:index) each worker holds.
- `tf_system_metrics`: one cluster-wide row of counts; the allocation counts are cumulative
  since the scheduler started (every failed attempt counts, retries included), so a rule
  reads their increase within a window.

Amounts are floats (TFLOPS, bytes) and counts integers, as the columns are typed in existing
TensorFusion databases, so rows land in tables created by either.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from contextlib import suppress
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

from pydantic import ValidationError

from tensorfusion.api.gpu_links import text_at
from tensorfusion.api.pool import CAPACITY_CAPPED_CONDITION, PeriodicalBudget
from tensorfusion.api.quantity import Quantity
from tensorfusion.errors import StoreError, UnavailableError
from tensorfusion.metrics.point import FieldValue, Point
from tensorfusion.metrics.row_values import known_tags, percent, workload_of
from tensorfusion.metrics.sink import TableSchema
from tensorfusion.scheduler.allocation import Allocation, GpuRecord
from tensorfusion.scheduler.cluster_state import ClusterState
from tensorfusion.scheduler.inventory import (
    InventoryView,
    gpu_inventory,
    node_inventory,
    pool_inventory,
)
from tensorfusion.scheduler.loop import LoopStats
from tensorfusion.scheduler.pod_info import PodInfo

NODE_METRICS = "tf_node_metrics"
POOL_METRICS = "tf_pool_metrics"
GPU_METRICS = "tf_gpu_metrics"
WORKER_RESOURCES = "tf_worker_resources"
SYSTEM_METRICS = "tf_system_metrics"
GPU_ALLOCATION = "tf_gpu_allocation"
POOL_RUNNING, POOL_PENDING = "Running", "Pending"
_ALLOCATED: dict[str, type] = dict.fromkeys(
    (
        "allocated_tflops",
        "allocated_tflops_percent",
        "allocated_tflops_percent_virtual",
        "allocated_vram_bytes",
        "allocated_vram_percent",
        "allocated_vram_percent_virtual",
    ),
    float,
)
TABLES: tuple[TableSchema, ...] = (
    TableSchema(NODE_METRICS, ("node", "pool", "phase"), {**_ALLOCATED, "gpu_count": int}),
    TableSchema(
        POOL_METRICS,
        ("pool", "phase"),
        {
            **_ALLOCATED,
            **dict.fromkeys(
                (
                    "limited_tflops",
                    "limited_tflops_percent_virtual",
                    "limited_vram_bytes",
                    "limited_vram_percent_virtual",
                ),
                float,
            ),
            "gpu_count": int,
            "capacity_capped": int,
            "capped_by": str,
            "cost_per_hour": float,
            "budget_per_day": float,
        },
    ),
    TableSchema(
        GPU_METRICS,
        ("gpu", "uuid", "node", "pool", "gpu_model", "phase"),
        dict.fromkeys(
            (
                "capacity_tflops",
                "available_tflops",
                "allocated_tflops",
                "allocated_tflops_percent",
                "capacity_vram_bytes",
                "available_vram_bytes",
                "allocated_vram_bytes",
                "allocated_vram_percent",
            ),
            float,
        ),
    ),
    TableSchema(
        WORKER_RESOURCES,
        ("namespace", "pool", "qos", "worker", "workload"),
        {
            "gpu_count": int,
            **dict.fromkeys(
                ("tflops_request", "tflops_limit", "vram_bytes_request", "vram_bytes_limit"),
                float,
            ),
        },
    ),
    TableSchema(
        GPU_ALLOCATION,
        ("pod", "namespace", "pod_uuid", "node", "gpu_model_index", "gpu_name"),
        {"gpu_count": int},
    ),
    TableSchema(
        SYSTEM_METRICS,
        (),
        dict.fromkeys(
            (
                "total_workers_cnt",
                "total_nodes_cnt",
                "total_allocation_success_cnt",
                "total_allocation_fail_cnt",
            ),
            int,
        ),
    ),
)
"""Every tag and field of the rows below, per table: what a sink creates the tables from
when the rows reach it as text."""
PoolObjects = Callable[[], Iterable[Mapping[str, Any]]]
"""Reads the GPUPool objects (the scheduler keeps only their placement settings)."""

log = logging.getLogger(__name__)


class AllocationSource(Protocol):
    """What the recorder reads: `SchedulingLoop` is one."""

    cluster: ClusterState
    totals: LoopStats


@dataclass(frozen=True)
class AllocationFigures:
    """What the tables are made of, copied out of the cluster state (under the scheduler's
    lock: a few copies of arrays and dicts); the rows are built from it without the lock."""

    view: InventoryView
    gpu_nodes: dict[str, dict[str, Any]]
    gpu_objects: dict[str, dict[str, Any]]
    bound: dict[str, tuple[int, PodInfo]]
    totals: LoopStats


class AllocationRecorder:
    def __init__(self, source: AllocationSource, pools: PoolObjects | None = None) -> None:
        """`pools`, when given, is read once per `points` (outside the scheduler's lock) for
        what provisioning writes into each pool's status; without it, or while the store
        cannot be read, every pool's row reports nothing provisioned (the rules that read
        those columns still run, and the other rows are still written)."""
        self.source = source
        self.pools = pools

    def figures(self) -> AllocationFigures:
        """Call where the cluster state holds still: with the lock the scheduling loop holds
        around each pass."""
        state = self.source.cluster
        return AllocationFigures(
            view=InventoryView.of(state),
            gpu_nodes=dict(state.gpu_nodes),
            gpu_objects=dict(state.gpu_objects),
            bound=dict(state.bound),
            totals=replace(self.source.totals, outcomes=[]),
        )

    def points(self, now_ns: int, figures: AllocationFigures | None = None) -> list[Point]:
        """The rows at `now_ns`, from `figures` (taken now when not given)."""
        f = figures if figures is not None else self.figures()
        view = f.view
        nodes = node_inventory(view)
        workers = [
            (allocation, tuple(map(view.record, allocation.gpus)), _labels(f, allocation))
            for allocation in view.allocations
        ]
        rows = [
            *(_node_row(node, phase_of(f.gpu_nodes, node["name"])) for node in nodes),
            *self.pool_rows(pool_inventory(view)),
            *(_gpu_row(gpu, phase_of(f.gpu_objects, gpu["name"])) for gpu in gpu_inventory(view)),
            *(_worker_row(*worker) for worker in workers),
            *(_allocation_row(allocation, records) for allocation, records, _ in workers),
            system_row(f.totals, workers=len(workers), nodes=len(nodes)),
        ]
        return [Point(table, tags, fields, now_ns) for table, tags, fields in rows]

    def pool_rows(self, pools: list[dict[str, Any]]) -> list[Row]:
        """The pool rows of the pool inventory's `pools`, with what provisioning reports."""
        provisioning = {
            name: _provisioning(pool)
            for pool in self._pool_objects()
            if (name := text_at(pool, "metadata", "name")) is not None
        }
        nothing = _provisioning({})
        return [_pool_row(pool, provisioning.get(pool["name"], nothing)) for pool in pools]

    def _pool_objects(self) -> list[Mapping[str, Any]]:
        if self.pools is None:
            return []
        try:
            return list(self.pools())
        except (StoreError, UnavailableError) as exc:
            log.warning("pool rows report nothing provisioned: the pools cannot be read: %s", exc)
            return []


def phase_of(objects: Mapping[str, Mapping[str, Any]], name: str) -> str | None:
    return text_at(objects.get(name), "status", "phase")


def _labels(figures: AllocationFigures, allocation: Allocation) -> Mapping[str, str]:
    held = figures.bound.get(allocation.uid)
    return held[1].labels if held is not None else {}


Row = tuple[str, dict[str, str], dict[str, FieldValue]]
"""(table, tags, fields) of one point."""


def _allocated(row: Mapping[str, Any]) -> dict[str, FieldValue]:
    """Requests against physical and virtual capacity (an inventory row's figures)."""
    allocated, capacity, virtual = row["allocated"], row["capacity"], row["virtualCapacity"]
    return {
        "allocated_tflops": float(allocated["tflops"]),
        "allocated_tflops_percent": percent(allocated["tflops"], capacity["tflops"]),
        "allocated_tflops_percent_virtual": percent(allocated["tflops"], virtual["tflops"]),
        "allocated_vram_bytes": float(allocated["vram"]),
        "allocated_vram_percent": percent(allocated["vram"], capacity["vram"]),
        "allocated_vram_percent_virtual": percent(allocated["vram"], virtual["vram"]),
    }


def _node_row(node: Mapping[str, Any], phase: str | None) -> Row:
    tags = known_tags({"node": node["name"], "pool": node["pool"], "phase": phase})
    return NODE_METRICS, tags, {**_allocated(node), "gpu_count": node["gpus"]}


def _provisioning(pool: Mapping[str, Any]) -> dict[str, FieldValue]:
    """What node provisioning wrote into the pool's status, and the pool's daily budget.
    Every field is always there, so the rules that read them find their columns: a pool
    with nothing provisioned costs 0, and `budget_per_day` is 0 for a pool with no budget
    (a budget of nothing would let no node be provisioned at all)."""
    status = pool.get("status") or {}
    capped = next(
        (
            c
            for c in status.get("conditions") or ()
            if isinstance(c, Mapping) and c.get("type") == CAPACITY_CAPPED_CONDITION
        ),
        None,
    )
    is_capped = capped is not None and capped.get("status") == "True"
    cost = 0.0
    with suppress(KeyError, InvalidOperation):  # nothing provisioned: nothing spent
        cost = float(Decimal(str(status["costPerHour"])))
    per_day = 0.0
    manager = (pool.get("spec") or {}).get("nodeManagerConfig") or {}
    budget = (manager.get("nodeProvisioner") or {}).get("budget")
    # A spec the model refuses is the pool reconciler's to report.
    with suppress(ValidationError):
        if isinstance(budget, Mapping):
            text = PeriodicalBudget.model_validate(budget).budget_per_day
            per_day = float(Quantity.parse(text).exact)
    return {
        "capacity_capped": int(is_capped),
        "capped_by": str(capped.get("message") or "") if capped is not None and is_capped else "",
        "cost_per_hour": cost,
        "budget_per_day": per_day,
    }


def _pool_row(pool: Mapping[str, Any], provisioning: Mapping[str, FieldValue]) -> Row:
    # The scheduler keeps no pool status; a pool is running once it has a GPU to place on.
    phase = POOL_RUNNING if pool["gpus"] else POOL_PENDING
    limits, virtual = pool["allocatedLimits"], pool["virtualCapacity"]
    fields: dict[str, FieldValue] = {
        **_allocated(pool),
        "limited_tflops": float(limits["tflops"]),
        "limited_tflops_percent_virtual": percent(limits["tflops"], virtual["tflops"]),
        "limited_vram_bytes": float(limits["vram"]),
        "limited_vram_percent_virtual": percent(limits["vram"], virtual["vram"]),
        "gpu_count": pool["gpus"],
        **provisioning,
    }
    return POOL_METRICS, {"pool": pool["name"], "phase": phase}, fields


def _gpu_row(gpu: Mapping[str, Any], phase: str | None) -> Row:
    tags = {
        "gpu": gpu["name"],
        "uuid": gpu["uuid"],
        "node": gpu["node"],
        "pool": gpu["pool"],
        "gpu_model": gpu["model"],
        "phase": phase,
    }
    capacity, allocated = gpu["capacity"], gpu["allocated"]
    fields: dict[str, FieldValue] = {
        "capacity_tflops": float(capacity["tflops"]),
        "available_tflops": float(capacity["tflops"] - allocated["tflops"]),
        "allocated_tflops": float(allocated["tflops"]),
        "allocated_tflops_percent": percent(allocated["tflops"], capacity["tflops"]),
        "capacity_vram_bytes": float(capacity["vram"]),
        "available_vram_bytes": float(capacity["vram"] - allocated["vram"]),
        "allocated_vram_bytes": float(allocated["vram"]),
        "allocated_vram_percent": percent(allocated["vram"], capacity["vram"]),
    }
    return GPU_METRICS, known_tags(tags), fields


def _worker_row(
    allocation: Allocation, records: tuple[GpuRecord, ...], labels: Mapping[str, str]
) -> Row:
    tags = {
        "namespace": allocation.namespace,
        "pool": records[0].pool,
        "qos": allocation.qos,
        "worker": allocation.name,
        "workload": workload_of(allocation.name, labels),
    }
    shares = allocation.shares
    # Per GPU, as the annotations ask; a compute-percent request on GPUs of different
    # models comes to different TFLOPS on each, hence the mean.
    fields: dict[str, FieldValue] = {
        "gpu_count": len(allocation.gpus),
        "tflops_request": _mean([share.tflops_request for share in shares]) / 1000,
        "tflops_limit": _mean([share.tflops_limit for share in shares]) / 1000,
        "vram_bytes_request": _mean([share.vram_request for share in shares]),
        "vram_bytes_limit": _mean([share.vram_limit for share in shares]),
    }
    return WORKER_RESOURCES, known_tags(tags), fields


def _mean(values: list[int]) -> float:
    return sum(values) / len(values)


def model_index(record: GpuRecord) -> str:
    """`model:index` ("H100:3"), either part left out where unknown."""
    index = f":{record.index}" if record.index is not None else ""
    return f"{record.model or ''}{index}"


def _allocation_row(allocation: Allocation, records: tuple[GpuRecord, ...]) -> Row:
    tags = {
        "pod": allocation.name,
        "namespace": allocation.namespace,
        "pod_uuid": allocation.uid,
        "node": records[0].node,
        "gpu_model_index": ",".join(filter(None, map(model_index, records))),
        "gpu_name": ",".join(allocation.gpus),
    }
    return GPU_ALLOCATION, known_tags(tags), {"gpu_count": len(allocation.gpus)}


def system_row(totals: LoopStats, *, workers: int, nodes: int) -> Row:
    # One row for the cluster: the allocation-failure rule reads the increase of a single
    # series, which rows per pool would break.
    fields: dict[str, FieldValue] = {
        "total_workers_cnt": workers,
        "total_nodes_cnt": nodes,
        "total_allocation_success_cnt": totals.scheduled,
        "total_allocation_fail_cnt": totals.unschedulable,
    }
    return SYSTEM_METRICS, {}, fields
