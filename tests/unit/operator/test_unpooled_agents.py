"""Agents on nodes that no pool holds restart on a new template one at a time, each once the
one before runs Ready (what the DaemonSet's RollingUpdate did before it became OnDelete);
agents on a pool's nodes are left to the pool's own rolling update. Over the local store,
with the DaemonSet stand-in (tests/kube/daemonset_standin.py) making the agent pods."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tensorfusion.store.local import LocalStore

from .reconciler_objects import node
from .rollout_objects import RolloutFleet
from .sim_clock import SimClock


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LocalStore]:
    with LocalStore(tmp_path / "store.db") as local:
        yield local


def agent_events(store: LocalStore) -> list[str]:
    return sorted(e["message"] for e in store.list("Event") if e["reason"] == "AgentUpdated")


def test_unpooled_agents_restart_one_at_a_time_and_pooled_ones_wait_for_their_pool(
    store: LocalStore,
) -> None:
    fleet = RolloutFleet(
        store, SimClock(datetime(2026, 12, 7, tzinfo=UTC)), 2, {"autoUpdate": False}
    )
    for name in ("x0", "x1"):
        store.create(node(name, labels={}))  # a GPU node no pool selects
    fleet.settle()
    fleet.agents.failing = {"x0"}  # its restarted agent is not Ready at first

    fleet.release("agent:2")

    assert fleet.updated() == ["x0"]  # x1 waits for x0's new agent; n00, n01 for their pool
    assert agent_events(store) == ["node x0 is in no pool: its agent restarts"]
    fleet.agents.make_ready("x0")
    fleet.settle()
    assert fleet.updated() == ["x0", "x1"]
    fleet.settle()
    assert fleet.updated() == ["x0", "x1"]  # nothing more: the pool's nodes are its own


def test_nothing_restarts_without_a_revision_or_when_all_are_current(store: LocalStore) -> None:
    fleet = RolloutFleet(store, SimClock(datetime(2026, 12, 7, tzinfo=UTC)), 1, None)
    store.create(node("x0", labels={}))
    fleet.settle()
    assert agent_events(store) == []
    pods = {n: p["metadata"]["uid"] for n, p in fleet.agents.pods().items()}
    fleet.settle()
    assert {n: p["metadata"]["uid"] for n, p in fleet.agents.pods().items()} == pods
