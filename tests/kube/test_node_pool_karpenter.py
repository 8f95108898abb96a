"""A Karpenter-mode pool in the API-server emulator: 40 pods of mixed sizes that the real
scheduler found no room for become the fewest NodeClaims their GPU slices need; once the
Karpenter stand-in has brought the claimed nodes up, the real scheduler binds every pod, and
no further node is claimed. A daily budget holds back the node that would pass it, and a
pool already over its budget says so in its status and keeps its nodes. Reconciles are
driven by re-listing (`start`, `drain`), so no step waits on a watch."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import kubernetes
import pytest

from tensorfusion.api.gpu_links import POOL_LABEL
from tensorfusion.operator.nodepool.karpenter import SETTLE
from tensorfusion.operator.reconcilers.runner import Controller
from tensorfusion.store.kube import KubeStore
from tests.controller.cluster import apply_crds
from tests.kube.instance_node import newest_node
from tests.kube.karpenter_crd import install, nodeclaim_crd
from tests.kube.karpenter_standin import karpenter_pool, pending_pod, register_claimed_nodes
from tests.kube.runner import KubeApi
from tests.kube.scheduling_steps import bound, schedule_until_idle
from tests.unit.operator.sim_clock import SimClock

POOL = "gpus"


def workload() -> list[dict[str, Any]]:
    """40 pods on L4s (121 TFLOPS, 24Gi), named in the order the scheduler takes them.

    By hand: 4 pairs of 2 x (50, 10Gi) fill 4 GPUs two deep; 8 big (100, 20Gi) take a GPU
    each; 12 mid (60, 12Gi) fill 6 GPUs in twos; the 16 small (10, 2Gi) go two apiece into
    the 21 TFLOPS / 4Gi left on the 12 GPUs of the pairs and the big pods. 18 GPUs: five
    4-GPU g6.12xlarge nodes (one 1-GPU g6.xlarge per pod would be 40 nodes)."""
    pods = [
        *(pending_pod(f"a-pair-{i}", "50", "10Gi", gpus=2) for i in range(4)),
        *(pending_pod(f"b-big-{i}", "100", "20Gi") for i in range(8)),
        *(pending_pod(f"c-mid-{i:02d}", "60", "12Gi") for i in range(12)),
        *(pending_pod(f"d-small-{i:02d}", "10", "2Gi") for i in range(16)),
    ]
    for pod in pods:
        del pod["status"]  # the scheduler writes why they wait
        del pod["metadata"]["uid"]
    return pods


@pytest.fixture
def store(kube_api: KubeApi, api_client: kubernetes.client.ApiClient) -> Iterator[KubeStore]:
    apply_crds(kube_api.kubeconfig)
    install(api_client, nodeclaim_crd())
    with KubeStore(kube_api.kubeconfig) as kube_store:
        yield kube_store


def reconcile(store: KubeStore) -> None:
    clock = SimClock(datetime.now(UTC))
    controller = Controller(store, clock=clock.monotonic, now=clock.now)
    controller.start()
    controller.drain()


def pool_condition(store: KubeStore, kind: str) -> dict[str, Any]:
    conditions = store.get("GPUPool", POOL)["status"]["conditions"]
    return next(c for c in conditions if c["type"] == kind)


def warnings(store: KubeStore, reason: str) -> list[str]:
    return [
        e["message"]
        for e in store.list("Event", "default")
        if e["reason"] == reason and e["type"] == "Warning"
    ]


def test_pending_pods_get_the_fewest_nodes_and_all_schedule_on_them(store: KubeStore) -> None:
    """Karpenter itself is a stand-in here (tests/kube/karpenter_standin.py)."""
    store.create(karpenter_pool(POOL, ["g6.xlarge", "g6.12xlarge"]))
    for pod in workload():
        store.create(pod)
    schedule_until_idle(store)  # no node yet: each pod is marked Unschedulable
    assert bound(store) == {}
    clock = SimClock(datetime.now(UTC))
    controller = Controller(store, clock=clock.monotonic, now=clock.now)
    controller.start()
    controller.drain()

    claims = store.list("NodeClaim")
    assert len(claims) == 5
    assert {c["spec"]["requirements"][0]["values"][0] for c in claims} == {"g6.12xlarge"}
    assert all(c["metadata"]["labels"][POOL_LABEL] == POOL for c in claims)
    assert store.get("GPUPool", POOL)["status"]["costPerHour"] == "23.008"  # 5 x 4.6016

    nodes = register_claimed_nodes(store)
    controller.start()
    controller.drain()  # the nodes join the pool; their claims are still on their way
    assert len(store.list("NodeClaim")) == 5
    schedule_until_idle(store)

    placed = bound(store)
    assert len(placed) == 40
    assert set(placed.values()) <= set(nodes)
    clock.advance_past(newest_node(store) + SETTLE)
    controller.start()
    controller.drain()
    assert len(store.list("NodeClaim")) == 5
    provisioning = next(
        c for c in store.get("GPUPool", POOL)["status"]["conditions"] if c["type"] == "Provisioning"
    )
    assert (provisioning["status"], provisioning["reason"]) == ("False", "CapacitySufficient")


def test_the_daily_budget_holds_nodes_back_and_terminates_none(store: KubeStore) -> None:
    """Karpenter itself is a stand-in here (tests/kube/karpenter_standin.py)."""
    pool = karpenter_pool(
        POOL,
        ["g6.xlarge", "g6.12xlarge"],
        provisioner={
            "budget": {"budgetPerDay": "120", "budgetExceedStrategy": "AlertAndTerminateVM"}
        },
    )
    store.create(pool)
    for index in range(5):  # a GPU each: a 4-GPU node (110.44 a day) and a 1-GPU one
        store.create(pending_pod(f"w-{index}", "100", "20Gi"))
    reconcile(store)

    [claim] = store.list("NodeClaim")
    assert claim["spec"]["requirements"][0]["values"] == ["g6.12xlarge"]
    message = "budgetPerDay 120 reached: 1 pods stay pending"
    capped = pool_condition(store, "CapacityCapped")
    assert (capped["status"], capped["reason"], capped["message"]) == (
        "True",
        "BudgetPerDay",
        message,
    )
    assert warnings(store, "CapacityCapped") == [message]
    status = store.get("GPUPool", POOL)["status"]
    assert (status["costPerHour"], status["budgetExceeded"]) == ("4.6016", "")

    budget = {"budgetPerDay": "100", "budgetExceedStrategy": "AlertAndTerminateVM"}
    spec = {"nodeManagerConfig": {"nodeProvisioner": {"budget": budget}}}
    store.patch("GPUPool", POOL, {"spec": spec})
    reconcile(store)

    exceeded = "budgetPerDay 100 exceeded: 4.6016 per hour is 110.4384 per day"
    assert store.get("GPUPool", POOL)["status"]["budgetExceeded"] == exceeded
    assert warnings(store, "BudgetExceeded") == [exceeded]
    assert [c["metadata"]["name"] for c in store.list("NodeClaim")] == [claim["metadata"]["name"]]
    assert pool_condition(store, "CapacityCapped")["message"] == (
        "budgetPerDay 100 reached: 1 pods stay pending"
    )
