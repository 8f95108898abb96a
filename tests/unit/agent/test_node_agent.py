"""The agent's pass over the workers: finished ones (no recorded process and no region member
alive) are deleted with their regions, live ones kept and read, broken ones logged and left."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tensorfusion.agent.node_agent import AgentTick, NodeAgent
from tensorfusion.agent.regions import WorkerRegions
from tensorfusion.api.annotations import GPU_IDS, WORKER_PIDS
from tensorfusion.errors import NotFoundError
from tensorfusion.shm_region import read_region
from tensorfusion.store.local import LocalStore

from .conftest import TIMEOUT, Processes, gpu, pids_of, worker


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LocalStore]:
    with LocalStore(tmp_path / "state") as opened:
        opened.create(gpu("node-0-gpu-0", 0))
        opened.create(gpu("node-0-gpu-1", 1))
        yield opened


@pytest.fixture
def regions(tmp_path: Path) -> WorkerRegions:
    return WorkerRegions(tmp_path / "regions")


@pytest.fixture
def agent(store: LocalStore, regions: WorkerRegions) -> NodeAgent:
    return NodeAgent(store, regions)


def _exists(store: LocalStore, name: str) -> bool:
    try:
        store.get("Pod", name)
    except NotFoundError:
        return False
    return True


def test_a_worker_whose_processes_are_gone_is_released(
    store: LocalStore, regions: WorkerRegions, agent: NodeAgent, processes: Processes
) -> None:
    pod = store.create(worker("gone", pids=pids_of(processes.finished(), processes.finished())))
    regions.prepare(pod, store.list("GPU"))
    tick = agent.tick()
    assert tick == AgentTick(workers=1, finished=["default/gone"])
    assert not _exists(store, "gone")
    assert not regions.directory(pod).exists()
    assert agent.usage("uid-gone") is None


def test_a_live_worker_is_kept_with_its_regions_and_usage(
    store: LocalStore, regions: WorkerRegions, agent: NodeAgent, processes: Processes
) -> None:
    # One recorded process has exited, the other runs: the worker lives.
    pids = pids_of(processes.finished(), processes.alive())
    store.create(worker("live", pids=pids, gpu_ids="node-0-gpu-1,node-0-gpu-0"))
    assert agent.usage("uid-live") is None
    assert agent.tick() == AgentTick(workers=1)
    assert _exists(store, "live")
    directory = regions.root / "default/live"
    assert sorted(directory.glob("*.shm")) == [
        directory / "node-0-gpu-0.shm",
        directory / "node-0-gpu-1.shm",
    ]
    usage = agent.usage("uid-live")
    assert usage is not None
    assert (usage["vram"], usage["processes"]) == (0, 0)


def test_a_region_member_keeps_the_worker_after_its_requester_exits(
    store: LocalStore, regions: WorkerRegions, agent: NodeAgent, processes: Processes
) -> None:
    requester = processes.alive()
    store.create(worker("train", pids=pids_of(requester)))
    agent.tick()
    member = processes.member(regions.root / "default/train" / "node-0-gpu-0.shm", charge=4096)
    requester.kill()
    requester.wait(TIMEOUT)
    assert agent.tick().finished == []
    usage = agent.usage("uid-train")
    assert usage is not None
    assert (usage["vram"], usage["processes"], usage["launches"]) == (4096, 1, 5)
    member.kill()
    member.wait(TIMEOUT)
    assert agent.tick().finished == ["default/train"]
    assert not _exists(store, "train")
    assert not (regions.root / "default/train").exists()


def test_a_malformed_annotation_is_logged_and_the_worker_left(
    store: LocalStore, agent: NodeAgent, processes: Processes, caplog: pytest.LogCaptureFixture
) -> None:
    store.create(worker("broken", pids="4242"))
    store.create(worker("gone", pids=pids_of(processes.finished())))
    with caplog.at_level(logging.WARNING, logger="tensorfusion.agent.node_agent"):
        tick = agent.tick()
    assert tick.finished == ["default/gone"]
    assert len(tick.problems) == 1
    assert tick.problems[0].startswith(f"default/broken: {WORKER_PIDS}: ")
    assert f"worker default/broken: {WORKER_PIDS}" in caplog.text
    assert _exists(store, "broken")


def test_a_worker_on_an_unregistered_gpu_is_logged_and_still_watched(
    store: LocalStore, agent: NodeAgent, processes: Processes
) -> None:
    requester = processes.alive()
    store.create(worker("lost", pids=pids_of(requester), gpu_ids="node-0-gpu-7"))
    tick = agent.tick()
    assert tick.finished == []
    assert tick.problems == [
        f"default/lost: {GPU_IDS}: names GPU 'node-0-gpu-7', which is not registered"
    ]
    requester.kill()
    requester.wait(TIMEOUT)
    assert agent.tick().finished == ["default/lost"]


def test_a_worker_without_recorded_processes_lives_until_deleted(
    store: LocalStore, agent: NodeAgent
) -> None:
    store.create(worker("manual", pids=""))
    assert agent.tick() == AgentTick(workers=1)
    assert _exists(store, "manual")
    assert agent.usage("uid-manual") is not None


def test_an_unbound_worker_gets_no_regions(
    store: LocalStore, regions: WorkerRegions, agent: NodeAgent, processes: Processes
) -> None:
    store.create(worker("waiting", pids=pids_of(processes.alive()), gpu_ids=None, node=None))
    assert agent.tick() == AgentTick(workers=1)
    assert not (regions.root / "default/waiting").exists()
    assert agent.usage("uid-waiting") is None


def test_pods_that_are_not_workers_are_never_touched(
    store: LocalStore, regions: WorkerRegions, agent: NodeAgent
) -> None:
    store.create(worker("from-fleet"))
    assert agent.tick() == AgentTick()
    assert _exists(store, "from-fleet")
    assert not regions.root.exists()


def test_regions_of_vanished_workers_are_removed(
    store: LocalStore, regions: WorkerRegions, agent: NodeAgent, processes: Processes
) -> None:
    store.create(worker("live", pids=pids_of(processes.alive())))
    regions.prepare(worker("vanished"), store.list("GPU"))
    tick = agent.tick()
    assert tick.orphans_removed == ["default/vanished"]
    assert sorted(p.name for p in (regions.root / "default").iterdir()) == ["live"]


def test_after_a_restart_live_workers_keep_their_regions(
    tmp_path: Path, store: LocalStore, regions: WorkerRegions, processes: Processes
) -> None:
    # Both requesters exited while the control plane was down; one worker's program runs on.
    survivor = store.create(worker("survivor", pids=pids_of(processes.finished())))
    casualty = store.create(worker("casualty", pids=pids_of(processes.finished())))
    for pod in (survivor, casualty):
        regions.prepare(pod, store.list("GPU"))
    path = regions.root / "default/survivor" / "node-0-gpu-0.shm"
    processes.member(path, charge=1000)
    store.close()
    # The restarted control plane: a new store handle, regions and agent over the same state.
    with LocalStore(tmp_path / "state") as reopened:
        agent = NodeAgent(reopened, WorkerRegions(regions.root))
        assert agent.tick() == AgentTick(workers=2, finished=["default/casualty"])
        assert [pod["metadata"]["name"] for pod in reopened.list("Pod")] == ["survivor"]
        assert read_region(path).members == 1
        usage = agent.usage("uid-survivor")
        assert usage is not None
        assert usage["vram"] == 1000


class _StaleStore:
    """Lists pods as they were before another thread deleted one of them."""

    def __init__(self, inner: LocalStore, stale: list[dict[str, Any]]) -> None:
        self.inner = inner
        self.stale = stale

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def list(self, kind: str, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        return self.stale if kind == "Pod" else self.inner.list(kind, *args, **kwargs)


def test_a_worker_deleted_meanwhile_is_still_cleaned_up(
    store: LocalStore, regions: WorkerRegions, processes: Processes
) -> None:
    pod = store.create(worker("raced", pids=pids_of(processes.finished())))
    regions.prepare(pod, store.list("GPU"))
    store.delete("Pod", "raced")
    stale: Any = _StaleStore(store, [pod])
    assert NodeAgent(stale, regions).tick().finished == ["default/raced"]
    assert not regions.directory(pod).exists()
