"""Defragmentation proposals from a pool's view: moves that would free whole nodes, first fit
by the scheduler's capacity rule, never overfilling a GPU; none for a packed pool; and none
ever carried out. The fleets are in the local store, reconciled by the controller."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tensorfusion.api.gpu_links import POOL_LABEL
from tensorfusion.operator.nodepool.config import NodePoolConfig
from tensorfusion.operator.nodepool.defrag_plan import defrag_moves
from tensorfusion.operator.nodepool.plan import Action
from tensorfusion.operator.nodepool.reconciler import plan_for_pool
from tensorfusion.operator.nodepool.view import pool_view
from tensorfusion.operator.reconcilers.runner import Controller
from tensorfusion.scheduler.gpu_models import GIB
from tensorfusion.store.local import LocalStore

from .reconciler_objects import TFLOPS_MILLI, VRAM, cluster, gpu, node, pod
from .sim_clock import SimClock
from .test_compaction import POOL, add_node, clock_after_creation, controller_for, pool_spec

Worker = tuple[str, str, int, int]
"""(pod, GPU, TFLOPS, GiB) of a running worker."""


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LocalStore]:
    with LocalStore(tmp_path / "store.db") as local:
        yield local


def proposals(store: LocalStore, workers: list[Worker], threshold: int = 40) -> list[Action]:
    """The moves proposed for a pool of three two-GPU nodes n0, n1, n2 holding `workers`."""
    store.create(cluster())
    for number in range(3):
        store.create(node(f"n{number}"))
        for index in range(2):
            store.create(gpu(f"n{number}", index, POOL))
    for name, gpu_name, tflops, gib in workers:
        store.create(pod(name, gpu_name.split("-")[0], [gpu_name], str(tflops), f"{gib}Gi"))
    controller = Controller(store)
    controller.start()
    controller.drain()
    view = pool_view(controller.cache, POOL, NodePoolConfig())
    assert view is not None
    return defrag_moves(view, set(), threshold)


def moves(actions: list[Action]) -> list[tuple[str, str, str, list[str], str]]:
    return [
        (
            a.target,
            a.detail["fromNode"],
            a.detail["toNode"],
            list(a.detail["toGPUs"]),
            a.detail["frees"],
        )
        for a in actions
    ]


def load_after(workers: list[Worker], actions: list[Action]) -> dict[str, tuple[int, int]]:
    """Per GPU, (TFLOPS, GiB) requested once the proposed moves are made."""
    placed = {f"default/{name}": gpu_name for name, gpu_name, _, _ in workers}
    for action in actions:
        (placed[action.target],) = action.detail["toGPUs"]
    load: dict[str, tuple[int, int]] = {}
    for name, _, tflops, gib in workers:
        before = load.get(placed[f"default/{name}"], (0, 0))
        load[placed[f"default/{name}"]] = (before[0] + tflops, before[1] + gib)
    return load


def test_fragmented_pool_gets_moves_that_free_whole_nodes_without_overfilling(
    store: LocalStore,
) -> None:
    workers: list[Worker] = [
        ("a", "n0-gpu-0", 10, 4),
        ("b", "n1-gpu-0", 95, 4),  # n1-gpu-0 has no room left for a
        ("c", "n2-gpu-0", 95, 10),
        ("d", "n2-gpu-1", 50, 38),
    ]
    actions = proposals(store, workers)
    # n0 (5% used) empties first, onto the first GPU that takes a; n1 (47.5%) is above
    # the 40% threshold, and it received a.
    assert moves(actions) == [("default/a", "n0", "n1", ["n1-gpu-1"], "n0")]
    assert all(a.kind == "move-worker" and a.state == "proposed" for a in actions)
    assert actions[0].reason == "frees node n0"
    capacity = (TFLOPS_MILLI // 1000, VRAM // GIB)
    for gpu_name, (tflops, gib) in load_after(workers, actions).items():
        assert tflops <= capacity[0], gpu_name
        assert gib <= capacity[1], gpu_name


def test_largest_workers_go_first(store: LocalStore) -> None:
    workers: list[Worker] = [
        ("small", "n0-gpu-0", 5, 2),
        ("large", "n0-gpu-1", 30, 20),
        ("u", "n1-gpu-0", 10, 19),  # room for large (21Gi), or for small then not large
        ("v", "n1-gpu-1", 10, 37),  # room for small only
        ("x", "n2-gpu-0", 60, 39),
        ("y", "n2-gpu-1", 60, 39),
    ]
    actions = proposals(store, workers)
    assert moves(actions) == [
        ("default/large", "n0", "n1", ["n1-gpu-0"], "n0"),
        ("default/small", "n0", "n1", ["n1-gpu-1"], "n0"),
    ]
    for gpu_name, (tflops, gib) in load_after(workers, actions).items():
        assert tflops <= 100, gpu_name
        assert gib <= 40, gpu_name


def test_a_source_that_cannot_empty_keeps_its_workers_and_frees_no_room(
    store: LocalStore,
) -> None:
    workers: list[Worker] = [
        # n0 (49% used) is tried first: l fits on n1-gpu-0, t (95 TFLOPS) fits nowhere.
        ("l", "n0-gpu-0", 1, 20),
        ("t", "n0-gpu-1", 95, 19),
        ("c0", "n1-gpu-0", 10, 8),
        ("c1", "n1-gpu-1", 10, 39),
        # n2 (52.5%) is tried next and needs the room on n1-gpu-0 that l did not take.
        ("w", "n2-gpu-0", 10, 30),
        ("v", "n2-gpu-1", 10, 12),
    ]
    actions = proposals(store, workers, threshold=55)
    assert moves(actions) == [
        ("default/w", "n2", "n1", ["n1-gpu-0"], "n2"),
        ("default/v", "n2", "n0", ["n0-gpu-0"], "n2"),
    ]
    for gpu_name, (tflops, gib) in load_after(workers, actions).items():
        assert tflops <= 100, gpu_name
        assert gib <= 40, gpu_name


def test_moves_go_only_onto_nodes_that_already_hold_workers(store: LocalStore) -> None:
    # n0 is empty: compaction releases it as it is, and a worker moved onto it frees nothing.
    workers: list[Worker] = [("a", "n1-gpu-0", 10, 4), ("b", "n2-gpu-0", 20, 8)]
    assert moves(proposals(store, workers)) == [
        ("default/a", "n1", "n2", ["n2-gpu-0"], "n1"),
    ]


def test_a_lone_worker_beside_empty_nodes_is_not_moved(store: LocalStore) -> None:
    assert proposals(store, [("a", "n1-gpu-0", 10, 4)]) == []


def test_packed_pool_gets_no_moves(store: LocalStore) -> None:
    workers: list[Worker] = [
        (f"w{n}{i}", f"n{n}-gpu-{i}", 70, 30) for n in range(3) for i in range(2)
    ]
    assert proposals(store, workers) == []


def test_defrag_is_only_ever_proposed(store: LocalStore) -> None:
    defrag = {"enabled": True, "timezone": "UTC", "utilizationThresholdPercent": 50}
    store.create(cluster([pool_spec(compaction={"period": "5m", "defrag": defrag})]))
    for name in ("n0", "n1"):
        add_node(store, name)
    store.create(pod("a", "n0", ["n0-gpu-0"], "10", "4Gi"))
    store.create(pod("b", "n1", ["n1-gpu-0"], "20", "8Gi"))
    clock: SimClock = clock_after_creation(store, timedelta(days=1))
    pods_before = {p["metadata"]["name"]: p for p in store.list("Pod")}
    controller = controller_for(store, clock)

    plan = plan_for_pool(controller.cache, POOL, NodePoolConfig(), clock.now()).to_json()
    proposed = [a for a in plan["actions"] if a["kind"] == "move-worker"]
    assert [(a["target"], a["state"], a["detail"]["toNode"]) for a in proposed] == [
        ("default/a", "proposed", "n1")
    ]
    conditions = store.get("GPUPool", POOL)["status"]["conditions"]
    compaction = next(c for c in conditions if c["type"] == "Compaction")
    assert "1 worker moves proposed to free 1 nodes" in compaction["message"]
    clock.advance(3600)
    controller.drain()
    after: dict[str, Any] = {p["metadata"]["name"]: p for p in store.list("Pod")}
    assert after == pods_before  # not one pod moved, deleted or annotated
    assert sorted(c["metadata"]["name"] for c in store.list("NodeClaim")) == ["nc-n0", "nc-n1"]
    assert [c["metadata"]["labels"][POOL_LABEL] for c in store.list("NodeClaim")] == [POOL] * 2


def test_no_proposals_without_defrag_enabled(store: LocalStore) -> None:
    defrag = {"enabled": False, "timezone": "UTC", "utilizationThresholdPercent": 50}
    store.create(cluster([pool_spec(compaction={"period": "5m", "defrag": defrag})]))
    for name in ("n0", "n1"):
        add_node(store, name)
    store.create(pod("a", "n0", ["n0-gpu-0"], "10", "4Gi"))
    store.create(pod("b", "n1", ["n1-gpu-0"], "20", "8Gi"))
    clock = clock_after_creation(store, timedelta(days=1))
    controller = controller_for(store, clock)
    plan = plan_for_pool(controller.cache, POOL, NodePoolConfig(), clock.now()).to_json()
    assert [a for a in plan["actions"] if a["kind"] == "move-worker"] == []
