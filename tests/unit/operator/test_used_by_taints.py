"""The used-by taint and label over the local store, each step driven by hand: a node with a
TensorFusion worker gets both, keeps them while any worker is left and loses them with the
last; other writers' taints and labels stay; what is not a worker does not count; a second
pass writes nothing; a fresh list corrects what changed meanwhile; a conflicting write is
retried; unreadable taints are reported and left; the loop runs only with its flag."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from tensorfusion.api.annotations import GPU_IDS
from tensorfusion.controller.flags import parse_flags
from tensorfusion.operator.leader_loops import leader_loops
from tensorfusion.operator.reconcilers.runner import Controller, run_reconcilers
from tensorfusion.operator.reconcilers.used_by_taints import USED_BY_TAINTS, run_used_by_taints
from tensorfusion.operator.reconcilers.work_queue import Key
from tensorfusion.store.local import LocalStore
from tensorfusion.webhook.conversion import USED_BY_TAINT
from tests.controller.cluster import wait_for

from .reconciler_objects import node, pod

TAINT = {"key": "tensor-fusion.ai/used-by", "value": "tensor-fusion", "effect": "PreferNoSchedule"}
OTHER_TAINT = {"key": "dedicated", "value": "ml", "effect": "NoSchedule"}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LocalStore]:
    with LocalStore(tmp_path / "store.db") as local:
        yield local


def converge(store: LocalStore) -> Controller:
    controller = Controller(store, USED_BY_TAINTS)
    controller.start()
    controller.drain()
    return controller


def taints(store: LocalStore, name: str = "n0") -> list[Any]:
    return list(store.get("Node", name).get("spec", {}).get("taints") or [])


def used_by_label(store: LocalStore, name: str = "n0") -> str | None:
    labels: dict[str, str] = store.get("Node", name)["metadata"].get("labels") or {}
    return labels.get(USED_BY_TAINT)


def marked(store: LocalStore, name: str = "n0") -> bool:
    """Whether the node carries the used-by taint and label, asserting it carries both or
    neither."""
    tainted = TAINT in taints(store, name)
    assert tainted == (used_by_label(store, name) == "tensor-fusion")
    return tainted


def worker(name: str, node_name: str = "n0") -> dict[str, Any]:
    return pod(name, node_name, [f"{node_name}-gpu-0"], "10", "4Gi")


def native_pod(name: str, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    """A running pod of the default scheduler on n0."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "annotations": annotations or {}},
        "spec": {"nodeName": "n0", "containers": [{"name": "main", "image": "cuda"}]},
        "status": {"phase": "Running"},
    }


def test_a_node_is_marked_while_any_worker_runs_on_it(store: LocalStore) -> None:
    store.create(node("n0"))
    store.create(node("n1"))
    controller = converge(store)
    assert not marked(store)
    store.create(worker("a"))
    controller.drain()
    assert marked(store)
    assert taints(store) == [TAINT]
    assert not marked(store, "n1")
    store.create(worker("b"))
    controller.drain()
    store.delete("Pod", "a", "default")
    controller.drain()
    assert marked(store)
    store.delete("Pod", "b", "default")
    controller.drain()
    assert not marked(store)
    node_now = store.get("Node", "n0")
    assert "taints" not in node_now["spec"]
    assert USED_BY_TAINT not in node_now["metadata"]["labels"]


def test_other_taints_and_labels_are_kept(store: LocalStore) -> None:
    foreign = {"key": USED_BY_TAINT, "value": "tensor-fusion", "effect": "NoSchedule"}
    labelled = node("n0", labels={"gpu": "yes", "team": "ml"})
    store.create({**labelled, "spec": {"taints": [OTHER_TAINT, foreign]}})
    controller = converge(store)
    labels_before = store.get("Node", "n0")["metadata"]["labels"]
    store.create(worker("a"))
    controller.drain()
    assert taints(store) == [OTHER_TAINT, foreign, TAINT]
    assert store.get("Node", "n0")["metadata"]["labels"] == {
        **labels_before,
        USED_BY_TAINT: "tensor-fusion",
    }
    store.delete("Pod", "a", "default")
    controller.drain()
    assert taints(store) == [OTHER_TAINT, foreign]
    assert store.get("Node", "n0")["metadata"]["labels"] == labels_before


def test_the_used_by_key_under_another_value_is_left_to_its_writer(store: LocalStore) -> None:
    # Kubernetes allows one taint per key and effect: another writer's already keeps pods
    # without the toleration off, so it is neither replaced nor, once idle, removed.
    theirs = {**TAINT, "value": "nvidia-device-plugin"}
    store.create({**node("n0"), "spec": {"taints": [theirs]}})
    store.patch("Node", "n0", {"metadata": {"labels": {USED_BY_TAINT: "nvidia-device-plugin"}}})
    controller = converge(store)
    store.create(worker("a"))
    controller.drain()
    assert taints(store) == [theirs]
    assert used_by_label(store) == "nvidia-device-plugin"
    store.delete("Pod", "a", "default")
    controller.drain()
    assert taints(store) == [theirs]
    assert used_by_label(store) == "nvidia-device-plugin"
    assert controller.context.writes == 0


def test_what_others_remove_from_a_node_in_use_comes_back(store: LocalStore) -> None:
    store.create(node("n0"))
    store.create(worker("a"))
    controller = converge(store)
    store.patch("Node", "n0", {"spec": {"taints": [OTHER_TAINT]}})
    controller.drain()
    assert taints(store) == [OTHER_TAINT, TAINT]
    store.patch("Node", "n0", {"metadata": {"labels": {USED_BY_TAINT: None}}})
    controller.drain()
    assert marked(store)


def test_a_fresh_list_undoes_what_changed_while_no_controller_ran(store: LocalStore) -> None:
    store.create(node("n0"))
    store.create(node("n1"))
    store.create(worker("a"))
    converge(store).close()
    assert marked(store)
    store.delete("Pod", "a", "default")
    store.create(worker("b", node_name="n1"))
    converge(store)
    assert not marked(store)
    assert marked(store, "n1")


def test_unreadable_taints_are_reported_and_nothing_changes(store: LocalStore) -> None:
    store.create({**node("n0"), "spec": {"taints": ["dedicated=ml:NoSchedule"]}})
    store.create(worker("a"))
    before = store.get("Node", "n0")
    controller = converge(store)
    assert store.get("Node", "n0") == before
    (event,) = store.list("Event")
    assert event["reason"] == "InvalidTaints"
    assert event["message"].startswith("spec.taints:")
    assert event["involvedObject"]["name"] == "n0"
    store.patch("Node", "n0", {"spec": {"taints": [OTHER_TAINT]}})
    controller.drain()
    assert taints(store) == [OTHER_TAINT, TAINT]
    assert len(store.list("Event")) == 1


@pytest.mark.parametrize(
    ("argv", "migration"),
    [([], ()), (["-nvidia-operator-progressive-migration"], (run_used_by_taints,))],
)
def test_the_used_by_taints_run_only_with_progressive_migration(
    argv: list[str], migration: tuple[object, ...]
) -> None:
    flags = parse_flags([*argv, "-agent-daemonset=rel-agent"], namespace=lambda: "tf")
    fleet, *rest = leader_loops(flags)
    assert isinstance(fleet, partial)
    assert fleet.func is run_reconcilers
    node_pools = fleet.keywords["node_pools"]
    assert (node_pools.agent_namespace, node_pools.agent_daemonset) == ("tf", "rel-agent")
    assert tuple(rest) == migration


def test_a_finished_worker_does_not_count(store: LocalStore) -> None:
    store.create(node("n0"))
    store.create({**worker("done"), "status": {"phase": "Succeeded"}})
    controller = converge(store)
    assert not marked(store)
    store.create(worker("a"))
    controller.drain()
    assert marked(store)
    store.patch("Pod", "a", {"status": {"phase": "Failed"}}, "default")
    controller.drain()
    assert not marked(store)


def test_a_worker_being_deleted_counts_until_it_is_gone(store: LocalStore) -> None:
    store.create(node("n0"))
    controller = converge(store)
    store.create(worker("a"))
    controller.drain()
    store.patch("Pod", "a", {"metadata": {"deletionTimestamp": "2030-01-01T00:00:00Z"}}, "default")
    controller.drain()
    assert marked(store)
    store.delete("Pod", "a", "default")
    controller.drain()
    assert not marked(store)


@pytest.mark.parametrize(
    ("annotations", "counts"),
    [
        (None, False),
        ({GPU_IDS: ""}, False),
        ({GPU_IDS: " , "}, False),
        ({GPU_IDS: "n0-gpu-0"}, True),
    ],
)
def test_a_pod_of_another_scheduler_counts_only_with_gpu_ids(
    store: LocalStore, annotations: dict[str, str] | None, counts: bool
) -> None:
    store.create(node("n0"))
    store.create(native_pod("p", annotations))
    converge(store)
    assert marked(store) is counts


def test_pending_and_strange_pods_do_not_count(store: LocalStore) -> None:
    store.create(node("n0"))
    pending = worker("pending")
    del pending["spec"]["nodeName"]
    store.create(pending)
    store.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bare"}})
    store.create(worker("elsewhere", node_name="missing"))
    controller = converge(store)
    assert not marked(store)
    assert [n["metadata"]["name"] for n in store.list("Node")] == ["n0"]
    assert controller.context.writes == 0


def test_a_second_pass_writes_nothing(store: LocalStore) -> None:
    store.create({**node("n0"), "spec": {"taints": [OTHER_TAINT]}})
    store.create(node("n1"))
    store.create(worker("a"))
    controller = converge(store)
    assert controller.context.writes == 1  # n0, taint and label in one write
    versions = {n["metadata"]["name"]: n["metadata"]["resourceVersion"] for n in store.list("Node")}
    controller.start()  # every key queued again
    assert controller.drain() > 0
    assert controller.context.writes == 1
    assert converge(store).context.writes == 0  # a fresh controller agrees
    assert {
        n["metadata"]["name"]: n["metadata"]["resourceVersion"] for n in store.list("Node")
    } == versions


def test_a_conflicting_write_is_retried_keeping_the_other_writers_taint(
    store: LocalStore,
) -> None:
    store.create(node("n0"))
    store.create(worker("a"))
    controller = Controller(store, USED_BY_TAINTS)
    controller.start()
    # Another writer taints the node after the cache read it: the first write is refused (a
    # stale resourceVersion) and retried from the node's newer version.
    store.patch("Node", "n0", {"spec": {"taints": [OTHER_TAINT]}})
    key = Key("Node", "", "n0")
    assert controller.process() == key
    assert controller.queue.failures(key) == 1
    assert taints(store) == [OTHER_TAINT]
    controller.sync()
    assert controller.process(timeout_s=5.0) == key
    assert controller.queue.failures(key) == 0
    assert taints(store) == [OTHER_TAINT, TAINT]
    assert marked(store)


@pytest.mark.timing
def test_run_used_by_taints_follows_the_store_until_stopped(store: LocalStore) -> None:
    store.create(node("n0"))
    stop = threading.Event()
    loop = threading.Thread(target=run_used_by_taints, args=(store, stop))
    loop.start()
    try:
        store.create(worker("a"))
        wait_for("the node to be tainted", lambda: TAINT in taints(store))
        store.delete("Pod", "a", "default")
        wait_for("the taint to go", lambda: not taints(store))
    finally:
        stop.set()
        loop.join(timeout=30.0)
    assert not loop.is_alive()
    assert used_by_label(store) is None
