"""UnsupportedFeatures: a pod that relies on something this scheduler does not implement
yet, or whose spec it cannot read, is refused with the field named, rather than placed as
if the field were not there."""

from __future__ import annotations

from typing import ClassVar

from tensorfusion.scheduler.framework import ClusterView, CycleState, Status
from tensorfusion.scheduler.pod_info import PodInfo, UnsupportedFeature

_WHAT = {
    "podAffinity": "pod (anti-)affinity is",
    "podAntiAffinity": "pod (anti-)affinity is",
    "topologySpreadConstraints": "topology spread constraints are",
    "persistentVolumeClaim volumes": "volumes backed by persistent volume claims are",
}


def explain(feature: UnsupportedFeature) -> str:
    what = _WHAT.get(feature.feature, f"{feature.feature} is")
    return (
        f"{feature.path}: {what} not supported by this scheduler yet; "
        "the pod is not placed rather than placed ignoring it"
    )


class UnsupportedFeatures:
    name: ClassVar[str] = "UnsupportedFeatures"

    def pre_filter(self, state: CycleState, pod: PodInfo, cluster: ClusterView) -> Status:
        if not pod.unsupported and not pod.spec_problems:
            return Status.success()
        return Status.unresolvable(
            self.name, *pod.spec_problems, *(explain(item) for item in pod.unsupported)
        )
