"""Leader election between controller replicas in the API-server emulator: one leads (the
Lease `85104305.tensor-fusion.ai` in the controller's namespace names it), only it schedules
and runs the leader's loops, every replica serves; when the leader stops, another leads."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from tensorfusion.controller.control_plane import LEASE_NAME, LeaderLoop
from tensorfusion.errors import NotFoundError
from tensorfusion.store.interface import ClusterStore
from tensorfusion.store.kube import KubeStore
from tests.controller.cluster import (
    NAMESPACE,
    add_fleet,
    apply_crds,
    guide_pod,
    running_controller,
    wait_for,
)
from tests.kube.runner import KubeApi

pytestmark = pytest.mark.timing  # leases, and the scheduler's passes

SHORT_LEASE: dict[str, Any] = {"lease_duration_s": 3.0, "lease_renew_s": 0.5}


@pytest.fixture
def store(kube_api: KubeApi) -> Iterator[KubeStore]:
    apply_crds(kube_api.kubeconfig)
    with KubeStore(kube_api.kubeconfig, lease_namespace=NAMESPACE) as store:
        add_fleet(store, nodes=2, gpus_per_node=2)
        yield store


class LoopLog:
    """A leader loop per replica that notes who runs it, and when its term ends."""

    def __init__(self) -> None:
        self.running: set[str] = set()
        self.ended: list[str] = []
        self.lock = threading.Lock()

    def loop(self, holder: str) -> LeaderLoop:
        def run(_store: ClusterStore, term_over: threading.Event) -> None:
            with self.lock:
                self.running.add(holder)
            term_over.wait()
            with self.lock:
                self.running.discard(holder)
                self.ended.append(holder)

        return run


def node_of(store: KubeStore, name: str) -> str | None:
    node: str | None = store.get("Pod", name, "default")["spec"].get("nodeName")
    return node


def holder_of(store: KubeStore) -> str:
    holder: str = store.get("Lease", LEASE_NAME, NAMESPACE)["spec"]["holderIdentity"]
    return holder


def test_one_replica_leads_and_another_takes_over_when_it_stops(
    kube_api: KubeApi, store: KubeStore, tmp_path: Path
) -> None:
    loops = LoopLog()
    with ExitStack() as follower:
        with running_controller(
            kube_api.kubeconfig,
            tmp_path / "a",
            holder="replica-a",
            loops=(loops.loop("replica-a"),),
            leader_elect=True,
            **SHORT_LEASE,
        ) as first:
            wait_for("replica-a to lead", first.controller.leading.is_set)
            standby = follower.enter_context(
                running_controller(
                    kube_api.kubeconfig,
                    tmp_path / "b",
                    holder="replica-b",
                    loops=(loops.loop("replica-b"),),
                    leader_elect=True,
                    **SHORT_LEASE,
                )
            )
            store.create(guide_pod("before"))
            wait_for("the leader to bind a pod", lambda: node_of(store, "before"))
            assert holder_of(store) == "replica-a"
            assert not standby.controller.leading.is_set()
            assert loops.running == {"replica-a"}
            with standby.http() as http:  # the follower serves, and says who schedules
                assert http.get("/readyz").status_code == 200
                simulate = http.post("/api/simulate-schedule", json=guide_pod("probe"))
                assert simulate.status_code == 503
        # replica-a stopped and gave the lease up
        wait_for("replica-b to lead", standby.controller.leading.is_set)
        assert holder_of(store) == "replica-b"
        wait_for("replica-b's loop to run", lambda: loops.running == {"replica-b"})
        assert loops.ended == ["replica-a"]
        store.create(guide_pod("after"))
        wait_for("the new leader to bind a pod", lambda: node_of(store, "after"))


def test_without_leader_election_a_replica_leads_at_once_without_a_lease(
    kube_api: KubeApi, store: KubeStore, tmp_path: Path
) -> None:
    with running_controller(kube_api.kubeconfig, tmp_path) as running:
        assert running.controller.leading.is_set()
        store.create(guide_pod("alone"))
        wait_for("the pod to be bound", lambda: node_of(store, "alone"))
        with pytest.raises(NotFoundError):
            store.get("Lease", LEASE_NAME, NAMESPACE)


def test_a_leader_loop_that_fails_is_started_again(
    kube_api: KubeApi, store: KubeStore, tmp_path: Path
) -> None:
    starts: list[int] = []
    again = threading.Event()

    def flaky(_store: ClusterStore, term_over: threading.Event) -> None:
        starts.append(len(starts))
        if len(starts) == 1:
            raise RuntimeError("the first pass fails")
        again.set()
        term_over.wait()

    with running_controller(kube_api.kubeconfig, tmp_path, loops=(flaky,)):
        wait_for("the loop to start again", again.is_set)
    assert starts == [0, 1]
