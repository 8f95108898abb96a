"""TensorFusionCluster: one GPUPool per `spec.gpuPools` entry, named `<cluster>-<pool>` and
owned by the cluster; pools dropped from the spec are deleted; the status sums the pools.
A spec the model refuses changes nothing but the status, and is reported in an Event."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from tensorfusion.api.base import API_VERSION
from tensorfusion.api.cluster import TensorFusionCluster
from tensorfusion.api.field_errors import issues_from
from tensorfusion.api.gpu_links import DEFAULT_POOL_ANNOTATION
from tensorfusion.errors import FleetError
from tensorfusion.operator.reconcilers.context import Context
from tensorfusion.operator.reconcilers.totals import summed_capacity
from tensorfusion.operator.reconcilers.work_queue import Key, Result

KIND = "TensorFusionCluster"
TEMPLATE_ANNOTATION = "tensor-fusion.ai/pool-template"
"""On a GPUPool: the digest of the cluster's `specTemplate` it was last written from."""
INVALID_SPEC = "InvalidSpec"


def pool_object_name(cluster: str, pool: str) -> str:
    return f"{cluster}-{pool}"


def reconcile_cluster(ctx: Context, key: Key) -> Result:
    cluster = ctx.cache.get(KIND, key.name)
    if cluster is None:
        for pool in ctx.cache.children("GPUPool", key.name):
            ctx.delete(pool)  # what kube's garbage collector does for owned objects
        return Result()
    try:
        TensorFusionCluster.model_validate(cluster)
    except ValidationError as exc:
        issue = issues_from(exc)[0]
        message = f"{issue.path}: {issue.message}"
        ctx.warn(cluster, INVALID_SPEC, message)
        ctx.write_status(cluster, {"phase": "Unknown", "conditions": [_condition(message)]})
        return Result()
    wanted = {
        pool_object_name(key.name, entry["name"]): entry
        for entry in (cluster.get("spec") or {}).get("gpuPools") or []
    }
    for name, entry in wanted.items():
        _ensure_pool(ctx, cluster, name, entry)
    for pool in ctx.cache.children("GPUPool", key.name):
        if pool["metadata"]["name"] not in wanted:
            ctx.delete(pool)
    _write_status(ctx, cluster, sorted(wanted))
    return Result()


def _ensure_pool(ctx: Context, cluster: dict[str, Any], name: str, entry: dict[str, Any]) -> None:
    spec = entry.get("specTemplate") or {}
    owner = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": cluster["metadata"]["name"],
        "uid": cluster["metadata"].get("uid"),
        "controller": True,
        "blockOwnerDeletion": True,
    }
    default = "true" if entry.get("isDefault") else None
    template = _digest(spec)
    pool = ctx.cache.get("GPUPool", name)
    if pool is None:
        annotations = {TEMPLATE_ANNOTATION: template}
        if default:
            annotations[DEFAULT_POOL_ANNOTATION] = default
        ctx.create(
            {
                "apiVersion": API_VERSION,
                "kind": "GPUPool",
                "metadata": {"name": name, "annotations": annotations, "ownerReferences": [owner]},
                "spec": spec,
            }
        )
        return
    metadata = pool["metadata"]
    annotations = metadata.get("annotations") or {}
    if (
        annotations.get(TEMPLATE_ANNOTATION) == template
        and _holds(pool.get("spec"), spec)
        and metadata.get("ownerReferences") == [owner]
        and annotations.get(DEFAULT_POOL_ANNOTATION) == default
    ):
        return
    ctx.patch(
        pool,
        {
            # Lists and absent keys do not merge: the whole spec is replaced by nulling
            # what the template no longer has.
            "spec": {**dict.fromkeys(pool.get("spec") or {}), **spec},
            "metadata": {
                "ownerReferences": [owner],
                "annotations": {DEFAULT_POOL_ANNOTATION: default, TEMPLATE_ANNOTATION: template},
            },
        },
    )


def _digest(spec: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def _holds(stored: object, wanted: object) -> bool:
    """Whether the stored spec has every value the template sets. The API server adds the
    CRD's defaults to what was written, so the stored spec may hold more than the template;
    a template that drops a key changes its digest instead."""
    if isinstance(wanted, Mapping):
        return isinstance(stored, Mapping) and all(
            _holds(stored.get(key), value) for key, value in wanted.items()
        )
    if isinstance(wanted, list):
        return (
            isinstance(stored, list)
            and len(stored) == len(wanted)
            and all(_holds(have, want) for have, want in zip(stored, wanted, strict=True))
        )
    return stored == wanted


def _write_status(ctx: Context, cluster: dict[str, Any], pool_names: list[str]) -> None:
    pools = [ctx.cache.get("GPUPool", name) for name in pool_names]
    present = [pool for pool in pools if pool is not None]
    statuses = [(f"GPUPool/{p['metadata']['name']}", p.get("status") or {}) for p in present]
    try:
        capacity = summed_capacity(statuses)
    except FleetError as exc:
        ctx.write_status(cluster, {"phase": "Unknown", "conditions": [_condition(str(exc))]})
        return
    ready = [
        p["metadata"]["name"] for p in present if (p.get("status") or {}).get("phase") == "Running"
    ]
    not_ready = [name for name in pool_names if name not in ready]
    ctx.write_status(
        cluster,
        {
            **capacity,
            "phase": "Running" if pool_names and not not_ready else "Pending",
            "totalPools": len(pool_names),
            "totalNodes": sum(int(status.get("totalNodes") or 0) for _, status in statuses),
            "totalGPUs": sum(int(status.get("totalGPUs") or 0) for _, status in statuses),
            "readyGPUPools": ready,
            "notReadyGPUPools": not_ready,
            "conditions": [],
        },
    )


def _condition(message: str) -> dict[str, str]:
    return {"type": "Ready", "status": "False", "reason": INVALID_SPEC, "message": message}
