"""Compaction over the local store, driven by a simulated clock: which empty nodes a pool
releases (and which it keeps, and why), once per period, in the provisioner's way: Karpenter
NodeClaims deleted, provisioned nodes cordoned, drained and their GPUNodeClaims marked.
No Karpenter runs here: the NodeClaims are plain objects that nothing acts on, and the local
store drops a deleted one at once (it honours no finalizers), where Karpenter's termination
finalizer would hold it until the node is gone: `karpenter_terminates` stands in for that end."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tensorfusion.api.base import API_VERSION
from tensorfusion.api.gpu_links import POOL_LABEL
from tensorfusion.operator.nodepool.compaction import LAST_COMPACTION_ANNOTATION
from tensorfusion.operator.nodepool.config import NodePoolConfig
from tensorfusion.operator.nodepool.reconciler import plan_for_pool
from tensorfusion.operator.nodepool.release import RELEASE_ANNOTATION
from tensorfusion.operator.reconcilers.runner import Controller
from tensorfusion.store.local import LocalStore
from tensorfusion.store.timestamps import parse_rfc3339, rfc3339
from tests.unit.scheduler.cluster_builders import tf_pod

from .reconciler_objects import OVERSUBSCRIPTION, cluster, gpu, node, pod, pool_entry
from .sim_clock import SimClock

POOL = "c-p"
NODE_GIB = 80
"""Each test node has two GPUs of 40Gi."""
KARPENTER_FINALIZER = "karpenter.sh/termination"
"""Karpenter keeps a deleted NodeClaim with this until its node is terminated."""


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LocalStore]:
    with LocalStore(tmp_path / "store.db") as local:
        yield local


def pool_spec(
    mode: str = "Karpenter",
    compaction: Mapping[str, Any] | None = None,
    capacity: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    manager: dict[str, Any] = {"provisioningMode": mode}
    if compaction is not None:
        manager["nodeCompaction"] = dict(compaction)
    return {
        "name": "p",
        "isDefault": True,
        "specTemplate": {
            "capacityConfig": {"oversubscription": OVERSUBSCRIPTION, **(capacity or {})},
            "nodeManagerConfig": manager,
        },
    }


def add_node(
    store: LocalStore,
    name: str,
    mode: str = "Karpenter",
    *,
    annotations: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
) -> None:
    """A node the pool provisioned (labelled with it), two GPUs, and its claim."""
    obj = node(name, labels={POOL_LABEL: POOL, **(labels or {})})
    obj["metadata"]["annotations"] = dict(annotations or {})
    store.create(obj)
    for index in range(2):
        store.create(gpu(name, index, POOL))
    store.create(node_claim(name) if mode == "Karpenter" else gpu_node_claim(name))


def node_claim(node_name: str) -> dict[str, Any]:
    return {
        "apiVersion": "karpenter.sh/v1",
        "kind": "NodeClaim",
        "metadata": {
            "name": f"nc-{node_name}",
            "labels": {POOL_LABEL: POOL},
            "finalizers": [KARPENTER_FINALIZER],
        },
        "spec": {"nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass"}},
        "status": {"nodeName": node_name},
    }


def gpu_node_claim(node_name: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "GPUNodeClaim",
        "metadata": {"name": f"gnc-{node_name}", "labels": {POOL_LABEL: POOL}},
        "spec": {"nodeName": node_name, "instanceType": "p4d.24xlarge"},
    }


def plain_pod(
    name: str, node_name: str, *, owner: str = "ReplicaSet", **resources: str
) -> dict[str, Any]:
    limits = dict(resources)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "default",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": owner, "name": "o", "uid": "u"}],
        },
        "spec": {
            "nodeName": node_name,
            "containers": [
                {"name": "c", "image": "i", "resources": {"requests": limits, "limits": limits}}
            ],
        },
        "status": {"phase": "Running"},
    }


def clock_after_creation(store: LocalStore, age: timedelta) -> SimClock:
    """A clock at the moment the stored nodes are `age` old (the store stamps them itself)."""
    created = max(parse_rfc3339(n["metadata"]["creationTimestamp"]) for n in store.list("Node"))
    return SimClock(created + age)


def controller_for(store: LocalStore, clock: SimClock) -> Controller:
    """A controller over the store's fleet, run until idle; then the pool's spec as the
    cluster gives it (its nodeCompaction, turned on once the fleet's capacity is known)."""
    spec = store.get("TensorFusionCluster", "c")["spec"]
    without = copy.deepcopy(spec)
    for entry in without["gpuPools"]:
        entry["specTemplate"]["nodeManagerConfig"].pop("nodeCompaction", None)
    store.patch("TensorFusionCluster", "c", {"spec": without})
    controller = Controller(store, clock=clock.monotonic, now=clock.now)
    controller.start()
    controller.drain()
    store.patch("TensorFusionCluster", "c", {"spec": spec})
    controller.drain()
    return controller


def karpenter_terminates(store: LocalStore, controller: Controller, *names: str) -> None:
    """Stand-in for what Karpenter does once it has drained the nodes of deleted NodeClaims:
    the nodes (and the GPUs their agents reported) go."""
    for name in names:
        store.delete("Node", name)
        for index in range(2):
            store.delete("GPU", f"{name}-gpu-{index}")
    controller.drain()


def claims(store: LocalStore, kind: str = "NodeClaim") -> list[str]:
    return sorted(c["metadata"]["name"] for c in store.list(kind))


def condition(store: LocalStore) -> Mapping[str, str]:
    conditions = store.get("GPUPool", POOL)["status"]["conditions"]
    return next(c for c in conditions if c["type"] == "Compaction")


def compacted_events(store: LocalStore) -> list[str]:
    return sorted(e["message"] for e in store.list("Event") if e["reason"] == "NodeCompacted")


def test_releases_empty_nodes_down_to_min_and_keeps_protected_ones(store: LocalStore) -> None:
    total = 7 * NODE_GIB
    spec = pool_spec(
        compaction={"period": "5m"},
        capacity={"minResources": {"vram": f"{total - 2 * NODE_GIB}Gi"}},
    )
    store.create(cluster([spec]))
    for name in ("e0", "e1", "e2", "w0", "g0"):
        add_node(store, name)
    add_node(store, "d0", annotations={"karpenter.sh/do-not-disrupt": "true"})
    add_node(store, "d1", labels={"karpenter.sh/do-not-disrupt": "true"})
    store.create(pod("worker", "w0", ["w0-gpu-0"], "10", "4Gi"))
    store.create(plain_pod("cuda", "g0", **{"nvidia.com/gpu": "1"}))
    clock = clock_after_creation(store, timedelta(days=1))

    controller = controller_for(store, clock)

    # Each empty node alone keeps the minimum; together only two may go, smallest
    # (all equal here) then by name.
    assert claims(store) == ["nc-d0", "nc-d1", "nc-e2", "nc-g0", "nc-w0"]
    assert compacted_events(store) == [
        "node e0: deleted NodeClaim nc-e0",
        "node e1: deleted NodeClaim nc-e1",
    ]
    pool = store.get("GPUPool", POOL)
    stamp = rfc3339(clock.now())
    assert pool["metadata"]["annotations"][LAST_COMPACTION_ANNOTATION] == stamp
    assert pool["status"]["lastCompactionTime"] == stamp
    karpenter_terminates(store, controller, "e0", "e1")
    found = condition(store)
    assert (found["status"], found["reason"]) == ("True", "Idle")
    assert (
        "kept: 2 do-not-disrupt, 1 with TensorFusion workers, 1 with nvidia.com/gpu pods, "
        "1 for minResources" in found["message"]
    )
    # The nodes themselves are Karpenter's to drain: nothing else was written to them.
    assert all(not (n.get("spec") or {}).get("unschedulable") for n in store.list("Node"))


def test_warm_capacity_is_kept_across_the_nodes_chosen(store: LocalStore) -> None:
    # Idle GPUs here have 40Gi free each (no host memory reported to expand into): 80Gi a node.
    spec = pool_spec(compaction={"period": "5m"}, capacity={"warmResources": {"vram": "150Gi"}})
    store.create(cluster([spec]))
    for name in ("a", "b", "c"):
        add_node(store, name)
    store.create(pod("busy", "c", ["c-gpu-0", "c-gpu-1"], "10", "30Gi"))
    clock = clock_after_creation(store, timedelta(days=1))

    controller_for(store, clock)

    # Free: a 80 + b 80 + c 20 = 180Gi; releasing a leaves 100Gi < 150Gi: both stay.
    assert claims(store) == ["nc-a", "nc-b", "nc-c"]
    assert "2 for warmResources" in condition(store)["message"]
    assert condition(store)["reason"] == "Idle"


def test_period_is_respected_and_young_nodes_wait(store: LocalStore) -> None:
    store.create(cluster([pool_spec(compaction={"period": "5m"})]))
    add_node(store, "old")
    store.create(pod("worker", "old", ["old-gpu-0"], "10", "4Gi"))
    clock = clock_after_creation(store, timedelta(minutes=1))
    controller = controller_for(store, clock)
    first = clock.now()
    assert claims(store) == ["nc-old"]
    assert "1 with TensorFusion workers" in condition(store)["message"]

    store.delete("Pod", "worker", "default")
    clock.advance(60)
    controller.drain()
    # Empty now, but the period since the last run has not passed, and the node is young.
    assert claims(store) == ["nc-old"]
    assert "kept: 1 younger than the period" in condition(store)["message"]
    assert (
        f"next compaction at {rfc3339(first + timedelta(minutes=5))}"
        in (condition(store)["message"])
    )

    clock.advance_to(first + timedelta(minutes=5))
    controller.drain()
    assert claims(store) == []
    pool = store.get("GPUPool", POOL)
    assert pool["status"]["lastCompactionTime"] == rfc3339(first + timedelta(minutes=5))


def test_plan_lists_the_node_waiting_then_due(store: LocalStore) -> None:
    store.create(cluster([pool_spec(compaction={"period": "10m"})]))
    add_node(store, "n")
    store.create(pod("worker", "n", ["n-gpu-0"], "10", "4Gi"))
    clock = clock_after_creation(store, timedelta(days=1))
    controller = controller_for(store, clock)
    first = clock.now()
    store.delete("Pod", "worker", "default")
    controller.drain()

    waiting = plan_for_pool(controller.cache, POOL, NodePoolConfig(), clock.now()).to_json()
    next_run = rfc3339(first + timedelta(minutes=10))
    compaction = [a for a in waiting["actions"] if a["part"] == "compaction"]
    assert [(a["kind"], a["target"], a["state"], a.get("at")) for a in compaction] == [
        ("compact-node", "n", "waiting", next_run)
    ]
    clock.advance(600)
    due = plan_for_pool(controller.cache, POOL, NodePoolConfig(), clock.now()).to_json()
    assert [
        (a["kind"], a["target"], a["state"]) for a in due["actions"] if a["part"] == "compaction"
    ] == [("compact-node", "n", "due")]
    assert claims(store) == ["nc-n"]  # a plan is only a plan
    controller.drain()
    assert claims(store) == []


def test_provisioned_pool_cordons_drains_and_marks_the_claim(store: LocalStore) -> None:
    store.create(cluster([pool_spec("Provisioned", compaction={"period": "5m"})]))
    add_node(store, "idle", "Provisioned")
    add_node(store, "busy", "Provisioned")
    store.create(pod("worker", "busy", ["busy-gpu-0"], "10", "4Gi"))
    store.create(plain_pod("web", "idle"))
    store.create(plain_pod("agent", "idle", owner="DaemonSet"))
    clock = clock_after_creation(store, timedelta(days=1))

    controller_for(store, clock)

    assert store.get("Node", "idle")["spec"]["unschedulable"] is True
    assert sorted(p["metadata"]["name"] for p in store.list("Pod")) == ["agent", "worker"]
    marked = store.get("GPUNodeClaim", "gnc-idle")["metadata"]["annotations"]
    assert marked[RELEASE_ANNOTATION] == rfc3339(clock.now())
    assert RELEASE_ANNOTATION not in (
        store.get("GPUNodeClaim", "gnc-busy")["metadata"].get("annotations") or {}
    )
    assert not store.get("Node", "busy")["spec"].get("unschedulable")
    assert compacted_events(store) == [
        "node idle: cordoned, 1 pods deleted, GPUNodeClaim gnc-idle marked for release"
    ]
    found = condition(store)
    assert (found["reason"], found["message"].split("; ")[0]) == ("Compacted", "leaving: idle")


def test_auto_select_pool_releases_nothing_and_says_why(store: LocalStore) -> None:
    entry = pool_entry("p")
    entry["specTemplate"]["nodeManagerConfig"]["nodeCompaction"] = {"period": "5m"}
    store.create(cluster([entry]))
    store.create(node("n0"))
    for index in range(2):
        store.create(gpu("n0", index, POOL))
    clock = clock_after_creation(store, timedelta(days=1))

    controller_for(store, clock)

    found = condition(store)
    assert (found["status"], found["reason"]) == ("False", "NotOwned")
    assert "AutoSelect" in found["message"]
    assert not store.get("Node", "n0")["spec"].get("unschedulable")
    assert compacted_events(store) == []
    assert LAST_COMPACTION_ANNOTATION not in store.get("GPUPool", POOL)["metadata"]["annotations"]


def test_pool_without_node_compaction_does_nothing(store: LocalStore) -> None:
    store.create(cluster([pool_spec()]))
    add_node(store, "e0")
    clock = clock_after_creation(store, timedelta(days=1))
    controller = controller_for(store, clock)
    clock.advance(86400)
    controller.drain()
    assert claims(store) == ["nc-e0"]
    found = condition(store)
    assert (found["status"], found["reason"]) == ("False", "Disabled")


def test_zero_period_is_refused_rather_than_run_in_a_loop(store: LocalStore) -> None:
    store.create(cluster([pool_spec(compaction={"period": "0"})]))
    add_node(store, "e0")
    controller_for(store, clock_after_creation(store, timedelta(days=1)))
    assert claims(store) == ["nc-e0"]
    found = condition(store)
    assert (found["reason"], found["message"]) == (
        "Disabled",
        "nodeCompaction.period must be more than 0",
    )


def test_node_with_unreadable_gpu_capacity_is_kept(store: LocalStore) -> None:
    store.create(cluster([pool_spec(compaction={"period": "5m"})]))
    add_node(store, "good")
    add_node(store, "bad")
    store.patch("GPU", "bad-gpu-1", {"status": {"capacity": {"vram": "plenty"}}})
    controller_for(store, clock_after_creation(store, timedelta(days=1)))
    assert claims(store) == ["nc-bad"]
    assert "kept: 1 with unreadable GPU capacity" in condition(store)["message"]


def test_unreadable_last_compaction_means_a_run_is_due(store: LocalStore) -> None:
    store.create(cluster([pool_spec(compaction={"period": "5m"})]))
    add_node(store, "e0")
    clock = clock_after_creation(store, timedelta(days=1))
    controller = controller_for(store, clock)
    store.create(node_claim("e0"))  # as if the first run had not happened
    store.patch(
        "GPUPool", POOL, {"metadata": {"annotations": {LAST_COMPACTION_ANNOTATION: "yesterday"}}}
    )
    controller.drain()
    assert claims(store) == []
    annotations = store.get("GPUPool", POOL)["metadata"]["annotations"]
    assert annotations[LAST_COMPACTION_ANNOTATION] == rfc3339(clock.now())


def test_node_whose_gpus_have_not_reported_is_kept(store: LocalStore) -> None:
    store.create(cluster([pool_spec(compaction={"period": "5m"})]))
    add_node(store, "counted")
    store.create(node("bare", labels={POOL_LABEL: POOL}))  # no GPU objects yet
    store.create(node_claim("bare"))
    controller_for(store, clock_after_creation(store, timedelta(days=1)))
    assert claims(store) == ["nc-bare"]
    assert "kept: 1 whose GPUs have not reported their capacity" in condition(store)["message"]


def test_nodes_no_claim_names_count_toward_capacity_and_are_never_released(
    store: LocalStore,
) -> None:
    spec = pool_spec(compaction={"period": "5m"}, capacity={"minResources": {"vram": "200Gi"}})
    store.create(cluster([spec]))
    for name in ("a", "b"):
        add_node(store, name)
    # A node labelled for the pool by hand, and one whose claim has not recorded it yet.
    for name in ("hand", "pending"):
        store.create(node(name, labels={POOL_LABEL: POOL}))
        for index in range(2):
            store.create(gpu(name, index, POOL))
    unbound = node_claim("pending")
    del unbound["status"]
    store.create(unbound)
    clock = clock_after_creation(store, timedelta(days=1))

    controller = controller_for(store, clock)

    # 320Gi with the two claimless nodes counted: a may go (240Gi left), b not (160Gi).
    assert claims(store) == ["nc-b", "nc-pending"]
    assert compacted_events(store) == ["node a: deleted NodeClaim nc-a"]
    karpenter_terminates(store, controller, "a")
    clock.advance(3600)
    controller.drain()
    assert claims(store) == ["nc-b", "nc-pending"]
    assert all(not (n.get("spec") or {}).get("unschedulable") for n in store.list("Node"))
    found = condition(store)
    assert found["reason"] == "Idle"
    assert found["message"].startswith(
        "not owned (no claim names them): hand, pending; kept: 1 for minResources; "
    )


def test_pool_whose_nodes_no_claim_names_releases_none_and_stays_idle(
    store: LocalStore,
) -> None:
    # As when the NodeClaim API is not served: the pool sees no claim at all.
    store.create(cluster([pool_spec(compaction={"period": "5m"})]))
    store.create(node("n0", labels={POOL_LABEL: POOL}))
    for index in range(2):
        store.create(gpu("n0", index, POOL))
    clock = clock_after_creation(store, timedelta(days=1))
    controller = controller_for(store, clock)
    clock.advance(3600)
    controller.drain()
    found = condition(store)
    assert (found["reason"], found["message"].split("; ")[0]) == (
        "Idle",
        "not owned (no claim names them): n0",
    )
    assert compacted_events(store) == []
    assert [n["metadata"]["name"] for n in store.list("Node")] == ["n0"]


def test_node_whose_claim_is_being_deleted_is_leaving_and_not_counted(store: LocalStore) -> None:
    spec = pool_spec(compaction={"period": "5m"}, capacity={"minResources": {"vram": "80Gi"}})
    store.create(cluster([spec]))
    add_node(store, "e0")
    store.create(node("going", labels={POOL_LABEL: POOL}))
    for index in range(2):
        store.create(gpu("going", index, POOL))
    deleted = node_claim("going")
    deleted["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    store.create(deleted)
    controller_for(store, clock_after_creation(store, timedelta(days=1)))
    # Without going's 80Gi, e0 is all the minimum has.
    assert claims(store) == ["nc-e0", "nc-going"]
    found = condition(store)
    assert (found["reason"], found["message"].split("; ")[:2]) == (
        "Compacted",
        ["leaving: going", "kept: 1 for minResources"],
    )


def test_daemonset_pod_holding_a_gpu_keeps_its_node(store: LocalStore) -> None:
    store.create(cluster([pool_spec(compaction={"period": "5m"})]))
    add_node(store, "gpu-ds")
    add_node(store, "plain-ds")
    store.create(plain_pod("exporter", "gpu-ds", owner="DaemonSet", **{"nvidia.com/gpu": "1"}))
    store.create(plain_pod("logs", "plain-ds", owner="DaemonSet", cpu="100m"))
    controller_for(store, clock_after_creation(store, timedelta(days=1)))
    assert claims(store) == ["nc-gpu-ds"]
    assert "kept: 1 with nvidia.com/gpu pods" in condition(store)["message"]


def test_no_node_is_released_while_pods_of_the_pool_wait_for_gpus(store: LocalStore) -> None:
    store.create(cluster([pool_spec(compaction={"period": "5m"})]))
    for name in ("a", "b"):
        add_node(store, name)
    waiting = tf_pod("waiting", tflops_request="10", vram_request="1Gi")
    waiting["status"] = {
        "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "x"}
        ]
    }
    store.create(waiting)
    clock = clock_after_creation(store, timedelta(days=1))

    controller = controller_for(store, clock)

    assert claims(store) == ["nc-a", "nc-b"]
    assert condition(store)["reason"] == "HeldForPendingPods"
    assert "1 pods of the pool wait for GPUs" in condition(store)["message"]
    store.delete("Pod", "waiting", "default")
    controller.drain()
    assert claims(store) == []  # nothing else keeps them: the next pass releases both
