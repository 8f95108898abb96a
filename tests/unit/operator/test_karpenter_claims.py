"""Karpenter NodeClaims from the node-pool reconciler, over the local store: the claim a
node of the chosen instance type gets, no second claim for the same pending pods, the cap on
capacity as a condition and an Event, the pool's cost per hour, and pool settings that
provision nothing (with the reason on the pool)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tensorfusion.api.gpu_links import POOL_LABEL
from tensorfusion.operator.nodepool.karpenter import SETTLE
from tensorfusion.operator.reconcilers.runner import Controller
from tensorfusion.store.local import LocalStore
from tests.kube.instance_node import newest_node
from tests.kube.karpenter_standin import (
    NODE_CLASS_REF,
    karpenter_pool,
    pending_pod,
    register_claimed_nodes,
)
from tests.unit.operator.sim_clock import SimClock

PROVISIONER = {
    "gpuRequirements": [
        {
            "key": "node.kubernetes.io/instance-type",
            "operator": "In",
            "values": ["g6.xlarge", "g6.2xlarge", "g6.12xlarge"],
        },
        {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]},
        {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["us-east-1a"]},
        {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]},
    ],
    "gpuTaints": [{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}],
    "gpuNodeLabels": {"team": "ml"},
    "gpuNodeAnnotations": {"cost-center": "42"},
}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LocalStore]:
    with LocalStore(tmp_path / "store.db") as local:
        yield local


@pytest.fixture
def clock() -> SimClock:
    # Near the store's own clock, which stamps the nodes' creation.
    return SimClock(datetime.now(UTC))


def reconcile(store: LocalStore, clock: SimClock) -> Controller:
    controller = Controller(store, clock=clock.monotonic, now=clock.now)
    controller.start()
    controller.drain()
    return controller


def claims(store: LocalStore) -> list[dict[str, Any]]:
    return sorted(store.list("NodeClaim"), key=lambda c: c["metadata"]["name"])


def conditions(store: LocalStore, pool: str = "p") -> dict[str, dict[str, Any]]:
    status = store.get("GPUPool", pool).get("status") or {}
    return {c["type"]: c for c in status.get("conditions", [])}


def events(store: LocalStore, reason: str) -> list[dict[str, Any]]:
    return [e for e in store.list("Event", "default") if e["reason"] == reason]


def test_claims_carry_the_pools_node_class_requirements_taints_and_labels(
    store: LocalStore, clock: SimClock
) -> None:
    store.create(karpenter_pool("p", [], provisioner=PROVISIONER))
    for index in range(8):  # one GPU each: 8 GPUs, two 4-GPU nodes
        store.create(pending_pod(f"w{index}", "100", "20Gi"))
    reconcile(store, clock)
    made = claims(store)
    assert len(made) == 2
    claim = made[0]
    assert claim["apiVersion"] == "karpenter.sh/v1"
    assert claim["metadata"]["name"].startswith("p-")
    assert claim["metadata"]["labels"] == {"team": "ml", POOL_LABEL: "p"}
    assert claim["metadata"]["annotations"] == {
        "cost-center": "42",
        "tensor-fusion.ai/instance-type": "g6.12xlarge",
    }
    assert claim["metadata"]["ownerReferences"][0]["name"] == "p"
    assert claim["spec"] == {
        "nodeClassRef": NODE_CLASS_REF,
        "requirements": [
            {
                "key": "node.kubernetes.io/instance-type",
                "operator": "In",
                "values": ["g6.12xlarge"],
            },
            {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]},
            {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["us-east-1a"]},
            {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]},
        ],
        "taints": [{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}],
        "resources": {"requests": {"nvidia.com/gpu": "4"}},
    }
    assert made[1]["metadata"]["name"] != claim["metadata"]["name"]
    provisioning = conditions(store)["Provisioning"]
    # The pass that claimed them, then the one their creation woke, which waits for them.
    assert (provisioning["status"], provisioning["reason"]) == ("True", "NodesOnTheWay")
    assert provisioning["message"] == "2 claimed node(s) not registered yet"
    assert conditions(store)["CapacityCapped"]["status"] == "False"
    created = events(store, "NodeClaimCreated")
    assert len(created) == 2
    assert all(e["type"] == "Normal" and "(g6.12xlarge)" in e["message"] for e in created)
    assert store.get("GPUPool", "p")["status"]["costPerHour"] == "9.2032"  # 2 x 4.6016


def test_a_one_gpu_node_may_be_any_listed_type_with_one_such_gpu(
    store: LocalStore, clock: SimClock
) -> None:
    store.create(karpenter_pool("p", ["g6.xlarge", "g6.2xlarge", "g5.xlarge"]))
    store.create(pending_pod("w", "100", "20Gi"))
    reconcile(store, clock)
    [claim] = claims(store)
    assert claim["spec"]["requirements"][0]["values"] == ["g6.xlarge", "g6.2xlarge"]


def test_a_second_pass_claims_nothing_more(store: LocalStore, clock: SimClock) -> None:
    store.create(karpenter_pool("p", ["g6.12xlarge"]))
    for index in range(5):
        store.create(pending_pod(f"w{index}", "100", "20Gi"))
    controller = reconcile(store, clock)
    names = [c["metadata"]["name"] for c in claims(store)]
    writes = controller.context.writes
    controller.start()
    controller.drain()
    assert controller.context.writes == writes
    assert [c["metadata"]["name"] for c in reconcile(store, clock).store.list("NodeClaim")] == names


def test_a_registered_node_counts_as_on_its_way_until_it_has_settled(
    store: LocalStore, clock: SimClock
) -> None:
    store.create(karpenter_pool("p", ["g6.xlarge"]))
    store.create(pending_pod("w", "100", "20Gi"))
    controller = reconcile(store, clock)
    assert register_claimed_nodes(store) == [claims(store)[0]["metadata"]["name"]]
    controller.start()
    controller.drain()
    assert len(claims(store)) == 1
    assert conditions(store)["Provisioning"]["reason"] == "NodesOnTheWay"
    # Still pending once the node has had time to take it: it needs a node of its own.
    clock.advance_past(newest_node(store) + SETTLE)
    controller.drain()
    assert len(claims(store)) == 2


def test_the_cap_is_a_condition_and_a_warning(store: LocalStore, clock: SimClock) -> None:
    pool = karpenter_pool(
        "p", ["g6.xlarge"], capacity={"maxResources": {"tflops": "250", "vram": "1Ti"}}
    )
    store.create(pool)
    for index in range(3):
        store.create(pending_pod(f"w{index}", "100", "20Gi"))
    reconcile(store, clock)
    assert len(claims(store)) == 2  # 242 TFLOPS; a third would be 363
    capped = conditions(store)["CapacityCapped"]
    message = "maxResources.tflops 250 reached: 1 pods stay pending"
    assert (capped["status"], capped["reason"], capped["message"]) == (
        "True",
        "MaxResources",
        message,
    )
    [warning] = events(store, "CapacityCapped")
    assert (warning["type"], warning["message"]) == ("Warning", message)
    assert warning["involvedObject"]["name"] == "p"


def test_an_unknown_instance_type_is_reported_on_the_pool(
    store: LocalStore, clock: SimClock
) -> None:
    store.create(karpenter_pool("p", ["g6.xlarge", "g9.huge"]))
    store.create(pending_pod("w", "100", "20Gi"))
    reconcile(store, clock)
    assert claims(store) == []
    provisioning = conditions(store)["Provisioning"]
    assert provisioning["status"] == "False"
    assert provisioning["reason"] == "InvalidConfiguration"
    assert provisioning["message"].startswith(
        "nodeProvisioner.gpuRequirements[0].values: unknown instance type 'g9.huge'"
    )


def test_a_pool_without_a_node_class_claims_nothing(store: LocalStore, clock: SimClock) -> None:
    pool = karpenter_pool("p", ["g6.xlarge"])
    del pool["spec"]["nodeManagerConfig"]["nodeProvisioner"]["karpenterNodeClassRef"]
    store.create(pool)
    store.create(pending_pod("w", "100", "20Gi"))
    reconcile(store, clock)
    assert claims(store) == []
    provisioning = conditions(store)["Provisioning"]
    assert (provisioning["status"], provisioning["reason"]) == ("False", "NoNodeClass")
    assert "nodeProvisioner.karpenterNodeClassRef" in provisioning["message"]


def test_a_pool_of_existing_nodes_provisions_nothing(store: LocalStore, clock: SimClock) -> None:
    pool = karpenter_pool("p", ["g6.xlarge"])
    pool["spec"]["nodeManagerConfig"]["provisioningMode"] = "AutoSelect"
    store.create(pool)
    store.create(pending_pod("w", "100", "20Gi"))
    reconcile(store, clock)
    assert claims(store) == []
    assert conditions(store)["Provisioning"]["reason"] == "ExistingNodes"
    assert "costPerHour" not in store.get("GPUPool", "p").get("status", {})
