"""The controller schedules in the API-server emulator: pods of the tensor-fusion-scheduler
profile are bound with their GPUs, an unschedulable one is told why (condition and Event),
and the management API answers from the cluster's state."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tensorfusion.api.annotations import GPU_IDS
from tensorfusion.api.gpu_links import OWNER_LABEL
from tensorfusion.controller.events import FAILED_SCHEDULING
from tensorfusion.store.kube import KubeStore
from tests.controller.cluster import (
    RunningController,
    add_fleet,
    apply_crds,
    guide_pod,
    running_controller,
    wait_for,
)
from tests.kube.runner import KubeApi

pytestmark = pytest.mark.timing  # waits for the scheduler's passes


@pytest.fixture
def store(kube_api: KubeApi) -> Iterator[KubeStore]:
    apply_crds(kube_api.kubeconfig)
    with KubeStore(kube_api.kubeconfig) as store:
        add_fleet(store, nodes=3, gpus_per_node=2)
        yield store


@pytest.fixture
def controller(kube_api: KubeApi, store: KubeStore, tmp_path: Path) -> Iterator[RunningController]:
    with running_controller(kube_api.kubeconfig, tmp_path) as running:
        with running.http() as http:
            wait_for("the scheduler to be ready", lambda: http.get("/readyz").status_code == 200)
        yield running


def bound(store: KubeStore, name: str) -> dict[str, Any] | None:
    pod = store.get("Pod", name, "default")
    return pod if pod["spec"].get("nodeName") else None


def test_the_guides_pod_is_bound_with_its_gpus(
    store: KubeStore, controller: RunningController
) -> None:
    store.create(guide_pod("r9"))
    pod = wait_for("the pod to be bound", lambda: bound(store, "r9"))
    gpus = pod["metadata"]["annotations"][GPU_IDS].split(",")
    assert len(gpus) == 1
    gpu = store.get("GPU", gpus[0])
    assert gpu["metadata"]["labels"][OWNER_LABEL] == pod["spec"]["nodeName"]
    allocation = controller.http().get("/api/allocation").json()
    assert pod["metadata"]["uid"] in str(allocation)


def test_a_pod_of_another_scheduler_is_left_alone(
    store: KubeStore, controller: RunningController
) -> None:
    other = guide_pod("other")
    other["spec"]["schedulerName"] = "default-scheduler"
    store.create(other)
    store.create(guide_pod("ours"))
    wait_for("our pod to be bound", lambda: bound(store, "ours"))
    assert bound(store, "other") is None


def test_an_unschedulable_pod_gets_the_condition_and_the_event(
    store: KubeStore, controller: RunningController
) -> None:
    pod = guide_pod("too-big")
    pod["metadata"]["annotations"]["tensor-fusion.ai/vram-request"] = "4Ti"
    pod["metadata"]["annotations"]["tensor-fusion.ai/vram-limit"] = "4Ti"
    uid = store.create(pod)["metadata"]["uid"]

    def condition() -> dict[str, Any] | None:
        conditions = store.get("Pod", "too-big", "default").get("status", {}).get("conditions")
        return next((c for c in conditions or () if c["type"] == "PodScheduled"), None)

    scheduled = wait_for("the PodScheduled condition", condition)
    assert scheduled["status"] == "False"
    assert scheduled["reason"] == "Unschedulable"
    assert scheduled["message"].startswith("0/3 nodes are available: ")

    def event() -> dict[str, Any] | None:
        events = store.list("Event", "default")
        return next((e for e in events if e["involvedObject"]["uid"] == uid), None)

    written = wait_for("the FailedScheduling event", event)
    assert written["reason"] == FAILED_SCHEDULING
    assert written["type"] == "Warning"
    assert written["message"] == scheduled["message"]
    assert written["involvedObject"]["name"] == "too-big"
    assert bound(store, "too-big") is None


def test_simulate_answers_from_the_clusters_state(
    store: KubeStore, controller: RunningController
) -> None:
    body = guide_pod("test-pod")
    answer = controller.http().post("/api/simulate-schedule", json=body)
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["schedulable"] is True
    assert result["node"] in {node["metadata"]["name"] for node in store.list("Node")}


def test_local_workers_are_not_served(store: KubeStore, controller: RunningController) -> None:
    assert controller.http().get("/api/workers").json() == {"workers": []}
