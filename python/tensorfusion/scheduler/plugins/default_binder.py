"""DefaultBinder: hands the decision to the cluster store (a `pods/binding` in Kubernetes, a
row in embedded mode), with the annotations Reserve plugins asked for (`gpu-ids`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import ClassVar

from tensorfusion.errors import StoreError
from tensorfusion.scheduler.framework import (
    BIND_ANNOTATIONS,
    ClusterView,
    Code,
    CycleState,
    Status,
)
from tensorfusion.scheduler.pod_info import PodInfo

Binder = Callable[[PodInfo, str, Mapping[str, str]], None]
"""(pod, node name, annotations to set) -> None; raises StoreError when the bind fails."""


class DefaultBinder:
    name: ClassVar[str] = "DefaultBinder"

    def __init__(self, binder: Binder | None = None) -> None:
        self.binder = binder

    def bind(self, state: CycleState, pod: PodInfo, cluster: ClusterView, node: int) -> Status:
        if self.binder is None:
            return Status(
                Code.ERROR, ("no binder configured: this profile only simulates",), self.name
            )
        try:
            self.binder(pod, cluster.nodes.names[node], state.data.get(BIND_ANNOTATIONS, {}))
        except StoreError as exc:
            return Status(Code.ERROR, (f"binding failed: {exc}",), self.name)
        return Status.success()
