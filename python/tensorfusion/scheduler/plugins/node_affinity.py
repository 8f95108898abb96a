"""NodeAffinity: spec.nodeSelector and required node affinity filter nodes; preferred node
affinity scores them (the sum of the weights of the terms a node matches).

Each requirement is evaluated once per distinct label value rather than once per node, and
masks are cached on the node table until labels change, so pods of one controller cost a
dictionary lookup after the first."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import numpy as np

from tensorfusion.scheduler.framework import (
    BoolArray,
    ClusterView,
    CycleState,
    FilterResult,
    ScoreArray,
    Status,
    normalize_max,
)
from tensorfusion.scheduler.node_table import LABELS, NodeTable
from tensorfusion.scheduler.plugins.node_selection import (
    LabelRequirement,
    NameRequirement,
    NodeSelectorTerm,
    PreferredTerm,
)
from tensorfusion.scheduler.pod_info import PodInfo

REASON = "node(s) didn't match Pod's node affinity/selector"


def requirement_mask(nodes: NodeTable, requirement: LabelRequirement) -> BoolArray:
    def build() -> BoolArray:
        column = nodes.label_column(requirement.key)
        # One verdict per distinct value, plus a last one for nodes without the label
        # (code -1 picks it).
        verdicts = [requirement.matches(value) for value in column.values]
        verdicts.append(requirement.matches(None))
        return np.asarray(verdicts, np.bool_)[column.codes]

    return nodes.memo(LABELS, requirement, build)


def name_mask(nodes: NodeTable, requirement: NameRequirement) -> BoolArray:
    mask = np.full(nodes.size, requirement.negated, np.bool_)
    index = nodes.index_of.get(requirement.name)
    if index is not None:
        mask[index] = not requirement.negated
    return mask


def term_mask(nodes: NodeTable, term: NodeSelectorTerm) -> BoolArray:
    mask = np.full(nodes.size, not term.empty, np.bool_)
    for requirement in term.expressions:
        mask &= requirement_mask(nodes, requirement)
    for field in term.fields:
        mask &= name_mask(nodes, field)
    return mask


def selected_nodes(
    nodes: NodeTable,
    node_selector: Mapping[str, str],
    required: tuple[NodeSelectorTerm, ...] | None,
) -> BoolArray:
    """Nodes matching the selector (every key=value) and, if any, one required term."""
    selector = tuple(sorted(node_selector.items()))

    def build() -> BoolArray:
        mask = np.ones(nodes.size, np.bool_)
        for key, value in selector:
            mask &= requirement_mask(nodes, LabelRequirement(key, "In", frozenset((value,))))
        if required is not None:
            matched = np.zeros(nodes.size, np.bool_)
            for term in required:
                matched |= term_mask(nodes, term)
            mask &= matched
        return mask

    return nodes.memo(LABELS, ("selected", selector, required), build)


def preference_scores(nodes: NodeTable, preferred: tuple[PreferredTerm, ...]) -> ScoreArray:
    def build() -> ScoreArray:
        scores = np.zeros(nodes.size, np.int64)
        for term in preferred:
            scores += term.weight * term_mask(nodes, term.term)
        return scores

    return nodes.memo(LABELS, ("preferred", preferred), build)


class NodeAffinity:
    name: ClassVar[str] = "NodeAffinity"

    def pre_filter(self, state: CycleState, pod: PodInfo, cluster: ClusterView) -> Status:
        if pod.node_selector or pod.required_terms is not None or pod.preferred_terms:
            return Status.success()
        return Status.skip()

    def filter(
        self, state: CycleState, pod: PodInfo, cluster: ClusterView, candidates: BoolArray
    ) -> FilterResult:
        passed = selected_nodes(cluster.nodes, pod.node_selector, pod.required_terms)
        return FilterResult(passed, (REASON,))

    def score(
        self, state: CycleState, pod: PodInfo, cluster: ClusterView, feasible: BoolArray
    ) -> ScoreArray:
        return preference_scores(cluster.nodes, pod.preferred_terms)

    def normalize(self, scores: ScoreArray, feasible: BoolArray) -> ScoreArray:
        # All zero (no preferred term matches anywhere) is the common case: nothing to scale.
        return normalize_max(scores, feasible) if scores.any() else scores
