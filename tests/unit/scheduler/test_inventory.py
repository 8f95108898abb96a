"""The API's listings of GPUs, nodes and pools, summed from the allocator."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tensorfusion.api.gpu_links import OWNER_LABEL, POOL_LABEL
from tensorfusion.scheduler.cluster_state import ClusterState
from tensorfusion.scheduler.fleet import Fleet
from tensorfusion.scheduler.fleet_generator import generate_fleet
from tensorfusion.scheduler.inventory import (
    NO_POOL,
    InventoryCache,
    InventoryView,
    gpu_inventory,
    inventory_version,
    node_inventory,
    node_page,
    pool_inventory,
    stranded_workers,
)
from tests.unit.scheduler.cluster_builders import GI, gpu, gpu_node, node, pool, tf_pod

OVERSUB = {"tflopsOversellRatio": 200, "vramExpandToHostMem": 50, "vramExpandToHostDisk": 0}


def _cluster() -> ClusterState:
    pods = [
        tf_pod(
            "a",
            node_name="n1",
            gpu_ids="n1-g0",
            tflops_request="100",
            tflops_limit="300",
            vram_request="10Gi",
            vram_limit="20Gi",
        ),
        tf_pod(
            "b",
            node_name="n1",
            gpu_ids="n1-g0,n1-g1",
            gpu_count="2",
            tflops_request="50",
            tflops_limit="50",
            vram_request="4Gi",
            vram_limit="4Gi",
        ),
    ]
    state, report = ClusterState.build(
        Fleet(
            nodes=[node("n1"), node("n2", spec={"unschedulable": True})],
            gpu_nodes=[gpu_node("n1"), gpu_node("n2", pool="pool-b")],
            gpus=[
                gpu("n1-g0", "n1", index=0, uuid="GPU-0"),
                gpu("n1-g1", "n1", index=1),
                gpu("n2-g0", "n2", pool="pool-b", tflops="100", vram="40Gi"),
            ],
            pools=[pool("pool-a", oversubscription=OVERSUB), pool("pool-b")],
            pods=pods,
            templates=[],
        )
    )
    assert not report.problems()
    return state


def _by_name(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["name"]: row for row in rows}


def test_gpus_show_capacity_virtual_capacity_and_allocations() -> None:
    gpus = _by_name(gpu_inventory(InventoryView.of(_cluster())))
    assert list(gpus) == ["n1-g0", "n1-g1", "n2-g0"]
    g0 = gpus["n1-g0"]
    assert g0["node"] == "n1"
    assert g0["uuid"] == "GPU-0"
    assert g0["pool"] == "pool-a"
    assert g0["usedBy"] == "tensor-fusion"
    assert g0["capacity"] == {"tflops": 989.0, "vram": 80 * GI}
    # 200% TFLOPS oversell; VRAM expanded by 50% into host memory.
    assert g0["virtualCapacity"] == {"tflops": 1978.0, "vram": 120 * GI}
    assert g0["allocated"] == {"tflops": 150.0, "vram": 14 * GI}
    assert g0["allocatedLimits"] == {"tflops": 350.0, "vram": 24 * GI}
    assert g0["workers"] == ["default/a", "default/b"]
    assert gpus["n1-g1"]["allocated"] == {"tflops": 50.0, "vram": 4 * GI}
    assert gpus["n2-g0"]["workers"] == []


def test_nodes_sum_their_gpus() -> None:
    nodes = _by_name(node_inventory(InventoryView.of(_cluster())))
    n1, n2 = nodes["n1"], nodes["n2"]
    assert n1["gpus"] == 2
    assert n1["workers"] == 2
    assert n1["schedulable"] is True
    assert n1["pool"] == "pool-a"
    assert n1["capacity"] == {"tflops": 1978.0, "vram": 160 * GI}
    assert n1["allocated"] == {"tflops": 200.0, "vram": 18 * GI}
    assert n2["schedulable"] is False
    assert n2["workers"] == 0


def test_pools_sum_their_gpus_and_show_their_settings() -> None:
    pools = _by_name(pool_inventory(InventoryView.of(_cluster())))
    a, b = pools["pool-a"], pools["pool-b"]
    assert (a["nodes"], a["gpus"], a["workers"]) == (1, 2, 2)
    assert a["oversubscription"]["tflopsOversellRatio"] == 200
    assert a["placementMode"] == "CompactFirst"
    assert a["allocatedLimits"] == {"tflops": 400.0, "vram": 28 * GI}
    assert (b["nodes"], b["gpus"], b["workers"]) == (1, 1, 0)
    assert b["allocated"] == {"tflops": 0.0, "vram": 0}


def test_a_removed_gpu_is_not_listed_and_an_empty_pool_is() -> None:
    state = _cluster()
    state.remove_gpu("n2-g0")
    assert "n2-g0" not in _by_name(gpu_inventory(InventoryView.of(state)))
    assert "n2" not in _by_name(node_inventory(InventoryView.of(state)))
    assert _by_name(pool_inventory(InventoryView.of(state)))["pool-b"]["gpus"] == 0


def test_stranded_workers_are_those_whose_gpus_all_left() -> None:
    state = _cluster()
    assert stranded_workers(InventoryView.of(state)) == []
    state.remove_gpu("n1-g1")
    assert stranded_workers(InventoryView.of(state)) == [], "b still holds n1-g0"
    state.remove_gpu("n1-g0")
    assert sorted(stranded_workers(InventoryView.of(state))) == [("default", "a"), ("default", "b")]


def test_a_node_page_narrows_by_pool_and_match_and_counts_all() -> None:
    view = InventoryView.of(_cluster())
    assert node_page(view, pool="pool-b") == ([_by_name(node_inventory(view))["n2"]], 1)
    assert node_page(view, limit=1) == (node_inventory(view)[:1], 2)
    # A node is found by its name, its GPUs' names, models and UUIDs, and its pods.
    assert node_page(view, match="N2")[0] == [_by_name(node_inventory(view))["n2"]]
    assert [row["name"] for row in node_page(view, match="gpu-0")[0]] == ["n1"]
    assert [row["name"] for row in node_page(view, match="default/b")[0]] == ["n1"]
    assert node_page(view, pool="pool-a", match="n2") == ([], 0)


def test_gpus_of_some_nodes_equal_their_rows_in_the_whole_list() -> None:
    view = InventoryView.of(_cluster())
    whole = gpu_inventory(view)
    assert gpu_inventory(view, frozenset({"n1"})) == [g for g in whole if g["node"] == "n1"]
    assert gpu_inventory(view, frozenset({"nope"})) == []


POOLS = ("default", "other", None)


@settings(max_examples=25, deadline=None)
@given(
    fill=st.floats(0, 1),
    nodes=st.integers(1, 5),
    seed=st.integers(0, 1000),
    pools=st.lists(st.sampled_from(POOLS), min_size=20, max_size=20),
    dropped=st.sets(st.integers(0, 19), max_size=3),
)
def test_sums_equal_the_gpu_rows_summed(
    fill: float, nodes: int, seed: int, pools: list[str | None], dropped: set[int]
) -> None:
    """Nodes and pools, summed per group at once, agree with their GPUs' own rows; each GPU
    in a pool of its own drawing (or none), and some GPUs, held or not, gone."""
    fleet = generate_fleet(nodes, 4, "H100", fill, seed=seed)
    for gpu_node_object in fleet.gpu_nodes:  # else a GPU without a pool label takes its node's
        gpu_node_object["metadata"].get("labels", {}).pop(OWNER_LABEL, None)
    for gpu_object, pool_name in zip(fleet.gpus, pools, strict=False):
        labels = gpu_object["metadata"].setdefault("labels", {})
        labels.pop(POOL_LABEL, None)
        if pool_name is not None:
            labels[POOL_LABEL] = pool_name
    state, _ = ClusterState.build(fleet)
    # Dropping the GPUs that hold allocations first: their pods stay, counted where they were.
    held = sorted({g for a in state.gpus.allocations.values() for g in a.gpus})
    names = held + sorted(set(state.gpus.index_of) - set(held))
    for index in sorted(dropped):
        if index < len(names):
            state.remove_gpu(names[index])
    view = InventoryView.of(state)
    gpus = gpu_inventory(view)
    first = [view.record(a.gpus[0]) for a in state.gpus.allocations.values()]
    for row in node_inventory(view):
        own = [gpu for gpu in gpus if gpu["node"] == row["name"]]
        assert row["workers"] == sum(record.node == row["name"] for record in first)
        _assert_sums(row, own)
    for row in pool_inventory(view):
        own = [gpu for gpu in gpus if gpu["pool"] == row["name"]]
        assert row["nodes"] == len({gpu["node"] for gpu in own})
        assert row["workers"] == sum(record.pool == row["name"] for record in first)
        _assert_sums(row, own)
    for pool_name in POOLS:
        wanted = NO_POOL if pool_name is None else pool_name
        rows, total = node_page(view, pool=wanted)
        expected = sorted({gpu["node"] for gpu in gpus if gpu["pool"] == pool_name})
        assert [row["name"] for row in rows] == expected
        assert total == len(expected)


def _assert_sums(row: dict[str, Any], own: list[dict[str, Any]]) -> None:
    assert row["gpus"] == len(own)
    for figure in ("capacity", "virtualCapacity", "allocated", "allocatedLimits"):
        assert row[figure]["vram"] == sum(gpu[figure]["vram"] for gpu in own)
        assert row[figure]["tflops"] == pytest.approx(sum(g[figure]["tflops"] for g in own))


def test_every_change_of_the_listed_state_changes_its_version() -> None:
    state = _cluster()
    seen = [inventory_version(state)]
    assert inventory_version(state) == seen[0], "nothing changed, the same version"
    uid = next(iter(state.gpus.allocations))
    released = state.gpus.release(uid)
    assert released is not None
    changes = [
        lambda: None,  # the release above
        lambda: state.gpus.reserve(released),  # bound again
        lambda: state.upsert_gpu(gpu("n1-g2", "n1", index=2)),
        lambda: state.remove_gpu("n1-g2"),
        lambda: state.upsert_node(node("n1", spec={"unschedulable": True})),
        lambda: state.upsert_pool(pool("pool-c")),
    ]
    for change in changes:
        change()
        version = inventory_version(state)
        assert version not in seen
        seen.append(version)


def test_the_cache_builds_a_listing_once_per_version() -> None:
    state, lock, cache = _cluster(), threading.Lock(), InventoryCache()
    first = cache.listing(state, lock, ("pools",), pool_inventory)
    assert cache.listing(state, lock, ("pools",), pool_inventory) is first
    assert cache.listing(state, lock, ("nodes",), node_inventory) == node_inventory(
        InventoryView.of(state)
    )
    state.gpus.release(next(iter(state.gpus.allocations)))
    again = cache.listing(state, lock, ("pools",), pool_inventory)
    assert again is not first
    assert again == pool_inventory(InventoryView.of(state)) != first
