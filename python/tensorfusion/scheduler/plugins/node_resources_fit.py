"""NodeResourcesFit: a pod fits a node when, for every resource it requests, the node's
allocatable covers what its pods already request plus the pod's, and the node has room for
one more pod. Scoring follows the configured strategy (LeastAllocated, MostAllocated or
RequestedToCapacityRatio) over the configured resources, as kube-scheduler does."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

from tensorfusion.api.scheduler_config import NodeResourcesFitArgs
from tensorfusion.errors import ConfigError
from tensorfusion.scheduler.framework import (
    MAX_NODE_SCORE,
    BoolArray,
    ClusterView,
    CycleState,
    FilterResult,
    ScoreArray,
    Status,
)
from tensorfusion.scheduler.node_table import ALLOCATABLE, NodeTable
from tensorfusion.scheduler.plugins.resource_amounts import (
    CPU,
    EPHEMERAL_STORAGE,
    MEMORY,
    PODS,
    is_extended,
    is_scalar,
)
from tensorfusion.scheduler.pod_info import PodInfo
from tensorfusion.scheduler.shape import broken_linear

INSUFFICIENT_KEY = "NodeResourcesFit/insufficient"
"""CycleState key of the `Insufficient` record that Filter leaves for the diagnosis."""
_REQUEST_KEY = "NodeResourcesFit/request"
TOO_MANY_PODS = "Too many pods"
_FIRST = (CPU, MEMORY, EPHEMERAL_STORAGE)
"""Checked before the other resources (which follow by name), so reasons come in a stable
order."""
_SHAPE_SCALE = 10
"""Shape scores are 0-10; node scores 0-100."""

Request = tuple[tuple[str, int], ...]
"""(resource, amount) the Filter checks, in check order."""


@dataclass(frozen=True, slots=True)
class Insufficient:
    """Every failed check of one Filter call: `masks[k]` marks the nodes failing
    `reasons[k]` (a node may fail several; its FilterResult code names the first)."""

    reasons: tuple[str, ...]
    masks: tuple[BoolArray, ...]

    def counts(self, nodes: BoolArray) -> dict[str, int]:
        """How many of `nodes` fail each check."""
        return {
            reason: int(np.count_nonzero(mask & nodes))
            for reason, mask in zip(self.reasons, self.masks, strict=True)
        }


class NodeResourcesFit:
    name: ClassVar[str] = "NodeResourcesFit"

    def __init__(self, args: NodeResourcesFitArgs | None = None) -> None:
        args = args or NodeResourcesFitArgs()
        self.args = args
        for index, group in enumerate(args.ignored_resource_groups):
            if "/" in group:
                raise ConfigError(
                    f"ignoredResourceGroups[{index}]",
                    f"a resource group is the part before '/', so it cannot contain one "
                    f"(got {group!r})",
                )
        self._ignored = frozenset(args.ignored_resources)
        self._ignored_groups = frozenset(args.ignored_resource_groups)
        strategy = args.scoring_strategy
        self._strategy = strategy.type
        # kube scores only these; any other configured name has nothing to score against.
        self._scored = tuple(
            (item.name, item.weight, is_scalar(item.name))
            for item in strategy.resources
            if item.name in _FIRST or is_scalar(item.name)
        )
        shape = strategy.requested_to_capacity_ratio
        points = shape.shape if shape is not None else []
        self._utilization = np.asarray([point.utilization for point in points], np.int64)
        self._shape_score = np.asarray([point.score * _SHAPE_SCALE for point in points], np.int64)

    def pre_filter(self, state: CycleState, pod: PodInfo, cluster: ClusterView) -> Status:
        state.write(_REQUEST_KEY, self._request(pod))
        return Status.success()

    def _request(self, pod: PodInfo) -> Request:
        """What Filter checks: requested resources, less those ignored (extended only)."""
        checked = [(name, pod.requests.get(name, 0)) for name in _FIRST]
        checked += sorted(
            (name, amount)
            for name, amount in pod.requests.items()
            if name not in _FIRST and not self._ignores(name)
        )
        return tuple((name, amount) for name, amount in checked if amount > 0)

    def _ignores(self, resource: str) -> bool:
        if not is_extended(resource):
            return False
        return resource in self._ignored or resource.split("/", 1)[0] in self._ignored_groups

    def filter(
        self, state: CycleState, pod: PodInfo, cluster: ClusterView, candidates: BoolArray
    ) -> FilterResult:
        request: Request | None = state.data.get(_REQUEST_KEY)
        if request is None:
            request = self._request(pod)
        nodes = cluster.nodes
        reasons = [TOO_MANY_PODS]
        masks = [nodes.pod_count >= nodes.allocatable(PODS)]
        for name, amount in request:
            reasons.append(f"Insufficient {name}")
            masks.append(nodes.free(name) < amount)
        failed = masks[0].copy()
        for mask in masks[1:]:
            failed |= mask
        insufficient = Insufficient(tuple(reasons), tuple(masks))
        state.write(INSUFFICIENT_KEY, insufficient)

        def detail() -> tuple[tuple[str, ...], NDArray[np.uint8]]:
            codes = np.zeros(len(failed), np.uint8)
            for code in range(len(masks) - 1, -1, -1):  # the first failing check wins
                codes[masks[code]] = code
            return insufficient.reasons, codes

        return FilterResult(~failed, detail=detail)

    def score(
        self, state: CycleState, pod: PodInfo, cluster: ClusterView, feasible: BoolArray
    ) -> ScoreArray:
        nodes = cluster.nodes
        # cpu and memory are scored with kube's non-zero defaults; other resources as
        # requested, and an extended one the pod does not request is not scored at all.
        scored = []
        for name, weight, scalar in self._scored:
            amount = pod.non_zero_requests.get(name, pod.requests.get(name, 0))
            if amount or not scalar:
                scored.append((name, weight, nodes.non_zero_requested(name) + amount))
        if self._strategy == "RequestedToCapacityRatio":
            return self._ratio_scores(nodes, scored)
        total = np.zeros(nodes.size, np.int64)
        for name, weight, requested in scored:
            capacity, divisor = _capacity(nodes, name)
            if self._strategy == "LeastAllocated":
                part = capacity - requested
                np.maximum(part, 0, out=part)
            else:
                part = np.minimum(requested, capacity)
            part *= MAX_NODE_SCORE
            part //= divisor  # 0 where the node lacks the resource
            if weight != 1:
                part *= weight
            total += part
        return total // _weight_sum(nodes, tuple((name, weight) for name, weight, _ in scored))

    def _ratio_scores(
        self, nodes: NodeTable, scored: list[tuple[str, int, NDArray[np.int64]]]
    ) -> ScoreArray:
        total = np.zeros(nodes.size, np.int64)
        weights = np.zeros(nodes.size, np.int64)
        for name, weight, requested in scored:
            capacity = nodes.allocatable(name)
            scores = broken_linear(requested, capacity, self._utilization, self._shape_score)
            # Only resources the node has and that score above 0 enter the mean.
            counted = (capacity > 0) & (scores > 0)
            total += scores * counted * weight
            weights += counted * weight
        # math.Round(total / weights), for non-negative numbers.
        return (2 * total + weights) // np.maximum(2 * weights, 1)

    def normalize(self, scores: ScoreArray, feasible: BoolArray) -> ScoreArray:
        return scores  # already 0-100


def _capacity(nodes: NodeTable, resource: str) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Allocatable, and the divisor the scores use: allocatable, but 1 where it is 0 (the
    dividend is then 0 too, so a node without the resource scores 0 for it)."""

    def build() -> NDArray[np.int64]:
        return np.maximum(nodes.allocatable(resource), 1)

    return nodes.allocatable(resource), nodes.memo(ALLOCATABLE, ("divisor", resource), build)


def _weight_sum(nodes: NodeTable, scored: tuple[tuple[str, int], ...]) -> int | NDArray[np.int64]:
    """Per node, the weights of the scored resources it has (at least 1); a plain int when
    every node has them all, which divides faster."""

    def build() -> int | NDArray[np.int64]:
        weights = np.zeros(nodes.size, np.int64)
        for name, weight in scored:
            weights += (nodes.allocatable(name) > 0) * weight
        np.maximum(weights, 1, out=weights)
        if nodes.size and (weights == weights[0]).all():
            return int(weights[0])
        return weights

    return nodes.memo(ALLOCATABLE, ("weights", scored), build)
