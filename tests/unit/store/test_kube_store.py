"""KubeStore: the store contract over the Kubernetes API, run against the API-server
emulator, plus what only the Kubernetes form shows: real Lease objects, 410 Gone after
compaction, merged watch streams, and binding in two steps."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
from kubernetes import client as kube_client
from kubernetes import config as kube_config

from tensorfusion.errors import ResourceExpiredError
from tensorfusion.store import ClusterStore
from tensorfusion.store.kube import KubeStore
from tests.crd_bodies import crd_bodies
from tests.kube.runner import EmulatorThread, KubeApi

from .contract import GPU_IDS, T0, StoreContract, pod


@pytest.fixture
def kube_api(tmp_path: Path) -> Iterator[KubeApi]:
    """A fresh emulator with our CRDs applied."""
    with EmulatorThread(tmp_path / "kubeconfig") as api:
        client = kube_config.new_client_from_config(config_file=str(api.kubeconfig))
        extensions = kube_client.ApiextensionsV1Api(client)
        for body in crd_bodies():
            extensions.create_custom_resource_definition(body=body)
        client.close()
        yield api


class TestKubeStore(StoreContract):
    KEEPS_A_GIVEN_UID = False  # the server assigns every uid

    @pytest.fixture
    def store(self, kube_api: KubeApi) -> Iterator[ClusterStore]:
        with KubeStore(kube_api.kubeconfig) as store:
            yield store


@pytest.fixture
def store(kube_api: KubeApi) -> Iterator[KubeStore]:
    with KubeStore(kube_api.kubeconfig, lease_namespace="kube-system") as store:
        yield store


def test_a_lease_is_a_lease_object(store: KubeStore) -> None:
    assert store.acquire_lease("leader", "replica-a", 15, now=T0)
    lease = store.get("Lease", "leader", "kube-system")
    assert lease["apiVersion"] == "coordination.k8s.io/v1"
    assert lease["spec"] == {
        "holderIdentity": "replica-a",
        "leaseDurationSeconds": 15,
        "renewTime": "2023-11-14T22:13:20.000000Z",
        "acquireTime": "2023-11-14T22:13:20.000000Z",
        "leaseTransitions": 0,
    }
    assert store.acquire_lease("leader", "replica-b", 15, now=T0 + 15)
    assert store.get("Lease", "leader", "kube-system")["spec"]["leaseTransitions"] == 1
    store.release_lease("leader", "replica-b")
    assert "holderIdentity" not in store.get("Lease", "leader", "kube-system")["spec"]


def test_a_lease_changed_by_another_writer_is_not_taken(store: KubeStore) -> None:
    assert store.acquire_lease("leader", "replica-a", 10, now=T0)
    stale = store._lease("leader")  # read before the other writer's renewal
    assert store.renew_lease("leader", "replica-a", 10, now=T0 + 5)
    assert not store._write_lease("leader", stale, {"holderIdentity": "replica-b"})
    assert store.lease_holder("leader", now=T0 + 5) == "replica-a"


def test_a_watch_from_before_compaction_is_expired(kube_api: KubeApi, store: KubeStore) -> None:
    _, version = store.list_with_version("Pod")
    store.create(pod("a"))
    kube_api.compact()
    with pytest.raises(ResourceExpiredError, match="list again"):
        store.events_since(version, ["Pod"])
    with pytest.raises(ResourceExpiredError):
        next(store.watch(["Pod", "Node"], version, 30))
    _, now = store.list_with_version("Pod")
    assert store.events_since(now, ["Pod"]) == []


@pytest.mark.timing  # the feed's stream gets the 410 in its own time
def test_a_feed_from_before_compaction_says_to_list_again(
    kube_api: KubeApi, store: KubeStore
) -> None:
    _, version = store.list_with_version("Pod")
    store.create(pod("a"))
    kube_api.compact()
    feed = store.follow({"Pod": version, "Node": version})
    try:
        assert feed.wait(30) is True
        with pytest.raises(ResourceExpiredError, match="list again"):
            feed.take()
    finally:
        feed.close()


@pytest.mark.timing
def test_watch_merges_kinds_and_follows_new_changes(store: KubeStore) -> None:
    _, version = store.list_with_version("Pod")
    store.create(pod("a"))
    events = store.watch(["Pod", "Node", "GPU"], version, timeout_s=60)
    assert next(events).object["metadata"]["name"] == "a"
    store.create({"kind": "GPU", "metadata": {"name": "gpu-0"}, "status": {"phase": "Ready"}})
    seen = [(e.type, e.object["kind"]) for e in (next(events), next(events))]
    assert seen == [("ADDED", "GPU"), ("MODIFIED", "GPU")]  # status is written as a subresource
    assert isinstance(events, Generator)
    events.close()  # ends the streams' threads


def test_bind_annotates_then_binds(store: KubeStore) -> None:
    created = store.create(pod("web-0"))
    bound = store.bind("default", "web-0", "node-1", {GPU_IDS: "gpu-0"})
    assert bound["spec"]["nodeName"] == "node-1"
    assert bound["metadata"]["annotations"] == {GPU_IDS: "gpu-0"}
    changes = store.events_since(int(created["metadata"]["resourceVersion"]), ["Pod"])
    assert [
        (e.object["spec"].get("nodeName"), e.object["metadata"].get("annotations")) for e in changes
    ] == [(None, {GPU_IDS: "gpu-0"}), ("node-1", {GPU_IDS: "gpu-0"})]
