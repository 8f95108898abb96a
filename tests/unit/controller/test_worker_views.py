"""The controller's worker listing (Kubernetes mode) over a local store, with usage read from
the GreptimeDB stand-in (tests/unit/metrics/greptime_standin.py: GreptimeDB's HTTP API, with
SELECTs run by SQLite over the rows written, since no GreptimeDB can run here). The rows are
written as a node agent writes them: real shared regions, the real recorder, GreptimeSink."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tensorfusion.controller.worker_views import WorkerViews, usage_rows
from tensorfusion.embedded.workers import worker_view
from tensorfusion.errors import ConfigError
from tensorfusion.store.local import LocalStore
from tests.unit.agent.conftest import worker
from tests.unit.controller.usage_agent import RecordingAgent, greptime_sink
from tests.unit.metrics.greptime_standin import Server, StandIn
from tests.unit.scheduler.cluster_builders import GI, gpu

SECOND = 1_000_000_000
T0 = 1_700_000_000 * SECOND  # 2023-11-14T22:13:20Z
GPU_A, GPU_B = "node-0-gpu-0", "node-0-gpu-1"


@dataclass
class Clock:
    now_ns: int = T0

    def __call__(self) -> int:
        return self.now_ns


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LocalStore]:
    with LocalStore(tmp_path / "store.db") as local:
        local.create(gpu(GPU_A, "node-0", index=0, uuid="GPU-a"))
        local.create(gpu(GPU_B, "node-0", index=1, uuid="GPU-b", tflops="121", vram="24Gi"))
        yield local


@pytest.fixture
def standin() -> Iterator[StandIn]:
    with Server(StandIn(db="tf_metrics")) as state:
        yield state


@pytest.fixture
def agent(tmp_path: Path, store: LocalStore, standin: StandIn) -> Iterator[RecordingAgent]:
    recording = RecordingAgent(tmp_path / "regions", greptime_sink(standin), store.list("GPU"))
    yield recording
    recording.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def views(store: LocalStore, standin: StandIn, clock: Clock) -> Iterator[WorkerViews]:
    listing = WorkerViews(store, greptime_sink(standin), clock_ns=clock)
    yield listing
    listing.close()


def bound(store: LocalStore, name: str, gpus: str, namespace: str = "default") -> dict[str, Any]:
    pod = worker(name, gpu_ids=gpus)
    pod["metadata"]["namespace"] = namespace
    return store.create(pod)


def listed(views: WorkerViews) -> dict[str, dict[str, Any]]:
    return {f"{view['namespace']}/{view['name']}": view for view in views.views()}


def selects(standin: StandIn) -> list[str]:
    return [sql for sql in standin.statements if sql.startswith("SELECT")]


def test_workers_are_listed_with_the_usage_their_agents_recorded(
    store: LocalStore, agent: RecordingAgent, views: WorkerViews, standin: StandIn, clock: Clock
) -> None:
    train = bound(store, "train", f"{GPU_A},{GPU_B}")
    serve = bound(store, "serve", GPU_A, namespace="team-b")
    idle = bound(store, "idle", GPU_B)  # bound, but no agent has recorded it yet
    for pod in (train, serve):
        agent.place(pod)
    region, slot = agent.run(train, GPU_A, vram=2 * GI, throttled_launches=3, pages_evicted=2)
    agent.run(train, GPU_B, vram=GI, throttled_launches=1, pages_resumed=1)
    agent.run(serve, GPU_A, vram=GI // 2)
    agent.record(T0)
    region.add(slot, "busy_ns", SECOND // 4)
    region.set_gauge(slot, "host_bytes", GI // 2)  # paged out meanwhile
    region.set_gauge(slot, "disk_bytes", GI // 4)
    agent.record(T0 + SECOND)
    clock.now_ns = T0 + 2 * SECOND

    workers = listed(views)

    assert set(workers) == {"default/train", "team-b/serve", "default/idle"}
    assert workers["default/train"]["usage"] == {
        "vram": 3 * GI,
        "computeTflops": pytest.approx(989 * 0.25),  # a quarter of GPU A's second, none of B's
        "throttledLaunches": 4,
        "pagesEvicted": 2,
        "pagesResumed": 1,
        "sampledAt": "2023-11-14T22:13:21.000Z",
    }
    assert workers["team-b/serve"]["usage"]["vram"] == GI // 2
    assert workers["team-b/serve"]["usage"]["computeTflops"] == 0.0
    assert workers["default/idle"]["usage"] is None
    assert workers["default/train"]["vramTiers"] == {
        "device": 3 * GI - GI // 2 - GI // 4,
        "host": GI // 2,
        "disk": GI // 4,
    }
    assert workers["team-b/serve"]["vramTiers"] == {"device": GI // 2, "host": 0, "disk": 0}
    assert workers["default/idle"]["vramTiers"] is None
    assert workers["default/train"]["gpus"] == [GPU_A, GPU_B]
    assert workers["default/train"]["gpuIndices"] == [0, 1]
    assert workers["default/idle"]["gpuIndices"] == [1]
    # The embedded listing's shape, field for field.
    assert workers["default/idle"] == worker_view(idle, {GPU_B: 1}, None)
    assert len(selects(standin)) == 1  # one query for every worker
    assert standin.violations == []


def test_the_latest_row_within_the_window_is_the_usage(
    store: LocalStore, agent: RecordingAgent, views: WorkerViews, clock: Clock
) -> None:
    train = bound(store, "train", GPU_A)
    agent.place(train)
    agent.run(train, GPU_A, vram=GI)
    agent.record(T0)
    agent.run(train, GPU_A, vram=GI, throttled_launches=5)
    agent.record(T0 + 10 * SECOND)

    clock.now_ns = T0 + 11 * SECOND
    usage = listed(views)["default/train"]["usage"]
    assert (usage["vram"], usage["throttledLaunches"]) == (2 * GI, 5)

    clock.now_ns = T0 - 10 * SECOND  # an agent's clock 20 s ahead of ours
    assert listed(views)["default/train"]["usage"]["vram"] == 2 * GI
    clock.now_ns = T0 + 10 * SECOND + 119 * SECOND
    assert listed(views)["default/train"]["usage"]["vram"] == 2 * GI
    clock.now_ns = T0 + 10 * SECOND + 121 * SECOND  # the agent stopped two minutes ago
    assert listed(views)["default/train"]["usage"] is None
    clock.now_ns = T0 - 31 * SECOND  # rows from further ahead than a clock may run
    assert listed(views)["default/train"]["usage"] is None


def test_older_rows_written_later_do_not_replace_the_latest(
    store: LocalStore, agent: RecordingAgent, views: WorkerViews, clock: Clock
) -> None:
    train = bound(store, "train", GPU_A)
    agent.place(train)
    agent.run(train, GPU_A, vram=GI)
    agent.record(T0 + 10 * SECOND)
    agent.run(train, GPU_A, vram=GI)
    agent.record(T0)  # a batch the agent kept through an outage arrives late
    clock.now_ns = T0 + 11 * SECOND
    assert listed(views)["default/train"]["usage"]["vram"] == GI


def test_rows_of_an_earlier_pod_on_other_gpus_are_not_counted(
    store: LocalStore, agent: RecordingAgent, views: WorkerViews
) -> None:
    earlier = bound(store, "train", GPU_B)
    agent.place(earlier)
    agent.run(earlier, GPU_B, vram=4 * GI)
    agent.record(T0 - SECOND)
    store.delete("Pod", "train", "default")
    agent.pods.remove(earlier)
    later = worker("train", gpu_ids=GPU_A)
    later["metadata"]["uid"] = "uid-train-again"
    later = store.create(later)
    agent.place(later)
    agent.run(later, GPU_A, vram=GI)
    agent.record(T0)

    assert listed(views)["default/train"]["usage"]["vram"] == GI


def test_only_bound_unfinished_pods_with_gpu_ids_are_workers(
    store: LocalStore, views: WorkerViews, standin: StandIn
) -> None:
    store.create(worker("pending", gpu_ids=None, node=None))
    store.create(worker("no-gpus", gpu_ids=None))
    store.create(worker("no-node", node=""))
    finished = worker("finished", gpu_ids=GPU_A)
    finished["status"] = {"phase": "Succeeded"}
    store.create(finished)
    assert views.views() == []
    assert selects(standin) == []  # nothing to ask about

    bound(store, "running", GPU_A)
    bound(store, "on-a-gone-gpu", "node-9-gpu-0")
    workers = listed(views)
    assert set(workers) == {"default/running", "default/on-a-gone-gpu"}
    assert workers["default/on-a-gone-gpu"]["gpuIndices"] == [None]


@pytest.mark.parametrize("window_s", [0, -1.0, float("nan"), True, "120"])
def test_a_window_that_is_not_a_positive_duration_is_refused(
    store: LocalStore, window_s: Any
) -> None:
    with pytest.raises(ConfigError) as refused:
        WorkerViews(store, None, window_s=window_s)
    assert refused.value.field == "window_s"


def test_without_greptimedb_workers_are_listed_without_usage_said_once(
    store: LocalStore, caplog: pytest.LogCaptureFixture
) -> None:
    bound(store, "train", GPU_A)
    with caplog.at_level(logging.INFO, "tensorfusion.controller.worker_views"):
        views = WorkerViews(store, None)
        first, second = views.views(), views.views()
    assert [view["usage"] for view in first + second] == [None, None]
    assert [record.message for record in caplog.records] == [
        "workers are listed without usage: no GreptimeDB is configured (GREPTIME_*)"
    ]


def test_a_metrics_outage_lists_workers_without_usage_and_is_logged_once(
    store: LocalStore,
    agent: RecordingAgent,
    views: WorkerViews,
    standin: StandIn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    train = bound(store, "train", GPU_A)
    caplog.set_level(logging.INFO, "tensorfusion.controller.worker_views")
    # No row written yet: GreptimeDB has no table to query.
    assert listed(views)["default/train"]["usage"] is None
    agent.place(train)
    agent.run(train, GPU_A, vram=GI)
    agent.record(T0)
    assert listed(views)["default/train"]["usage"]["vram"] == GI
    (query,) = set(selects(standin))
    standin.answers[query] = (503, {"code": 5000, "error": "region unavailable"})
    assert listed(views)["default/train"]["usage"] is None
    assert listed(views)["default/train"]["usage"] is None
    del standin.answers[query]
    assert listed(views)["default/train"]["usage"]["vram"] == GI

    messages = [(record.levelname, record.message) for record in caplog.records]
    assert [level for level, _ in messages] == ["WARNING", "INFO", "WARNING", "INFO"]
    assert "tf_worker_usage" in messages[0][1]  # the table no agent has made yet
    assert "HTTP 503" in messages[2][1]
    assert messages[3][1] == "worker usage can be read again"


def test_a_greptimedb_that_cannot_be_reached_lists_workers_without_usage(
    store: LocalStore, clock: Clock
) -> None:
    bound(store, "train", GPU_A)
    with Server(StandIn()) as gone:
        sink = greptime_sink(gone)
    views = WorkerViews(store, sink, clock_ns=clock)
    assert listed(views)["default/train"]["usage"] is None
    views.close()


def test_malformed_records_are_left_out_and_odd_values_read_as_absent() -> None:
    good = {
        "namespace": "default",
        "worker": "train",
        "uuid": "GPU-a",
        "memory_bytes": 7.0,  # JSON may carry a whole number as a float
        "compute_tflops": float("nan"),
        "compute_throttled_cnt": -1,
        "vram_freezed_cnt": True,
        "vram_resumed_cnt": "3",
        "ts": 5,
    }
    records = [
        good,
        good | {"uuid": None},
        good | {"worker": "no-time", "ts": "2023-11-14T22:13:20Z"},
        good | {"worker": "no-vram", "memory_bytes": 1.5},
        good | {"worker": "huge", "compute_tflops": 10**400},
        good | {"memory_bytes": 9, "ts": 4},  # an older row of the same worker and GPU
    ]
    rows = usage_rows(records)
    assert set(rows) == {("default", "train", "GPU-a"), ("default", "huge", "GPU-a")}
    row = rows["default", "train", "GPU-a"]
    assert (row.vram, row.compute_tflops, row.ts_ms) == (7, None, 5)
    assert (row.throttled_launches, row.pages_evicted, row.pages_resumed) == (0, 0, 0)
    assert rows["default", "huge", "GPU-a"].compute_tflops is None


def test_workers_narrow_to_the_nodes_asked_for(store: LocalStore, views: WorkerViews) -> None:
    store.create(worker("on-0", gpu_ids="node-0-gpu-0", node="node-0"))
    store.create(worker("on-1", gpu_ids="node-1-gpu-0", node="node-1"))
    whole = {view["name"]: view for view in views.views()}
    assert [view["name"] for view in views.views(frozenset({"node-1"}))] == ["on-1"]
    assert views.views(frozenset({"node-0", "node-1"})) == list(whole.values())
    assert views.views(frozenset({"node-2"})) == []


def test_pending_workers_are_the_candidates_holding_no_gpu_still_present(
    store: LocalStore, views: WorkerViews
) -> None:
    store.create(worker("placed", gpu_ids="node-0-gpu-0,node-0-gpu-1", node="node-0"))
    store.create(worker("stranded", gpu_ids="node-1-gpu-0", node="node-1"))
    store.create(worker("not-named", gpu_ids="node-1-gpu-1", node="node-1"))
    named = [("default", "stranded"), ("default", "placed"), ("default", "deleted")]
    present = {"node-0-gpu-1"}
    assert [view["name"] for view in views.pending_views(named, present)] == ["stranded"]
    waiting = views.pending_views(named, set())
    assert [view["name"] for view in waiting] == ["placed", "stranded"]
    whole = {view["name"]: view for view in views.views()}
    assert waiting == [whole["placed"], whole["stranded"]], "the views as the listing's"
