"""`KubeSchedulerConfiguration` (kubescheduler.config.k8s.io/v1) as kube-scheduler reads
it, with typed args for the plugins whose args we interpret."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from tensorfusion.api.base import ApiModel, field_problem, field_problems, first_duplicate
from tensorfusion.api.field_errors import issues_from

SCHEDULER_NAME = "tensor-fusion-scheduler"
SCHEDULER_API_VERSION = "kubescheduler.config.k8s.io/v1"


class GPUResourcesFitArgs(ApiModel):
    max_worker_per_node: int = Field(default=256, ge=1, alias="maxWorkerPerNode")
    vram_weight: float = Field(default=0.7, ge=0, le=1, alias="vramWeight")
    tflops_weight: float = Field(default=0.3, ge=0, le=1, alias="tflopsWeight")

    @model_validator(mode="after")
    def _some_weight(self) -> GPUResourcesFitArgs:
        if self.vram_weight + self.tflops_weight == 0:
            raise field_problem("vramWeight", "vramWeight and tflopsWeight cannot both be 0")
        return self


class GPUNetworkTopologyAwareArgs(ApiModel):
    total_intranet_band_width_gbps: float | None = Field(
        default=None, gt=0, alias="totalIntranetBandWidthGBps"
    )


class ResourceSpec(ApiModel):
    name: str = Field(min_length=1)
    weight: int = Field(default=1, ge=1, le=100)


class UtilizationShapePoint(ApiModel):
    utilization: int = Field(ge=0, le=100)
    score: int = Field(ge=0, le=10)


class RequestedToCapacityRatio(ApiModel):
    shape: list[UtilizationShapePoint] = Field(min_length=1)

    @model_validator(mode="after")
    def _increasing(self) -> RequestedToCapacityRatio:
        for index in range(1, len(self.shape)):
            if self.shape[index].utilization <= self.shape[index - 1].utilization:
                raise field_problem(
                    f"shape[{index}].utilization",
                    "utilization values must be strictly increasing",
                )
        return self


class ScoringStrategy(ApiModel):
    type: Literal["LeastAllocated", "MostAllocated", "RequestedToCapacityRatio"] = "LeastAllocated"
    resources: list[ResourceSpec] = Field(
        default_factory=lambda: [ResourceSpec(name="cpu"), ResourceSpec(name="memory")]
    )
    requested_to_capacity_ratio: RequestedToCapacityRatio | None = Field(
        default=None, alias="requestedToCapacityRatio"
    )

    @model_validator(mode="after")
    def _shape_when_ratio(self) -> ScoringStrategy:
        if self.type == "RequestedToCapacityRatio" and self.requested_to_capacity_ratio is None:
            raise field_problem(
                "requestedToCapacityRatio", "required when type is RequestedToCapacityRatio"
            )
        return self


class NodeResourcesFitArgs(ApiModel):
    ignored_resources: list[str] = Field(default_factory=list, alias="ignoredResources")
    ignored_resource_groups: list[str] = Field(default_factory=list, alias="ignoredResourceGroups")
    scoring_strategy: ScoringStrategy = Field(
        default_factory=ScoringStrategy, alias="scoringStrategy"
    )


PLUGIN_ARGS: dict[str, type[ApiModel]] = {
    "GPUResourcesFit": GPUResourcesFitArgs,
    "GPUNetworkTopologyAware": GPUNetworkTopologyAwareArgs,
    "NodeResourcesFit": NodeResourcesFitArgs,
}


class PluginConfig(ApiModel):
    name: str = Field(min_length=1)
    args: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _args_typed(self) -> PluginConfig:
        model = PLUGIN_ARGS.get(self.name)
        if model is not None:
            try:
                model.model_validate(self.args)
            except ValidationError as exc:
                issues = issues_from(exc, prefix="args")
                raise field_problems([(issue.path, issue.message) for issue in issues]) from None
        return self

    def typed_args(self) -> ApiModel | None:
        """The args as their model, for plugins we interpret; None for others."""
        model = PLUGIN_ARGS.get(self.name)
        return model.model_validate(self.args) if model is not None else None


class KubeSchedulerProfile(ApiModel):
    scheduler_name: str = Field(default="default-scheduler", alias="schedulerName")
    plugins: dict[str, Any] = Field(default_factory=dict)
    plugin_config: list[PluginConfig] = Field(default_factory=list, alias="pluginConfig")
    percentage_of_nodes_to_score: int | None = Field(
        default=None, ge=0, le=100, alias="percentageOfNodesToScore"
    )

    @model_validator(mode="after")
    def _plugin_config_unique(self) -> KubeSchedulerProfile:
        if duplicate := first_duplicate(entry.name for entry in self.plugin_config):
            index, name = duplicate
            raise field_problem(f"pluginConfig[{index}].name", f"duplicate plugin config {name!r}")
        return self


class KubeSchedulerConfiguration(ApiModel):
    api_version: Literal["kubescheduler.config.k8s.io/v1"] = Field(alias="apiVersion")
    kind: Literal["KubeSchedulerConfiguration"]
    profiles: list[KubeSchedulerProfile] = Field(default_factory=list)
    parallelism: int | None = Field(default=None, ge=1)
    percentage_of_nodes_to_score: int | None = Field(
        default=None, ge=0, le=100, alias="percentageOfNodesToScore"
    )
    leader_election: dict[str, Any] | None = Field(default=None, alias="leaderElection")
    client_connection: dict[str, Any] | None = Field(default=None, alias="clientConnection")
    extenders: list[dict[str, Any]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _profile_names_unique(self) -> KubeSchedulerConfiguration:
        if duplicate := first_duplicate(profile.scheduler_name for profile in self.profiles):
            index, name = duplicate
            raise field_problem(
                f"profiles[{index}].schedulerName", f"duplicate scheduler name {name!r}"
            )
        return self
