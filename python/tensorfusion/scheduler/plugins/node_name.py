"""NodeName: a pod that names its node (spec.nodeName) fits that node only."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from tensorfusion.scheduler.framework import (
    BoolArray,
    ClusterView,
    CycleState,
    FilterResult,
    Status,
)
from tensorfusion.scheduler.pod_info import PodInfo

REASON = "node(s) didn't match the requested node name"


class NodeName:
    name: ClassVar[str] = "NodeName"

    def pre_filter(self, state: CycleState, pod: PodInfo, cluster: ClusterView) -> Status:
        return Status.success() if pod.node_name else Status.skip()

    def filter(
        self, state: CycleState, pod: PodInfo, cluster: ClusterView, candidates: BoolArray
    ) -> FilterResult:
        passed = np.zeros(len(candidates), np.bool_)
        index = cluster.nodes.index_of.get(pod.node_name or "")
        if index is not None:
            passed[index] = True
        return FilterResult(passed, (REASON,))
