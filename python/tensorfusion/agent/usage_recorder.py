"""The node agent's usage tables: `tf_worker_usage` (one row per worker and GPU) and
`tf_gpu_usage` (one row per GPU the agent reports on), sampled at each call of `points`.

Workers are read from their shared regions. VRAM is the region's total, and the
`vram_*_bytes` fields split it by where it lives now: paged out to host memory and to disk
(the slots' gauges summed) and the rest on the device. The shim counts
launches, throttling, busy time and paging per process slot, and a slot's counts vanish with
its process, so the recorder keeps each worker's counts itself: the `*_cnt` columns only grow
while the worker lives (the alert rules read their increase over a window), and compute is the
busy time added since the previous sample over the time between the two.

GPUs take NVML's figures where NVML knows the GPU (by UUID). Without it (a declared fleet, a
host without the driver) a GPU's row holds what its workers' regions give: their VRAM summed
and their busy time summed, which is the GPU's use through TensorFusion; temperature, power
and PCIe traffic exist only through NVML and are left out.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tensorfusion.agent.regions import WorkerRegions, region_tiers
from tensorfusion.api.gpu_capacity import gpu_capacity
from tensorfusion.api.gpu_links import gpu_node_name, gpu_pool_name, text_at
from tensorfusion.errors import ConfigError, FleetError
from tensorfusion.metrics.gpu_readings import GpuReader, GpuReading
from tensorfusion.metrics.point import FieldValue, Point, Unsigned
from tensorfusion.metrics.row_values import known_tags, percent, workload_of
from tensorfusion.scheduler.pod_keys import pod_key
from tensorfusion.shm_region import RegionSnapshot

log = logging.getLogger(__name__)

GPU_USAGE = "tf_gpu_usage"
NVML_ONLY_FIELDS: dict[str, type] = {
    "temperature": float,
    "power_usage": float,
    "rx": float,
    "tx": float,
}
"""Fields of `tf_gpu_usage` only NVML measures: absent from every row on a host without it."""
WORKER_USAGE = "tf_worker_usage"

_COUNTERS = ("busy_ns", "throttled_launches", "pages_evicted", "pages_resumed")
_BUSY, _THROTTLED, _EVICTED, _RESUMED = range(len(_COUNTERS))
_NONE_COUNTED = (0,) * len(_COUNTERS)
Counts = tuple[int, ...]
"""The slot counters in `_COUNTERS` order."""
Occupant = tuple[int, int, int]
"""(slot index, pid, start token): one process's stay in a slot, whose counters only grow."""


@dataclass(frozen=True)
class _Gpu:
    name: str
    uuid: str
    """The GPU's UUID, or its name where none is recorded."""
    node: str | None
    pool: str | None
    peak_tflops: float
    vram_bytes: int


@dataclass(frozen=True)
class _WorkerOnGpu:
    tags: Mapping[str, str]
    gpu: _Gpu
    vram_bytes: int
    tiers: Mapping[str, int]
    """`vram_bytes` by tier (`regions.region_tiers`)."""
    totals: Counts
    """Counted since the recorder first saw the worker on this GPU."""
    busy_added_ns: int
    """Busy time added since the previous sample."""


class UsageRecorder:
    """`list_workers` gives the worker pods to report on and `list_gpus`, given those pods,
    the GPU objects (in Kubernetes, those of this node; embedded, this host's and those its
    workers hold);
    `regions` is the agent's. `gpu_reader` is NVML's (`NvmlReader`), None where there is no
    driver to ask. Not thread-safe: one thread calls `points`."""

    def __init__(
        self,
        list_workers: Callable[[], Iterable[Mapping[str, Any]]],
        list_gpus: Callable[[list[Mapping[str, Any]]], Iterable[Mapping[str, Any]]],
        regions: WorkerRegions,
        gpu_reader: GpuReader | None = None,
    ) -> None:
        self.list_workers = list_workers
        self.list_gpus = list_gpus
        self.regions = regions
        self.gpu_reader = gpu_reader
        self._last_ns: int | None = None
        self._occupants: dict[tuple[str, str], dict[Occupant, Counts]] = {}
        self._totals: dict[tuple[str, str], Counts] = {}

    def points(self, now_ns: int) -> list[Point]:
        """One row per worker and GPU and one per GPU, at `now_ns`. Compute figures need a
        previous sample, so the first call (and one whose clock went back) leaves them out;
        the counts carry on across such a call."""
        pods = list(self.list_workers())
        gpus = _gpus(self.list_gpus(pods))
        readings = self.gpu_reader.read() if self.gpu_reader is not None else {}
        elapsed = now_ns - self._last_ns if self._last_ns is not None else 0
        self._last_ns = now_ns
        workers = self._sample_workers(pods, gpus)
        points = [_worker_point(worker, elapsed, now_ns) for worker in workers]
        for gpu in gpus.values():
            on_gpu = [worker for worker in workers if worker.gpu is gpu]
            points.append(_gpu_point(gpu, readings.get(gpu.uuid), on_gpu, elapsed, now_ns))
        return points

    def _sample_workers(
        self, pods: list[Mapping[str, Any]], gpus: Mapping[str, _Gpu]
    ) -> list[_WorkerOnGpu]:
        """Every worker's region on a known GPU, with its counts carried forward; workers
        gone since the previous sample are forgotten."""
        samples = []
        occupants: dict[tuple[str, str], dict[Occupant, Counts]] = {}
        totals: dict[tuple[str, str], Counts] = {}
        for pod in pods:
            metadata = pod.get("metadata") or {}
            uid, namespace, name = pod_key(metadata)
            labels = metadata.get("labels") or {}
            for gpu_name, region in self._regions_of(pod):
                gpu = gpus.get(gpu_name)
                if gpu is None or region.worker != uid:
                    continue  # a GPU not reported here, or a region left by an earlier pod
                key = (uid, gpu_name)
                occupants[key] = {
                    (slot.index, slot.pid, slot.start_token): tuple(
                        getattr(slot, counter) for counter in _COUNTERS
                    )
                    for slot in region.slots
                }
                added = _added(self._occupants.get(key, {}), occupants[key])
                previous = self._totals.get(key, _NONE_COUNTED)
                totals[key] = tuple(map(sum, zip(previous, added, strict=True)))
                tags = {
                    "workload": workload_of(name, labels),
                    "worker": name,
                    "namespace": namespace,
                    "pool": gpu.pool,
                    "node": gpu.node,
                    "uuid": gpu.uuid,
                }
                tiers = region_tiers([region])
                samples.append(
                    _WorkerOnGpu(
                        known_tags(tags),
                        gpu,
                        region.total_bytes,
                        tiers,
                        totals[key],
                        added[_BUSY],
                    )
                )
        self._occupants, self._totals = occupants, totals
        return samples

    def _regions_of(self, pod: Mapping[str, Any]) -> list[tuple[str, RegionSnapshot]]:
        """(GPU name, region) for each region of the worker that can be read."""
        try:
            return self.regions.snapshots(pod, reap=False) or []
        except ConfigError:
            return []  # a name too long for a region directory: the worker has none


def _added(before: Mapping[Occupant, Counts], now: Mapping[Occupant, Counts]) -> Counts:
    """What the slots counted since `before`: an occupant seen then adds its growth, one
    that came since adds all it counted. A process that left its slot and joined it again
    looks the same but counts from zero again, which shows as a counter gone down."""
    added = [0] * len(_COUNTERS)
    for occupant, counts in now.items():
        earlier = before.get(occupant, _NONE_COUNTED)
        if any(value < old for value, old in zip(counts, earlier, strict=True)):
            earlier = _NONE_COUNTED
        for i, (value, old) in enumerate(zip(counts, earlier, strict=True)):
            added[i] += value - old
    return tuple(added)


def _compute(busy_percent: float, peak_tflops: float) -> dict[str, FieldValue]:
    """The share of the GPU's time spent busy, and what that share of its peak is."""
    share = min(busy_percent, 100.0)  # overlapping kernels can add up to more than the time
    return {"compute_percentage": share, "compute_tflops": share * peak_tflops / 100}


def _worker_point(worker: _WorkerOnGpu, elapsed_ns: int, now_ns: int) -> Point:
    gpu = worker.gpu
    fields: dict[str, FieldValue] = {
        "memory_bytes": Unsigned(worker.vram_bytes),
        "memory_percentage": percent(worker.vram_bytes, gpu.vram_bytes),
        "compute_throttled_cnt": worker.totals[_THROTTLED],
        "vram_freezed_cnt": worker.totals[_EVICTED],
        "vram_resumed_cnt": worker.totals[_RESUMED],
        "vram_device_bytes": Unsigned(worker.tiers["device"]),
        "vram_host_bytes": Unsigned(worker.tiers["host"]),
        "vram_disk_bytes": Unsigned(worker.tiers["disk"]),
    }
    if elapsed_ns > 0:
        fields |= _compute(percent(worker.busy_added_ns, elapsed_ns), gpu.peak_tflops)
    return Point(WORKER_USAGE, worker.tags, fields, now_ns)


def _gpu_point(
    gpu: _Gpu,
    reading: GpuReading | None,
    workers: list[_WorkerOnGpu],
    elapsed_ns: int,
    now_ns: int,
) -> Point:
    if reading is None:
        used, total = sum(worker.vram_bytes for worker in workers), gpu.vram_bytes
    else:
        used, total = reading.memory_used, reading.memory_total
    fields: dict[str, FieldValue] = {
        "memory_bytes": Unsigned(used),
        "memory_percentage": percent(used, total),
    }
    if reading is not None and reading.utilization is not None:
        fields |= _compute(reading.utilization, gpu.peak_tflops)
    elif elapsed_ns > 0:
        busy = sum(worker.busy_added_ns for worker in workers)
        fields |= _compute(percent(busy, elapsed_ns), gpu.peak_tflops)
    if reading is not None:
        measured = (
            reading.temperature,
            reading.power_watts,
            reading.pcie_rx_kbps,
            reading.pcie_tx_kbps,
        )
        extra = dict(zip(NVML_ONLY_FIELDS, measured, strict=True))
        fields |= {name: value for name, value in extra.items() if value is not None}
    tags = known_tags({"node": gpu.node, "pool": gpu.pool, "uuid": gpu.uuid})
    return Point(GPU_USAGE, tags, fields, now_ns)


def _gpus(objects: Iterable[Mapping[str, Any]]) -> dict[str, _Gpu]:
    """The GPU objects by name; one whose capacity cannot be read is left out (the
    scheduler reports it, and without its size no share of it means anything)."""
    gpus = {}
    for obj in objects:
        name = text_at(obj, "metadata", "name")
        if name is None:
            continue
        status = obj.get("status") or {}
        try:
            tflops, vram = gpu_capacity(name, obj)
        except FleetError as exc:
            log.debug("usage not recorded: %s", exc)
            continue
        gpus[name] = _Gpu(
            name=name,
            uuid=text_at(status, "uuid") or name,
            node=gpu_node_name(obj),
            pool=gpu_pool_name(obj, None),
            peak_tflops=float(tflops.exact),
            vram_bytes=vram.value(),
        )
    return gpus
