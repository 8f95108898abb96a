"""PreEnqueue and Permit with kube-scheduler's semantics, through the scheduling loop and
simulate: a gated pod stays out of the queue with its reason reported; a pod at Permit is
bound when allowed, unreserved when denied, rejected or timed out (an injected clock, no
sleeps), and holds its reservation while it waits without holding up other pods. Gang
pods are gated by GPUResourcesFit until gang scheduling exists."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import pytest

from tensorfusion.api.annotations import GANG_MIN_MEMBERS, GANG_TIMEOUT, GPU_IDS
from tensorfusion.api.scheduler_config import SCHEDULER_NAME
from tensorfusion.scheduler.cluster_state import ClusterState
from tensorfusion.scheduler.framework import ClusterView, CycleState, Status
from tensorfusion.scheduler.loop import SchedulingLoop
from tensorfusion.scheduler.pod_info import PodInfo
from tensorfusion.scheduler.profile import Profile, build_profiles, default_config
from tensorfusion.scheduler.simulate import simulate
from tensorfusion.scheduler.waiting_pods import MAX_PERMIT_WAIT_S, WaitingPod
from tensorfusion.store.local import LocalStore
from tests.unit.scheduler.cluster_builders import (
    gpu,
    gpu_node,
    node,
    pool,
    tf_pod,
    two_gpu_nodes,
)

GANG_NOT_SUPPORTED = f"{GANG_MIN_MEMBERS}: gang scheduling is not supported yet"


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Gate:
    """A Permit plugin answering what the test sets, and recording whom it was asked about."""

    verdict: Status
    timeout: float = 0.0
    name: ClassVar[str] = "Gate"

    def __post_init__(self) -> None:
        self.asked: list[str] = []

    def permit(
        self, state: CycleState, pod: PodInfo, cluster: ClusterView, node: int
    ) -> tuple[Status, float]:
        self.asked.append(pod.name)
        return self.verdict, self.timeout


class Quorum(Gate):
    name: ClassVar[str] = "Quorum"


@dataclass
class Hold:
    """A PreEnqueue plugin keeping out the pods labelled hold=yes."""

    name: ClassVar[str] = "Hold"

    def pre_enqueue(self, pod: PodInfo) -> Status:
        if pod.labels.get("hold") == "yes":
            return Status.unresolvable(self.name, "held by label hold=yes")
        return Status.success()


@dataclass
class World:
    """One node with one 80Gi GPU, the embedded store and a loop on an injected clock."""

    store: LocalStore
    clock: FakeClock
    loop: SchedulingLoop
    profile: Profile

    def node_of(self, name: str) -> str | None:
        node_name: str | None = self.store.get("Pod", name, namespace="default")["spec"].get(
            "nodeName"
        )
        return node_name

    def condition(self, name: str) -> dict[str, Any]:
        pod = self.store.get("Pod", name, namespace="default")
        (condition,) = pod["status"]["conditions"]
        assert (condition["type"], condition["status"]) == ("PodScheduled", "False")
        assert condition["reason"] == "Unschedulable"
        return dict(condition)

    def pods_on_n1(self) -> int:
        return int(self.loop.cluster.nodes.pod_count[self.loop.cluster.nodes.index_of["n1"]])

    def add_n2(self) -> None:
        self.store.create_many([node("n2"), gpu_node("n2"), gpu("n2-gpu-0", "n2")])


def _world(*permit: Gate) -> World:
    store, clock = LocalStore(":memory:"), FakeClock()
    store.create_many([pool(), node("n1"), gpu_node("n1"), gpu("n1-gpu-0", "n1")])
    loop = SchedulingLoop(store, clock=clock)
    loop.start()
    profile = loop.profiles[SCHEDULER_NAME]
    profile.permit.extend(permit)
    return World(store, clock, loop, profile)


def _whole_gpu(name: str, **annotations: str) -> dict[str, Any]:
    return tf_pod(name, vram_request="70Gi", tflops_request="10", **annotations)


def _a_waits(gate: Gate) -> tuple[World, WaitingPod]:
    """Pod a reserved the GPU and waits at Permit for `gate`."""
    world = _world(gate)
    world.store.create(_whole_gpu("a"))
    assert world.loop.run_once().waiting == 1
    waiting = world.profile.waiting.get("uid-a")
    assert waiting is not None
    return world, waiting


# --- Permit through the loop -----------------------------------------------------------------


def test_permit_success_binds_and_keeps_the_allocation() -> None:
    gate = Gate(Status.success())
    world = _world(gate)
    world.store.create(_whole_gpu("a"))
    stats = world.loop.run_once()
    assert (stats.scheduled, stats.waiting) == (1, 0)
    assert gate.asked == ["a"]
    assert world.node_of("a") == "n1"
    assert "uid-a" in world.loop.cluster.gpus.allocations
    assert len(world.profile.waiting) == 0


def test_permit_deny_unreserves_and_reports_the_reason() -> None:
    world = _world(Gate(Status.unschedulable("Gate", "no quorum")))
    world.store.create(_whole_gpu("a"))
    stats = world.loop.run_once()
    assert (stats.scheduled, stats.unschedulable, stats.waiting) == (0, 1, 0)
    assert world.node_of("a") is None
    assert world.loop.cluster.gpus.allocations == {}
    assert world.pods_on_n1() == 0
    assert world.condition("a")["message"] == "Gate (permit): no quorum"
    assert world.loop.pending() == {"default/a": "Gate (permit): no quorum"}


def test_permit_wait_holds_the_reservation_then_binds_when_allowed() -> None:
    gate = Gate(Status.wait("Gate"), timeout=30)
    world, waiting = _a_waits(gate)
    assert world.node_of("a") is None
    assert "uid-a" in world.loop.cluster.gpus.allocations  # the reservation is kept
    assert world.pods_on_n1() == 1
    assert world.loop.pending() == {"default/a": "waiting at permit: Gate"}
    assert waiting.pending_plugins() == ["Gate"]

    # The loop goes on meanwhile; the reservation keeps a rival off the GPU.
    gate.verdict = Status.success()
    world.store.create(_whole_gpu("rival"))
    stats = world.loop.run_once()
    assert (stats.scheduled, stats.unschedulable) == (0, 1)
    assert "insufficient VRAM" in world.condition("rival")["message"]
    assert "uid-rival" not in world.loop.cluster.gpus.allocations

    world.clock.now += 0.5  # inside the rival's backoff: only the allowed pod moves
    waiting.allow("Gate")
    stats = world.loop.run_once()
    assert stats.scheduled == 1
    assert [outcome.pod.name for outcome in stats.outcomes] == ["a"]
    assert world.node_of("a") == "n1"
    pod = world.store.get("Pod", "a", namespace="default")
    assert pod["metadata"]["annotations"][GPU_IDS] == "n1-gpu-0"
    assert world.loop.cluster.gpus.allocations["uid-a"].gpus == ("n1-gpu-0",)
    assert len(world.profile.waiting) == 0
    assert gate.asked == ["a"]  # allowed, not asked again


def test_permit_wait_times_out_and_unreserves() -> None:
    gate = Gate(Status.wait("Gate"), timeout=30)
    world, _ = _a_waits(gate)
    world.clock.now += 29.5
    assert world.loop.run_once().outcomes == []  # not yet
    assert "uid-a" in world.loop.cluster.gpus.allocations
    world.clock.now += 0.5
    stats = world.loop.run_once()
    assert (stats.scheduled, stats.unschedulable) == (0, 1)
    assert world.loop.cluster.gpus.allocations == {}
    assert world.pods_on_n1() == 0
    message = world.condition("a")["message"]
    assert message == "Gate (permit): rejected due to timeout after waiting 30s"
    assert len(world.profile.waiting) == 0
    # Back in the queue with backoff: retried after it, and allowed this time.
    gate.verdict = Status.success()
    assert world.loop.run_once().outcomes == []
    world.clock.now += 1.0
    assert world.loop.run_once().scheduled == 1
    assert world.node_of("a") == "n1"


def test_permit_rejection_while_waiting_unreserves_and_lets_the_next_pod_in() -> None:
    gate = Gate(Status.wait("Gate"), timeout=60)
    world, waiting = _a_waits(gate)
    world.store.create(_whole_gpu("b"))
    world.clock.now += 1
    assert world.loop.run_once().unschedulable == 1  # b: the GPU is reserved for a
    waiting.reject("Gate", "a peer failed")
    waiting.reject("Gate", "a later reason is ignored")
    gate.verdict = Status.success()
    world.clock.now += 1
    stats = world.loop.run_once()
    assert [(o.pod.name, o.scheduled) for o in stats.outcomes] == [("a", False), ("b", True)]
    assert world.condition("a")["message"] == "Gate (permit): a peer failed"
    assert world.node_of("b") == "n1"
    assert set(world.loop.cluster.gpus.allocations) == {"uid-b"}


def test_every_waiting_plugin_must_allow() -> None:
    world = _world(Gate(Status.wait("Gate"), 10), Quorum(Status.wait("Quorum"), 20))
    world.store.create(_whole_gpu("a"))
    world.loop.run_once()
    waiting = world.profile.waiting.get("uid-a")
    assert waiting is not None
    assert waiting.pending_plugins() == ["Gate", "Quorum"]
    waiting.allow("Gate")
    waiting.allow("NotWaitingForIt")
    assert world.loop.run_once().outcomes == []
    assert world.loop.pending() == {"default/a": "waiting at permit: Quorum"}
    world.clock.now += 15  # past Gate's timeout, which no longer counts once it allowed
    assert world.loop.run_once().outcomes == []
    waiting.allow("Quorum")
    assert world.loop.run_once().scheduled == 1


def test_the_first_wait_to_time_out_rejects() -> None:
    world = _world(Gate(Status.wait("Gate"), 20), Quorum(Status.wait("Quorum"), 10))
    world.store.create(_whole_gpu("a"))
    world.loop.run_once()
    world.clock.now += 10
    world.loop.run_once()
    message = world.condition("a")["message"]
    assert message == "Quorum (permit): rejected due to timeout after waiting 10s"


def test_a_timeout_is_capped_as_kube_caps_it() -> None:
    world, _ = _a_waits(Gate(Status.wait("Gate"), timeout=10 * MAX_PERMIT_WAIT_S))
    assert world.profile.waiting.next_deadline() == world.clock.now + MAX_PERMIT_WAIT_S


def test_a_deny_stops_the_later_permit_plugins() -> None:
    later = Quorum(Status.success())
    world = _world(Gate(Status.unschedulable("Gate", "no")), later)
    world.store.create(_whole_gpu("a"))
    world.loop.run_once()
    assert later.asked == []


def test_a_pod_deleted_while_waiting_gives_its_reservation_back() -> None:
    world, _ = _a_waits(Gate(Status.wait("Gate"), timeout=60))
    assert "uid-a" in world.loop.cluster.gpus.allocations
    world.store.delete("Pod", "a", namespace="default")
    world.loop.run_once()
    assert world.loop.cluster.gpus.allocations == {}
    assert world.pods_on_n1() == 0
    assert len(world.profile.waiting) == 0
    assert world.loop.pending() == {}


def test_an_update_of_a_waiting_pod_does_not_restart_its_attempt() -> None:
    gate = Gate(Status.wait("Gate"), timeout=60)
    world, _ = _a_waits(gate)
    labels = {"metadata": {"labels": {"touched": "yes"}}}
    world.store.patch("Pod", "a", labels, namespace="default")
    assert world.loop.run_once().outcomes == []
    assert gate.asked == ["a"]
    assert list(world.loop.cluster.gpus.allocations) == ["uid-a"]


def test_a_restart_drops_the_waits_and_queues_the_pods_again() -> None:
    gate = Gate(Status.wait("Gate"), timeout=60)
    world, _ = _a_waits(gate)
    world.loop.start()
    assert len(world.profile.waiting) == 0
    assert world.loop.cluster.gpus.allocations == {}
    gate.verdict = Status.success()
    assert world.loop.run_once().scheduled == 1


def test_other_pods_are_scheduled_while_one_waits() -> None:
    gate = Gate(Status.wait("Gate"), timeout=60)
    world, _ = _a_waits(gate)
    world.add_n2()
    gate.verdict = Status.success()
    world.store.create(_whole_gpu("b"))
    stats = world.loop.run_once()
    assert stats.scheduled == 1
    assert world.node_of("b") == "n2"
    assert world.node_of("a") is None
    assert len(world.loop.cluster.gpus.allocations) == 2


# --- PreEnqueue through the loop -------------------------------------------------------------


def test_a_gated_pod_stays_out_of_the_queue_with_its_reason_reported() -> None:
    world = _world()
    world.profile.pre_enqueue.append(Hold())
    held = _whole_gpu("held")
    held["metadata"]["labels"]["hold"] = "yes"
    world.store.create(held)
    stats = world.loop.run_once()
    assert stats.outcomes == []
    assert world.loop.cluster.gpus.allocations == {}
    message = "Hold (preEnqueue): held by label hold=yes"
    assert world.condition("held")["message"] == message
    assert world.loop.pending() == {"default/held": message}
    # Not retried with backoff, nor when the cluster changes.
    world.add_n2()
    world.clock.now += 60
    assert world.loop.run_once().outcomes == []
    # Looked at again when the pod changes.
    unheld = {"metadata": {"labels": {"hold": None}}}
    world.store.patch("Pod", "held", unheld, namespace="default")
    stats = world.loop.run_once()
    assert stats.scheduled == 1
    assert world.node_of("held") is not None
    assert world.loop.pending() == {}


def test_a_pod_that_becomes_gated_leaves_the_queue() -> None:
    world = _world()
    world.store.create(_whole_gpu("blocker"))
    world.profile.pre_enqueue.append(Hold())
    world.loop.run_once()
    world.store.create(_whole_gpu("a"))
    assert world.loop.run_once().unschedulable == 1
    held = {"metadata": {"labels": {"hold": "yes"}}}
    world.store.patch("Pod", "a", held, namespace="default")
    world.clock.now += 60
    assert world.loop.run_once().outcomes == []
    assert world.condition("a")["message"] == "Hold (preEnqueue): held by label hold=yes"


def test_a_gang_pod_is_gated_by_the_loop_and_holds_no_gpu() -> None:
    world = _world()
    world.store.create(_whole_gpu("gang-0", gang_min_members="2", gang_timeout="5m"))
    assert world.loop.run_once().outcomes == []
    assert world.node_of("gang-0") is None
    assert world.loop.cluster.gpus.allocations == {}
    message = world.condition("gang-0")["message"]
    assert message == f"GPUResourcesFit (preEnqueue): {GANG_NOT_SUPPORTED}"
    # Without its gang annotations it is an ordinary pod and is placed.
    alone = {"metadata": {"annotations": {GANG_MIN_MEMBERS: None, GANG_TIMEOUT: None}}}
    world.store.patch("Pod", "gang-0", alone, namespace="default")
    assert world.loop.run_once().scheduled == 1


def test_a_malformed_gang_annotation_is_reported_by_the_loop() -> None:
    world = _world()
    world.store.create(_whole_gpu("gang-0", gang_min_members="2", gang_timeout="soon"))
    world.loop.run_once()
    message = world.condition("gang-0")["message"]
    assert message.startswith(f"GPUResourcesFit (preEnqueue): {GANG_TIMEOUT}: 'soon' is not")
    assert world.loop.cluster.gpus.allocations == {}


# --- simulate ----------------------------------------------------------------------------------


@pytest.fixture
def cluster() -> ClusterState:
    return two_gpu_nodes(gpus_per_node=1)


def _default() -> Profile:
    return build_profiles(default_config())[SCHEDULER_NAME]


@pytest.mark.parametrize(
    ("annotations", "reason"),
    [
        ({"gang_min_members": "4"}, GANG_NOT_SUPPORTED),
        ({"gang_timeout": "5m"}, f"{GANG_TIMEOUT}: gang scheduling is not supported yet"),
        ({"gang_min_members": "four"}, f"{GANG_MIN_MEMBERS}: must be a whole number, got 'four'"),
        ({"gang_min_members": "2", "gang_timeout": "-1s"}, f"{GANG_TIMEOUT}: '-1s' is not"),
    ],
)
def test_simulate_reports_a_gang_pod_as_gated_naming_the_annotation(
    cluster: ClusterState, annotations: dict[str, str], reason: str
) -> None:
    before = cluster.gpus.snapshot()
    result = simulate(_default(), cluster, _whole_gpu("gang-0", **annotations))
    assert not result["schedulable"]
    assert result["node"] is None
    assert result["filterStages"] == []
    assert result["permitStages"] == []
    (stage,) = result["preEnqueueStages"]
    assert stage["plugin"] == "GPUResourcesFit"
    assert stage["status"] == "UnschedulableAndUnresolvable"
    assert stage["reasons"][0].startswith(reason)
    diagnosis = result["diagnosis"]
    assert diagnosis["unschedulablePlugins"] == ["GPUResourcesFit"]
    assert diagnosis["status"] == "UnschedulableAndUnresolvable"
    assert reason in diagnosis["message"]
    assert diagnosis["reasons"][0]["reason"].startswith(reason)
    assert cluster.gpus.snapshot() == before


def test_simulate_reports_the_stages_of_a_pod_let_through(cluster: ClusterState) -> None:
    result = simulate(_default(), cluster, _whole_gpu("a"))
    assert result["schedulable"]
    success = {"plugin": "GPUResourcesFit", "status": "Success", "reasons": []}
    assert result["preEnqueueStages"] == [success]
    assert result["permitStages"] == [success]


def test_simulate_reports_permit_skipped_for_a_pod_without_gpus(cluster: ClusterState) -> None:
    plain = _whole_gpu("plain")
    plain["metadata"]["labels"] = {}
    plain["metadata"]["annotations"] = {}
    result = simulate(_default(), cluster, plain)
    assert result["schedulable"]
    assert result["permitStages"] == [
        {"plugin": "GPUResourcesFit", "status": "Skip", "reasons": []}
    ]


def test_simulate_reports_a_wait_at_permit_and_changes_nothing(cluster: ClusterState) -> None:
    profile = _default()
    profile.permit.append(Gate(Status.wait("Gate", "waiting for peers"), timeout=30))
    before = cluster.gpus.snapshot()
    pods_before = cluster.nodes.pod_count.copy()
    result = simulate(profile, cluster, _whole_gpu("a"))
    assert result["schedulable"]
    assert result["node"] in ("n1", "n2")
    assert result["permitStages"][-1] == {
        "plugin": "Gate",
        "status": "Wait",
        "reasons": ["waiting for peers"],
        "timeoutSeconds": 30,
    }
    assert len(profile.waiting) == 0
    assert cluster.gpus.snapshot() == before
    assert (cluster.nodes.pod_count == pods_before).all()


def test_simulate_reports_a_permit_denial_and_changes_nothing(cluster: ClusterState) -> None:
    profile = _default()
    profile.permit.append(Gate(Status.unschedulable("Gate", "no quorum")))
    before = cluster.gpus.snapshot()
    result = simulate(profile, cluster, _whole_gpu("a"))
    assert not result["schedulable"]
    assert result["diagnosis"]["message"] == "Gate (permit): no quorum"
    assert result["diagnosis"]["unschedulablePlugins"] == ["Gate"]
    assert result["permitStages"][-1]["status"] == "Unschedulable"
    assert cluster.gpus.snapshot() == before
    assert int(cluster.nodes.pod_count.sum()) == 0
