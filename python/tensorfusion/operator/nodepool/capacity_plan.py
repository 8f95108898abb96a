"""How many nodes, of which instance types, a pool should add: enough for the GPU slices of
its pending pods, then for its warm and minimum capacity, never past its maximum nor its
daily budget.

The pending pods have already failed on the pool's nodes, so they are packed onto the GPUs
of nodes on their way (claims made, nodes not yet registered) and then onto new nodes, by
the scheduler's own fit kernel and capacity rule: largest pods first, each onto the fullest
GPUs that still take it, a pod asking for k GPUs onto k GPUs of one node. The fewest nodes
are claimed, and of those the cheapest: a new node is of the cheapest instance type that
holds every pod still unplaced, or, while none does, of the type with the most GPUs.

Costs are on-demand estimates (`NodeShape.cost_per_hour`); spot capacity costs less."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

import numpy as np

from tensorfusion.api.annotations import WorkloadRequest
from tensorfusion.api.gpu_links import is_default_pool, text_at
from tensorfusion.api.pool import GPUPoolSpec, Oversubscription
from tensorfusion.api.quantity import Quantity
from tensorfusion.errors import ConfigError
from tensorfusion.operator.nodepool.instance_types import NodeShape
from tensorfusion.operator.nodepool.pool_capacity import Amounts, Bound, bound, gpu_room, summed
from tensorfusion.operator.nodepool.view import PoolView
from tensorfusion.scheduler.capacity import host_share, virtual_tflops, virtual_vram
from tensorfusion.scheduler.gpu_demand import GpuDemand, demand_of
from tensorfusion.scheduler.gpu_fit import GpuArrays, PlacementCode, fit_gpus
from tensorfusion.scheduler.gpu_models import lookup_model
from tensorfusion.scheduler.pod_info import PodInfo
from tensorfusion.scheduler.pools import PoolDirectory, PoolInfo


@dataclass(frozen=True)
class ScaleDecision:
    add: tuple[NodeShape, ...]
    """The nodes to claim now, in order."""
    reasons: tuple[str, ...]
    """Why each node of `add` is claimed, in the same order."""
    capped: str | None
    """The limit (maxResources bound or budgetPerDay) that held capacity back, and what
    waits for it; None if none."""
    unfit: tuple[str, ...] = ()
    """Pending pods (namespace/name) that no instance type of the pool can ever hold."""
    capped_by: Literal["maxResources", "budgetPerDay"] | None = None
    """Which spec field `capped` names."""


@dataclass(frozen=True)
class _Pending:
    key: str
    demand: GpuDemand
    model: str | None


def pending_pods(view: PoolView) -> list[_Pending]:
    """The pool's pods that the scheduler found no room for, each read once: those naming
    the pool, or no pool when it is the default one."""
    directory = PoolDirectory(
        {
            name: PoolInfo(name, is_default=is_default_pool(pool))
            for pool in view.pools
            if (name := text_at(pool, "metadata", "name")) is not None
        }
    )
    pending = []
    for pod in view.unscheduled:
        info = PodInfo.from_dict(pod)
        workload = info.workload
        if workload is None or not workload.enabled or info.node_name:
            continue
        chosen = directory.resolve(workload.pool)
        if isinstance(chosen, PoolInfo) and chosen.name == view.name:
            key = f"{info.namespace}/{info.name}"
            pending.append(_Pending(key, demand_of(workload), _model_name(workload)))
    return pending


def _model_name(workload: WorkloadRequest) -> str | None:
    if workload.gpu_model is None:
        return None
    try:
        return lookup_model(workload.gpu_model).name
    except ConfigError:
        return workload.gpu_model  # a model no instance type has: the pod fits none


_USAGE = ("tflops_requested", "vram_requested", "tflops_limited", "vram_limited")


@dataclass
class _Gpus:
    """The planned GPUs (in-flight and new nodes) as the fit kernel's columns, grown a node
    at a time."""

    oversubscription: Oversubscription
    models: list[str]
    columns: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    nodes: int = 0

    def add_node(self, shape: NodeShape) -> None:
        virtual = (
            virtual_tflops(shape.tflops_milli_per_gpu, self.oversubscription),
            virtual_vram(
                shape.vram_per_gpu,
                self.oversubscription,
                host_share(shape.ram_bytes, shape.disk_bytes, shape.gpus),
            ),
        )
        facts = {
            "node": self.nodes,
            "model": self.models.index(shape.gpu_model),
            "tflops_capacity": shape.tflops_milli_per_gpu,
            "vram_capacity": shape.vram_per_gpu,
            "tflops_virtual": virtual[0],
            "vram_virtual": virtual[1],
            **dict.fromkeys(_USAGE, 0),
        }
        for name, value in facts.items():
            self.columns[name].extend([value] * shape.gpus)
        self.nodes += 1

    def place(self, pod: _Pending) -> bool:
        """Reserve the pod's slices on the fullest planned GPUs that take it, if a node does."""
        if not self.nodes:
            return False
        arrays = GpuArrays.zeros(len(self.columns["node"]))
        for name, values in self.columns.items():
            getattr(arrays, name)[:] = values
        demand = pod.demand
        request = demand.fit_request(
            model_id=self._model_id(pod.model),
            mode=PlacementCode.COMPACT_FIRST,
        )
        result = fit_gpus(
            arrays,
            np.ones(self.nodes, dtype=np.uint8),
            np.zeros(self.nodes, dtype=np.int32),
            request,
        )
        if result.best_node < 0:
            return False
        for gpu in result.best_gpus:
            request_t, limit_t = demand.tflops_on(self.columns["tflops_capacity"][gpu])
            amounts = (request_t, demand.vram_request, limit_t, demand.vram_limit)
            for name, amount in zip(_USAGE, amounts, strict=True):
                self.columns[name][gpu] += amount
        return True

    def with_node(self, shape: NodeShape) -> _Gpus:
        """A copy of these GPUs and their reservations, with a node of `shape` added."""
        columns: dict[str, list[int]] = defaultdict(list)
        columns.update((name, list(values)) for name, values in self.columns.items())
        trial = _Gpus(self.oversubscription, self.models, columns, self.nodes)
        trial.add_node(shape)
        return trial

    def _model_id(self, model: str | None) -> int:
        if model is None:
            return -1
        # A model no planned GPU has gets an id no GPU carries: it fits nowhere.
        return self.models.index(model) if model in self.models else len(self.models)

    def free(self) -> Amounts:
        """Physical room not yet reserved on the planned GPUs."""
        columns = self.columns
        return Amounts(
            int(sum(columns["tflops_capacity"]) - sum(columns["tflops_requested"])),
            int(sum(columns["vram_capacity"]) - sum(columns["vram_requested"])),
        )


def _existing(view: PoolView) -> tuple[Amounts, Amounts]:
    """(capacity, available) of the pool's GPUs; a GPU not yet given its available room by
    the reconcilers counts as wholly free."""
    rooms = [gpu_room(gpu) for gpus in view.gpus.values() for gpu in gpus]
    return (
        summed(capacity for capacity, _ in rooms),
        summed(capacity if free is None else free for capacity, free in rooms),
    )


def _size(shape: NodeShape) -> Amounts:
    return Amounts(shape.gpus * shape.tflops_milli_per_gpu, shape.gpus * shape.vram_per_gpu)


def _largest_first(pods: Iterable[_Pending]) -> list[_Pending]:
    return sorted(
        pods,
        key=lambda p: (p.demand.gpu_count, p.demand.vram_request, p.demand.tflops_request),
        reverse=True,
    )


def budget_per_day(spec: GPUPoolSpec) -> tuple[str, Decimal] | None:
    """The pool's budgetPerDay as (its text, dollars); None when it sets no budget."""
    provisioner = spec.node_manager_config.node_provisioner
    if provisioner is None or provisioner.budget is None:
        return None
    text = provisioner.budget.budget_per_day
    exact = Quantity.parse(text).exact
    return text, Decimal(exact.numerator) / exact.denominator


_Limit = tuple[Literal["maxResources", "budgetPerDay"], str]
"""A limit on what a pool adds: the spec field, and its bound as a message names it
("maxResources.tflops 400", "budgetPerDay 100")."""


class _Planner:
    def __init__(
        self,
        spec: GPUPoolSpec,
        shapes: Sequence[NodeShape],
        total: Amounts,
        in_flight: Sequence[NodeShape],
        cost_per_hour: Decimal,
    ) -> None:
        capacity = spec.capacity_config
        self.shapes = shapes
        self.total = list(total)
        self.max = bound(capacity.max_resources)
        self.max_resources = capacity.max_resources
        self.per_day = budget_per_day(spec)
        self.cost_per_hour = cost_per_hour
        models = sorted({s.gpu_model for s in (*shapes, *in_flight)})
        self.gpus = _Gpus(capacity.oversubscription, models)
        self.add: list[NodeShape] = []
        self.reasons: list[str] = []
        self.capped: _Limit | None = None
        """The limit that first held something back."""
        self._holds: dict[tuple[str, str], bool] = {}
        for shape in in_flight:
            self.count(shape)

    def limit(self, shape: NodeShape) -> _Limit | None:
        """The limit one more node of `shape` would pass; None if none."""
        size = _size(shape)
        for index, dim in enumerate(("tflops", "vram")):
            cap = self.max[index]
            if cap is not None and self.total[index] + size[index] > cap:
                return "maxResources", f"maxResources.{dim} {getattr(self.max_resources, dim)}"
        if self.per_day is not None:
            text, per_day = self.per_day
            if (self.cost_per_hour + shape.cost_per_hour) * 24 > per_day:
                return "budgetPerDay", f"budgetPerDay {text}"
        return None

    def hold(self, shape: NodeShape) -> None:
        """Note that the limit `shape` would pass held something back, if none did yet."""
        self.capped = self.capped or self.limit(shape)

    def count(self, shape: NodeShape) -> None:
        """A node on its way or to be claimed: its GPUs take pods, and count to the total."""
        self.gpus.add_node(shape)
        size = _size(shape)
        self.total[0] += size[0]
        self.total[1] += size[1]

    def claim(self, shape: NodeShape, reason: str) -> None:
        self.count(shape)
        self.cost_per_hour += shape.cost_per_hour
        self.add.append(shape)
        self.reasons.append(reason)

    def fits_alone(self, pod: _Pending, shape: NodeShape) -> bool:
        key = (pod.key, shape.instance_type)
        if key not in self._holds:
            empty = _Gpus(self.gpus.oversubscription, self.gpus.models)
            self._holds[key] = empty.with_node(shape).place(pod)
        return self._holds[key]

    def covers(self, shape: NodeShape, pods: Sequence[_Pending]) -> bool:
        """Whether the planned GPUs and one more node of `shape` would take all of `pods`."""
        trial = self.gpus.with_node(shape)
        return all(trial.place(pod) for pod in pods)

    def new_node(self, allowed: Sequence[NodeShape], unplaced: Sequence[_Pending]) -> NodeShape:
        """The cheapest of `allowed` that takes every pod of `unplaced` (the last node they
        need, so no larger one saves a node), else the cheapest that takes all of them it
        can hold (the others need a node of another type anyway), else the one with the
        most GPUs (the cheapest of those), which leaves the fewest for further nodes."""
        placeable = [p for p in unplaced if any(self.fits_alone(p, s) for s in self.shapes)]
        cheapest_first = sorted(allowed, key=lambda s: (s.cost_per_hour, s.gpus))
        for shape in cheapest_first:
            if self.covers(shape, placeable):
                return shape
        for shape in cheapest_first:
            if self.covers(shape, [p for p in placeable if self.fits_alone(p, shape)]):
                return shape
        return max(allowed, key=lambda s: (s.gpus, -s.cost_per_hour))

    def place_pending(self, pods: Sequence[_Pending]) -> tuple[list[str], int]:
        """Returns the pods no instance type can hold, and how many a limit keeps pending."""
        unfit: list[str] = []
        capped = 0
        ordered = _largest_first(pods)
        for index, pod in enumerate(ordered):
            if self.gpus.place(pod):
                continue
            holding = [s for s in self.shapes if self.fits_alone(pod, s)]
            if not holding:
                unfit.append(pod.key)
                continue
            allowed = [s for s in holding if self.limit(s) is None]
            if not allowed:
                self.hold(min(holding, key=lambda s: (s.gpus, s.cost_per_hour)))
                capped += 1
                continue
            self.claim(self.new_node(allowed, ordered[index:]), f"for pending pod {pod.key}")
            self.gpus.place(pod)
        return unfit, capped

    def keep(
        self,
        field_name: str,
        wanted: Bound,
        have: Callable[[], Amounts | list[int]],
    ) -> bool:
        """Add nodes of the first shape until `have()` reaches `wanted` in both dimensions;
        False if a limit stopped it first."""
        shape = self.shapes[0]
        while any(w is not None and h < w for w, h in zip(wanted, have(), strict=True)):
            if self.limit(shape) is not None:
                self.hold(shape)
                return False
            self.claim(shape, f"to keep {field_name}")
        return True


def scale_decision(
    view: PoolView,
    shapes: Sequence[NodeShape],
    in_flight: Sequence[NodeShape],
    cost_per_hour: Decimal = Decimal(0),
) -> ScaleDecision:
    """The nodes to add to the pool now (pure: reads only the view). `shapes` is what the
    pool may provision, in its order of preference; `in_flight` the nodes claimed that have
    not registered yet; `cost_per_hour` what the pool's nodes, registered and on their way,
    already cost (on-demand): no node is added that would take it, times 24, past the pool's
    `nodeProvisioner.budget.budgetPerDay`."""
    if view.spec is None or not shapes:
        return ScaleDecision((), (), None)
    existing, available = _existing(view)
    planner = _Planner(view.spec, shapes, existing, in_flight, cost_per_hour)
    unfit, capped = planner.place_pending(pending_pods(view))
    capacity = view.spec.capacity_config
    held = [f"{capped} pods stay pending"] if capped else []

    def free() -> Amounts:
        return available.plus(planner.gpus.free())

    if not planner.keep("warmResources", bound(capacity.warm_resources), free):
        held.append("warmResources not kept")
    if not planner.keep("minResources", bound(capacity.min_resources), lambda: planner.total):
        held.append("minResources not reached")
    if planner.capped is None:
        return ScaleDecision(tuple(planner.add), tuple(planner.reasons), None, tuple(unfit))
    field_name, limit = planner.capped
    return ScaleDecision(
        tuple(planner.add),
        tuple(planner.reasons),
        f"{limit} reached: {'; '.join(held)}",
        tuple(unfit),
        capped_by=field_name,
    )
