"""TaintToleration: a node with a NoSchedule or NoExecute taint the pod does not tolerate is
rejected (the reason names the node's first such taint); among the rest, nodes with fewer
untolerated PreferNoSchedule taints score higher.

The table's distinct taints are few, so tolerations are matched against those once, and the
per-node answer is a gather over the table's taint positions, cached per set of untolerated
taints (pods of one controller share it)."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

from tensorfusion.scheduler.framework import (
    MAX_NODE_SCORE,
    BoolArray,
    ClusterView,
    CycleState,
    FilterResult,
    ScoreArray,
    normalize_reverse,
)
from tensorfusion.scheduler.node_table import ABSENT, TAINTS, NodeTable
from tensorfusion.scheduler.plugins.taints import HARD_EFFECTS, Toleration, tolerated
from tensorfusion.scheduler.pod_info import PodInfo

_MAX_CODES = 256
"""FilterResult codes are uint8; beyond that many distinct reasons, one reason says it all."""
_ANY_TAINT = "node(s) had untolerated taint"
_SOFT_EFFECTS = frozenset({"PreferNoSchedule"})


def _untolerated(
    nodes: NodeTable, tolerations: tuple[Toleration, ...], effects: frozenset[str]
) -> tuple[int, ...]:
    """Rows (in the table's taint columns) of the taints with one of `effects` that no
    toleration covers."""
    taints = nodes.taint_columns().taints
    return tuple(
        row
        for row, taint in enumerate(taints)
        if taint.effect in effects and not tolerated(tolerations, taint)
    )


def _first_untolerated(nodes: NodeTable, rows: tuple[int, ...]) -> FilterResult:
    columns = nodes.taint_columns()
    positions = columns.positions[list(rows)]
    passed = np.asarray((positions == ABSENT).all(axis=0))
    passed.flags.writeable = False

    def detail() -> tuple[tuple[str, ...], NDArray[np.uint8]]:
        taints = columns.taints
        row_reasons = [f"{_ANY_TAINT} {taints[row]}" for row in rows]
        codes = {text: code for code, text in enumerate(dict.fromkeys(row_reasons))}
        if not rows or len(codes) > _MAX_CODES:
            return (_ANY_TAINT,), np.zeros(len(passed), np.uint8)
        code_of_row = np.asarray([codes[text] for text in row_reasons], np.uint8)
        # The node's first listed taint among the untolerated ones, as kube reports it.
        return tuple(codes), code_of_row[positions.argmin(axis=0)]

    return FilterResult(passed, detail=detail)


class TaintToleration:
    name: ClassVar[str] = "TaintToleration"

    def filter(
        self, state: CycleState, pod: PodInfo, cluster: ClusterView, candidates: BoolArray
    ) -> FilterResult:
        nodes = cluster.nodes
        rows = _untolerated(nodes, pod.tolerations, HARD_EFFECTS)
        return nodes.memo(TAINTS, ("filter", rows), lambda: _first_untolerated(nodes, rows))

    def score(
        self, state: CycleState, pod: PodInfo, cluster: ClusterView, feasible: BoolArray
    ) -> ScoreArray:
        nodes = cluster.nodes
        # Only tolerations that can cover a PreferNoSchedule taint count here, as in kube.
        soft = tuple(item for item in pod.tolerations if item.effect in ("", "PreferNoSchedule"))
        rows = _untolerated(nodes, soft, _SOFT_EFFECTS)

        def build() -> ScoreArray:
            positions = nodes.taint_columns().positions[list(rows)]
            return np.asarray((positions != ABSENT).sum(axis=0), np.int64)

        return nodes.memo(TAINTS, ("prefer", rows), build)

    def normalize(self, scores: ScoreArray, feasible: BoolArray) -> ScoreArray:
        if not scores.any():  # no untolerated PreferNoSchedule taint: every node is best
            return np.full_like(scores, MAX_NODE_SCORE)
        return normalize_reverse(scores, feasible)
