"""Pool, GPU and worker gauges, read from the backend at scrape time (never cached, so a
scrape shows the state at that moment)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Final

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from tensorfusion.errors import UnavailableError
from tensorfusion.server.backend import ManagementBackend

AMOUNTS: Final = (
    ("capacity", "capacity", "physical"),
    ("virtualCapacity", "virtual_capacity", "under oversubscription"),
    ("allocated", "allocated", "sum of requests"),
    ("allocatedLimits", "allocated_limits", "sum of limits"),
)
"""(JSON key, metric name part, what it means) for the amounts pools and GPUs report."""
RESOURCES: Final = (("tflops", "tflops", "TFLOPS"), ("vram", "vram_bytes", "VRAM bytes"))
PHASES: Final = ("Pending", "Running")


def _amount_gauges(
    subject: str, labels: Sequence[str], items: Iterable[tuple[Sequence[str], Mapping[str, Any]]]
) -> Iterator[GaugeMetricFamily]:
    gauges = {
        (key, resource): GaugeMetricFamily(
            f"tf_{subject}_{part}_{unit}", f"{subject} {title}, {meaning}.", labels=labels
        )
        for key, part, meaning in AMOUNTS
        for resource, unit, title in RESOURCES
    }
    for values, item in items:
        for (key, resource), gauge in gauges.items():
            gauge.add_metric(values, float(item[key][resource]))
    yield from gauges.values()


def _count_gauge(
    name: str, doc: str, labels: Sequence[str], rows: Iterable[tuple[Sequence[str], int]]
) -> GaugeMetricFamily:
    gauge = GaugeMetricFamily(name, doc, labels=labels)
    for values, count in rows:
        gauge.add_metric(values, count)
    return gauge


class InventoryCollector(Collector):
    def __init__(self, backend: ManagementBackend) -> None:
        self.backend = backend

    def collect(self) -> Iterator[GaugeMetricFamily]:
        ready, _ = self.backend.readiness()
        yield _count_gauge(
            "tf_ready", "1 once the control plane serves requests.", (), [((), 1 if ready else 0)]
        )
        try:
            pools, gpus, workers = self.backend.pools(), self.backend.gpus(), self.backend.workers()
        except UnavailableError:
            return  # not ready yet (or shutting down): tf_ready says so
        pool_rows = [((p["name"],), p) for p in pools]
        yield from _amount_gauges("pool", ("pool",), pool_rows)
        for part in ("nodes", "gpus", "workers"):
            yield _count_gauge(
                f"tf_pool_{part}",
                f"{part.capitalize()} in the pool.",
                ("pool",),
                [(values, p[part]) for values, p in pool_rows],
            )
        gpu_rows = [((g["name"], g["node"], g["pool"]), g) for g in gpus]
        yield from _amount_gauges("gpu", ("gpu", "node", "pool"), gpu_rows)
        yield _count_gauge(
            "tf_gpu_workers",
            "Workers placed on the GPU.",
            ("gpu", "node", "pool"),
            [(values, len(g["workers"])) for values, g in gpu_rows],
        )
        # The phases every worker goes through are always there, so that "none" reads 0.
        phases = dict.fromkeys(PHASES, 0)
        for worker in workers:
            phases[worker["phase"]] = phases.get(worker["phase"], 0) + 1
        yield _count_gauge(
            "tf_workers",
            "Live workers, by phase.",
            ("phase",),
            [((phase,), count) for phase, count in sorted(phases.items())],
        )
