"""The agent's usage tables from real shared regions (joined and counted in this process) and
a stand-in GPU reader: the columns, the figures, counts that survive processes leaving, and
what a GPU row holds with and without NVML. NVML itself is tested on the mock driver in
tests/native/test_usage_recorder_nvml.py.

The built-in alert rules are run here over what both recorders write.

The expected column sets are written out here from the compatibility reference's list of
metrics tables (COMPAT.md, "Metrics tables"), plus `ts`."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pynvml  # type: ignore[import-untyped]
import pytest

from tensorfusion._native import ShmRegion, ShmSlot
from tensorfusion.agent.regions import WorkerRegions
from tensorfusion.agent.usage_recorder import (
    GPU_USAGE,
    NVML_ONLY_FIELDS,
    WORKER_USAGE,
    UsageRecorder,
)
from tensorfusion.alert.builtin_rules import WATCHDOG, builtin_rules
from tensorfusion.alert.evaluator import Evaluator
from tensorfusion.api.annotations import VRAM_LIMIT
from tensorfusion.metrics.embedded_sink import EmbeddedSink
from tensorfusion.metrics.gpu_readings import GpuReading, NvmlReader
from tensorfusion.metrics.point import Point, Unsigned
from tensorfusion.metrics.row_values import WORKLOAD_LABEL
from tensorfusion.scheduler.allocation_recorder import AllocationRecorder
from tensorfusion.scheduler.loop import LoopStats
from tests.unit.agent.conftest import worker
from tests.unit.scheduler.cluster_builders import GI, gpu
from tests.unit.scheduler.test_allocation_recorder import Source, cluster, placed

SECOND = 1_000_000_000
T0 = 1_700_000_000 * SECOND
NOW = T0 + 600 * SECOND
WORKER_USAGE_COLUMNS = {
    "ts",
    *("workload", "worker", "namespace", "pool", "node", "uuid"),
    *("compute_tflops", "compute_percentage", "memory_bytes", "memory_percentage"),
    *("compute_throttled_cnt", "vram_freezed_cnt", "vram_resumed_cnt"),
    *("vram_device_bytes", "vram_host_bytes", "vram_disk_bytes"),
}
GPU_USAGE_COLUMNS = {
    "ts",
    *("node", "pool", "uuid"),
    *("compute_percentage", "memory_percentage", "memory_bytes", "compute_tflops"),
    *("rx", "tx", "temperature", "power_usage"),
}
BIG, SMALL = "node-0-gpu-0", "node-0-gpu-1"
FULL_READING = GpuReading(
    uuid="GPU-big",
    memory_used=60 * GI,
    memory_total=80 * GI,
    utilization=40.0,
    temperature=71.0,
    power_watts=412.5,
    pcie_rx_kbps=1200.0,
    pcie_tx_kbps=800.0,
)


@dataclass
class FakeReader:
    """NVML as a table: what `read` answers is what the test put in."""

    readings: dict[str, GpuReading] = field(default_factory=dict)

    def read(self) -> Mapping[str, GpuReading]:
        return self.readings


class Host:
    """A node with two GPUs (989 TFLOPS/80 GiB and 121 TFLOPS/24 GiB), its workers and their
    regions. Slots are joined by this process, which stays alive, so nothing is reaped."""

    def __init__(self, root: Path) -> None:
        self.gpus = [
            gpu(BIG, "node-0", index=0, uuid="GPU-big"),
            gpu(SMALL, "node-0", index=1, uuid="GPU-small", tflops="121", vram="24Gi"),
        ]
        self.pods: list[dict[str, Any]] = []
        self.regions = WorkerRegions(root, slots=8)
        self.reader = FakeReader()
        self.recorder = UsageRecorder(lambda: self.pods, lambda _pods: self.gpus, self.regions)
        self._open: list[tuple[ShmRegion, ShmSlot]] = []

    def add_worker(self, name: str, gpus: str = BIG, **labels: str) -> dict[str, ShmRegion]:
        pod = worker(name, gpu_ids=gpus, annotations={VRAM_LIMIT: "64Gi"})
        pod["metadata"]["labels"].update(labels)
        self.regions.prepare(pod, self.gpus)
        self.pods.append(pod)
        directory = self.regions.directory(pod)
        return {name: ShmRegion.open(directory / f"{name}.shm") for name in gpus.split(",")}

    def join(self, region: ShmRegion, vram: int = 0, **counts: int) -> ShmSlot:
        slot = region.join()
        self._open.append((region, slot))
        if vram:
            assert region.try_charge(slot, "device", vram)
        for counter, amount in counts.items():
            region.add(slot, counter, amount)
        return slot

    def leave(self, region: ShmRegion, slot: ShmSlot) -> None:
        region.leave(slot)
        self._open.remove((region, slot))

    def sample(self, now_ns: int) -> tuple[dict[tuple[str, str], Point], dict[str, Point]]:
        """(worker rows by (worker, uuid), GPU rows by uuid)."""
        points = self.recorder.points(now_ns)
        assert {p.measurement for p in points} <= {WORKER_USAGE, GPU_USAGE}
        workers = {
            (p.tags["worker"], p.tags["uuid"]): p for p in points if p.measurement == WORKER_USAGE
        }
        gpus = {p.tags["uuid"]: p for p in points if p.measurement == GPU_USAGE}
        assert all(p.time_ns == now_ns for p in points)
        return workers, gpus

    def close(self) -> None:
        for region, slot in self._open:
            region.leave(slot)


@pytest.fixture
def host(tmp_path: Path) -> Iterator[Host]:
    made = Host(tmp_path / "regions")
    yield made
    made.close()


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[EmbeddedSink]:
    embedded = EmbeddedSink(tmp_path / "metrics.db", ttl="0")
    yield embedded
    embedded.close()


def columns(sink: EmbeddedSink, table: str) -> set[str]:
    return {row["name"] for row in sink.query(f"PRAGMA table_info({table})")}


def test_tables_have_exactly_the_listed_columns(host: Host, sink: EmbeddedSink) -> None:
    host.recorder.gpu_reader = host.reader
    host.reader.readings = {"GPU-big": FULL_READING}
    host.join(host.add_worker("train", f"{BIG},{SMALL}")[BIG], vram=GI, busy_ns=SECOND // 2)
    sink.write(host.recorder.points(T0))
    sink.write(host.recorder.points(T0 + SECOND))
    assert columns(sink, WORKER_USAGE) == WORKER_USAGE_COLUMNS
    assert columns(sink, GPU_USAGE) == GPU_USAGE_COLUMNS


def test_a_worker_row_carries_its_tags_vram_and_counts(host: Host) -> None:
    regions = host.add_worker("train", f"{BIG},{SMALL}", **{WORKLOAD_LABEL: "llm"})
    host.join(regions[BIG], vram=8 * GI, throttled_launches=3, pages_evicted=5, pages_resumed=2)
    host.join(regions[BIG], vram=4 * GI, throttled_launches=1)
    workers, _ = host.sample(T0)
    row = workers["train", "GPU-big"]
    assert row.tags == {
        "workload": "llm",
        "worker": "train",
        "namespace": "default",
        "pool": "pool-a",
        "node": "node-0",
        "uuid": "GPU-big",
    }
    assert row.fields == {
        "memory_bytes": Unsigned(12 * GI),
        "memory_percentage": 15.0,  # of the GPU's 80 GiB
        "compute_throttled_cnt": 4,
        "vram_freezed_cnt": 5,
        "vram_resumed_cnt": 2,
        "vram_device_bytes": Unsigned(12 * GI),
        "vram_host_bytes": Unsigned(0),
        "vram_disk_bytes": Unsigned(0),
    }
    idle = workers["train", "GPU-small"]
    assert idle.fields["memory_bytes"] == Unsigned(0)
    assert idle.fields["compute_throttled_cnt"] == 0


def test_a_worker_row_splits_its_vram_by_tier_over_its_processes(host: Host) -> None:
    region = host.add_worker("train")[BIG]
    first = host.join(region, vram=8 * GI, pages_evicted=4, pages_resumed=1)
    second = host.join(region, vram=4 * GI, pages_evicted=2, pages_resumed=2)
    region.set_gauge(first, "host_bytes", 3 * GI)
    region.set_gauge(second, "host_bytes", GI)
    region.set_gauge(second, "disk_bytes", 2 * GI)
    workers, _ = host.sample(T0)
    fields = workers["train", "GPU-big"].fields
    assert (fields["vram_freezed_cnt"], fields["vram_resumed_cnt"]) == (6, 3)
    assert fields["memory_bytes"] == Unsigned(12 * GI)
    assert fields["vram_host_bytes"] == Unsigned(4 * GI)
    assert fields["vram_disk_bytes"] == Unsigned(2 * GI)
    assert fields["vram_device_bytes"] == Unsigned(6 * GI)


def test_a_worker_without_workload_label_is_its_own_workload(host: Host) -> None:
    host.add_worker("solo")
    workers, _ = host.sample(T0)
    assert workers["solo", "GPU-big"].tags["workload"] == "solo"


def test_compute_is_busy_time_added_over_time_elapsed(host: Host) -> None:
    region = host.add_worker("train")[BIG]
    slot = host.join(region, busy_ns=3 * SECOND)  # before the first sample: not a rate yet
    first, first_gpus = host.sample(T0)
    assert "compute_percentage" not in first["train", "GPU-big"].fields
    assert "compute_percentage" not in first_gpus["GPU-big"].fields
    region.add(slot, "busy_ns", SECOND // 4)
    workers, _ = host.sample(T0 + SECOND)
    fields = workers["train", "GPU-big"].fields
    assert fields["compute_percentage"] == 25.0
    assert fields["compute_tflops"] == pytest.approx(989 * 0.25)


def test_a_process_that_joined_since_the_last_sample_counts_whole(host: Host) -> None:
    region = host.add_worker("train")[BIG]
    host.sample(T0)
    host.join(region, busy_ns=SECOND // 2, throttled_launches=6)
    workers, _ = host.sample(T0 + 2 * SECOND)
    fields = workers["train", "GPU-big"].fields
    assert fields["compute_percentage"] == 25.0
    assert fields["compute_throttled_cnt"] == 6


def test_counts_stay_when_a_process_leaves(host: Host) -> None:
    region = host.add_worker("train")[BIG]
    leaving = host.join(region, throttled_launches=3, pages_evicted=2, pages_resumed=1)
    staying = host.join(region, throttled_launches=4)
    workers, _ = host.sample(T0)
    assert workers["train", "GPU-big"].fields["compute_throttled_cnt"] == 7
    region.add(leaving, "throttled_launches", 1)  # counted, then the process is gone
    host.leave(region, leaving)
    region.add(staying, "throttled_launches", 2)
    workers, _ = host.sample(T0 + SECOND)
    fields = workers["train", "GPU-big"].fields
    assert fields["compute_throttled_cnt"] == 9  # the last 1 left with its process
    assert (fields["vram_freezed_cnt"], fields["vram_resumed_cnt"]) == (2, 1)


def test_a_slot_joined_again_by_the_same_process_counts_from_zero(host: Host) -> None:
    region = host.add_worker("train")[BIG]
    slot = host.join(region, throttled_launches=5)
    host.sample(T0)
    host.leave(region, slot)
    again = host.join(region, throttled_launches=2)  # the same slot, pid and start time
    assert again.index == slot.index
    workers, _ = host.sample(T0 + SECOND)
    assert workers["train", "GPU-big"].fields["compute_throttled_cnt"] == 7


def test_a_worker_gone_for_a_sample_starts_counting_afresh(host: Host) -> None:
    region = host.add_worker("train")[BIG]
    slot = host.join(region, throttled_launches=5)
    host.sample(T0)
    pod = host.pods.pop()
    workers, _ = host.sample(T0 + SECOND)
    assert workers == {}
    host.pods.append(pod)
    region.add(slot, "throttled_launches", 1)
    workers, _ = host.sample(T0 + 2 * SECOND)
    assert workers["train", "GPU-big"].fields["compute_throttled_cnt"] == 6


def test_a_clock_gone_back_leaves_compute_out_and_keeps_counts(host: Host) -> None:
    region = host.add_worker("train")[BIG]
    slot = host.join(region, throttled_launches=1)
    host.sample(T0)
    region.add(slot, "throttled_launches", 1)
    workers, gpus = host.sample(T0 - SECOND)
    assert "compute_percentage" not in workers["train", "GPU-big"].fields
    assert "compute_percentage" not in gpus["GPU-big"].fields
    assert workers["train", "GPU-big"].fields["compute_throttled_cnt"] == 2


def test_without_nvml_a_gpu_row_sums_its_workers(host: Host) -> None:
    a, b = host.add_worker("a")[BIG], host.add_worker("b")[BIG]
    first, second = host.join(a, vram=20 * GI), host.join(b, vram=12 * GI)
    host.sample(T0)
    a.add(first, "busy_ns", SECOND // 5)
    b.add(second, "busy_ns", SECOND // 10)
    _, gpus = host.sample(T0 + SECOND)
    big = gpus["GPU-big"]
    assert big.tags == {"node": "node-0", "pool": "pool-a", "uuid": "GPU-big"}
    assert big.fields == {
        "memory_bytes": Unsigned(32 * GI),
        "memory_percentage": 40.0,
        "compute_percentage": pytest.approx(30.0),
        "compute_tflops": pytest.approx(989 * 0.3),
    }
    # A GPU no worker uses is idle, and says so.
    assert gpus["GPU-small"].fields == {
        "memory_bytes": Unsigned(0),
        "memory_percentage": 0.0,
        "compute_percentage": 0.0,
        "compute_tflops": 0.0,
    }


def test_busy_time_beyond_the_elapsed_time_is_a_full_gpu(host: Host) -> None:
    region = host.add_worker("train")[BIG]
    slot = host.join(region)
    host.sample(T0)
    region.add(slot, "busy_ns", 3 * SECOND)  # overlapping kernels
    workers, gpus = host.sample(T0 + SECOND)
    assert workers["train", "GPU-big"].fields["compute_percentage"] == 100.0
    assert gpus["GPU-big"].fields["compute_tflops"] == 989.0


def test_nvml_figures_win_where_nvml_knows_the_gpu(host: Host) -> None:
    host.recorder.gpu_reader = host.reader
    host.reader.readings = {
        "GPU-big": FULL_READING,
        "GPU-elsewhere": replace(FULL_READING, uuid="GPU-elsewhere"),
    }
    host.join(host.add_worker("train")[BIG], vram=GI)
    _, gpus = host.sample(T0)
    assert sorted(gpus) == ["GPU-big", "GPU-small"]  # only the GPUs the agent reports on
    assert gpus["GPU-big"].fields == {
        "memory_bytes": Unsigned(60 * GI),
        "memory_percentage": 75.0,
        "compute_percentage": 40.0,
        "compute_tflops": pytest.approx(989 * 0.4),
        "temperature": 71.0,
        "power_usage": 412.5,
        "rx": 1200.0,
        "tx": 800.0,
    }
    assert "temperature" not in gpus["GPU-small"].fields  # not known to NVML: from regions


def test_figures_nvml_lacks_are_left_out_or_taken_from_regions(host: Host) -> None:
    host.recorder.gpu_reader = host.reader
    host.reader.readings = {
        "GPU-big": GpuReading("GPU-big", 8 * GI, 80 * GI, None, None, None, None, None)
    }
    region = host.add_worker("train")[BIG]
    slot = host.join(region)
    host.sample(T0)
    region.add(slot, "busy_ns", SECOND // 2)
    _, gpus = host.sample(T0 + SECOND)
    assert gpus["GPU-big"].fields == {
        "memory_bytes": Unsigned(8 * GI),
        "memory_percentage": 10.0,
        "compute_percentage": 50.0,
        "compute_tflops": pytest.approx(989 * 0.5),
    }


def test_rows_read_back_from_the_embedded_sink(host: Host, sink: EmbeddedSink) -> None:
    region = host.add_worker("train")[BIG]
    slot = host.join(region, vram=2 * GI, throttled_launches=2)
    sink.write(host.recorder.points(T0))
    region.add(slot, "throttled_launches", 3)
    region.add(slot, "busy_ns", SECOND)
    sink.write(host.recorder.points(T0 + 2 * SECOND))
    rows = sink.query(
        "SELECT ts, worker, uuid, memory_bytes, compute_percentage, compute_throttled_cnt "
        "FROM tf_worker_usage ORDER BY ts"
    )
    assert rows == [
        {
            "ts": T0 // 10**6,
            "worker": "train",
            "uuid": "GPU-big",
            "memory_bytes": 2 * GI,
            "compute_percentage": None,
            "compute_throttled_cnt": 2,
        },
        {
            "ts": (T0 + 2 * SECOND) // 10**6,
            "worker": "train",
            "uuid": "GPU-big",
            "memory_bytes": 2 * GI,
            "compute_percentage": 50.0,
            "compute_throttled_cnt": 5,
        },
    ]
    [gpu_row] = sink.query(
        "SELECT uuid, memory_percentage FROM tf_gpu_usage WHERE uuid = 'GPU-big' AND ts > "
        f"{T0 // 10**6}"
    )
    assert gpu_row == {"uuid": "GPU-big", "memory_percentage": 2.5}


# --- what is left out, and bad input ---------------------------------------------------------


def test_a_gpu_with_an_unreadable_capacity_is_left_out(host: Host) -> None:
    host.add_worker("train", f"{BIG},{SMALL}")
    host.gpus[1]["status"]["capacity"]["vram"] = "lots"
    workers, gpus = host.sample(T0)
    assert sorted(gpus) == ["GPU-big"]
    assert sorted(workers) == [("train", "GPU-big")]


@pytest.mark.parametrize("capacity", [{}, {"tflops": "989"}, {"vram": 7.5j}])
def test_a_gpu_without_a_capacity_is_left_out(host: Host, capacity: dict[str, Any]) -> None:
    host.gpus[0]["status"]["capacity"] = capacity
    _, gpus = host.sample(T0)
    assert sorted(gpus) == ["GPU-small"]


def test_gpu_objects_without_name_or_uuid(host: Host) -> None:
    del host.gpus[0]["status"]["uuid"]
    host.gpus.append({"kind": "GPU", "metadata": {}, "status": {}})
    host.add_worker("train")
    workers, gpus = host.sample(T0)
    # Without a UUID the GPU's name stands in, so rows still tell GPUs apart.
    assert sorted(gpus) == ["GPU-small", BIG]
    assert list(workers) == [("train", BIG)]


def test_regions_on_gpus_not_reported_here_are_skipped(host: Host) -> None:
    host.add_worker("train", f"{BIG},{SMALL}")
    host.gpus.pop(1)
    workers, _ = host.sample(T0)
    assert list(workers) == [("train", "GPU-big")]


def test_a_region_left_by_an_earlier_pod_of_that_name_is_skipped(host: Host) -> None:
    host.add_worker("train")
    host.pods[0]["metadata"]["uid"] = "uid-of-a-new-pod"
    workers, gpus = host.sample(T0)
    assert workers == {}
    assert gpus["GPU-big"].fields["memory_bytes"] == Unsigned(0)


def test_a_broken_region_file_is_skipped(host: Host) -> None:
    host.add_worker("train", f"{BIG},{SMALL}")
    path = host.regions.directory(host.pods[0]) / f"{SMALL}.shm"
    path.write_bytes(b"not a region")
    workers, _ = host.sample(T0)
    assert list(workers) == [("train", "GPU-big")]


def test_workers_without_regions_give_no_rows(host: Host) -> None:
    host.pods += [
        worker("unbound", gpu_ids=None, node=None),
        worker("x" * 300),  # too long a name for a region directory
        {"metadata": {}},
        {},
    ]
    workers, gpus = host.sample(T0)
    assert workers == {}
    assert sorted(gpus) == ["GPU-big", "GPU-small"]


def test_no_gpus_no_workers_no_rows(tmp_path: Path) -> None:
    recorder = UsageRecorder(
        list, lambda _pods: [], WorkerRegions(tmp_path / "missing"), FakeReader()
    )
    assert recorder.points(T0) == []


# --- the NVML reader, on a stand-in for the driver ------------------------------------------


class FakeNvml:
    """pynvml's functions for two devices: device 1 cannot report its memory, and nothing
    but memory, UUID and utilization is supported."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *, starts: bool = True) -> None:
        self.inits = 0
        self.starts = starts
        for name in ("nvmlInit", "nvmlShutdown", "nvmlDeviceGetCount"):
            monkeypatch.setattr(pynvml, name, getattr(self, name))
        monkeypatch.setattr(pynvml, "nvmlDeviceGetHandleByIndex", lambda index: index)
        monkeypatch.setattr(pynvml, "nvmlDeviceGetMemoryInfo", self.memory)
        monkeypatch.setattr(pynvml, "nvmlDeviceGetUUID", lambda index: f"GPU-{index}")
        monkeypatch.setattr(
            pynvml, "nvmlDeviceGetUtilizationRates", lambda index: SimpleNamespace(gpu=30)
        )
        for name in ("nvmlDeviceGetTemperature", "nvmlDeviceGetPcieThroughput"):
            monkeypatch.setattr(pynvml, name, self.unsupported)
        monkeypatch.setattr(pynvml, "nvmlDeviceGetPowerUsage", lambda index: 250_500)
        self.shutdowns = 0

    def nvmlInit(self) -> None:
        self.inits += 1
        if not self.starts:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_DRIVER_NOT_LOADED)

    def nvmlShutdown(self) -> None:
        self.shutdowns += 1

    def nvmlDeviceGetCount(self) -> int:
        return 2

    def memory(self, index: int) -> SimpleNamespace:
        if index == 1:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_UNKNOWN)
        return SimpleNamespace(used=GI, total=16 * GI)

    def unsupported(self, *_: object) -> float:
        raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)


def test_the_reader_reads_what_each_device_reports(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    nvml = FakeNvml(monkeypatch)
    reader = NvmlReader()
    first = reader.read()
    assert first == {
        "GPU-0": GpuReading("GPU-0", GI, 16 * GI, 30.0, None, 250.5, None, None),
    }
    assert reader.read() == first
    assert nvml.inits == 1  # kept open between reads
    # The device that cannot be read is reported once, not at every interval.
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        "NVML: cannot read GPU 1: Unknown Error"
    ]
    reader.close()
    reader.close()
    assert nvml.shutdowns == 1


def test_a_host_without_a_driver_is_asked_once(monkeypatch: pytest.MonkeyPatch) -> None:
    nvml = FakeNvml(monkeypatch, starts=False)
    reader = NvmlReader()
    assert reader.read() == {}
    assert reader.read() == {}
    assert nvml.inits == 1
    reader.close()
    assert nvml.shutdowns == 0


def test_a_driver_that_cannot_count_its_gpus_reads_as_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    FakeNvml(monkeypatch)

    def no_count() -> int:
        raise pynvml.NVMLError(pynvml.NVML_ERROR_UNKNOWN)

    monkeypatch.setattr(pynvml, "nvmlDeviceGetCount", no_count)
    assert NvmlReader().read() == {}


# --- the built-in alert rules over what both recorders write ---------------------------------

HOT = GpuReading("GPU-big", 79 * GI, 80 * GI, 99.0, 95.0, 650.0, 10.0, 10.0)


def record_both(sink: EmbeddedSink, host: Host) -> None:
    """Two samples of both recorders inside the shortest rule window (15 s): a worker that
    was throttled and resumed paged VRAM in between, allocations that failed, and n2's GPU
    almost all requested (98 of 100 TFLOPS, 39 of 40 GiB)."""
    region = host.add_worker("train")[BIG]
    slot = host.join(region, vram=GI, throttled_launches=2, pages_resumed=1)
    full = placed("big", "n2-g0", tflops_request="98", vram_request="39Gi")
    source = Source(cluster(full), LoopStats(scheduled=5, unschedulable=1))
    allocations = AllocationRecorder(source)
    for at in (NOW - 10 * SECOND, NOW - 5 * SECOND):
        sink.write([*host.recorder.points(at), *allocations.points(at)])
        region.add(slot, "throttled_launches", 3)
        region.add(slot, "pages_resumed", 1)
        source.totals.unschedulable += 2


def evaluate_builtins(sink: EmbeddedSink) -> tuple[set[tuple[str, str]], dict[str, str]]:
    """(the (rule, instance) pairs that fire, the rules that failed with their error)."""
    evaluator = Evaluator(sink)
    evaluator.set_rules(
        [rule.model_copy(update={"consecutive_count": 1}) for rule in builtin_rules()]
    )
    alerts = evaluator.tick(NOW)
    failed = {name: h.error for name, h in evaluator.health().items() if not h.healthy}
    return {(a.labels["alertname"], a.labels["instance"]) for a in alerts}, failed


def test_every_builtin_rule_runs_on_the_recorded_tables_and_fires_where_it_should(
    host: Host, sink: EmbeddedSink
) -> None:
    host.recorder.gpu_reader = host.reader
    host.reader.readings = {"GPU-big": HOT}
    record_both(sink, host)
    fired, failed = evaluate_builtins(sink)
    assert failed == {}
    allocation_rules = {
        (f"{scope}{resource}Allocation{level}", "n2" if scope == "Node" else "pool-b")
        for scope in ("Node", "Pool")
        for resource in ("TFlops", "VRAM")
        for level in ("Critical", "Warning")
    }
    assert fired == {
        ("WorkerTFlopsThrottled", "train-GPU-big"),
        ("WorkerVRAMSwitchCountIncreasing", "train-GPU-big"),
        ("WorkerAllocationFailed", "allocation"),
        ("GPUVRAMFull", "node-0-GPU-big"),
        ("GPUTFlopsFull", "node-0-GPU-big"),
        ("GPUTemperatureHigh", "node-0-GPU-big"),
        ("IdleGPU", "node-0-GPU-small"),
        (WATCHDOG, "tensor-fusion"),
        *allocation_rules,
    }


def test_an_idle_gpu_node_fires_empty_gpu(host: Host, sink: EmbeddedSink) -> None:
    state = cluster()
    state.gpus.release("uid-train")
    state.gpus.release("uid-pair")
    for at in (NOW - 10 * SECOND, NOW - 5 * SECOND):
        sink.write(AllocationRecorder(Source(state)).points(at))
    fired, failed = evaluate_builtins(sink)
    assert {instance for name, instance in fired if name == "EmptyGPU"} == {"n1", "n2"}
    assert "EmptyGPU" not in failed


def test_without_nvml_only_the_temperature_rule_lacks_its_column(
    host: Host, sink: EmbeddedSink
) -> None:
    """Temperature comes only from NVML: on a host without it no row ever carries one, so
    the embedded table has no such column and that one rule cannot run."""
    record_both(sink, host)
    fired, failed = evaluate_builtins(sink)
    assert list(failed) == ["GPUTemperatureHigh"]
    assert "temperature" in failed["GPUTemperatureHigh"]
    assert ("WorkerTFlopsThrottled", "train-GPU-big") in fired
    assert ("GPUVRAMFull", "node-0-GPU-big") not in fired  # 1 GiB of 80 is in use


def test_with_nvml_columns_declared_every_builtin_rule_runs_without_nvml(
    host: Host, sink: EmbeddedSink
) -> None:
    """What the control plane does for its embedded store: NVML's columns exist, empty, so
    the temperature rule finds nothing instead of failing."""
    sink.declare(GPU_USAGE, NVML_ONLY_FIELDS)
    record_both(sink, host)
    fired, failed = evaluate_builtins(sink)
    assert failed == {}
    assert not any(name == "GPUTemperatureHigh" for name, _ in fired)
    assert ("WorkerTFlopsThrottled", "train-GPU-big") in fired
    assert NVML_ONLY_FIELDS.keys() <= columns(sink, GPU_USAGE)
    (row,) = sink.query(f"SELECT temperature FROM {GPU_USAGE} LIMIT 1")
    assert row == {"temperature": None}
