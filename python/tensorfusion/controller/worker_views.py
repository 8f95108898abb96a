"""`/api/workers` in Kubernetes mode: every pod the scheduler bound to GPUs, in any namespace,
as embedded mode lists its workers (`embedded.workers.worker_view`), with the usage the node
agents last recorded in `tf_worker_usage` (`agent.usage_recorder`).

Usage is read with one query for all workers: each worker's latest row per GPU within a
recent window, summed over the GPUs the pod holds. A worker without such rows, or any worker
while the metrics store is not configured or cannot answer, is listed with `usage: null`: a
metrics outage never fails the listing, and its reason is logged once, not per request.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from tensorfusion.agent.node_pods import is_worker_of
from tensorfusion.agent.regions import vram_tiers
from tensorfusion.agent.usage_recorder import WORKER_USAGE
from tensorfusion.alert.model import rfc3339
from tensorfusion.api.annotations import gpu_ids_of
from tensorfusion.api.gpu_links import text_at
from tensorfusion.embedded.workers import is_waiting, worker_view
from tensorfusion.errors import ConfigError, NotFoundError, QueryError, SinkUnavailable
from tensorfusion.metrics.sink import TIME_COLUMN, MetricsSink
from tensorfusion.scheduler.pod_keys import pod_key
from tensorfusion.store.interface import ClusterStore

log = logging.getLogger(__name__)

USAGE_WINDOW_S: Final = 120.0
"""How far back a worker's latest row may lie: many of the agents' 5 s samples, so that a
late flush does not blank a worker's usage, yet the figures of a stopped agent vanish soon."""
CLOCK_AHEAD_S: Final = 30.0
"""Rows stamped up to this far past our clock still count: an agent's clock may run ahead."""

USAGE_TIMEOUT_S: Final = 5.0
"""How long a listing waits for GreptimeDB before it lists the workers without usage."""

UsageKey = tuple[str, str, str]
"""(namespace, worker, GPU uuid): the tags that tell one worker's rows on one GPU apart."""


@dataclass(frozen=True)
class UsageRow:
    """The fields of one `tf_worker_usage` row that a worker's usage sums."""

    vram: int
    compute_tflops: float | None
    """Absent from an agent's first sample of a worker, which has no interval to measure."""
    throttled_launches: int
    pages_evicted: int
    pages_resumed: int
    host_bytes: int
    disk_bytes: int
    """Paged out to host memory and to disk (0 in rows of agents that page nothing)."""
    ts_ms: int


def latest_usage_sql(window: str) -> str:
    """Each (namespace, worker, GPU)'s latest row among those matching `window` (the sink's
    `time_window`), in SQL that GreptimeDB and SQLite both run. `u.*` rather than named
    fields: GreptimeDB adds a field's column only once an agent first writes it."""
    keys = ('"namespace"', '"worker"', '"uuid"')
    joined = " AND ".join(f"u.{key} = l.{key}" for key in keys)
    return (
        f"SELECT u.* FROM {WORKER_USAGE} AS u JOIN ("
        f"SELECT {', '.join(keys)}, max({TIME_COLUMN}) AS latest FROM {WORKER_USAGE} "
        f"WHERE {window} GROUP BY {', '.join(keys)}"
        f") AS l ON {joined} AND u.{TIME_COLUMN} = l.latest WHERE {window}"
    )


def usage_rows(records: Iterable[Mapping[str, Any]]) -> dict[UsageKey, UsageRow]:
    """The query's records by key, the latest where a key repeats; a record missing a tag,
    its time or its VRAM is left out."""
    rows: dict[UsageKey, UsageRow] = {}
    for record in records:
        namespace, worker, uuid = (text_at(record, tag) for tag in ("namespace", "worker", "uuid"))
        ts_ms, vram = _count(record.get(TIME_COLUMN)), _count(record.get("memory_bytes"))
        if namespace is None or worker is None or uuid is None or ts_ms is None or vram is None:
            continue
        key = (namespace, worker, uuid)
        if key in rows and rows[key].ts_ms >= ts_ms:
            continue
        rows[key] = UsageRow(
            vram=vram,
            compute_tflops=_number(record.get("compute_tflops")),
            throttled_launches=_count(record.get("compute_throttled_cnt")) or 0,
            pages_evicted=_count(record.get("vram_freezed_cnt")) or 0,
            pages_resumed=_count(record.get("vram_resumed_cnt")) or 0,
            host_bytes=_count(record.get("vram_host_bytes")) or 0,
            disk_bytes=_count(record.get("vram_disk_bytes")) or 0,
            ts_ms=ts_ms,
        )
    return rows


def worker_usage(rows: Iterable[UsageRow]) -> dict[str, Any] | None:
    """A worker's usage summed over its GPUs' rows; None when there are none."""
    rows = list(rows)
    if not rows:
        return None
    tflops = [row.compute_tflops for row in rows if row.compute_tflops is not None]
    vram = sum(row.vram for row in rows)
    return {
        "vram": vram,
        "computeTflops": sum(tflops) if tflops else None,
        "throttledLaunches": sum(row.throttled_launches for row in rows),
        "pagesEvicted": sum(row.pages_evicted for row in rows),
        "pagesResumed": sum(row.pages_resumed for row in rows),
        "sampledAt": rfc3339(max(row.ts_ms for row in rows) * 1_000_000),
        "vramTiers": vram_tiers(
            vram, sum(row.host_bytes for row in rows), sum(row.disk_bytes for row in rows)
        ),
    }


def is_bound_worker(pod: Mapping[str, Any]) -> bool:
    """A pod some node's agent keeps regions for: bound, with the scheduler's gpu-ids (which
    only the scheduler writes, whichever of its profiles placed the pod), not finished."""
    node = text_at(pod, "spec", "nodeName")
    if not node:
        return False
    return is_worker_of(pod, node)


class WorkerViews:
    """`store` is the cluster's; `sink` the metrics store the agents write to (GreptimeDB),
    None where none is configured. Owns the sink: `close` closes it. Thread-safe."""

    def __init__(
        self,
        store: ClusterStore,
        sink: MetricsSink | None,
        *,
        clock_ns: Callable[[], int] = time.time_ns,
        window_s: float = USAGE_WINDOW_S,
    ) -> None:
        if _number(window_s) is None or window_s <= 0:
            raise ConfigError("window_s", f"must be a positive number of seconds, got {window_s!r}")
        self.store = store
        self.sink = sink
        self.clock_ns = clock_ns
        self.window_ns = int(window_s * 1e9)
        self._lock = threading.Lock()
        self._failing = False
        if sink is None:
            log.info("workers are listed without usage: no GreptimeDB is configured (GREPTIME_*)")

    def views(self, nodes: frozenset[str] | None = None) -> list[dict[str, Any]]:
        """Every worker, or those bound to `nodes` (then only their pods, selected by node,
        and the GPUs they hold are read)."""
        if nodes is None:
            pods = [pod for pod in self.store.list("Pod") if is_bound_worker(pod)]
            return self._views_of(pods, self.store.list("GPU")) if pods else []
        on_nodes = [
            pod
            for node in sorted(nodes)
            for pod in self.store.list("Pod", field_selector={"spec.nodeName": node})
            if is_bound_worker(pod)
        ]
        # In the order of the whole listing (the store's: by namespace, then name).
        on_nodes.sort(
            key=lambda pod: (pod["metadata"].get("namespace") or "", pod["metadata"]["name"])
        )
        return self._views_of(on_nodes, self._held_gpus(on_nodes))

    def pending_views(
        self, candidates: Iterable[tuple[str, str]], present: Collection[str]
    ) -> list[dict[str, Any]]:
        """The workers waiting for a GPU among `candidates` (namespace, name): those holding
        none of `present` (the GPUs still in the cluster) as the store has them now. Only the
        candidates and their GPUs are read, each by name, not every pod and GPU."""
        pods = [
            pod
            for pod in _existing(self.store, "Pod", sorted(set(candidates)))
            if is_bound_worker(pod)
            and is_waiting(
                text_at(pod, "spec", "nodeName"),
                gpu_ids_of(pod["metadata"]["annotations"]),
                present,
            )
        ]
        return self._views_of(pods, self._held_gpus(pods))

    def _held_gpus(self, pods: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """The GPU objects `pods` name that exist, each read by name."""
        names = {gpu for pod in pods for gpu in gpu_ids_of(pod["metadata"]["annotations"])}
        return _existing(self.store, "GPU", [(None, name) for name in sorted(names)])

    def _views_of(
        self, pods: list[dict[str, Any]], gpu_objects: Iterable[Mapping[str, Any]]
    ) -> list[dict[str, Any]]:
        """The views of `pods`, with the facts of `gpu_objects` (the GPUs they hold, or
        more)."""
        if not pods:
            return []
        uuids, indices = _gpu_facts(gpu_objects)
        rows = self._latest_rows()
        views = []
        for pod in pods:
            _, namespace, name = pod_key(pod["metadata"])
            gpus = gpu_ids_of(pod["metadata"]["annotations"])
            keys = [(namespace, name, uuids.get(gpu, gpu)) for gpu in gpus]
            usage = worker_usage(rows[key] for key in keys if key in rows)
            views.append(worker_view(pod, indices, usage))
        return views

    def _latest_rows(self) -> dict[UsageKey, UsageRow]:
        """The latest rows, or none when the sink is absent or cannot answer (logged when it
        starts failing, and when it answers again)."""
        if self.sink is None:
            return {}
        now_ns = self.clock_ns()
        window = self.sink.time_window(now_ns - self.window_ns, now_ns + int(CLOCK_AHEAD_S * 1e9))
        try:
            records = self.sink.query(latest_usage_sql(window))
        except (SinkUnavailable, QueryError) as exc:
            with self._lock:
                failing, self._failing = self._failing, True
            if not failing:
                log.warning("workers are listed without usage until metrics can be read: %s", exc)
            return {}
        with self._lock:
            recovered, self._failing = self._failing, False
        if recovered:
            log.info("worker usage can be read again")
        return usage_rows(records)

    def close(self) -> None:
        if self.sink is not None:
            self.sink.close()


def _existing(
    store: ClusterStore, kind: str, keys: Iterable[tuple[str | None, str]]
) -> list[dict[str, Any]]:
    """The objects of `kind` named by `keys` (namespace, name) that exist now."""
    found = []
    for namespace, name in keys:
        try:
            found.append(store.get(kind, name, namespace))
        except NotFoundError:
            continue  # deleted since it was named: nothing to list
    return found


def _gpu_facts(gpus: Iterable[Mapping[str, Any]]) -> tuple[dict[str, str], dict[str, int | None]]:
    """By GPU name: the uuid the agents tag its rows with (the name where none is recorded,
    as `usage_recorder` does), and its device index."""
    uuids: dict[str, str] = {}
    indices: dict[str, int | None] = {}
    for gpu in gpus:
        name = text_at(gpu, "metadata", "name")
        if name is None:
            continue
        uuids[name] = text_at(gpu, "status", "uuid") or name
        indices[name] = _count((gpu.get("status") or {}).get("index"))
    return uuids, indices


def _number(value: object) -> float | None:
    """A finite number from a record, else None (JSON may hold `NaN`, 1e999, or a string)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int beyond any float
        return None
    return number if math.isfinite(number) else None


def _count(value: object) -> int | None:
    """A whole number >= 0 from a record (JSON may give 3.0 for 3), else None."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value if value >= 0 else None  # exact, however large
    number = _number(value)
    return int(number) if number is not None and number >= 0 and number.is_integer() else None
