"""NodePorts: a pod's host ports must be free on the node: a (protocol, port) already bound
there conflicts when either side binds every address (0.0.0.0) or both bind the same one."""

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
from tensorfusion.scheduler.plugins.host_ports import ip_conflicts
from tensorfusion.scheduler.pod_info import PodInfo

REASON = "node(s) didn't have free ports for the requested pod ports"


class NodePorts:
    name: ClassVar[str] = "NodePorts"

    def pre_filter(self, state: CycleState, pod: PodInfo, cluster: ClusterView) -> Status:
        return Status.success() if pod.host_ports else Status.skip()

    def filter(
        self, state: CycleState, pod: PodInfo, cluster: ClusterView, candidates: BoolArray
    ) -> FilterResult:
        passed = np.ones(len(candidates), np.bool_)
        for wanted in pod.host_ports:
            # Only the nodes that bind this (protocol, port) at all are looked at.
            users = cluster.nodes.port_users(wanted.protocol, wanted.port)
            for index, addresses in users.items():
                if ip_conflicts(wanted.host_ip, addresses.keys()):
                    passed[index] = False
        return FilterResult(passed, (REASON,))
