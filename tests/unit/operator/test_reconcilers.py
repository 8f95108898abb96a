"""The reconcilers over the local store, each step driven by hand: pools from a cluster,
GPUNodes from nodes, GPU and GPUNode capacity by the scheduler's capacity rule, pool and
cluster totals; bad input, idempotence, retries, and a controller that was down."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from tensorfusion.api.gpu_links import DEFAULT_POOL_ANNOTATION, OWNER_LABEL
from tensorfusion.operator.reconcilers.runner import Controller, run_reconcilers
from tensorfusion.operator.reconcilers.work_queue import Key
from tensorfusion.store.local import LocalStore
from tensorfusion.store.objects import JsonObject
from tests.unit.scheduler.test_scheduling_loop import ChangedBetweenLists

from .reconciler_objects import agent_gpu_node, cluster, gpu, node, pod, pool_entry

KINDS = ("TensorFusionCluster", "GPUPool", "Node", "GPUNode", "GPU", "Pod", "Event")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LocalStore]:
    with LocalStore(tmp_path / "store.db") as local:
        yield local


def versions(store: LocalStore) -> dict[tuple[str, str], str]:
    return {
        (obj["kind"], obj["metadata"]["name"]): obj["metadata"]["resourceVersion"]
        for kind in KINDS
        for obj in store.list(kind)
    }


def fleet(store: LocalStore, nodes: int = 2) -> None:
    """A cluster and `nodes` GPU nodes of two GPUs each, registered by the agent."""
    store.create(cluster())
    for number in range(nodes):
        name = f"n{number}"
        store.create(node(name))
        store.create(agent_gpu_node(name, "c-p"))
        for index in range(2):
            store.create(gpu(name, index, "c-p"))


def converge(store: LocalStore) -> Controller:
    controller = Controller(store)
    controller.start()
    controller.drain()
    return controller


def status(store: LocalStore, kind: str, name: str) -> Mapping[str, Any]:
    found: JsonObject = store.get(kind, name)
    return found.get("status") or {}


def test_cluster_makes_owned_pools_and_a_second_pass_writes_nothing(store: LocalStore) -> None:
    fleet(store)
    controller = converge(store)
    pool = store.get("GPUPool", "c-p")
    owner = pool["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"]) == ("TensorFusionCluster", "c")
    assert owner["uid"] == store.get("TensorFusionCluster", "c")["metadata"]["uid"]
    assert pool["metadata"]["annotations"][DEFAULT_POOL_ANNOTATION] == "true"
    assert pool["spec"] == pool_entry("p")["specTemplate"]
    before, writes = versions(store), controller.context.writes
    controller.start()  # every key queued again
    assert controller.drain() > 0
    assert controller.context.writes == writes
    assert versions(store) == before
    assert converge(store).context.writes == 0  # a fresh controller agrees


def test_gpu_and_node_status_follow_the_capacity_rule(store: LocalStore) -> None:
    fleet(store)
    store.create(pod("w", "n0", ["n0-gpu-0"], "10", "4Gi"))
    converge(store)
    # 100 TFLOPS x 300%; 40Gi + min(50% of 40Gi, 64Gi/2 of RAM) + min(10%, 400Gi/2 of disk)
    assert status(store, "GPU", "n0-gpu-0")["available"] == {"tflops": "290", "vram": "60Gi"}
    assert status(store, "GPU", "n0-gpu-1")["available"] == {"tflops": "300", "vram": "64Gi"}
    gpu_node = status(store, "GPUNode", "n0")
    assert gpu_node["totalTFlops"] == "200"
    assert gpu_node["virtualTFlops"] == "600"
    assert gpu_node["virtualVRAM"] == "128Gi"
    assert gpu_node["availableTFlops"] == "590"
    assert gpu_node["availableVRAM"] == "124Gi"
    assert (gpu_node["phase"], gpu_node["totalGPUs"], gpu_node["managedGPUs"]) == ("Running", 2, 2)
    assert gpu_node["nodeInfo"]["ramSize"] == "64Gi"  # the agent's part is kept


def test_pool_and_cluster_sum_their_members(store: LocalStore) -> None:
    fleet(store, nodes=3)
    converge(store)
    pool = status(store, "GPUPool", "c-p")
    assert (pool["phase"], pool["cluster"]) == ("Running", "c")
    assert (pool["totalNodes"], pool["readyNodes"], pool["notReadyNodes"]) == (3, 3, 0)
    assert (pool["totalGPUs"], pool["virtualTFlops"], pool["availableVRAM"]) == (6, "1800", "384Gi")
    top = status(store, "TensorFusionCluster", "c")
    assert (top["phase"], top["totalPools"], top["totalNodes"], top["totalGPUs"]) == (
        "Running",
        1,
        3,
        6,
    )
    assert (top["readyGPUPools"], top["notReadyGPUPools"]) == (["c-p"], [])
    assert top["totalVRAM"] == "240Gi"


def test_a_pool_dropped_from_the_spec_is_deleted(store: LocalStore) -> None:
    store.create(cluster([pool_entry("p"), {**pool_entry("q"), "isDefault": False}]))
    controller = converge(store)
    assert [p["metadata"]["name"] for p in store.list("GPUPool")] == ["c-p", "c-q"]
    store.patch("TensorFusionCluster", "c", {"spec": {"gpuPools": [pool_entry("q")]}})
    controller.drain()
    assert [p["metadata"]["name"] for p in store.list("GPUPool")] == ["c-q"]
    assert store.get("GPUPool", "c-q")["metadata"]["annotations"][DEFAULT_POOL_ANNOTATION] == "true"
    assert status(store, "TensorFusionCluster", "c")["totalPools"] == 1


def test_a_pool_with_server_defaults_settles_and_follows_its_template(store: LocalStore) -> None:
    """The API server adds the CRD's defaults to a written pool: a pool holding more than its
    template is left alone, and a key dropped from the template is dropped from the pool."""
    entry = pool_entry("p")
    entry["specTemplate"]["capacityConfig"] = {}
    store.create(cluster([entry]))
    controller = converge(store)
    store.patch("GPUPool", "c-p", {"spec": {"capacityConfig": {"oversubscription": {}}}})
    writes = controller.context.writes
    controller.start()
    controller.drain()
    assert controller.context.writes == writes
    assert store.get("GPUPool", "c-p")["spec"]["capacityConfig"] == {"oversubscription": {}}
    del entry["specTemplate"]["capacityConfig"]
    store.patch("TensorFusionCluster", "c", {"spec": {"gpuPools": [entry]}})
    controller.drain()
    assert "capacityConfig" not in store.get("GPUPool", "c-p")["spec"]
    store.patch("GPUPool", "c-p", {"spec": {"nodeManagerConfig": None}})
    controller.drain()
    assert store.get("GPUPool", "c-p")["spec"] == entry["specTemplate"]


def test_a_bad_pool_spec_is_reported_by_field_and_changes_nothing_else(store: LocalStore) -> None:
    fleet(store)
    controller = converge(store)
    before = versions(store)
    bad = pool_entry("p", {"tflopsOversellRatio": 50})
    store.patch("TensorFusionCluster", "c", {"spec": {"gpuPools": [bad]}})
    controller.drain()
    field = "tflopsOversellRatio"
    top = status(store, "TensorFusionCluster", "c")
    assert top["phase"] == "Unknown"
    assert field in top["conditions"][0]["message"]
    assert "spec.gpuPools" in top["conditions"][0]["message"]
    (event,) = store.list("Event")
    assert (event["reason"], event["involvedObject"]["name"]) == ("InvalidSpec", "c")
    assert field in event["message"]
    after = versions(store)
    changed = {key for key in after if after[key] != before.get(key)}
    assert {kind for kind, _ in changed} == {"TensorFusionCluster", "Event"}
    controller.start()
    controller.drain()
    assert len(store.list("Event")) == 1  # the same warning is not repeated


def test_nodes_join_and_leave_by_the_pools_selector(store: LocalStore) -> None:
    store.create(cluster())
    store.create(node("n0"))
    store.create(node("plain", labels={}))
    controller = converge(store)
    gpu_node = store.get("GPUNode", "n0")
    assert gpu_node["metadata"]["labels"] == {OWNER_LABEL: "c-p"}
    assert gpu_node["metadata"]["ownerReferences"][0]["name"] == "n0"
    assert [n["metadata"]["name"] for n in store.list("GPUNode")] == ["n0"]
    assert status(store, "GPUNode", "n0")["phase"] == "Pending"  # no GPUs yet
    store.patch("Node", "n0", {"metadata": {"labels": {"gpu": None}}})
    store.patch("Node", "plain", {"metadata": {"labels": {"gpu": "yes"}}})
    controller.drain()
    assert [n["metadata"]["name"] for n in store.list("GPUNode")] == ["plain"]
    store.delete("Node", "plain")
    controller.drain()
    assert store.list("GPUNode") == []


def test_a_cluster_made_after_the_start_picks_the_nodes(store: LocalStore) -> None:
    store.create(node("n0"))
    controller = converge(store)
    assert store.list("GPUNode") == []
    store.create(cluster())
    controller.drain()
    assert [n["metadata"]["name"] for n in store.list("GPUNode")] == ["n0"]


def test_gpu_nodes_not_made_by_the_controller_are_left_alone(store: LocalStore) -> None:
    store.create(cluster())
    store.create(node("manual", labels={}))
    store.create(agent_gpu_node("manual", "c-p"))
    converge(store)
    assert store.get("GPUNode", "manual")["metadata"]["labels"] == {OWNER_LABEL: "c-p"}


def test_a_deleted_pod_gives_its_capacity_back(store: LocalStore) -> None:
    fleet(store)
    store.create(pod("w", "n0", ["n0-gpu-0", "n0-gpu-1"], "100", "10Gi"))
    controller = converge(store)
    assert status(store, "GPUNode", "n0")["availableTFlops"] == "400"
    store.delete("Pod", "w", "default")
    controller.drain()
    assert status(store, "GPUNode", "n0")["availableTFlops"] == "600"
    assert status(store, "GPU", "n0-gpu-1")["available"]["tflops"] == "300"


def test_what_changed_while_the_controller_was_down_is_recomputed(store: LocalStore) -> None:
    fleet(store)
    store.create(pod("w", "n0", ["n0-gpu-0"], "10", "4Gi"))
    converge(store)
    store.delete("Pod", "w", "default")
    store.delete("Node", "n1")
    store.create(node("n2"))
    converge(store)
    assert status(store, "GPU", "n0-gpu-0")["available"] == {"tflops": "300", "vram": "64Gi"}
    assert "n2" in {n["metadata"]["name"] for n in store.list("GPUNode")}
    assert status(store, "GPUPool", "c-p")["totalNodes"] == 3  # n1's GPUNode is the agent's


def test_a_conflicting_write_is_retried_with_backoff(store: LocalStore) -> None:
    fleet(store)
    controller = Controller(store)
    controller.start()
    # Another writer changes the pool after the cache read it: the pool's first write is
    # refused (a stale resourceVersion) and retried once the change has been seen.
    store.create({**cluster(), "metadata": {"name": "d"}, "spec": {}})
    controller.cache.put(store.get("TensorFusionCluster", "d"))
    store.patch("TensorFusionCluster", "d", {"metadata": {"labels": {"x": "y"}}})
    key = Key("TensorFusionCluster", "", "d")
    controller.queue.add(key)
    while controller.process() not in (key, None):
        pass
    assert controller.queue.failures(key) == 1
    controller.sync()
    ran = controller.process(timeout_s=5.0)
    while ran not in (key, None):
        ran = controller.process(timeout_s=5.0)
    assert ran == key
    assert controller.queue.failures(key) == 0
    assert status(store, "TensorFusionCluster", "d")["totalPools"] == 0


def test_each_kind_resumes_from_its_own_list() -> None:
    # Node n0 is labelled while the GPUs are listed, after the nodes already were.
    with ChangedBetweenLists(
        "GPU", lambda store: store.patch("Node", "n0", {"metadata": {"labels": {"gpu": "yes"}}})
    ) as store:
        store.create(cluster())
        store.create(node("n0", labels={}))
        controller = Controller(store)
        controller.start()
        controller.drain()
        assert [n["metadata"]["name"] for n in store.list("GPUNode")] == ["n0"]


@pytest.mark.timing
def test_run_reconcilers_follows_the_store_until_stopped(store: LocalStore) -> None:
    stop = threading.Event()
    worker = threading.Thread(target=run_reconcilers, args=(store, stop))
    worker.start()
    try:
        store.create(cluster())
        store.create(node("n0"))
        for _ in store.watch(["GPUNode"], 0, timeout_s=30.0):
            break
    finally:
        stop.set()
        worker.join(timeout=30.0)
    assert not worker.is_alive()
    assert store.get("GPUNode", "n0")["metadata"]["labels"] == {OWNER_LABEL: "c-p"}
