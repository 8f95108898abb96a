"""What the management server serves from: one interface, implemented by the embedded control
plane (and later by the Kubernetes mode), so that nothing under `server/` knows where state
lives. Every method returns JSON-ready values; the shapes are documented in docs/api.md.

Errors a caller can cause are raised from the `tensorfusion.errors` family and mapped to HTTP
by the server: ConfigError / AnnotationError (422, naming the field), NotFoundError (404),
AlreadyExistsError and UnschedulableError (409), UnavailableError (503).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from tensorfusion.errors import ConfigError


@dataclass(frozen=True)
class WorkerRequest:
    """A request for a GPU slice for local processes (what `tensor-fusion run` sends).
    Quantities are the annotation grammar's strings ("50", "4Gi"), read as the pod contract
    reads its annotations: a request defaults to its limit and a limit to its request. A
    slice has an amount of each: one of each pair is required (ConfigError otherwise)."""

    tflops_request: str | None = None
    vram_request: str | None = None
    tflops_limit: str | None = None
    vram_limit: str | None = None
    gpu_count: int = 1
    pool: str | None = None
    gpu_model: str | None = None
    name: str | None = None
    pid: int | None = None
    command: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Without either, the contract would reserve nothing and cap at the whole GPU.
        for resource, request, limit in (
            ("tflops", self.tflops_request, self.tflops_limit),
            ("vram", self.vram_request, self.vram_limit),
        ):
            if request is None and limit is None:
                raise ConfigError(
                    f"{resource}Request",
                    f"required, or {resource}Limit (a request defaults to its limit)",
                )


@dataclass(frozen=True)
class NodeQuery:
    """Which nodes a node listing selects: those of `pool` (any when None) that `match`
    finds (any when None), the first `limit` by name (all when None). `match` finds a node
    by its name, a GPU's name, model or UUID, or the `namespace/name` of a pod on one of its
    GPUs, ignoring case."""

    pool: str | None = None
    match: str | None = None
    limit: int | None = None


class ManagementBackend(Protocol):
    """The inventory listings (`pools`, `nodes`, `node_page`, `gpus`, `node_gpus`) may hand
    out the same object for as long as the listing is unchanged: the server then serves the
    body it rendered from that object. An object once returned is never modified."""

    def simulate(self, pod: dict[str, Any]) -> dict[str, Any]:
        """Where `pod` would go and why, changing nothing (the simulate report)."""
        ...

    def allocation(self) -> dict[str, Any]:
        """The allocator snapshot (the `/api/allocation` body): the same object until the
        allocation state changes, shared (not to be modified); the server keeps what it
        derives from it, such as filter indexes and continue tokens, for as long."""
        ...

    def pools(self) -> list[dict[str, Any]]: ...

    def pool_plan(self, name: str) -> dict[str, Any]:
        """The pool's pending upkeep (the `/api/pools/{name}/plan` body): rolling update,
        compaction and provisioning actions with their reasons, and the pool's conditions
        they lead to. NotFoundError when there is no such pool."""
        ...

    def nodes(self) -> list[dict[str, Any]]: ...

    def node_page(self, query: NodeQuery) -> tuple[list[dict[str, Any]], int]:
        """The nodes `query` selects, as `nodes` lists them (by name), the first `limit` of
        them; and how many it selects in all."""
        ...

    def gpus(self) -> list[dict[str, Any]]: ...

    def node_gpus(self, nodes: frozenset[str]) -> list[dict[str, Any]]:
        """The GPUs of `nodes`, as `gpus` lists them, computing no other GPU's row."""
        ...

    def workers(self) -> list[dict[str, Any]]:
        """Every live worker with its placement and (when its processes joined) usage."""
        ...

    def node_workers(self, nodes: frozenset[str]) -> list[dict[str, Any]]:
        """The workers placed on `nodes`, as `workers` lists them."""
        ...

    def pending_workers(self) -> list[dict[str, Any]]:
        """The workers waiting for a GPU (phase Pending, or holding no GPU still in the
        cluster), as `workers` lists them, chosen before any view is built."""
        ...

    def create_worker(self, request: WorkerRequest) -> dict[str, Any]:
        """Schedule and bind a worker; the answer includes the environment its processes
        need (`env`). UnschedulableError when it does not fit anywhere now."""
        ...

    def add_worker_pids(self, name: str, pids: list[int]) -> dict[str, Any]:
        """Record more processes of a worker (its allocation lives while any does)."""
        ...

    def delete_worker(self, name: str) -> dict[str, Any]:
        """Release a worker's allocation and shared regions."""
        ...

    def readiness(self) -> tuple[bool, str]:
        """Whether the backend serves scheduling requests now, and why not."""
        ...
