"""What the dashboard's listings serve, checked against the GPUs' own rows: the pools' pod
counts (read per node when no node mixes pools, per pod otherwise), the node pages (the
nodes of a pool, by name, only the page's rows built) and the GPUs of some nodes."""

from __future__ import annotations

import random
from typing import Any

import pytest

from tensorfusion.api.gpu_links import OWNER_LABEL, POOL_LABEL
from tensorfusion.scheduler.cluster_state import ClusterState
from tensorfusion.scheduler.fleet_generator import generate_fleet
from tensorfusion.scheduler.inventory import (
    NO_POOL,
    InventoryView,
    gpu_inventory,
    node_page,
    pool_inventory,
)

NODES = 12
GPUS_PER_NODE = 4
POOLS = ("pool-a", "pool-b", None)


def _state(mixed: bool) -> ClusterState:
    """A filled fleet whose nodes are numbered in an order other than their names', each
    node's GPUs in one pool (or none); with `mixed`, one node's GPUs in two pools. Some
    GPUs are gone, one of them held by pods (which stay, counted where they were)."""
    fleet = generate_fleet(NODES, GPUS_PER_NODE, "H100", 0.5, seed=3)
    random.Random(3).shuffle(fleet.nodes)
    for gpu_node in fleet.gpu_nodes:  # else a GPU without a pool label takes its node's
        gpu_node["metadata"].get("labels", {}).pop(OWNER_LABEL, None)
    for number, gpu in enumerate(fleet.gpus):
        labels = gpu["metadata"].setdefault("labels", {})
        labels.pop(POOL_LABEL, None)
        pool = POOLS[number // GPUS_PER_NODE % len(POOLS)]
        if mixed and number == 1:
            pool = "pool-b"  # the first node's GPUs are in pool-a but this one
        if pool is not None:
            labels[POOL_LABEL] = pool
    state, _ = ClusterState.build(fleet)
    held = sorted({gpu for a in state.gpus.allocations.values() for gpu in a.gpus})
    for name in (held[0], sorted(state.gpus.index_of)[-1]):
        state.remove_gpu(name)
    return state


@pytest.mark.parametrize("mixed", [False, True], ids=["one pool per node", "a node in two"])
def test_pools_count_each_pod_in_the_pool_of_its_first_gpu(mixed: bool) -> None:
    state = _state(mixed)
    view = InventoryView.of(state)
    first = [view.record(a.gpus[0]).pool for a in state.gpus.allocations.values()]
    pools = {row["name"]: row for row in pool_inventory(view)}
    assert set(pools) == {"default", "pool-a", "pool-b"}, "the fleet's pool has no GPU left"
    for name, row in pools.items():
        assert row["workers"] == first.count(name)
    assert pools["pool-a"]["workers"], "each pool holds pods"
    assert pools["pool-b"]["workers"], "each pool holds pods"
    assert sum(row["workers"] for row in pools.values()) < len(first), "some are in no pool"


@pytest.mark.parametrize("mixed", [False, True], ids=["one pool per node", "a node in two"])
def test_node_pages_list_the_pools_nodes_by_name_summed_from_their_gpus(mixed: bool) -> None:
    state = _state(mixed)
    view = InventoryView.of(state)
    gpus = gpu_inventory(view)
    firsts = [view.record(a.gpus[0]).node for a in state.gpus.allocations.values()]
    for pool in POOLS:
        wanted = sorted({gpu["node"] for gpu in gpus if gpu["pool"] == pool})
        rows, total = node_page(view, NO_POOL if pool is None else pool, limit=3)
        assert total == len(wanted) > 3
        assert [row["name"] for row in rows] == wanted[:3]
        for row in rows:
            own = [gpu for gpu in gpus if gpu["node"] == row["name"]]
            assert row["gpus"] == len(own)
            assert row["pool"] == own[0]["pool"]
            assert row["workers"] == firsts.count(row["name"])
            assert row["schedulable"] is True
            for figure in ("capacity", "virtualCapacity", "allocated", "allocatedLimits"):
                assert row[figure]["vram"] == sum(gpu[figure]["vram"] for gpu in own)
                assert row[figure]["tflops"] == pytest.approx(sum(g[figure]["tflops"] for g in own))
    assert node_page(view, "pool-c") == ([], 0)


def test_gpus_of_some_nodes_are_their_rows_of_the_whole_listing() -> None:
    view = InventoryView.of(_state(mixed=True))
    whole = gpu_inventory(view)
    asked = {"node-00000", "node-00007", "no-such-node"}
    expected: list[dict[str, Any]] = [gpu for gpu in whole if gpu["node"] in asked]
    assert len(expected) == 2 * GPUS_PER_NODE - 1, "one GPU of node-00000 is gone"
    assert any(gpu["workers"] for gpu in expected)
    assert gpu_inventory(view, frozenset(asked)) == expected
    assert gpu_inventory(view, frozenset({"no-such-node"})) == []
