"""NodeUnschedulable: cordoned nodes (spec.unschedulable) take no new pods, except pods
that tolerate the `node.kubernetes.io/unschedulable:NoSchedule` taint."""

from __future__ import annotations

from typing import ClassVar

from tensorfusion.scheduler.framework import (
    BoolArray,
    ClusterView,
    CycleState,
    FilterResult,
    Status,
)
from tensorfusion.scheduler.plugins.taints import UNSCHEDULABLE_TAINT_KEY, NodeTaint, tolerated
from tensorfusion.scheduler.pod_info import PodInfo

REASON = "node(s) were unschedulable"
_CORDON = NodeTaint(UNSCHEDULABLE_TAINT_KEY, "", "NoSchedule")


class NodeUnschedulable:
    name: ClassVar[str] = "NodeUnschedulable"

    def pre_filter(self, state: CycleState, pod: PodInfo, cluster: ClusterView) -> Status:
        return Status.skip() if tolerated(pod.tolerations, _CORDON) else Status.success()

    def filter(
        self, state: CycleState, pod: PodInfo, cluster: ClusterView, candidates: BoolArray
    ) -> FilterResult:
        return FilterResult(~cluster.nodes.unschedulable, (REASON,))
