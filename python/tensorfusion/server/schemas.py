"""The JSON shapes of the API (docs/api.md), as pydantic models so that the OpenAPI spec
describes them. Responses are built by the backend as plain JSON and sent as they are (the
models document them; checking 40,000 GPUs per request would cost more than the request);
the schemathesis run checks the answers against these models."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class Wire(BaseModel):
    """camelCase on the wire, snake_case in Python."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class Error(Wire):
    error: str
    message: str
    field: str | None = None
    diagnosis: dict[str, Any] | None = None
    """Only with `Unschedulable`: the simulate report."""


# --- inventory --------------------------------------------------------------------------


class Amount(Wire):
    tflops: float
    vram: int
    """bytes"""


class Accounted(Wire):
    capacity: Amount
    virtual_capacity: Amount
    allocated: Amount
    allocated_limits: Amount


class Oversubscription(Wire):
    tflops_oversell_ratio: int
    vram_expand_to_host_mem: int
    vram_expand_to_host_disk: int


class Pool(Accounted):
    name: str
    default: bool
    placement_mode: str
    oversubscription: Oversubscription
    nodes: int
    gpus: int
    workers: int


class Node(Accounted):
    name: str
    pool: str
    gpus: int
    workers: int
    schedulable: bool


class GPU(Accounted):
    name: str
    node: str
    uuid: str
    index: int
    model: str
    pool: str
    numa_node: int | None
    used_by: str
    workers: list[str]
    """`namespace/name` of the pods on the GPU."""


class PoolList(Wire):
    pools: list[Pool]


class NodeList(Wire):
    nodes: list[Node]
    total: int | None = None
    """With `limit`: how many nodes the query selects in all (the list holds the first)."""


class GPUList(Wire):
    gpus: list[GPU]


class PlannedAction(Wire):
    part: str
    """The part of the pool's upkeep that plans it: provisioning, compaction, rollout."""
    kind: str
    target: str
    state: str
    """due (carried out now), waiting (at `at`), held (blocked: a condition says why),
    proposed (never carried out automatically)."""
    reason: str
    at: str | None = None
    detail: dict[str, Any] | None = None


class PlanCondition(Wire):
    type: str
    status: str
    reason: str
    message: str


class PoolPlan(Wire):
    pool: str
    at: str
    actions: list[PlannedAction]
    conditions: list[PlanCondition]


# --- workers ----------------------------------------------------------------------------


class WorkerUsage(Wire):
    vram: int
    processes: int
    launches: int
    throttled_launches: int
    busy_ns: int
    pages_evicted: int
    pages_resumed: int


class VramTiers(Wire):
    """Bytes of a worker's VRAM by where they live now: on the GPU, paged out to pinned host
    memory, paged out to local disk."""

    device: int
    host: int
    disk: int


class Worker(Wire):
    name: str
    namespace: str
    uid: str
    phase: str
    node: str | None
    gpus: list[str]
    gpu_indices: list[int | None]
    request: Amount
    limit: Amount
    pids: list[int]
    command: list[str]
    created_at: str
    usage: WorkerUsage | None
    vram_tiers: VramTiers | None
    """None while `usage` is."""


class CreatedWorker(Worker):
    env: dict[str, str]
    """What the worker's processes need in their environment."""


class WorkerList(Wire):
    workers: list[Worker]


class Released(Wire):
    released: str
    """The name of the worker whose allocation was released."""


# --- scheduling -------------------------------------------------------------------------


class FilterStage(Wire):
    plugin: str
    before: int
    after: int
    skipped: bool


class PluginScore(Wire):
    score: int
    raw: int
    weight: float


class NodeScore(Wire):
    node: str
    total: int
    plugins: dict[str, PluginScore]


class Rejection(Wire):
    plugin: str
    nodes: int
    reason: str


class Diagnosis(Wire):
    status: str
    unschedulable_plugins: list[str]
    reasons: list[Rejection]
    message: str


class SimulateReport(Wire):
    pod: str
    schedulable: bool
    node: str | None
    gpus: list[str]
    filter_stages: list[FilterStage]
    top_nodes: list[NodeScore]
    notes: list[str]
    diagnosis: Diagnosis | None = None
    """Only when the pod is unschedulable."""


class Quantities(Wire):
    """Kubernetes quantity strings ("80Gi", "11500m"), as upstream shows them."""

    tflops: str
    vram: str


class Share(Wire):
    requests: Quantities
    limits: Quantities


class AllocatedGPU(Wire):
    name: str
    node: str
    pool: str
    model: str
    uuid: str
    index: int
    numa_node: int | None
    present: bool
    state: str
    capacity: Quantities
    virtual_capacity: Quantities
    requested: Quantities
    limited: Quantities
    workers: int


class AllocationEntry(Wire):
    namespace: str
    name: str
    node: str
    gpus: list[str]
    qos: str
    shares: list[Share]


class GPUWorker(Share):
    uid: str
    namespace: str
    name: str


class ListMeta(Wire):
    """Kubernetes' list metadata, on a paged answer."""

    continue_: str | None = Field(default=None, alias="continue")
    """Present while more allocations remain: pass it back as `continue` for the next page."""
    remaining_item_count: int | None = None
    """How many allocations the pages after this one hold (with `continue`)."""


class AllocationSnapshot(Wire):
    gpus: list[AllocatedGPU]
    workers_per_node: dict[str, int]
    allocations: dict[str, AllocationEntry]
    """By pod UID."""
    gpu_workers: dict[str, list[GPUWorker]]
    metadata: ListMeta | None = None
    """Only on a paged answer (`limit` or `continue` given)."""


class Health(Wire):
    status: str
