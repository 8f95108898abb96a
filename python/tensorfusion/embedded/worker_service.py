"""The worker operations of the management API in embedded mode: create (simulate, then let
the scheduler loop bind), list with usage, record more processes, release."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from tensorfusion.agent.node_agent import NodeAgent
from tensorfusion.agent.processes import format_pids, parse_pids, start_token
from tensorfusion.agent.regions import WorkerRegions
from tensorfusion.agent.worker_pods import is_worker, list_workers
from tensorfusion.api.annotations import WORKER_PIDS, gpu_ids_of
from tensorfusion.embedded.workers import WORKER_NAMESPACE, worker_name, worker_pod, worker_view
from tensorfusion.errors import ConfigError, NotFoundError, UnavailableError, UnschedulableError
from tensorfusion.scheduler.loop import UNSCHEDULABLE_REASON
from tensorfusion.server.backend import WorkerRequest
from tensorfusion.store.interface import ClusterStore

BIND_TIMEOUT_S = 15.0
"""How long a worker request waits for the scheduler to bind it before giving up."""


class WorkerService:
    def __init__(
        self,
        store: ClusterStore,
        regions: WorkerRegions,
        agent: NodeAgent,
        simulate: Callable[[dict[str, Any]], dict[str, Any]],
        stopping: threading.Event,
        *,
        catch_up: Callable[[], None],
    ) -> None:
        """`catch_up` has the scheduler apply the store's changes at once, so that what a
        release answers is what the allocation shows next."""
        self.store = store
        self.regions = regions
        self.agent = agent
        self.simulate = simulate
        self.stopping = stopping
        self.catch_up = catch_up

    def views(self) -> list[dict[str, Any]]:
        """Every live worker with its usage."""
        pods = list_workers(self.store)
        indices = self.gpu_indices(pods)
        return [self._view(pod, indices) for pod in pods]

    def create(self, request: WorkerRequest) -> dict[str, Any]:
        pod = worker_pod(
            request, worker_name(request), _pids_text([request.pid] if request.pid else [])
        )
        report = self.simulate(pod)
        if not report["schedulable"]:
            raise UnschedulableError(report["diagnosis"]["message"], report)
        bound = self._wait_bound(self.store.create(pod), report)
        env = self.agent.prepare(bound)
        return self._view(bound, self.gpu_indices([bound])) | {"env": env}

    def _wait_bound(self, pod: dict[str, Any], report: dict[str, Any]) -> dict[str, Any]:
        """Wait for the scheduler to bind the worker's pod; on refusal or timeout the pod is
        deleted so that nothing is left half-made."""
        name = pod["metadata"]["name"]
        deadline = time.monotonic() + BIND_TIMEOUT_S
        version = int(pod["metadata"]["resourceVersion"])
        while True:
            current = self.store.get("Pod", name, WORKER_NAMESPACE)
            if (current.get("spec") or {}).get("nodeName"):
                return current
            refusal = _unschedulable_message(current)
            remaining = deadline - time.monotonic()
            if refusal is not None or remaining <= 0 or self.stopping.is_set():
                self.store.delete("Pod", name, WORKER_NAMESPACE)
                if refusal is not None:
                    raise UnschedulableError(refusal, report)
                raise UnavailableError(f"the scheduler did not place {name} in time; retry")
            for event in self.store.watch(["Pod"], version, min(remaining, 0.5)):
                version = max(version, event.resource_version)
                break  # look at the pod again after any change

    def add_pids(self, name: str, pids: list[int]) -> dict[str, Any]:
        """Record more processes; one already recorded is not added twice."""
        known = self._pod(name)["metadata"]["annotations"].get(WORKER_PIDS, "")
        recorded = {process.pid for process in parse_pids(known)}
        added = _pids_text([pid for pid in dict.fromkeys(pids) if pid not in recorded])
        text = ",".join(part for part in (known, added) if part)
        patched = self.store.patch(
            "Pod", name, {"metadata": {"annotations": {WORKER_PIDS: text}}}, WORKER_NAMESPACE
        )
        return self._view(patched, self.gpu_indices([patched]))

    def delete(self, name: str) -> dict[str, Any]:
        pod = self._pod(name)
        self.store.delete("Pod", name, WORKER_NAMESPACE)
        self.regions.remove(pod)
        self.catch_up()
        return {"released": name}

    def gpu_indices(self, pods: Iterable[dict[str, Any]]) -> dict[str, int | None]:
        """The device index of each GPU the pods hold (None for one that is gone)."""
        indices: dict[str, int | None] = {}
        for pod in pods:
            for name in gpu_ids_of(pod["metadata"]["annotations"]):
                if name not in indices:
                    indices[name] = None
                    with contextlib.suppress(NotFoundError):
                        indices[name] = _gpu_index(self.store.get("GPU", name))
        return indices

    def _view(self, pod: dict[str, Any], indices: dict[str, int | None]) -> dict[str, Any]:
        return worker_view(pod, indices, self.agent.usage(pod["metadata"]["uid"]))

    def _pod(self, name: str) -> dict[str, Any]:
        try:
            pod = self.store.get("Pod", name, WORKER_NAMESPACE)
        except NotFoundError:
            pod = {}
        if not is_worker(pod):
            raise NotFoundError(f"no worker named {name!r}")
        return pod


def _pids_text(pids: list[int]) -> str:
    """`pid@start` for each pid; a pid that is not a live process is refused."""
    entries = []
    for pid in pids:
        token = start_token(pid) if isinstance(pid, int) and pid > 0 else None
        if token is None:
            raise ConfigError("pids", f"{pid!r} is not a running process on this host")
        entries.append((pid, token))
    return format_pids(entries)


def _gpu_index(gpu: dict[str, Any]) -> int | None:
    index = (gpu.get("status") or {}).get("index")
    return index if isinstance(index, int) else None


def _unschedulable_message(pod: dict[str, Any]) -> str | None:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("reason") == (
            UNSCHEDULABLE_REASON
        ):
            return str(condition.get("message") or "unschedulable")
    return None
