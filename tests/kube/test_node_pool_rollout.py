"""The node agents' rolling update through KubeStore against the API-server emulator, on a
simulated clock, with a stand-in for Kubernetes' DaemonSet controller (daemonset_standin.py):
50 nodes, batches of 20% every 5 minutes, a daily window at 01:01 that lasts maxDuration 10m.
A template recorded at 00:30 waits for 01:01, runs exactly two batches and stops with
MaxDurationExceeded; with autoUpdate false the next window restarts nothing.

Between 00:30 and the stop nothing lists keys again: the controller's watch is replaced by one
that delivers nothing (`Unwatched`), and the cache learns of the stand-in's new agent pods by a
list that queues no key, so only the reconciler's own requeues start the batches and the stop."""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from datetime import UTC, datetime

import kubernetes

from tensorfusion.operator.reconcilers.cache import list_into
from tensorfusion.store.field_selectors import FieldSelector
from tensorfusion.store.interface import ChangeFeed, WatchEvent
from tensorfusion.store.kube import KubeStore
from tests.crd_bodies import crd_bodies
from tests.kube.daemonset_standin import NAMESPACE
from tests.kube.runner import KubeApi
from tests.unit.operator.rollout_objects import RolloutFleet, rollout_cluster
from tests.unit.operator.sim_clock import SimClock

POLICY = {
    "batchPercentage": 20,
    "batchInterval": "5m",
    "maxDuration": "10m",
    "maintenanceWindow": {"includes": ["1 1 * * *"]},
}


class Unwatched:
    """A watch that delivers no change."""

    def take(self) -> builtins.list[WatchEvent]:
        return []

    def wait(self, timeout_s: float) -> bool:
        return False

    def close(self) -> None:
        pass


class UnwatchedKubeStore(KubeStore):
    """KubeStore whose changes a controller sees only when it lists them."""

    def follow(
        self,
        versions: Mapping[str, int],
        field_selectors: Mapping[str, FieldSelector] | None = None,
    ) -> ChangeFeed:
        return Unwatched()


def at(hour: int, minute: int, day: int = 1) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC)


def nodes(first: int, last: int) -> list[str]:
    return [f"n{number:02d}" for number in range(first, last)]


def requeued_at(pool: RolloutFleet, moment: datetime) -> None:
    """Advance to `moment` and run only what is due then; afterwards the stand-in makes the
    missing agent pods and the cache lists them, queueing nothing."""
    pool.clock.advance_to(moment)
    pool.controller.drain()
    pool.agents.sync()
    list_into(pool.controller.cache, pool.store, "Pod")


def test_a_template_change_waits_for_the_window_and_stops_after_max_duration(
    kube_api: KubeApi, api_client: kubernetes.client.ApiClient
) -> None:
    extensions = kubernetes.client.ApiextensionsV1Api(api_client)
    for body in crd_bodies():
        extensions.create_custom_resource_definition(body=body)
    clock = SimClock(at(0, 0))
    with UnwatchedKubeStore(kube_api.kubeconfig) as store:
        store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
        pool = RolloutFleet(store, clock, 50, POLICY)
        try:
            assert len(pool.updated()) == 50
            assert pool.condition()["reason"] == "UpToDate"

            pool.at(at(0, 30))
            pool.release("agent:2")  # a new ControllerRevision, recorded at 00:30
            assert len(store.list("ControllerRevision", namespace=NAMESPACE)) == 2
            assert pool.updated() == []
            clock.advance_to(at(0, 45))
            pending = pool.rollout_actions()
            assert [a["target"] for a in pending] == nodes(0, 50)
            assert {a["state"] for a in pending} == {"waiting"}
            assert {a["at"] for a in pending[:10]} == {"2026-03-01T01:01:00Z"}
            assert {a["at"] for a in pending[10:20]} == {"2026-03-01T01:06:00Z"}
            assert {a["at"] for a in pending[20:30]} == {
                "2026-03-02T01:01:00Z"
            }  # tomorrow's window
            assert pool.condition()["reason"] == "Updating"

            requeued_at(pool, at(1, 0))
            assert pool.updated() == []
            requeued_at(pool, at(1, 1))
            assert pool.updated() == nodes(0, 10)
            requeued_at(pool, at(1, 6))
            assert pool.updated() == nodes(0, 20)
            requeued_at(pool, at(1, 11))
            assert pool.updated() == nodes(0, 20)
            condition = pool.condition()
            assert (condition["status"], condition["reason"]) == ("False", "MaxDurationExceeded")
            assert condition["message"].startswith(
                "the maintenance window that opened at 2026-03-01T01:01:00Z closed after "
                "maxDuration 10m"
            )
            assert "20 of 50 nodes" in condition["message"]
            pool.at(at(1, 16))
            assert pool.updated() == nodes(0, 20)  # exactly two batches
            assert len(pool.events("AgentUpdateBatch")) == 2
            assert pool.events("MaxDurationExceeded") == [condition["message"]]

            # autoUpdate false: tomorrow's window restarts nothing.
            held = rollout_cluster({**POLICY, "autoUpdate": False})
            store.patch("TensorFusionCluster", "c", {"spec": held["spec"]})
            pool.at(at(1, 1, day=2))
            pool.at(at(1, 6, day=2))
            assert pool.updated() == nodes(0, 20)
            assert pool.condition()["reason"] == "AutoUpdateDisabled"
            assert {a["state"] for a in pool.rollout_actions()} == {"held"}
            assert len(pool.events("AgentUpdateBatch")) == 2
        finally:
            pool.controller.close()
