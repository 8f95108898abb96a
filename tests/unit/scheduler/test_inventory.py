"""The API's listings of GPUs, nodes and pools, summed from the allocator."""

from __future__ import annotations

from typing import Any

from tensorfusion.scheduler.cluster_state import ClusterState
from tensorfusion.scheduler.fleet import Fleet
from tensorfusion.scheduler.inventory import (
    InventoryView,
    gpu_inventory,
    node_inventory,
    pool_inventory,
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
