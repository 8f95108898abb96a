"""The node agents' rolling update over the local store, with the Controller on a simulated
clock and a stand-in for Kubernetes' DaemonSet controller (tests/kube/daemonset_standin.py):
batch sizes, the interval, the maintenance window, maxDuration (also with windows that
overlap), autoUpdate false, agents that start slowly or never become Ready (also in the last
batch), a window croniter cannot follow, workers that keep running, a new leader that
continues, and input that changes nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tensorfusion.controller.flags import parse_flags
from tensorfusion.errors import ConfigError
from tensorfusion.operator.nodepool.rollout import ROLLOUT, batch_size
from tensorfusion.operator.nodepool.view import pool_view
from tensorfusion.scheduler.fleet_generator import gpu_name
from tensorfusion.store.local import LocalStore

from .reconciler_objects import pod
from .rollout_objects import POOL, RolloutFleet, rollout_cluster
from .sim_clock import SimClock

START = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)


def at(hour: int, minute: int, second: int = 0, day: int = 1) -> datetime:
    return datetime(2026, 3, day, hour, minute, second, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LocalStore]:
    with LocalStore(tmp_path / "store.db") as local:
        yield local


@pytest.fixture
def clock() -> SimClock:
    return SimClock(START)


def fleet(store: LocalStore, clock: SimClock, nodes: int, **policy: Any) -> RolloutFleet:
    return RolloutFleet(store, clock, nodes, policy)


@pytest.mark.parametrize(
    ("percentage", "nodes", "size"),
    [(1, 3, 1), (20, 3, 1), (34, 3, 2), (100, 3, 3), (1, 50, 1), (20, 50, 10), (21, 10, 3)],
)
def test_a_batch_is_the_percentage_of_the_nodes_rounded_up(
    percentage: int, nodes: int, size: int
) -> None:
    assert batch_size(percentage, nodes) == size


@pytest.mark.parametrize(("percentage", "first"), [(1, 1), (20, 1), (100, 3)])
def test_the_first_batch_restarts_that_many_agents_in_node_name_order(
    store: LocalStore, clock: SimClock, percentage: int, first: int
) -> None:
    pool = fleet(store, clock, 3, batchPercentage=percentage, batchInterval="5m")
    pool.release("agent:2")
    assert pool.updated() == ["n00", "n01", "n02"][:first]
    (message,) = pool.events("AgentUpdateBatch")
    assert message.endswith(f"restarting the agents of nodes {', '.join(pool.updated())}")


def test_batches_start_the_interval_apart(store: LocalStore, clock: SimClock) -> None:
    pool = fleet(store, clock, 3, batchPercentage=34, batchInterval="5m")
    pool.release("agent:2")
    assert pool.updated() == ["n00", "n01"]
    assert pool.condition()["reason"] == "Updating"
    assert pool.condition()["message"].startswith("2 of 3 nodes run a Ready agent")
    (waiting,) = pool.rollout_actions()
    assert (waiting["target"], waiting["state"], waiting["at"]) == (
        "n02",
        "waiting",
        "2026-03-01T00:05:00Z",
    )
    assert "batch interval" in waiting["reason"]
    pool.at(at(0, 4, 59))
    assert pool.updated() == ["n00", "n01"]
    pool.at(at(0, 5))
    assert pool.updated() == ["n00", "n01", "n02"]
    assert pool.condition()["status"] == "True"
    assert pool.condition()["reason"] == "UpToDate"
    assert len(pool.events("AgentUpdateBatch")) == 2


def test_the_controller_asks_to_look_again_when_the_interval_ends(
    store: LocalStore, clock: SimClock
) -> None:
    pool = fleet(store, clock, 2, batchPercentage=50, batchInterval="5m")
    pool.release("agent:2")
    clock.advance_to(at(0, 4, 59))
    pool.controller.drain()
    assert "n01" in pool.agents.pods()
    clock.advance_to(at(0, 5))
    pool.controller.drain()  # no relist: only the requeue after 5 minutes comes due
    assert "n01" not in pool.agents.pods()  # its old agent deleted, for the stand-in to remake


def test_no_batch_starts_outside_the_maintenance_window(store: LocalStore, clock: SimClock) -> None:
    pool = fleet(
        store,
        clock,
        2,
        batchPercentage=50,
        batchInterval="1m",
        maxDuration="1h",
        maintenanceWindow={"includes": ["0 3 * * *"]},
    )
    pool.at(at(1, 0))
    pool.release("agent:2")
    assert pool.updated() == []
    assert [(a["target"], a["state"], a["at"]) for a in pool.rollout_actions()] == [
        ("n00", "waiting", "2026-03-01T03:00:00Z"),
        ("n01", "waiting", "2026-03-01T03:01:00Z"),
    ]
    assert "maintenance window" in pool.rollout_actions()[0]["reason"]
    pool.at(at(2, 59, 59))
    assert pool.updated() == []
    pool.at(at(3, 0))
    assert pool.updated() == ["n00"]
    pool.at(at(3, 1))
    assert pool.updated() == ["n00", "n01"]


def test_an_update_past_max_duration_stops_and_resumes_in_the_next_window(
    store: LocalStore, clock: SimClock
) -> None:
    pool = fleet(
        store,
        clock,
        4,
        batchPercentage=25,
        batchInterval="5m",
        maxDuration="10m",
        maintenanceWindow={"includes": ["0 1 * * *"]},
    )
    pool.release("agent:2")
    for minute in (0, 5, 10, 15):
        pool.at(at(1, minute))
    assert pool.updated() == ["n00", "n01"]  # 01:10 is the window's end: no third batch
    condition = pool.condition()
    assert (condition["status"], condition["reason"]) == ("False", "MaxDurationExceeded")
    assert "2 of 4 nodes" in condition["message"]
    assert "2026-03-02T01:00:00Z" in condition["message"]
    (warning,) = pool.events("MaxDurationExceeded")
    assert warning == condition["message"]
    pool.at(at(1, 0, day=2))
    assert pool.updated() == ["n00", "n01", "n02"]
    assert pool.condition()["reason"] == "Updating"
    pool.at(at(1, 5, day=2))
    assert pool.updated() == ["n00", "n01", "n02", "n03"]
    assert pool.condition()["reason"] == "UpToDate"


def test_without_a_window_max_duration_counts_from_the_first_batch_and_stops_for_good(
    store: LocalStore, clock: SimClock
) -> None:
    pool = fleet(store, clock, 4, batchPercentage=25, batchInterval="5m", maxDuration="7m")
    pool.at(at(0, 30))
    pool.release("agent:2")
    pool.at(at(0, 35))
    pool.at(at(0, 40))
    assert pool.updated() == ["n00", "n01"]
    assert pool.condition()["reason"] == "MaxDurationExceeded"
    assert "raise maxDuration" in pool.condition()["message"]
    assert {a["state"] for a in pool.rollout_actions()} == {"held"}
    pool.at(at(0, 30, day=5))
    assert pool.updated() == ["n00", "n01"]
    assert len(pool.events("MaxDurationExceeded")) == 1


def test_auto_update_false_restarts_nothing_and_shows_the_pending_update(
    store: LocalStore, clock: SimClock
) -> None:
    pool = fleet(store, clock, 3, autoUpdate=False, batchPercentage=100)
    pool.release("agent:2")
    pool.at(at(5, 0))
    assert pool.updated() == []
    assert pool.events("AgentUpdateBatch") == []
    assert [(a["target"], a["state"]) for a in pool.rollout_actions()] == [
        ("n00", "held"),
        ("n01", "held"),
        ("n02", "held"),
    ]
    assert "autoUpdate is false" in pool.rollout_actions()[0]["reason"]
    condition = pool.condition()
    assert (condition["status"], condition["reason"]) == ("False", "AutoUpdateDisabled")
    assert condition["message"].startswith("3 of 3 nodes run an outdated agent")


def test_an_agent_that_does_not_become_ready_stops_the_rollout(
    store: LocalStore, clock: SimClock
) -> None:
    pool = fleet(store, clock, 3, batchPercentage=34, batchInterval="5m", maxDuration="1h")
    pool.agents.failing.add("n01")
    pool.release("agent:2")
    assert pool.updated() == ["n00", "n01"]
    assert pool.condition()["reason"] == "Updating"  # the next batch is not due yet
    pool.at(at(0, 5))
    assert pool.updated() == ["n00", "n01"]
    condition = pool.condition()
    assert (condition["status"], condition["reason"]) == ("False", "AgentNotReady")
    assert "not Ready on nodes n01, 5m after their batch started" in condition["message"]
    (warning,) = pool.events("AgentNotReady")
    assert "n01" in warning
    assert [(a["target"], a["state"]) for a in pool.rollout_actions()] == [("n02", "held")]
    pool.at(at(0, 30))
    assert pool.updated() == ["n00", "n01"]
    # Once the agent is Ready, the update goes on by itself.
    pool.agents.make_ready("n01")
    pool.settle()
    assert pool.updated() == ["n00", "n01", "n02"]
    assert pool.condition()["reason"] == "UpToDate"


def test_a_new_leader_continues_the_update_where_the_last_stopped(
    store: LocalStore, clock: SimClock
) -> None:
    pool = fleet(store, clock, 3, batchPercentage=34, batchInterval="5m")
    pool.release("agent:2")
    record = json.loads(pool.record() or "")
    assert record["batches"] == [{"start": "2026-03-01T00:00:00Z", "nodes": ["n00", "n01"]}]
    pool.controller.close()
    pool.controller = pool.new_controller()  # a fresh cache, with only the store to go by
    pool.at(at(0, 2))
    assert pool.updated() == ["n00", "n01"]  # the interval still runs from the first batch
    assert len(pool.events("AgentUpdateBatch")) == 1
    pool.at(at(0, 5))
    assert pool.updated() == ["n00", "n01", "n02"]
    record = json.loads(pool.record() or "")
    assert [b["nodes"] for b in record["batches"]] == [["n00", "n01"], ["n02"]]


def test_nothing_happens_while_every_agent_is_current(store: LocalStore, clock: SimClock) -> None:
    pool = fleet(store, clock, 3, batchPercentage=34)
    pods = {n: p["metadata"]["uid"] for n, p in pool.agents.pods().items()}
    pool.at(at(6, 0))
    assert {n: p["metadata"]["uid"] for n, p in pool.agents.pods().items()} == pods
    assert pool.rollout_actions() == []
    assert pool.record() is None
    assert pool.condition()["reason"] == "UpToDate"
    assert pool.condition()["message"] == (
        f"3 of 3 nodes run a Ready agent of revision {pool.agents.current_hash()}"
    )
    assert pool.events("AgentUpdateBatch") == []


def test_a_pool_whose_policy_the_model_refuses_restarts_nothing(
    store: LocalStore, clock: SimClock
) -> None:
    pool = fleet(store, clock, 3, batchPercentage=100)
    bad = rollout_cluster({"batchInterval": "soon"})
    # The cluster refuses the template, so the pool (edited by hand) keeps the bad spec.
    store.patch("TensorFusionCluster", "c", {"spec": bad["spec"]})
    store.patch("GPUPool", POOL, {"spec": bad["spec"]["gpuPools"][0]["specTemplate"]})
    pool.release("agent:2")
    pool.at(at(1, 0))
    assert pool.updated() == []
    condition = pool.condition()
    assert (condition["status"], condition["reason"]) == ("False", "InvalidSpec")
    assert "batchInterval" in condition["message"]


def test_a_damaged_record_starts_the_bookkeeping_again(store: LocalStore, clock: SimClock) -> None:
    pool = fleet(store, clock, 2, batchPercentage=50, batchInterval="5m")
    pool.agents.set_image("agent:2")
    pool.agents.sync()
    annotation = {"tensor-fusion.ai/agent-rollout": "{not json"}
    store.patch("GPUPool", POOL, {"metadata": {"annotations": annotation}})
    pool.settle()
    assert pool.updated() == ["n00"]
    assert json.loads(pool.record() or "")["batches"][0]["nodes"] == ["n00"]


def test_a_pool_with_no_agent_revision_says_so(store: LocalStore, clock: SimClock) -> None:
    pool = fleet(store, clock, 1)
    for revision in store.list("ControllerRevision"):
        store.delete("ControllerRevision", revision["metadata"]["name"], "tensor-fusion-sys")
    pool.controller.start()
    pool.controller.drain()
    condition = pool.condition()
    assert (condition["status"], condition["reason"]) == ("Unknown", "NoAgentRevision")
    assert "tensor-fusion-sys/tensor-fusion-agent" in condition["message"]
    (rollout,) = [part for part in pool.plan().parts if part.part == "rollout"]
    assert rollout.wake_at is None  # nothing to look at again until a revision appears
    clock.advance(86400)
    assert pool.controller.drain() == 0


def test_a_batch_percentage_of_zero_restarts_nothing(store: LocalStore, clock: SimClock) -> None:
    pool = fleet(store, clock, 2, batchPercentage=0)
    pool.release("agent:2")
    assert pool.updated() == []
    assert {a["state"] for a in pool.rollout_actions()} == {"held"}
    assert "batchPercentage is 0" in pool.condition()["message"]


def test_the_agent_daemonset_is_a_controller_flag() -> None:
    flags = parse_flags(["-agent-daemonset", "tf-agent"], namespace=lambda: "tf")
    assert (flags.namespace, flags.agent_daemonset) == ("tf", "tf-agent")
    assert parse_flags([], namespace=lambda: "tf").agent_daemonset == "tensor-fusion-agent"
    with pytest.raises(ConfigError) as empty:
        parse_flags(["-agent-daemonset="], namespace=lambda: "tf")
    assert empty.value.field == "--agent-daemonset"


def test_a_batch_recorded_but_cut_short_is_finished_before_the_next(
    store: LocalStore, clock: SimClock
) -> None:
    pool = fleet(store, clock, 3, batchPercentage=34, batchInterval="5m")
    pool.agents.set_image("agent:2")
    pool.agents.sync()
    # The last leader recorded a batch of n00 and n01 at 00:00, then stopped before deleting.
    record = {
        "revision": pool.agents.current_hash(),
        "windowStart": "2026-03-01T00:00:00Z",
        "batches": [{"start": "2026-03-01T00:00:00Z", "nodes": ["n00", "n01"]}],
    }
    annotation = {"tensor-fusion.ai/agent-rollout": json.dumps(record)}
    store.patch("GPUPool", POOL, {"metadata": {"annotations": annotation}})
    pool.at(at(0, 1))
    assert pool.updated() == ["n00", "n01"]
    assert pool.events("AgentUpdateBatch") == []  # no new batch: the recorded one finished
    assert [(a["target"], a["state"]) for a in pool.rollout_actions()] == [("n02", "waiting")]


def test_matches_closer_than_max_duration_do_not_lengthen_a_run(
    store: LocalStore, clock: SimClock
) -> None:
    # A window opens every 5 minutes and lasts 10: a run keeps the window it began in.
    pool = fleet(
        store,
        clock,
        20,
        batchPercentage=5,
        batchInterval="1m",
        maxDuration="10m",
        maintenanceWindow={"includes": ["*/5 * * * *"]},
    )
    pool.at(at(1, 0))
    pool.release("agent:2")  # the first batch runs at once, in the window of 01:00
    for minute in range(1, 15):
        pool.at(at(1, minute))
    assert len(pool.updated()) == 10  # 01:00 to 01:09; the window of 01:00 closed at 01:10
    condition = pool.condition()
    assert (condition["status"], condition["reason"]) == ("False", "MaxDurationExceeded")
    assert condition["message"].startswith(
        "the maintenance window that opened at 2026-03-01T01:00:00Z closed after maxDuration 10m"
    )
    # The match at 01:10 is the run's end, not a new window: the next run opens at 01:15.
    assert "it resumes in the window opening at 2026-03-01T01:15:00Z" in condition["message"]
    pool.at(at(1, 15))
    assert len(pool.updated()) == 11
    assert pool.condition()["reason"] == "Updating"
    for minute in range(16, 30):
        pool.at(at(1, minute))
    assert len(pool.updated()) == 20  # 01:15 to 01:24, again ten batches
    assert pool.condition()["reason"] == "UpToDate"
    assert len(pool.events("MaxDurationExceeded")) == 1


def test_a_failing_agent_in_the_last_batch_keeps_the_update_from_being_up_to_date(
    store: LocalStore, clock: SimClock
) -> None:
    pool = fleet(store, clock, 2, batchPercentage=50, batchInterval="1m")
    pool.agents.failing.add("n01")
    pool.release("agent:2")
    pool.at(at(0, 1))
    assert pool.updated() == ["n00", "n01"]
    assert pool.condition()["reason"] == "Updating"  # n01 is within its grace: it may start
    clock.advance_to(at(0, 5, 59))
    assert pool.controller.drain() == 0
    clock.advance_to(at(0, 6))  # 5 minutes after the last batch: only the requeue looks again
    assert pool.controller.drain() > 0
    condition = pool.condition()
    assert (condition["status"], condition["reason"]) == ("False", "AgentNotReady")
    assert condition["message"] == (
        f"the new agent (revision {pool.agents.current_hash()}) is not Ready on nodes n01, "
        "5m after their batch started: the update is not complete until it is"
    )
    assert pool.events("AgentNotReady") == [condition["message"]]
    pool.agents.make_ready("n01")
    pool.settle()
    assert pool.condition()["reason"] == "UpToDate"


def test_agents_that_are_still_starting_hold_the_next_batch_without_a_warning(
    store: LocalStore, clock: SimClock
) -> None:
    pool = fleet(store, clock, 3, batchPercentage=34)  # the default batchInterval: 1s
    pool.agents.failing.update({"n00", "n01", "n02"})  # every new agent starts slowly
    pool.release("agent:2")
    pool.at(at(0, 1))
    assert pool.updated() == ["n00", "n01"]
    condition = pool.condition()
    assert (condition["status"], condition["reason"]) == ("True", "Updating")
    assert condition["message"].endswith("; waits for 2 new agents to become Ready")
    (waiting,) = pool.rollout_actions()
    assert (waiting["target"], waiting["state"]) == ("n02", "waiting")
    assert "to start" in waiting["reason"]
    pool.agents.make_ready("n00", "n01")
    pool.at(at(0, 2))
    assert pool.updated() == ["n00", "n01", "n02"]
    assert pool.condition()["message"].endswith("; waits for 1 new agent to become Ready")
    pool.agents.make_ready("n02")
    pool.at(at(0, 3))
    assert pool.condition()["reason"] == "UpToDate"
    assert pool.events("AgentNotReady") == []


def test_agents_not_ready_after_the_grace_hold_the_next_batch_with_a_warning(
    store: LocalStore, clock: SimClock
) -> None:
    pool = fleet(store, clock, 3, batchPercentage=34)
    pool.agents.failing.add("n01")
    pool.release("agent:2")
    pool.at(at(0, 4, 59))
    assert pool.condition()["reason"] == "Updating"
    assert pool.events("AgentNotReady") == []
    clock.advance_to(at(0, 5))
    pool.controller.drain()  # the requeue at the grace's end
    condition = pool.condition()
    assert (condition["status"], condition["reason"]) == ("False", "AgentNotReady")
    assert condition["message"].endswith(": no further batch starts until it is")
    assert [(a["target"], a["state"]) for a in pool.rollout_actions()] == [("n02", "held")]
    assert len(pool.events("AgentNotReady")) == 1


def test_a_window_croniter_cannot_follow_fails_the_pool_not_the_reconciler(
    store: LocalStore, clock: SimClock
) -> None:
    window = {"includes": ["1 1 * * *", "0 3 * * *"]}
    pool = fleet(store, clock, 2, batchPercentage=50, maintenanceWindow=window)
    pool.release("agent:2")
    view = pool_view(pool.controller.cache, POOL, pool.config)
    assert view is not None
    assert view.spec is not None
    manager = view.spec.node_manager_config
    assert manager is not None
    assert manager.node_pool_rolling_update_policy is not None
    policy = manager.node_pool_rolling_update_policy
    # A schedule stored before the model refused it: the model is bypassed here on purpose.
    never = policy.maintenance_window.model_copy(update={"includes": ["1 1 * * *", "0 0 30 2 *"]})
    spec = view.spec.model_copy(
        update={
            "node_manager_config": manager.model_copy(
                update={
                    "node_pool_rolling_update_policy": policy.model_copy(
                        update={"maintenance_window": never}
                    )
                }
            )
        }
    )
    plan = ROLLOUT.plan(replace(view, spec=spec), clock.now(), pool.config)
    (condition,) = plan.conditions
    assert (condition.status, condition.reason) == ("False", "InvalidWindow")
    assert condition.message.startswith("maintenanceWindow.includes[1]: '0 0 30 2 *'")
    assert [(a.target, a.state) for a in plan.actions] == [("n00", "held"), ("n01", "held")]
    assert "maintenanceWindow.includes[1] is invalid" in plan.actions[0].reason


def test_a_worker_keeps_running_through_its_nodes_agent_update(
    store: LocalStore, clock: SimClock
) -> None:
    pool = fleet(store, clock, 2, batchPercentage=50, batchInterval="1m")
    worker = store.create(pod("worker", "n00", [gpu_name("n00", 0)], "10", "1Gi"))
    name, namespace = worker["metadata"]["name"], worker["metadata"]["namespace"]
    pool.release("agent:2")
    pool.at(at(0, 1))
    assert pool.updated() == ["n00", "n01"]
    after = store.get("Pod", name, namespace)
    assert after["metadata"]["uid"] == worker["metadata"]["uid"]
    assert "deletionTimestamp" not in after["metadata"]
    assert after["status"]["phase"] == "Running"
