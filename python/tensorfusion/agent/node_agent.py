"""The node agent's periodic pass over the workers of this host.

A worker is a Pod carrying the WORKER_PIDS annotation: the local processes that asked for it.
It lives while one of those processes, or a process that joined one of its shared regions,
is alive; after that it is finished and its Pod is deleted, which releases its allocation. A
worker with no process recorded (asked for without a pid) is not watched: it lives until it
is deleted through the API.
The agent shares its workers' pid namespace, so it also removes the spill files that killed
processes left behind (`spill`).
The rule needs no memory of earlier passes, so after a restart the first pass keeps exactly
the workers whose processes survived.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tensorfusion.agent.processes import is_alive, parse_pids
from tensorfusion.agent.regions import WorkerRegions
from tensorfusion.agent.worker_pods import list_workers
from tensorfusion.api.annotations import WORKER_PIDS, gpu_ids_of
from tensorfusion.api.gpu_links import text_at
from tensorfusion.errors import NotFoundError
from tensorfusion.scheduler.pod_keys import pod_key
from tensorfusion.store.interface import ClusterStore

log = logging.getLogger(__name__)


@dataclass
class AgentTick:
    """What one pass saw and did; workers are named `namespace/name`."""

    workers: int = 0
    finished: list[str] = field(default_factory=list)
    orphans_removed: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """One line per worker that could not be handled this time (also logged)."""


class NodeAgent:
    def __init__(self, store: ClusterStore, regions: WorkerRegions) -> None:
        self.store = store
        self.regions = regions
        self._usage: dict[str, dict[str, Any] | None] = {}
        self._lock = threading.Lock()

    def usage(self, uid: str) -> dict[str, Any] | None:
        """The worker's usage as of the last pass; None before its regions were read."""
        with self._lock:
            return self._usage.get(uid)

    def tick(self) -> AgentTick:
        """One pass: regions made sure of and read for every bound worker, finished workers
        deleted with their regions, region and spill directories of vanished workers and the
        spill files of dead processes removed. A
        worker that cannot be handled is logged and retried next pass; it never stops the
        others."""
        result = AgentTick()
        usage: dict[str, dict[str, Any] | None] = {}
        pools = self.pools()
        for pod in self._workers():
            result.workers += 1
            uid, namespace, name = pod_key(pod["metadata"])
            try:
                if self._finished(pod):
                    self._release(pod)
                    result.finished.append(f"{namespace}/{name}")
                    continue
                if text_at(pod, "spec", "nodeName") is not None:
                    self.regions.prepare(pod, self.gpus_of(pod), pools)
                usage[uid] = self.regions.usage(pod)
            except Exception as exc:
                # Deliberately broad: one broken worker must not stop the node's bookkeeping.
                log.warning("worker %s/%s: %s", namespace, name, exc, exc_info=True)
                result.problems.append(f"{namespace}/{name}: {exc}")
        with self._lock:
            self._usage = usage
        try:
            result.orphans_removed = self.regions.remove_orphans(self._workers)
            self.regions.remove_dead_spill_files()
        except OSError as exc:
            log.warning("cannot remove the regions of vanished workers: %s", exc)
            result.problems.append(f"orphan regions: {exc}")
        return result

    def _workers(self) -> list[dict[str, Any]]:
        return list_workers(self.store)

    def prepare(self, pod: Mapping[str, Any]) -> dict[str, str]:
        """The bound worker's regions made sure of; the environment its processes need."""
        return self.regions.prepare(pod, self.gpus_of(pod), self.pools())

    def pools(self) -> dict[str, dict[str, Any]]:
        """The GPUPool objects by name: they say how much VRAM may be paged out."""
        return {pool["metadata"]["name"]: pool for pool in self.store.list("GPUPool")}

    def gpus_of(self, pod: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The GPU objects a bound worker holds (a missing one is left out: `prepare` names
        it)."""
        gpus = []
        for name in gpu_ids_of(pod["metadata"].get("annotations") or {}):
            with contextlib.suppress(NotFoundError):
                gpus.append(self.store.get("GPU", name))
        return gpus

    def _finished(self, pod: dict[str, Any]) -> bool:
        processes = parse_pids(pod["metadata"]["annotations"][WORKER_PIDS])
        if not processes:
            return False  # nothing to watch: it lives until deleted through the API
        if any(is_alive(process.pid, process.token) for process in processes):
            return False
        return not self.regions.live_members(pod)

    def _release(self, pod: dict[str, Any]) -> None:
        metadata = pod["metadata"]
        # NotFound: deleted meanwhile (the worker was released through the API).
        with contextlib.suppress(NotFoundError):
            self.store.delete("Pod", metadata["name"], metadata.get("namespace"))
        self.regions.remove(pod)
        log.info(
            "worker %s/%s finished: its processes are gone",
            metadata.get("namespace"),
            metadata["name"],
        )
