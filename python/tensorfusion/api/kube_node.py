"""The parts of a core/v1 Node that scheduling reads: labels, whether it takes new pods, its
taints and its capacity. The rest of a Node (addresses, conditions, images) passes through."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from tensorfusion.api.base import ApiModel, TopLevelObject
from tensorfusion.api.common import Taint
from tensorfusion.api.quantity import NonNegativeQuantity


class KubeNodeSpec(ApiModel):
    report_unknown_fields: ClassVar[bool] = False

    unschedulable: bool = False
    taints: list[Taint] = Field(default_factory=list)


class KubeNodeStatus(ApiModel):
    """Resource name (`cpu`, `memory`, `nvidia.com/gpu`, `pods`) to amount."""

    report_unknown_fields: ClassVar[bool] = False

    capacity: dict[str, NonNegativeQuantity] = Field(default_factory=dict)
    allocatable: dict[str, NonNegativeQuantity] = Field(default_factory=dict)


class KubeNode(TopLevelObject):
    """A Kubernetes Node (`apiVersion: v1`, `kind: Node`)."""

    api_version: Literal["v1"] = Field(alias="apiVersion")
    kind: Literal["Node"]
    spec: KubeNodeSpec = Field(default_factory=KubeNodeSpec)
    status: KubeNodeStatus = Field(default_factory=KubeNodeStatus)
