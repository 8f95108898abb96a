"""SchedulingConfigTemplate: how a pool places workloads (and, later, scales them)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from tensorfusion.api.advice import OptionalText, wanted
from tensorfusion.api.autoscaling import VerticalScalingRule
from tensorfusion.api.base import ApiModel, TensorFusionObject
from tensorfusion.api.common import FreeForm
from tensorfusion.api.hypervisor_tuning import HypervisorScheduling, ReBalancer

PlacementMode = Literal[
    "CompactFirst", "LowLoadFirst", "NodeCompactGPULowLoad", "FragmentationAware"
]
"""Upstream's three modes, and FragmentationAware: the node and GPUs that add the least
expected fragmentation for the pool's recent mix of requests (scheduler/fragmentation.py)."""
DEFAULT_PLACEMENT_MODE: PlacementMode = "CompactFirst"
"""Compact-first is the guide's default: fewer busy nodes, less energy and cost."""


class GPUFilter(ApiModel):
    type: Annotated[OptionalText, wanted("the filter filters nothing")] = None
    params: FreeForm = Field(default_factory=dict)


class PlacementConfig(ApiModel):
    mode: PlacementMode = DEFAULT_PLACEMENT_MODE
    allow_using_local_gpu: bool = Field(default=True, alias="allowUsingLocalGPU")
    gpu_filters: list[GPUFilter] = Field(default_factory=list, alias="gpuFilters")


class SchedulingConfigTemplateSpec(ApiModel):
    placement: PlacementConfig = Field(default_factory=PlacementConfig)
    vertical_scaling_rules: list[VerticalScalingRule] = Field(
        default_factory=list, alias="verticalScalingRules"
    )
    re_balancer: ReBalancer | None = Field(default=None, alias="reBalancer")
    hypervisor: HypervisorScheduling | None = None


class SchedulingConfigTemplate(TensorFusionObject):
    kind: Literal["SchedulingConfigTemplate"]
    spec: SchedulingConfigTemplateSpec = Field(default_factory=SchedulingConfigTemplateSpec)
    status: FreeForm | None = None
