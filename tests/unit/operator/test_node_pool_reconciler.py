"""The node-pool reconciler's frame, over the local store: conditions that several
reconcilers share on a pool, which changes wake which pool's upkeep, provisioned nodes joining
their pool, a refused pool spec, and the plan the management API serves."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tensorfusion.api.gpu_links import OWNER_LABEL, POOL_LABEL
from tensorfusion.errors import NotFoundError
from tensorfusion.operator.nodepool.config import NodePoolConfig
from tensorfusion.operator.nodepool.reconciler import (
    INVALID_SPEC,
    KIND,
    OWNED_CONDITIONS,
    plan_for_pool,
    plan_from_store,
)
from tensorfusion.operator.reconcilers.cache import ObjectCache
from tensorfusion.operator.reconcilers.conditions import merged_conditions
from tensorfusion.operator.reconcilers.runner import Controller, affected_keys
from tensorfusion.operator.reconcilers.work_queue import Key
from tensorfusion.store.local import LocalStore
from tests.unit.operator.sim_clock import SimClock

from .reconciler_objects import cluster, gpu, node, pod, pool_entry

START = datetime(2026, 12, 7, 0, 30, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LocalStore]:
    with LocalStore(tmp_path / "store.db") as local:
        yield local


def condition(kind: str, status: str, reason: str = "R") -> dict[str, str]:
    return {"type": kind, "status": status, "reason": reason, "message": ""}


def test_merged_conditions_replace_only_the_owned_types() -> None:
    pool = {
        "status": {
            "conditions": [
                {**condition("Ready", "True"), "lastTransitionTime": "2026-01-01T00:00:00Z"},
                {**condition("Compaction", "True"), "lastTransitionTime": "2026-01-01T00:00:00Z"},
            ]
        }
    }
    merged = merged_conditions(
        pool, ("Compaction", "AgentRollout"), [condition("AgentRollout", "False")], START
    )
    assert merged == [
        {**condition("AgentRollout", "False"), "lastTransitionTime": "2026-12-07T00:30:00Z"},
        {**condition("Ready", "True"), "lastTransitionTime": "2026-01-01T00:00:00Z"},
    ]


def test_a_condition_keeps_its_transition_time_until_its_status_changes() -> None:
    pool = {
        "status": {
            "conditions": [
                {**condition("Compaction", "True"), "lastTransitionTime": "2026-01-01T00:00:00Z"}
            ]
        }
    }
    same = merged_conditions(pool, ("Compaction",), [condition("Compaction", "True", "X")], START)
    assert same[0]["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    assert same[0]["reason"] == "X"
    flipped = merged_conditions(pool, ("Compaction",), [condition("Compaction", "False")], START)
    assert flipped[0]["lastTransitionTime"] == "2026-12-07T00:30:00Z"


def test_reconcilers_keep_the_conditions_they_do_not_own(store: LocalStore) -> None:
    store.create(cluster())
    clock = SimClock(START)
    controller = Controller(store, clock=clock.monotonic, now=clock.now)
    controller.start()
    controller.drain()
    other = {**condition("Custom", "False"), "lastTransitionTime": "x"}
    store.patch("GPUPool", "c-p", {"status": {"conditions": [other]}})
    store.create(node("n0"))  # the pool's capacity changes: its status is written again
    controller.start()
    controller.drain()
    status = store.get("GPUPool", "c-p")["status"]
    assert status["totalNodes"] == 1
    assert other in status["conditions"]


def provisioned_cluster(mode: str) -> dict[str, Any]:
    entry = pool_entry("p")
    entry["specTemplate"]["nodeManagerConfig"] = {
        "provisioningMode": mode,
        "nodeProvisioner": {
            "karpenterNodeClassRef": {
                "group": "karpenter.k8s.aws",
                "kind": "EC2NodeClass",
                "name": "gpu",
            }
        },
    }
    return cluster([entry])


@pytest.mark.parametrize(("mode", "joins"), [("Karpenter", True), ("AutoSelect", False)])
def test_a_provisioned_node_joins_the_pool_its_label_names(
    store: LocalStore, mode: str, joins: bool
) -> None:
    store.create(provisioned_cluster(mode))
    store.create(node("n0", labels={POOL_LABEL: "c-p"}))
    controller = Controller(store)
    controller.start()
    controller.drain()
    gpu_nodes = store.list("GPUNode")
    assert [g["metadata"]["labels"][OWNER_LABEL] for g in gpu_nodes] == (["c-p"] if joins else [])


def test_a_refused_pool_spec_is_named_on_every_upkeep_condition(store: LocalStore) -> None:
    cache = ObjectCache()
    bad = {
        "apiVersion": "tensor-fusion.ai/v1",
        "kind": "GPUPool",
        "metadata": {"name": "bad", "resourceVersion": "1"},
        "spec": {"nodeManagerConfig": {"nodeCompaction": {"period": "soon"}}},
    }
    cache.put(bad)
    plan = plan_for_pool(cache, "bad", NodePoolConfig(), START).to_json()
    assert plan["actions"] == []
    assert {c["type"] for c in plan["conditions"]} == set(OWNED_CONDITIONS)
    for found in plan["conditions"]:
        assert found["reason"] == INVALID_SPEC
        assert "nodeCompaction.period" in found["message"]


def test_the_plan_of_a_missing_pool_is_not_found(store: LocalStore) -> None:
    with pytest.raises(NotFoundError, match="nope"):
        plan_from_store(store, "nope", NodePoolConfig(), START)


def test_changes_wake_the_pools_whose_upkeep_reads_them() -> None:
    cache = ObjectCache()
    for name in ("a", "b"):
        cache.put({"kind": "GPUPool", "metadata": {"name": name, "resourceVersion": "1"}})
    cache.put(
        {
            "kind": "GPUNode",
            "metadata": {"name": "n0", "resourceVersion": "1", "labels": {OWNER_LABEL: "a"}},
        }
    )

    def woken(obj: dict[str, Any]) -> set[str]:
        return {k.name for k in affected_keys(obj, None, cache) if k.kind == KIND}

    bound = pod("w", "n0", [gpu("n0", 0, "a")["metadata"]["name"]], "10", "1Gi")
    assert woken(bound) == {"a"}
    waiting = pod("w", "", [], "10", "1Gi")
    assert woken(waiting) == set()  # not yet refused by the scheduler
    waiting["status"] = {
        "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]
    }
    assert woken(waiting) == {"a", "b"}
    claim = {"kind": "NodeClaim", "metadata": {"name": "x", "labels": {POOL_LABEL: "b"}}}
    assert woken(claim) == {"b"}
    revision = {"kind": "ControllerRevision", "metadata": {"name": "agent-1"}}
    assert woken(revision) == {"a", "b"}
    assert Key(KIND, "", "a") in set(affected_keys(cache.get("GPUPool", "a") or {}, None, cache))
