"""The leader's allocation tables from a known cluster and from a running scheduling loop:
the columns, the figures, the rows read back from the embedded sink, and every row still
written while the pools cannot be read.

The expected column sets are written out here: COMPAT.md ("Metrics tables") lists
tf_node_metrics in full and names the others; their remaining columns are TensorFusion's own
(its recorder's), plus `ts`, plus `uuid` on tf_gpu_metrics so that allocation and usage
(tf_gpu_usage, keyed by uuid) can be joined."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tensorfusion.api.annotations import VRAM_LIMIT, VRAM_REQUEST
from tensorfusion.errors import UnavailableError
from tensorfusion.metrics.embedded_sink import EmbeddedSink
from tensorfusion.metrics.point import Point
from tensorfusion.metrics.row_values import WORKLOAD_LABEL
from tensorfusion.scheduler.allocation_recorder import (
    GPU_ALLOCATION,
    GPU_METRICS,
    NODE_METRICS,
    POOL_METRICS,
    SYSTEM_METRICS,
    WORKER_RESOURCES,
    AllocationRecorder,
)
from tensorfusion.scheduler.cluster_state import ClusterState
from tensorfusion.scheduler.fleet import Fleet
from tensorfusion.scheduler.loop import LoopStats, SchedulingLoop
from tensorfusion.store.local import LocalStore
from tests.unit.scheduler.cluster_builders import GI, gpu, gpu_node, node, pool, tf_pod
from tests.unit.scheduler.test_scheduling_loop import FakeClock

NOW = 1_700_000_000 * 1_000_000_000
ALLOCATED = {
    "allocated_tflops",
    "allocated_tflops_percent",
    "allocated_vram_bytes",
    "allocated_vram_percent",
    "allocated_tflops_percent_virtual",
    "allocated_vram_percent_virtual",
    "gpu_count",
}
COLUMNS = {
    NODE_METRICS: {"ts", "node", "pool", "phase", *ALLOCATED},
    POOL_METRICS: {
        *("ts", "pool", "phase", *ALLOCATED),
        *("limited_tflops", "limited_vram_bytes"),
        *("limited_tflops_percent_virtual", "limited_vram_percent_virtual"),
        *("capacity_capped", "capped_by", "cost_per_hour", "budget_per_day"),
    },
    GPU_METRICS: {
        *("ts", "gpu", "uuid", "node", "pool", "gpu_model", "phase"),
        *("capacity_tflops", "available_tflops", "allocated_tflops", "allocated_tflops_percent"),
        *("capacity_vram_bytes", "available_vram_bytes", "allocated_vram_bytes"),
        "allocated_vram_percent",
    },
    WORKER_RESOURCES: {
        *("ts", "namespace", "pool", "qos", "worker", "workload", "gpu_count"),
        *("tflops_request", "tflops_limit", "vram_bytes_request", "vram_bytes_limit"),
    },
    SYSTEM_METRICS: {
        *("ts", "total_workers_cnt", "total_nodes_cnt"),
        *("total_allocation_success_cnt", "total_allocation_fail_cnt"),
    },
    GPU_ALLOCATION: {
        *("ts", "pod", "namespace", "pod_uuid", "node", "gpu_model_index", "gpu_name"),
        "gpu_count",
    },
}
# pool-a: TFLOPS sold twice over, VRAM expanded by half into host memory and not to disk.
OVERSUB = {"tflopsOversellRatio": 200, "vramExpandToHostMem": 50, "vramExpandToHostDisk": 0}


@dataclass
class Source:
    cluster: ClusterState
    totals: LoopStats = field(default_factory=LoopStats)


def placed(name: str, gpus: str, **amounts: str) -> dict[str, Any]:
    """A pod bound to `gpus` (all of one node, named `<node>-g<i>`)."""
    names = gpus.split(",")
    node_name = names[0].split("-")[0]
    return tf_pod(name, node_name=node_name, gpu_ids=gpus, gpu_count=str(len(names)), **amounts)


def cluster(*more_pods: dict[str, Any]) -> ClusterState:
    """n1 (pool-a): an H100 (989 TFLOPS, 80 GiB) and an L4 (121 TFLOPS, 24 GiB), holding
    `train` (100..300 TFLOPS, 10..20 GiB on the H100) and `pair` (10..20% of each GPU, 4 GiB).
    n2 (pool-b): one GPU (100 TFLOPS, 40 GiB) that is not ready, idle unless `more_pods`
    say otherwise. pool-c has no GPU."""
    running = gpu_node("n1")
    running["status"]["phase"] = "Running"
    train = placed("train", "n1-g0", tflops_request="100", tflops_limit="300")
    train["metadata"]["annotations"] |= {VRAM_REQUEST: "10Gi", VRAM_LIMIT: "20Gi"}
    train["metadata"]["labels"][WORKLOAD_LABEL] = "llm"
    pair = placed("pair", "n1-g0,n1-g1", compute_percent_request="10", compute_percent_limit="20")
    pair["metadata"]["annotations"] |= {VRAM_REQUEST: "4Gi", VRAM_LIMIT: "4Gi"}
    objects = Fleet(
        nodes=[node("n1"), node("n2")],
        gpu_nodes=[running, gpu_node("n2", pool="pool-b")],
        gpus=[
            gpu("n1-g0", "n1", index=0, uuid="GPU-0"),
            gpu("n1-g1", "n1", index=1, uuid="GPU-1", tflops="121", vram="24Gi", gpuModel="L4"),
            gpu("n2-g0", "n2", pool="pool-b", tflops="100", vram="40Gi", phase="Pending"),
        ],
        pools=[pool("pool-a", oversubscription=OVERSUB), pool("pool-b"), pool("pool-c")],
        pods=[train, pair, *more_pods],
        templates=[],
    )
    state, report = ClusterState.build(objects)
    assert not report.problems()
    return state


def rows(points: list[Point], table: str, key: str) -> dict[str, Point]:
    return {p.tags[key]: p for p in points if p.measurement == table}


@pytest.fixture
def points() -> list[Point]:
    return AllocationRecorder(Source(cluster(), LoopStats(scheduled=7, unschedulable=3))).points(
        NOW
    )


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[EmbeddedSink]:
    embedded = EmbeddedSink(tmp_path / "metrics.db", ttl="0")
    yield embedded
    embedded.close()


def test_every_table_has_exactly_the_listed_columns(
    points: list[Point], sink: EmbeddedSink
) -> None:
    sink.write(points)
    assert sink.tables() == sorted(COLUMNS)
    for table, expected in COLUMNS.items():
        assert {row["name"] for row in sink.query(f"PRAGMA table_info({table})")} == expected
    assert {p.time_ns for p in points} == {NOW}


def test_nodes_show_requests_against_physical_and_virtual_capacity(points: list[Point]) -> None:
    nodes = rows(points, NODE_METRICS, "node")
    n1 = nodes["n1"]
    assert n1.tags == {"node": "n1", "pool": "pool-a", "phase": "Running"}
    # Requests: 100 + 98.9 (10% of the H100) + 12.1 (10% of the L4) TFLOPS; 10 + 4 + 4 GiB.
    assert n1.fields == {
        "allocated_tflops": pytest.approx(211.0),
        "allocated_tflops_percent": pytest.approx(100 * 211 / 1110),
        "allocated_tflops_percent_virtual": pytest.approx(100 * 211 / 2220),
        "allocated_vram_bytes": float(18 * GI),
        "allocated_vram_percent": pytest.approx(100 * 18 / 104),
        "allocated_vram_percent_virtual": pytest.approx(100 * 18 / 156),
        "gpu_count": 2,
    }
    assert nodes["n2"].tags == {"node": "n2", "pool": "pool-b"}  # its GPUNode has no phase
    assert nodes["n2"].fields["allocated_vram_percent"] == 0.0


def test_pools_add_limits_against_virtual_capacity(points: list[Point]) -> None:
    pools = rows(points, POOL_METRICS, "pool")
    a = pools["pool-a"]
    assert a.tags == {"pool": "pool-a", "phase": "Running"}
    assert a.fields["allocated_tflops"] == pytest.approx(211.0)
    # Limits: 300 + 197.8 + 24.2 TFLOPS; 20 + 4 + 4 GiB.
    assert a.fields["limited_tflops"] == pytest.approx(522.0)
    assert a.fields["limited_tflops_percent_virtual"] == pytest.approx(100 * 522 / 2220)
    assert a.fields["limited_vram_bytes"] == float(28 * GI)
    assert a.fields["limited_vram_percent_virtual"] == pytest.approx(100 * 28 / 156)
    assert a.fields["gpu_count"] == 2
    empty = pools["pool-c"]
    assert empty.tags == {"pool": "pool-c", "phase": "Pending"}
    nothing_provisioned = {"capacity_capped": 0, "capped_by": ""}
    assert empty.fields == dict.fromkeys(empty.fields, 0.0) | {
        "gpu_count": 0,
        **nothing_provisioned,
    }


def test_gpus_show_capacity_available_and_allocated(points: list[Point]) -> None:
    gpus = rows(points, GPU_METRICS, "gpu")
    assert sorted(gpus) == ["n1-g0", "n1-g1", "n2-g0"]
    l4 = gpus["n1-g1"]
    assert l4.tags == {
        "gpu": "n1-g1",
        "uuid": "GPU-1",
        "node": "n1",
        "pool": "pool-a",
        "gpu_model": "L4",
        "phase": "Running",
    }
    assert l4.fields == {
        "capacity_tflops": 121.0,
        "available_tflops": pytest.approx(108.9),
        "allocated_tflops": pytest.approx(12.1),
        "allocated_tflops_percent": pytest.approx(10.0),
        "capacity_vram_bytes": float(24 * GI),
        "available_vram_bytes": float(20 * GI),
        "allocated_vram_bytes": float(4 * GI),
        "allocated_vram_percent": pytest.approx(100 * 4 / 24),
    }
    assert gpus["n2-g0"].tags["phase"] == "Pending"
    assert "uuid" not in gpus["n2-g0"].tags  # none recorded: left out, not made up


def test_workers_show_per_gpu_requests_and_limits(points: list[Point]) -> None:
    workers = rows(points, WORKER_RESOURCES, "worker")
    assert workers["train"].tags == {
        "namespace": "default",
        "pool": "pool-a",
        "qos": "medium",
        "worker": "train",
        "workload": "llm",
    }
    assert workers["train"].fields == {
        "gpu_count": 1,
        "tflops_request": 100.0,
        "tflops_limit": 300.0,
        "vram_bytes_request": float(10 * GI),
        "vram_bytes_limit": float(20 * GI),
    }
    pair = workers["pair"]
    assert (pair.tags["workload"], pair.tags["qos"]) == ("pair", "medium")
    # 10% of an H100 and of an L4 are 98.9 and 12.1 TFLOPS: the mean per GPU.
    assert pair.fields["tflops_request"] == pytest.approx(55.5)
    assert pair.fields["tflops_limit"] == pytest.approx(111.0)
    assert pair.fields["gpu_count"] == 2


def test_allocations_name_their_gpus_by_model_and_index(points: list[Point]) -> None:
    allocations = rows(points, GPU_ALLOCATION, "pod")
    assert allocations["pair"].tags == {
        "pod": "pair",
        "namespace": "default",
        "pod_uuid": "uid-pair",
        "node": "n1",
        "gpu_model_index": "H100:0,L4:1",
        "gpu_name": "n1-g0,n1-g1",
    }
    assert allocations["pair"].fields == {"gpu_count": 2}
    assert allocations["train"].tags["gpu_model_index"] == "H100:0"


def test_the_system_row_counts_for_the_whole_cluster(points: list[Point]) -> None:
    [system] = [p for p in points if p.measurement == SYSTEM_METRICS]
    assert system.tags == {}
    assert system.fields == {
        "total_workers_cnt": 2,
        "total_nodes_cnt": 2,
        "total_allocation_success_cnt": 7,
        "total_allocation_fail_cnt": 3,
    }


def test_rows_read_back_from_the_embedded_sink(points: list[Point], sink: EmbeddedSink) -> None:
    sink.write(points)
    assert sink.query(
        "SELECT ts, node, pool, phase, gpu_count FROM tf_node_metrics ORDER BY node"
    ) == [
        {"ts": NOW // 10**6, "node": "n1", "pool": "pool-a", "phase": "Running", "gpu_count": 2},
        {"ts": NOW // 10**6, "node": "n2", "pool": "pool-b", "phase": None, "gpu_count": 1},
    ]
    assert sink.query(
        "SELECT pod, gpu_count FROM tf_gpu_allocation WHERE gpu_name LIKE '%n1-g1%'"
    ) == [{"pod": "pair", "gpu_count": 2}]


def test_an_empty_cluster_still_reports_its_counts() -> None:
    points = AllocationRecorder(Source(ClusterState())).points(NOW)
    assert [(p.measurement, dict(p.fields)) for p in points] == [
        (
            SYSTEM_METRICS,
            {
                "total_workers_cnt": 0,
                "total_nodes_cnt": 0,
                "total_allocation_success_cnt": 0,
                "total_allocation_fail_cnt": 0,
            },
        )
    ]


def test_a_gpu_that_left_the_cluster_still_names_its_workers_allocations() -> None:
    state = cluster()
    state.remove_gpu("n1-g1")  # its pods still exist, and so does what they hold
    points = AllocationRecorder(Source(state)).points(NOW)
    assert sorted(rows(points, GPU_METRICS, "gpu")) == ["n1-g0", "n2-g0"]
    assert rows(points, GPU_ALLOCATION, "pod")["pair"].tags["gpu_model_index"] == "H100:0,L4:1"
    assert rows(points, NODE_METRICS, "node")["n1"].fields["gpu_count"] == 1


def test_a_closed_store_loses_no_rows_and_pools_report_nothing_provisioned(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = LocalStore(tmp_path / "store.db")
    store.create(pool("pool-a"))
    store.patch("GPUPool", "pool-a", {"status": {"costPerHour": "4.6016"}})
    store.close()  # as when the store goes down between two metrics ticks
    recorder = AllocationRecorder(Source(cluster()), pools=lambda: store.list("GPUPool"))
    points = recorder.points(NOW)
    assert points == AllocationRecorder(Source(cluster())).points(NOW)
    nothing = {"capacity_capped": 0, "capped_by": "", "cost_per_hour": 0.0, "budget_per_day": 0.0}
    for row in rows(points, POOL_METRICS, "pool").values():
        assert {name: row.fields[name] for name in nothing} == nothing
    assert "the pools cannot be read" in caplog.text
    assert "is closed" in caplog.text


def test_an_unavailable_store_loses_no_rows() -> None:
    def unavailable() -> list[dict[str, Any]]:
        raise UnavailableError("shutting down")

    points = AllocationRecorder(Source(cluster()), pools=unavailable).points(NOW)
    assert points == AllocationRecorder(Source(cluster())).points(NOW)


def test_a_fault_other_than_the_store_still_surfaces() -> None:
    def broken() -> list[dict[str, Any]]:
        raise TypeError("not a list of pools")

    with pytest.raises(TypeError, match="not a list of pools"):
        AllocationRecorder(Source(cluster()), pools=broken).points(NOW)


def test_pool_rows_report_what_a_readable_store_holds(tmp_path: Path) -> None:
    with LocalStore(tmp_path / "store.db") as store:
        store.create(pool("pool-a"))
        store.patch("GPUPool", "pool-a", {"status": {"costPerHour": "4.6016"}})
        recorder = AllocationRecorder(Source(cluster()), pools=lambda: store.list("GPUPool"))
        row = rows(recorder.points(NOW), POOL_METRICS, "pool")["pool-a"]
    assert row.fields["cost_per_hour"] == pytest.approx(4.6016)


# --- the scheduler's counters ----------------------------------------------------------------


def started_loop(*pods: dict[str, Any], clock: FakeClock | None = None) -> SchedulingLoop:
    """A loop over one 80 GiB GPU with `pods` pending, after its first pass."""
    store = LocalStore(":memory:")
    store.create_many([pool(), node("n1"), gpu_node("n1"), gpu("n1-gpu-0", "n1"), *pods])
    loop = SchedulingLoop(store, clock=clock or FakeClock())
    loop.start()
    loop.run_once()
    return loop


def test_the_loop_counts_every_attempt_and_the_recorder_reports_them() -> None:
    clock = FakeClock()
    loop = started_loop(
        tf_pod("fits", vram_request="60Gi", tflops_request="10"),
        tf_pod("too-big", vram_request="70Gi", tflops_request="10"),
        clock=clock,
    )
    clock.now += 60.0  # past the backoff: the pod that did not fit is tried again
    second = loop.run_once()
    assert (second.scheduled, second.unschedulable) == (0, 1)
    assert (loop.totals.scheduled, loop.totals.unschedulable) == (1, 2)
    assert loop.totals.outcomes == []  # totals keep counts only
    points = AllocationRecorder(loop).points(NOW)
    [system] = [p for p in points if p.measurement == SYSTEM_METRICS]
    assert system.fields["total_allocation_success_cnt"] == 1
    assert system.fields["total_allocation_fail_cnt"] == 2
    assert system.fields["total_workers_cnt"] == 1
    node_row = rows(points, NODE_METRICS, "node")["n1"]
    assert node_row.fields["allocated_vram_bytes"] == float(60 * GI)


def test_counts_carry_over_a_rebuild_of_the_loop_state() -> None:
    loop = started_loop(tf_pod("fits", vram_request="60Gi", tflops_request="10"))
    loop.start()  # a new term as leader rebuilds the state, the counts go on
    assert loop.totals.scheduled == 1
    node_row = rows(AllocationRecorder(loop).points(NOW), NODE_METRICS, "node")["n1"]
    assert node_row.fields["allocated_vram_bytes"] == float(60 * GI)
