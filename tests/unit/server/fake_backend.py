"""A ManagementBackend with canned answers (the shapes of docs/api.md), for testing the HTTP
layer on its own: auth, errors, limits, metrics. Routes against the real control plane are in
tests/integration/test_server_api.py."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from tensorfusion.errors import NotFoundError
from tensorfusion.server.backend import NodeQuery, WorkerRequest

GIB = 1 << 30


def amounts(tflops: float, vram: int) -> dict[str, Any]:
    return {
        "capacity": {"tflops": tflops, "vram": vram},
        "virtualCapacity": {"tflops": tflops * 5, "vram": vram * 2},
        "allocated": {"tflops": 50.0, "vram": 4 * GIB},
        "allocatedLimits": {"tflops": 100.0, "vram": 4 * GIB},
    }


PLAN = {
    "pool": "default-pool",
    "at": "2026-12-07T00:45:00Z",
    "actions": [
        {
            "part": "rollout",
            "kind": "update-agents",
            "target": "node-0",
            "state": "waiting",
            "reason": "outside the maintenance window",
            "at": "2026-12-07T01:01:00Z",
        }
    ],
    "conditions": [
        {"type": "AgentRollout", "status": "True", "reason": "Updating", "message": "0 of 1"}
    ],
}
POOL = {
    "name": "default-pool",
    "default": True,
    "placementMode": "CompactFirst",
    "oversubscription": {
        "tflopsOversellRatio": 500,
        "vramExpandToHostMem": 50,
        "vramExpandToHostDisk": 70,
    },
    "nodes": 1,
    "gpus": 1,
    "workers": 1,
    **amounts(989.0, 80 * GIB),
}
NODE = {
    "name": "node-0",
    "pool": "default-pool",
    "gpus": 1,
    "workers": 1,
    "schedulable": True,
    **amounts(989.0, 80 * GIB),
}
GPU = {
    "name": "node-0-gpu-0",
    "node": "node-0",
    "uuid": "GPU-0",
    "index": 0,
    "model": "H100",
    "pool": "default-pool",
    "numaNode": 0,
    "usedBy": "tensor-fusion",
    "workers": ["tensor-fusion/run-python-7f3a"],
    **amounts(989.0, 80 * GIB),
}
WORKER = {
    "name": "run-python-7f3a",
    "namespace": "tensor-fusion",
    "uid": "0b8c",
    "phase": "Running",
    "node": "node-0",
    "gpus": ["node-0-gpu-0"],
    "gpuIndices": [0],
    "request": {"tflops": 50.0, "vram": 4 * GIB},
    "limit": {"tflops": 100.0, "vram": 4 * GIB},
    "pids": [4242],
    "command": ["python", "train.py"],
    "createdAt": "2026-11-28T10:00:00Z",
    "usage": None,
    "vramTiers": None,
}
REPORT = {
    "pod": "default/test-pod",
    "schedulable": True,
    "node": "node-0",
    "gpus": ["node-0-gpu-0"],
    "filterStages": [{"plugin": "GPUResourcesFit", "before": 1, "after": 1, "skipped": False}],
    "topNodes": [],
    "notes": [],
}
SNAPSHOT: dict[str, Any] = {"gpus": [], "workersPerNode": {}, "allocations": {}, "gpuWorkers": {}}


@dataclass
class FakeBackend:
    fail: Exception | None = None
    """Raised by every call but `readiness` when set."""
    ready: tuple[bool, str] = (True, "")
    received: list[Any] = field(default_factory=list)
    """What the routes passed in, in order."""
    gate: threading.Event | None = None
    """When set, `workers` waits for it (a request that is still in flight)."""

    def _answer(self, value: Any, received: Any = None) -> Any:
        if received is not None:
            self.received.append(received)
        if self.fail is not None:
            raise self.fail
        return value

    def simulate(self, pod: dict[str, Any]) -> dict[str, Any]:
        return dict(self._answer(REPORT, pod))

    def allocation(self) -> dict[str, Any]:
        snapshot: dict[str, Any] = self._answer(SNAPSHOT)  # one object, as the allocator's
        return snapshot

    def pools(self) -> list[dict[str, Any]]:
        return list(self._answer([POOL]))

    def pool_plan(self, name: str) -> dict[str, Any]:
        if name != PLAN["pool"]:
            raise NotFoundError(f"GPUPool {name!r} not found")
        return dict(self._answer(PLAN, name))

    def nodes(self) -> list[dict[str, Any]]:
        return list(self._answer([NODE]))

    def node_page(self, query: NodeQuery) -> tuple[list[dict[str, Any]], int]:
        return list(self._answer([NODE], query)), 1

    def gpus(self) -> list[dict[str, Any]]:
        return list(self._answer([GPU]))

    def node_gpus(self, nodes: frozenset[str]) -> list[dict[str, Any]]:
        return list(self._answer([GPU], nodes))

    def workers(self) -> list[dict[str, Any]]:
        if self.gate is not None:
            self.gate.wait()
        return list(self._answer([WORKER]))

    def node_workers(self, nodes: frozenset[str]) -> list[dict[str, Any]]:
        return list(self._answer([WORKER], nodes))

    def pending_workers(self) -> list[dict[str, Any]]:
        return list(self._answer([WORKER], "pending"))

    def create_worker(self, request: WorkerRequest) -> dict[str, Any]:
        return dict(self._answer(WORKER | {"env": {"TF_WORKER_NAME": WORKER["name"]}}, request))

    def add_worker_pids(self, name: str, pids: list[int]) -> dict[str, Any]:
        return dict(self._answer(WORKER, (name, pids)))

    def delete_worker(self, name: str) -> dict[str, Any]:
        return dict(self._answer({"released": name}, name))

    def readiness(self) -> tuple[bool, str]:
        return self.ready
