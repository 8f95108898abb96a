"""The GPU allocator on small hand-built fleets: its arrays stay ordered by node, reservations
are keyed by pod UID and idempotent, the capacity rule holds to the last milli-TFLOPS and
byte, and a rebuild from the pods' annotations restores (and reports) what they hold."""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

import numpy as np
import pytest

from tensorfusion.errors import AllocationError
from tensorfusion.scheduler.allocation import Allocation, GpuRecord, GpuShare, RebuildReport
from tensorfusion.scheduler.allocator import DEVICE_PLUGIN, NOT_READY, READY, GpuAllocator
from tensorfusion.scheduler.gpu_demand import GpuDemand

GI = 1024**3
TFLOPS = 100_000
"""Physical capacity of the test GPUs, milli-TFLOPS (100 TFLOPS)."""
VRAM = 80 * GI
VIRTUAL_TFLOPS = 150_000
VIRTUAL_VRAM = 120 * GI
PREFIX = "tensor-fusion.ai/"


def add(
    allocator: GpuAllocator,
    name: str,
    node: int,
    *,
    state: int = READY,
    capacity: tuple[int, int] = (TFLOPS, VRAM),
    virtual: tuple[int, int] = (VIRTUAL_TFLOPS, VIRTUAL_VRAM),
    model: str = "H100",
) -> None:
    allocator.add_gpu(
        GpuRecord(name, f"n{node}", "pool-a", model, uuid=f"GPU-{name}", index=0),
        node,
        state=state,
        capacity=capacity,
        virtual=virtual,
    )


def fleet(*nodes: int) -> GpuAllocator:
    """One GPU per argument, named g<position>, on node index `nodes[position]`."""
    allocator = GpuAllocator()
    for position, node in enumerate(nodes):
        add(allocator, f"g{position}", node)
    return allocator


def share(
    tflops_request: int = 0, tflops_limit: int = 0, vram_request: int = 0, vram_limit: int = 0
) -> GpuShare:
    return GpuShare(tflops_request, tflops_limit, vram_request, vram_limit)


def held(uid: str, *gpus: str, amounts: GpuShare | None = None) -> Allocation:
    amounts = amounts or share(10_000, 20_000, GI, 2 * GI)
    return Allocation(uid, "default", f"pod-{uid}", gpus, (amounts,) * len(gpus))


def usage(allocator: GpuAllocator) -> dict[str, tuple[int, int, int, int]]:
    """Per GPU name: (TFLOPS requested, VRAM requested, TFLOPS limited, VRAM limited)."""
    arrays = allocator.arrays()
    return {
        record.name: (
            int(arrays.tflops_requested[i]),
            int(arrays.vram_requested[i]),
            int(arrays.tflops_limited[i]),
            int(arrays.vram_limited[i]),
        )
        for i, record in enumerate(allocator.records)
    }


def pod(
    name: str,
    gpu_ids: str | None,
    *,
    phase: str | None = None,
    node: str | None = "node-0",
    **annotations: str,
) -> dict[str, Any]:
    """A pod as the store gives it, bound to `node`; annotation keywords drop the prefix,
    `_` for `-`."""
    notes = {PREFIX + key.replace("_", "-"): value for key, value in annotations.items()}
    if gpu_ids is not None:
        notes[PREFIX + "gpu-ids"] = gpu_ids
    body: dict[str, Any] = {
        "metadata": {"name": name, "namespace": "ml", "uid": f"uid-{name}", "annotations": notes},
        "spec": {"nodeName": node} if node else {},
    }
    if phase is not None:
        body["status"] = {"phase": phase}
    return body


AMOUNTS = {
    "tflops_request": "10",
    "tflops_limit": "20",
    "vram_request": "1Gi",
    "vram_limit": "2Gi",
}
"""Annotations worth share(10_000, 20_000, GI, 2 * GI) per GPU."""


# --- GPUs and arrays ------------------------------------------------------------------------


def test_add_gpu_fills_every_column() -> None:
    allocator = GpuAllocator()
    add(allocator, "a", 0, model="A100")
    add(allocator, "b", 1, state=DEVICE_PLUGIN, capacity=(5, 6), virtual=(7, 8))
    arrays = allocator.arrays()
    assert allocator.count == 2
    assert arrays.node.tolist() == [0, 1]
    assert arrays.state.tolist() == [READY, DEVICE_PLUGIN]
    assert arrays.pool.tolist() == [0, 0]
    assert arrays.model.tolist() == [0, 1]
    assert arrays.tflops_capacity.tolist() == [TFLOPS, 5]
    assert arrays.vram_capacity.tolist() == [VRAM, 6]
    assert arrays.tflops_virtual.tolist() == [VIRTUAL_TFLOPS, 7]
    assert arrays.vram_virtual.tolist() == [VIRTUAL_VRAM, 8]
    assert allocator.pool_id("pool-a") == 0
    assert allocator.pool_id("pool-b") is None
    assert allocator.model_id("H100") == 1
    assert allocator.model_id("a100") == 0
    assert allocator.model_id("V100") is None


def test_refresh_updates_capacity_and_keeps_usage() -> None:
    allocator = fleet(0, 1)
    allocator.reserve(held("u1", "g1"))
    add(allocator, "g1", 1, state=NOT_READY, capacity=(50_000, 40 * GI), virtual=(60_000, GI))
    arrays = allocator.arrays()
    assert allocator.count == 2
    assert arrays.tflops_capacity.tolist() == [TFLOPS, 50_000]
    assert arrays.vram_capacity.tolist() == [VRAM, 40 * GI]
    assert arrays.tflops_virtual.tolist() == [VIRTUAL_TFLOPS, 60_000]
    assert arrays.state.tolist() == [READY, NOT_READY]
    assert usage(allocator)["g1"] == (10_000, GI, 20_000, 2 * GI)
    assert allocator.gpu_workers().tolist() == [0, 1]
    assert allocator.node_workers(2).tolist() == [0, 1]


def test_arrays_are_views_of_the_live_columns() -> None:
    allocator = fleet(0, 0)
    arrays = allocator.arrays()
    allocator.reserve(held("u1", "g1"))
    assert arrays.tflops_requested.tolist() == [0, 10_000]
    assert arrays.vram_limited.tolist() == [0, 2 * GI]
    allocator.release("u1")
    assert arrays.tflops_requested.tolist() == [0, 0]


def test_gpus_added_out_of_node_order_are_sorted_with_their_usage() -> None:
    allocator = GpuAllocator()
    for name, node in (("c", 2), ("a0", 0), ("b", 1), ("a1", 0)):
        add(allocator, name, node)
    # Reserved while still in insertion order: the usage must move with its GPU.
    allocator.reserve(held("u1", "c", amounts=share(1_000, 2_000, 3, 4)))
    allocator.reserve(held("u2", "a1", amounts=share(5_000, 6_000, 7, 8)))
    arrays = allocator.arrays()
    assert arrays.node.tolist() == [0, 0, 1, 2]
    # Stable: the two GPUs of node 0 keep the order they were added in.
    assert [record.name for record in allocator.records] == ["a0", "a1", "b", "c"]
    assert allocator.index_of == {"a0": 0, "a1": 1, "b": 2, "c": 3}
    assert arrays.tflops_requested.tolist() == [0, 5_000, 0, 1_000]
    assert arrays.vram_limited.tolist() == [0, 8, 0, 4]
    assert allocator.gpu_workers().tolist() == [0, 1, 0, 1]
    assert allocator.node_workers(3).tolist() == [1, 0, 1]
    # After the sort, reservations land on the GPU named, at its new index.
    allocator.reserve(held("u3", "b", amounts=share(9_000, 9_000, 9, 9)))
    assert allocator.arrays().tflops_requested.tolist() == [0, 5_000, 9_000, 1_000]
    allocator.release("u1")
    assert allocator.arrays().tflops_requested.tolist() == [0, 5_000, 9_000, 0]


def test_refresh_onto_another_node_reorders() -> None:
    allocator = fleet(0, 1, 2)
    add(allocator, "g0", 3)
    assert allocator.arrays().node.tolist() == [1, 2, 3]
    assert [record.name for record in allocator.records] == ["g1", "g2", "g0"]
    assert allocator.index_of["g0"] == 2


def test_moving_a_held_gpu_to_another_node_moves_its_workers() -> None:
    allocator = fleet(0, 1)
    allocator.reserve(held("u1", "g0"))
    add(allocator, "g0", 2)
    assert allocator.node_workers(3).tolist() == [0, 0, 1]
    allocator.release("u1")
    assert allocator.node_workers(3).tolist() == [0, 0, 0]


def test_arrays_grow_past_the_initial_size_keeping_usage() -> None:
    allocator = GpuAllocator()
    add(allocator, "first", 0)
    allocator.reserve(held("u1", "first"))
    for i in range(40):
        add(allocator, f"more-{i:02d}", 1 + i // 8)
    arrays = allocator.arrays()
    assert allocator.count == 41
    assert len(arrays.node) == 41
    assert arrays.node.tolist() == [0] + [1 + i // 8 for i in range(40)]
    assert arrays.tflops_requested.tolist() == [10_000] + [0] * 40
    assert allocator.node_workers(6).tolist() == [1, 0, 0, 0, 0, 0]


# --- reserve / release -----------------------------------------------------------------------


def test_reserve_is_idempotent_by_uid() -> None:
    allocator = fleet(0, 0)
    allocation = held("u1", "g0", "g1")
    assert allocator.reserve(allocation) is True
    before = usage(allocator)
    assert allocator.reserve(held("u1", "g0", "g1")) is False
    assert usage(allocator) == before
    assert before == {"g0": (10_000, GI, 20_000, 2 * GI), "g1": (10_000, GI, 20_000, 2 * GI)}
    assert allocator.gpu_workers().tolist() == [1, 1]
    assert allocator.node_workers(1).tolist() == [1]
    assert allocator.allocations == {"u1": allocation}


@pytest.mark.parametrize(
    "other",
    [
        held("u1", "g1"),
        held("u1", "g0", amounts=share(10_000, 20_000, GI, 3 * GI)),
        Allocation(
            "u1", "default", "pod-u1", ("g0",), (share(10_000, 20_000, GI, 2 * GI),), "high"
        ),
    ],
)
def test_a_different_allocation_for_a_held_uid_is_refused(other: Allocation) -> None:
    allocator = fleet(0, 0)
    allocator.reserve(held("u1", "g0"))
    before = usage(allocator)
    with pytest.raises(
        AllocationError, match=re.escape("pod default/pod-u1 (u1) already holds g0")
    ):
        allocator.reserve(other)
    assert usage(allocator) == before
    assert allocator.allocations["u1"] == held("u1", "g0")


def test_reserve_refuses_an_unknown_gpu_without_changes() -> None:
    allocator = fleet(0)
    with pytest.raises(AllocationError, match=re.escape("pod default/pod-u1: unknown GPU 'gone'")):
        allocator.reserve(held("u1", "g0", "gone"))
    assert usage(allocator) == {"g0": (0, 0, 0, 0)}
    assert allocator.allocations == {}
    assert allocator.gpu_workers().tolist() == [0]


@pytest.mark.parametrize(
    ("state", "shown"), [(DEVICE_PLUGIN, "nvidia-device-plugin"), (NOT_READY, "not-ready")]
)
def test_reserve_refuses_a_gpu_that_is_not_ready(state: int, shown: str) -> None:
    allocator = fleet(0, 0)
    allocator.set_state("g1", state)
    with pytest.raises(
        AllocationError, match=re.escape(f"GPU g1 is {shown}, not available to workloads")
    ):
        allocator.reserve(held("u1", "g0", "g1"))
    assert usage(allocator)["g0"] == (0, 0, 0, 0)
    assert allocator.allocations == {}
    allocator.set_state("g1", READY)
    assert allocator.reserve(held("u1", "g0", "g1")) is True


def test_a_removed_gpu_takes_no_new_work() -> None:
    allocator = fleet(0)
    allocator.remove_gpu("g0")
    allocator.remove_gpu("never-known")
    with pytest.raises(AllocationError, match="GPU g0 is not-ready"):
        allocator.reserve(held("u1", "g0"))


BOUNDS = [
    # (field of GpuShare, message name of the usage, message name of the bound, the bound)
    ("tflops_request", "tflops requested", "tflops capacity", TFLOPS),
    ("vram_request", "vram requested", "vram capacity", VRAM),
    ("tflops_limit", "tflops limited", "tflops virtual", VIRTUAL_TFLOPS),
    ("vram_limit", "vram limited", "vram virtual", VIRTUAL_VRAM),
]


def _one_amount(field: str, amount: int) -> GpuShare:
    return dataclasses.replace(share(), **{field: amount})


@pytest.mark.parametrize(("field", "used", "bound", "limit"), BOUNDS)
def test_capacity_bounds_are_inclusive(field: str, used: str, bound: str, limit: int) -> None:
    allocator = fleet(0, 0)
    first = 1_000
    allocator.reserve(held("u1", "g1", amounts=_one_amount(field, first)))
    rest = limit - first
    assert allocator.reserve(held("u2", "g1", amounts=_one_amount(field, rest))) is True
    assert allocator.release("u2") is not None
    message = f"GPU g1: {used} would be {limit + 1}, over its {bound} {limit}"
    with pytest.raises(AllocationError, match=f"^{re.escape(message)}$"):
        allocator.reserve(held("u2", "g0", "g1", amounts=_one_amount(field, rest + 1)))
    assert allocator.allocations.keys() == {"u1"}
    assert usage(allocator)["g0"] == (0, 0, 0, 0)
    assert allocator.gpu_workers().tolist() == [0, 1]


@pytest.mark.parametrize(("field", "used", "bound", "limit"), BOUNDS)
def test_reserve_without_check_may_overcommit(
    field: str, used: str, bound: str, limit: int
) -> None:
    allocator = fleet(0)
    assert allocator.reserve(held("u1", "g0", amounts=_one_amount(field, limit + 1)), check=False)
    assert getattr(allocator.allocations["u1"].shares[0], field) == limit + 1


def test_release_frees_and_twice_is_harmless() -> None:
    allocator = fleet(0, 1)
    allocation = held("u1", "g0")
    allocator.reserve(allocation)
    allocator.reserve(held("u2", "g1"))
    assert allocator.release("u1") == allocation
    assert allocator.release("u1") is None
    assert allocator.release("never-held") is None
    assert usage(allocator) == {"g0": (0, 0, 0, 0), "g1": (10_000, GI, 20_000, 2 * GI)}
    assert allocator.gpu_workers().tolist() == [0, 1]
    assert allocator.node_workers(2).tolist() == [0, 1]
    assert allocator.allocations.keys() == {"u2"}
    # The UID is free again.
    assert allocator.reserve(held("u1", "g1")) is True


def test_worker_counts_follow_reserve_and_release() -> None:
    allocator = fleet(0, 0, 1, 2)
    allocator.reserve(held("two-gpus", "g0", "g1"))
    allocator.reserve(held("one", "g1"))
    allocator.reserve(held("other-node", "g2"))
    assert allocator.gpu_workers().tolist() == [1, 2, 1, 0]
    # A pod counts once per node, however many GPUs it holds there.
    assert allocator.node_workers(3).tolist() == [2, 1, 0]
    assert allocator.node_workers(5).tolist() == [2, 1, 0, 0, 0]
    allocator.release("two-gpus")
    assert allocator.gpu_workers().tolist() == [0, 1, 1, 0]
    assert allocator.node_workers(3).tolist() == [1, 1, 0]
    allocator.release("one")
    allocator.release("other-node")
    assert allocator.gpu_workers().tolist() == [0, 0, 0, 0]
    assert allocator.node_workers(3).tolist() == [0, 0, 0]


def test_an_allocation_naming_a_gpu_twice_cannot_overcommit_it() -> None:
    allocator = fleet(0)
    with pytest.raises(AllocationError, match="names a GPU more than once"):
        allocator.reserve(held("u1", "g0", "g0", amounts=share(60_000, 60_000, 0, 0)))
    assert usage(allocator) == {"g0": (0, 0, 0, 0)}


# --- adjust ----------------------------------------------------------------------------------


def test_adjust_changes_the_amounts_in_place() -> None:
    allocator = fleet(0, 0)
    allocator.reserve(held("u1", "g0", "g1"))
    new = (share(30_000, 40_000, 3 * GI, 4 * GI), share(1_000, 2_000, 5, 6))
    updated = allocator.adjust("u1", new)
    assert updated == Allocation("u1", "default", "pod-u1", ("g0", "g1"), new, "medium")
    assert allocator.allocations["u1"] == updated
    assert usage(allocator) == {"g0": (30_000, 3 * GI, 40_000, 4 * GI), "g1": (1_000, 5, 2_000, 6)}
    assert allocator.gpu_workers().tolist() == [1, 1]
    assert allocator.node_workers(1).tolist() == [1]


@pytest.mark.parametrize(("field", "used", "bound", "limit"), BOUNDS)
def test_adjust_keeps_the_capacity_rule(field: str, used: str, bound: str, limit: int) -> None:
    allocator = fleet(0)
    allocator.reserve(held("other", "g0", amounts=_one_amount(field, 1_000)))
    allocator.reserve(held("u1", "g0", amounts=_one_amount(field, 2_000)))
    # The pod's own share is replaced, not added to: up to the bound fits.
    assert allocator.adjust("u1", (_one_amount(field, limit - 1_000),)).shares == (
        _one_amount(field, limit - 1_000),
    )
    before = usage(allocator)
    message = f"GPU g0: {used} would be {limit + 1}, over its {bound} {limit}"
    with pytest.raises(AllocationError, match=f"^{re.escape(message)}$"):
        allocator.adjust("u1", (_one_amount(field, limit - 999),))
    assert usage(allocator) == before
    assert allocator.allocations["u1"].shares == (_one_amount(field, limit - 1_000),)


def test_adjust_of_a_pod_on_a_gpu_no_longer_ready_is_allowed() -> None:
    allocator = fleet(0)
    allocator.reserve(held("u1", "g0"))
    allocator.set_state("g0", NOT_READY)
    allocator.adjust("u1", (share(1, 1, 1, 1),))
    assert usage(allocator) == {"g0": (1, 1, 1, 1)}


def test_adjust_refuses_an_unknown_pod_or_a_different_gpu_count() -> None:
    allocator = fleet(0, 0)
    allocator.reserve(held("u1", "g0", "g1"))
    with pytest.raises(AllocationError, match=re.escape("no allocation for pod UID 'nobody'")):
        allocator.adjust("nobody", (share(),))
    with pytest.raises(AllocationError, match=re.escape("1 shares given for 2 GPUs")):
        allocator.adjust("u1", (share(),))
    assert usage(allocator)["g0"] == (10_000, GI, 20_000, 2 * GI)


# --- shares_for ------------------------------------------------------------------------------


def test_shares_for_a_percent_demand_round_up_per_gpu() -> None:
    allocator = GpuAllocator()
    add(allocator, "big", 0, capacity=(989_000, VRAM))
    add(allocator, "small", 0, capacity=(312_001, VRAM))
    demand = GpuDemand(0, 0, GI, 2 * GI, percent_request_ppm=333_334, percent_limit_ppm=500_000)
    # 989000 x 0.333334 = 329667.326 -> 329668; 312001 x 0.333334 = 104000.541... -> 104001;
    # 312001 x 0.5 = 156000.5 -> 156001.
    assert allocator.shares_for(demand, [0, 1]) == (
        GpuShare(329_668, 494_500, GI, 2 * GI),
        GpuShare(104_001, 156_001, GI, 2 * GI),
    )
    assert allocator.shares_for(demand, [1]) == (GpuShare(104_001, 156_001, GI, 2 * GI),)


def test_shares_for_a_tflops_demand_ignore_the_capacity() -> None:
    allocator = GpuAllocator()
    add(allocator, "big", 0, capacity=(989_000, VRAM))
    add(allocator, "small", 0, capacity=(312_000, VRAM))
    demand = GpuDemand(7_500, 9_000, 3, 4)
    assert allocator.shares_for(demand, [1, 0]) == (GpuShare(7_500, 9_000, 3, 4),) * 2
    assert allocator.shares_for(demand, []) == ()


# --- rebuild ---------------------------------------------------------------------------------


def test_rebuild_restores_allocations_from_annotations() -> None:
    allocator = fleet(0, 0, 1)
    report = allocator.rebuild(
        [
            pod("a", "g0, g1", qos="high", gpu_count="2", **AMOUNTS),
            pod("b", "g2", compute_percent_request="10", compute_percent_limit="25"),
            pod("no-gpus", None, **AMOUNTS),
        ]
    )
    assert report == RebuildReport(restored=2)
    assert report.problems() == []
    assert allocator.allocations == {
        "uid-a": Allocation(
            "uid-a", "ml", "a", ("g0", "g1"), (share(10_000, 20_000, GI, 2 * GI),) * 2, "high"
        ),
        "uid-b": Allocation("uid-b", "ml", "b", ("g2",), (share(10_000, 25_000),), "medium"),
    }
    assert usage(allocator) == {
        "g0": (10_000, GI, 20_000, 2 * GI),
        "g1": (10_000, GI, 20_000, 2 * GI),
        "g2": (10_000, 0, 25_000, 0),
    }
    assert allocator.gpu_workers().tolist() == [1, 1, 1]
    assert allocator.node_workers(2).tolist() == [1, 1]


@pytest.mark.parametrize("phase", ["Succeeded", "Failed"])
def test_rebuild_skips_terminated_pods(phase: str) -> None:
    allocator = fleet(0)
    report = allocator.rebuild(
        [pod("done", "g0", phase=phase, **AMOUNTS), pod("running", "g0", phase="Running")]
    )
    assert report.restored == 1
    assert allocator.allocations.keys() == {"uid-running"}


def test_rebuild_skips_a_pending_pod_whose_binding_never_came() -> None:
    # gpu-ids is written just before the binding: a scheduler stopped between the two
    # leaves a pending pod naming GPUs that were never its own.
    allocator = fleet(0)
    report = allocator.rebuild([pod("half-bound", "g0", node=None, **AMOUNTS)])
    assert report == RebuildReport()
    assert allocator.allocations == {}


def test_rebuild_skips_pods_already_known() -> None:
    allocator = fleet(0, 0)
    mine = Allocation("uid-a", "ml", "a", ("g1",), (share(1, 1, 1, 1),))
    allocator.reserve(mine)
    report = allocator.rebuild([pod("a", "g0", **AMOUNTS), pod("a", "g0", **AMOUNTS)])
    assert report == RebuildReport(restored=0)
    assert allocator.allocations == {"uid-a": mine}
    assert usage(allocator) == {"g0": (0, 0, 0, 0), "g1": (1, 1, 1, 1)}
    # The same pod listed twice in one rebuild is restored once.
    fresh = fleet(0)
    assert fresh.rebuild([pod("b", "g0", **AMOUNTS), pod("b", "g0", **AMOUNTS)]).restored == 1
    assert usage(fresh) == {"g0": (10_000, GI, 20_000, 2 * GI)}


def test_rebuild_keys_a_pod_without_uid_by_namespace_and_name() -> None:
    allocator = fleet(0)
    body = pod("a", "g0", **AMOUNTS)
    del body["metadata"]["uid"]
    allocator.rebuild([body])
    assert allocator.allocations.keys() == {"ml/a"}


def test_rebuild_reports_vanished_gpus() -> None:
    allocator = fleet(0)
    report = allocator.rebuild(
        [pod("a", "gone-1,g0,gone-2", gpu_count="3", **AMOUNTS), pod("b", "g0")]
    )
    assert report.vanished == [("ml/a", ("gone-1", "gone-2"))]
    assert report.restored == 1
    assert report.problems() == ["ml/a: holds GPUs that no longer exist: gone-1, gone-2"]
    assert allocator.allocations.keys() == {"uid-b"}
    assert usage(allocator) == {"g0": (0, 0, 0, 0)}


@pytest.mark.parametrize(
    ("annotations", "key"),
    [
        ({"vram_request": "lots"}, "vram-request"),
        ({"tflops_request": "-1"}, "tflops-request"),
        ({"tflops_request": "20", "tflops_limit": "10"}, "tflops-limit"),
        ({"compute_percent_request": "150"}, "compute-percent-request"),
        ({"gpu_count": "two"}, "gpu-count"),
    ],
)
def test_rebuild_reports_unreadable_annotations(annotations: dict[str, str], key: str) -> None:
    allocator = fleet(0)
    report = allocator.rebuild([pod("bad", "g0", **annotations), pod("good", "g0", **AMOUNTS)])
    assert report.restored == 1
    assert [pod_name for pod_name, _ in report.invalid] == ["ml/bad"]
    assert report.invalid[0][1].startswith(f"{PREFIX}{key}: ")
    assert report.problems() == [f"ml/bad: {report.invalid[0][1]}"]
    assert allocator.allocations.keys() == {"uid-good"}


def test_rebuild_reports_overcommitted_gpus() -> None:
    allocator = fleet(0, 0, 0)
    sixty = {"tflops_request": "60", "vram_request": "1Gi"}
    report = allocator.rebuild(
        [
            pod("a", "g0", **sixty),
            pod("b", "g0", **sixty),
            pod("c", "g2", vram_request="81Gi", vram_limit="81Gi"),
            pod("d", "g1", tflops_request="100", vram_request="80Gi"),
        ]
    )
    assert report.restored == 4
    assert report.overcommitted == ["g0", "g2"]
    assert report.problems() == [
        "GPU g0: allocations exceed its capacity",
        "GPU g2: allocations exceed its capacity",
    ]
    assert usage(allocator)["g0"] == (120_000, 2 * GI, 120_000, 2 * GI)


def test_rebuild_of_limits_over_the_virtual_capacity_is_overcommitted() -> None:
    allocator = fleet(0)
    report = allocator.rebuild([pod("a", "g0", tflops_request="1", tflops_limit="150.001")])
    assert report.overcommitted == ["g0"]


def test_rebuild_reports_a_gpu_ids_annotation_without_names() -> None:
    allocator = fleet(0)
    report = allocator.rebuild([pod("a", " , ", **AMOUNTS)])
    assert allocator.allocations == {}
    assert [pod_name for pod_name, _ in report.invalid] == ["ml/a"]
    assert PREFIX + "gpu-ids" in report.invalid[0][1]


# --- snapshot --------------------------------------------------------------------------------

PODS = [
    pod("a", "g0,g1", qos="high", gpu_count="2", **AMOUNTS),
    pod("b", "g1", tflops_request="1.5", vram_request="512Mi"),
    pod("c", "g2", tflops_request="0.25", tflops_limit="0.5", vram_request="1", vram_limit="1k"),
]


def _reserved_by_hand() -> GpuAllocator:
    """The state of PODS, reached through reserve instead of rebuild."""
    allocator = fleet(0, 0, 1)
    allocator.reserve(
        Allocation(
            "uid-a", "ml", "a", ("g0", "g1"), (share(10_000, 20_000, GI, 2 * GI),) * 2, "high"
        )
    )
    allocator.reserve(
        # Request equal to limit: guaranteed, so QoS high.
        Allocation("uid-b", "ml", "b", ("g1",), (share(1_500, 1_500, GI // 2, GI // 2),), "high")
    )
    allocator.reserve(Allocation("uid-c", "ml", "c", ("g2",), (share(250, 500, 1, 1_000),)))
    return allocator


def test_snapshot_is_json_ready_with_quantity_strings() -> None:
    snapshot = _reserved_by_hand().snapshot()
    assert json.loads(json.dumps(snapshot)) == snapshot
    assert list(snapshot) == ["gpus", "workersPerNode", "allocations", "gpuWorkers"]
    assert [gpu["name"] for gpu in snapshot["gpus"]] == ["g0", "g1", "g2"]
    assert snapshot["gpus"][1] == {
        "name": "g1",
        "node": "n0",
        "pool": "pool-a",
        "model": "H100",
        "uuid": "GPU-g1",
        "index": 0,
        "numaNode": None,
        "present": True,
        "state": "ready",
        "capacity": {"tflops": "100", "vram": "80Gi"},
        "virtualCapacity": {"tflops": "150", "vram": "120Gi"},
        "requested": {"tflops": "11500m", "vram": "1536Mi"},
        "limited": {"tflops": "21500m", "vram": "2560Mi"},
        "workers": 2,
    }
    assert snapshot["workersPerNode"] == {"n0": 2, "n1": 1}
    assert snapshot["allocations"]["uid-c"] == {
        "namespace": "ml",
        "name": "c",
        "node": "n1",
        "gpus": ["g2"],
        "qos": "medium",
        "shares": [
            {
                "requests": {"tflops": "250m", "vram": "1"},
                "limits": {"tflops": "500m", "vram": "1k"},
            }
        ],
    }
    assert list(snapshot["gpuWorkers"]) == ["g0", "g1", "g2"]
    assert snapshot["gpuWorkers"]["g1"] == [
        {
            "uid": "uid-a",
            "namespace": "ml",
            "name": "a",
            "requests": {"tflops": "10", "vram": "1Gi"},
            "limits": {"tflops": "20", "vram": "2Gi"},
        },
        {
            "uid": "uid-b",
            "namespace": "ml",
            "name": "b",
            "requests": {"tflops": "1500m", "vram": "512Mi"},
            "limits": {"tflops": "1500m", "vram": "512Mi"},
        },
    ]


def test_snapshot_shows_removed_and_device_plugin_gpus() -> None:
    allocator = fleet(0, 0)
    allocator.reserve(held("u1", "g0"))
    allocator.remove_gpu("g0")
    allocator.set_state("g1", DEVICE_PLUGIN)
    gpus = {gpu["name"]: gpu for gpu in allocator.snapshot()["gpus"]}
    assert (gpus["g0"]["present"], gpus["g0"]["state"], gpus["g0"]["workers"]) == (
        False,
        "not-ready",
        1,
    )
    assert (gpus["g1"]["present"], gpus["g1"]["state"]) == (True, "nvidia-device-plugin")
    # The pod on the removed GPU still holds it until released.
    assert allocator.release("u1") is not None
    assert allocator.snapshot()["allocations"] == {}


def test_snapshot_is_kept_until_a_change_and_every_change_shows() -> None:
    allocator = fleet(0, 0)
    first = allocator.snapshot()
    assert allocator.snapshot() is first  # nothing changed: nothing built again
    changes = [
        lambda: allocator.reserve(held("u1", "g0")),
        lambda: allocator.adjust("u1", (share(2_000, 4_000, GI, 2 * GI),)),
        lambda: allocator.set_state("g1", DEVICE_PLUGIN),
        lambda: allocator.remove_gpu("g1"),
        lambda: allocator.release("u1"),
    ]
    seen = [first]
    for change in changes:
        change()
        now = allocator.snapshot()
        assert now is not seen[-1]
        assert now != seen[-1]
        seen.append(now)
    rebuilt = GpuAllocator()
    for record in allocator.records:
        add(rebuilt, record.name, 0)
    rebuilt.remove_gpu("g1")
    assert allocator.snapshot() == rebuilt.snapshot()  # what it shows is the state now


def test_snapshot_is_reproduced_by_a_rebuild_from_the_pods() -> None:
    by_hand = _reserved_by_hand()
    rebuilt = GpuAllocator()
    # Added in another order, so the rebuilt allocator also goes through the sort.
    for name, node in (("g2", 1), ("g1", 0), ("g0", 0)):
        add(rebuilt, name, node)
    assert rebuilt.rebuild(PODS) == RebuildReport(restored=3)
    assert rebuilt.snapshot() == by_hand.snapshot()


def test_snapshot_of_an_empty_allocator() -> None:
    assert GpuAllocator().snapshot() == {
        "gpus": [],
        "workersPerNode": {},
        "allocations": {},
        "gpuWorkers": {},
    }


def test_node_workers_of_nodes_without_gpus_are_zero() -> None:
    allocator = GpuAllocator()
    assert allocator.node_workers(3).tolist() == [0, 0, 0]
    assert allocator.gpu_workers().tolist() == []
    assert allocator.arrays().node.dtype == np.int32


def test_rebuild_reports_gpu_ids_that_disagree_with_gpu_count() -> None:
    allocator = fleet(0, 0)
    report = allocator.rebuild([pod("a", "g0,g1", **AMOUNTS), pod("b", "g0,g0", gpu_count="2")])
    assert report.invalid == [
        ("ml/a", PREFIX + "gpu-ids: names 2 GPUs but tensor-fusion.ai/gpu-count asks for 1"),
        ("ml/b", PREFIX + "gpu-ids: names a GPU more than once (g0, g0)"),
    ]
    assert allocator.allocations == {}


def test_rebuild_records_the_qos_the_scheduler_would() -> None:
    allocator = fleet(0, 0)
    guaranteed = pod("a", "g0", tflops_request="10", vram_request="1Gi")
    bad = pod("b", "g1", qos="bogus", **AMOUNTS)
    report = allocator.rebuild([guaranteed, bad])
    assert allocator.allocations["uid-a"].qos == "high"
    assert [name for name, _ in report.invalid] == ["ml/b"]
    assert PREFIX + "qos" in report.invalid[0][1]
