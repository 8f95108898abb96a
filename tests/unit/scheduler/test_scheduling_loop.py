"""The embedded scheduling loop over the local SQLite store: priority order, binding with
`gpu-ids`, retries with backoff when the cluster changes, and a restart that rebuilds the
same allocation state from the store."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from tensorfusion.errors import ConflictError
from tensorfusion.scheduler.fleet_generator import generate_fleet
from tensorfusion.scheduler.loop import SchedulingLoop
from tensorfusion.store.local import LocalStore
from tensorfusion.store.objects import JsonObject
from tests.unit.scheduler.cluster_builders import gpu, gpu_node, node, pool, tf_pod


class FakeClock:
    """Backoff is driven by this clock, so the tests never sleep."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class ChangedBetweenLists(LocalStore):
    """A store in which `change` happens just before `kind` is listed: after the kinds the
    loop lists before it, so only their watch can tell the loop about it."""

    def __init__(self, kind: str, change: Callable[[LocalStore], object]) -> None:
        super().__init__(":memory:")
        self.kind = kind
        self.change: Callable[[LocalStore], object] | None = change

    def list_with_version(
        self,
        kind: str,
        namespace: str | None = None,
        label_selector: Mapping[str, str] | None = None,
        field_selector: Mapping[str, str] | None = None,
    ) -> tuple[list[JsonObject], int]:
        if kind == self.kind and self.change is not None:
            change, self.change = self.change, None
            change(self)
        return super().list_with_version(kind, namespace, label_selector, field_selector)


def _store_with_fleet(path: Path, nodes: int, fill: float) -> LocalStore:
    store = LocalStore(path)
    store.create_many(list(generate_fleet(nodes, 8, "H100", fill, seed=11).documents()))
    return store


def _pending(count: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    pods = []
    for n in range(count):
        vram = rng.choice(["4Gi", "8Gi", "10Gi", "20Gi"])
        tflops = rng.choice(["50", "100", "200"])
        pod = tf_pod(
            f"job-{n}",
            uid=f"job-uid-{n}",
            vram_request=vram,
            tflops_request=tflops,
            tflops_limit=str(int(tflops) * 2),
        )
        pod["metadata"]["namespace"] = "work"
        if n % 10 == 0:
            pod["metadata"]["annotations"]["tensor-fusion.ai/gpu-count"] = "2"
        pods.append(pod)
    return pods


def test_schedule_1000_pods_then_a_restart_rebuilds_the_same_state(tmp_path: Path) -> None:
    store = _store_with_fleet(tmp_path, nodes=40, fill=0.2)
    store.create_many(_pending(1000, seed=5))
    loop = SchedulingLoop(store)
    loop.start()
    stats = loop.run_once()
    assert stats.scheduled == 1000, loop.pending()
    before = loop.cluster.gpus.snapshot()
    for pod in store.list("Pod", namespace="work"):
        assert pod["spec"]["nodeName"]
        ids = pod["metadata"]["annotations"]["tensor-fusion.ai/gpu-ids"].split(",")
        count = int(pod["metadata"]["annotations"].get("tensor-fusion.ai/gpu-count", "1"))
        assert len(ids) == count
        assert all(gpu_name.startswith(pod["spec"]["nodeName"] + "-") for gpu_name in ids)
        # The same GPUs' device indices, in PCI bus order, for the container runtime.
        indices = sorted(store.get("GPU", name)["status"]["index"] for name in ids)
        assert pod["metadata"]["annotations"]["tensor-fusion.ai/gpu-indices"] == ",".join(
            map(str, indices)
        )
    store.close()

    reopened = LocalStore(tmp_path)
    fresh = SchedulingLoop(reopened)
    report = fresh.start()
    assert report.problems() == []
    assert fresh.cluster.gpus.snapshot() == before
    assert fresh.run_once().scheduled == 0


def test_higher_priority_pods_are_placed_first(tmp_path: Path) -> None:
    store = LocalStore(":memory:")
    store.create_many([pool(), node("n1"), gpu_node("n1"), gpu("n1-gpu-0", "n1")])
    low = tf_pod("low", vram_request="60Gi", tflops_request="10")
    high = tf_pod("high", vram_request="60Gi", tflops_request="10")
    high["spec"]["priority"] = 1000
    store.create(low)
    store.create(high)
    loop = SchedulingLoop(store)
    loop.start()
    stats = loop.run_once()
    assert [o.pod.name for o in stats.outcomes] == ["high", "low"]
    assert store.get("Pod", "high", namespace="default")["spec"]["nodeName"] == "n1"
    assert "nodeName" not in store.get("Pod", "low", namespace="default")["spec"]


def test_unschedulable_pods_back_off_and_retry_when_capacity_appears() -> None:
    clock = FakeClock()
    store = LocalStore(":memory:")
    store.create_many([pool(), node("n1"), gpu_node("n1"), gpu("n1-gpu-0", "n1")])
    blocker = tf_pod("blocker", vram_request="70Gi", tflops_request="10")
    waiter = tf_pod("waiter", vram_request="70Gi", tflops_request="10")
    store.create(blocker)
    loop = SchedulingLoop(store, clock=clock)
    loop.start()
    assert loop.run_once().scheduled == 1
    store.create(waiter)
    first = loop.run_once()
    assert first.unschedulable == 1
    condition = store.get("Pod", "waiter", namespace="default")["status"]["conditions"][0]
    assert condition["reason"] == "Unschedulable"
    assert "insufficient VRAM" in condition["message"]
    # Still inside the backoff: not retried even though a sync happens.
    assert loop.run_once().outcomes == []
    # The blocker finishes; after the backoff the waiter fits.
    store.delete("Pod", "blocker", namespace="default")
    clock.now += 1.0
    retried = loop.run_once()
    assert retried.scheduled == 1
    assert store.get("Pod", "waiter", namespace="default")["spec"]["nodeName"] == "n1"


def test_a_pod_whose_gpus_vanished_is_reported_on_start() -> None:
    store = LocalStore(":memory:")
    store.create_many([pool(), node("n1"), gpu_node("n1"), gpu("n1-gpu-0", "n1")])
    store.create(tf_pod("ghost", node_name="n1", vram_request="8Gi", gpu_ids="n1-gpu-7"))
    report = SchedulingLoop(store).start()
    assert report.vanished == [("default/ghost", ("n1-gpu-7",))]
    assert "n1-gpu-7" in report.problems()[0]


def test_pods_of_other_schedulers_are_left_alone() -> None:
    store = LocalStore(":memory:")
    store.create_many([pool(), node("n1"), gpu_node("n1"), gpu("n1-gpu-0", "n1")])
    other = tf_pod("other", vram_request="8Gi")
    other["spec"]["schedulerName"] = "default-scheduler"
    store.create(other)
    loop = SchedulingLoop(store)
    loop.start()
    assert loop.run_once().outcomes == []


def test_a_bad_object_in_the_store_is_reported_and_the_rest_still_schedules() -> None:
    store = LocalStore(":memory:")
    store.create_many([pool(), node("n1"), gpu_node("n1"), gpu("n1-gpu-0", "n1")])
    store.create(gpu("stray-gpu", "no-such-node"))
    broken = gpu("n1-gpu-1", "n1", index=1)
    broken["status"]["capacity"]["vram"] = "lots"
    store.create(broken)
    loop = SchedulingLoop(store)
    loop.start()
    assert any("stray-gpu" in problem for problem in loop.cluster.problems)
    assert any(
        "n1-gpu-1" in problem and "status.capacity.vram" in problem
        for problem in loop.cluster.problems
    )
    store.create(tf_pod("p", vram_request="8Gi"))
    # A bad object arriving later is reported the same way, without stopping the loop.
    store.create(gpu("late-stray", "nowhere"))
    assert loop.run_once().scheduled == 1
    assert any("late-stray" in problem for problem in loop.cluster.problems)
    assert (
        store.get("Pod", "p", namespace="default")["metadata"]["annotations"][
            "tensor-fusion.ai/gpu-ids"
        ]
        == "n1-gpu-0"
    )


def _cordon(store: LocalStore) -> None:
    store.patch("Node", "n1", {"spec": {"unschedulable": True}})


@pytest.mark.parametrize("listed_after", ["GPUNode", "GPU", "Pod"])
def test_a_node_changed_after_its_list_is_seen_by_the_scheduler(listed_after: str) -> None:
    store = ChangedBetweenLists(listed_after, _cordon)
    store.create_many([pool(), node("n1"), gpu_node("n1"), gpu("n1-gpu-0", "n1")])
    store.create(tf_pod("p", vram_request="8Gi"))
    loop = SchedulingLoop(store)
    loop.start()
    stats = loop.run_once()
    assert stats.scheduled == 0
    assert "unschedulable" in loop.pending()["default/p"]
    assert "nodeName" not in store.get("Pod", "p", namespace="default")["spec"]


def test_a_change_already_in_a_later_list_is_not_applied_again() -> None:
    """A pod bound before the pods are listed is in their list; its event is not replayed
    over it (it would count its GPUs a second time)."""

    def bind(store: LocalStore) -> None:
        store.bind("default", "held", "n1", {"tensor-fusion.ai/gpu-ids": "n1-gpu-0"})

    store = ChangedBetweenLists("Pod", bind)
    store.create_many([pool(), node("n1"), gpu_node("n1"), gpu("n1-gpu-0", "n1")])
    store.create(tf_pod("held", vram_request="8Gi", tflops_request="10"))
    loop = SchedulingLoop(store)
    assert loop.start().problems() == []
    before = loop.cluster.gpus.snapshot()
    assert loop.sync() == 0
    assert loop.cluster.gpus.snapshot() == before
    # Changes after the lists still arrive.
    store.delete("Pod", "held", namespace="default")
    assert loop.sync() == 1
    assert loop.cluster.gpus.snapshot() != before


class RefusingBinds(LocalStore):
    """A store whose API server refuses every binding (as it does a pod bound elsewhere)."""

    def bind(
        self, namespace: str, name: str, node_name: str, annotations: Mapping[str, str]
    ) -> JsonObject:
        raise ConflictError(f"Pod {namespace}/{name} is already bound to node 'n9'")


def test_a_failed_binding_is_the_reason_given_even_when_other_nodes_did_not_fit() -> None:
    store = RefusingBinds(":memory:")
    store.create_many(
        [pool(), node("n1"), gpu_node("n1"), gpu("n1-gpu-0", "n1"), node("n2"), gpu_node("n2")]
    )
    store.create(tf_pod("refused", vram_request="8Gi", tflops_request="10"))
    loop = SchedulingLoop(store)
    loop.start()
    assert loop.run_once().unschedulable == 1
    condition = store.get("Pod", "refused")["status"]["conditions"][0]
    # n2 has no GPU, but the reason the pod is not bound is n1's refused binding.
    assert condition["message"] == (
        "DefaultBinder (bind): binding failed: Pod default/refused is already bound to node 'n9'"
    )
    assert loop.cluster.gpus.allocations == {}
