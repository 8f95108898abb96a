"""The workers bound to one node, followed as an informer follows them: listed once, then
kept current from the change feed, both narrowed to the node's pods by the store (on a
LocalStore, which selects and follows as KubeStore does)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tensorfusion.agent.node_pods import NodePods, PodChanges, is_worker, is_worker_of
from tensorfusion.api.annotations import GPU_IDS
from tensorfusion.store.local import LocalStore
from tests.unit.agent.conftest import worker


@pytest.fixture
def store() -> Iterator[LocalStore]:
    with LocalStore(":memory:") as opened:
        yield opened


def pod(name: str, node: str | None = "node-0", **extra: Any) -> dict[str, Any]:
    made = worker(name, node=node, gpu_ids=f"{node}-gpu-0" if node else None)
    made.update(extra)
    return made


def names(pods: list[dict[str, Any]]) -> list[str]:
    return sorted(p["metadata"]["name"] for p in pods)


def test_a_worker_is_bound_here_with_gpu_ids_and_not_finished() -> None:
    assert is_worker_of(pod("a"), "node-0")
    assert not is_worker_of(pod("a"), "node-1")
    assert not is_worker_of(pod("a", node=None), "node-0")
    unbound_ids = pod("a")
    del unbound_ids["metadata"]["annotations"][GPU_IDS]
    assert not is_worker_of(unbound_ids, "node-0")
    assert not is_worker_of(pod("a", status={"phase": "Succeeded"}), "node-0")
    assert is_worker_of(pod("a", status={"phase": "Running"}), "node-0")
    # What is left for the agent to check once the store has narrowed the pods to its node.
    assert is_worker(pod("a", node="node-1"))
    assert not is_worker(unbound_ids)
    assert not is_worker(pod("a", status={"phase": "Failed"}))


def test_the_first_sync_lists_this_nodes_workers(store: LocalStore) -> None:
    for made in (pod("mine"), pod("theirs", node="node-1"), pod("pending", node=None)):
        store.create(made)
    pods = NodePods(store, "node-0")
    assert not pods.synced
    assert not pods.wait(0)
    changes = pods.sync()
    assert pods.synced
    assert (names(changes.changed), changes.gone) == (["mine"], [])
    assert names(pods.pods()) == ["mine"]
    pods.close()


def test_changes_arrive_through_the_feed(store: LocalStore) -> None:
    store.create(pod("stays"))
    store.create(pod("pending", node=None))
    store.create(pod("ends"))
    pods = NodePods(store, "node-0")
    pods.sync()
    assert pods.sync().changed == []  # nothing happened
    store.bind("default", "pending", "node-0", {GPU_IDS: "node-0-gpu-1"})
    store.patch("Pod", "ends", {"status": {"phase": "Failed"}})
    store.create(pod("elsewhere", node="node-1"))
    assert pods.wait(5)
    changes = pods.sync()
    assert names(changes.changed) == ["pending"]
    assert names(changes.gone) == ["ends"]
    store.delete("Pod", "stays")
    changes = pods.sync()
    assert (changes.changed, names(changes.gone)) == ([], ["stays"])
    assert names(pods.pods()) == ["pending"]
    pods.close()
    assert not pods.synced


def test_other_nodes_pods_never_reach_it(store: LocalStore) -> None:
    store.create(pod("theirs", node="node-1"))
    pods = NodePods(store, "node-0")
    assert pods.sync() == PodChanges()
    store.patch("Pod", "theirs", {"status": {"phase": "Running"}})
    store.create(pod("also-theirs", node="node-1"))
    assert not pods.wait(0.2)  # their changes do not even wake it
    assert pods.sync() == PodChanges()
    store.create(pod("mine"))
    assert pods.wait(5)
    assert names(pods.sync().changed) == ["mine"]
    assert names(pods.pods()) == ["mine"]
    pods.close()


def test_a_closed_feed_lists_again_and_reports_what_it_missed(store: LocalStore) -> None:
    store.create(pod("old"))
    pods = NodePods(store, "node-0")
    pods.sync()
    pods.close()
    store.delete("Pod", "old")
    store.create(pod("new"))
    changes = pods.sync()
    assert (names(changes.changed), names(changes.gone)) == (["new"], ["old"])
