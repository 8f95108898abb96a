"""Vertical autoscaling of a workload's GPU resources: recommendations from usage history
(autoSetResources), schedules (cronScalingRules) and an external scaler. A workload carries
it as `autoScalingConfig`; a SchedulingConfigTemplate applies it to matching workloads."""

from __future__ import annotations

from pydantic import Field

from tensorfusion.api.base import ApiModel
from tensorfusion.api.common import GPUResourcePair, LabelSelector


class AutoSetResources(ApiModel):
    """Percentiles, ratios and periods are kept as upstream writes them (strings)."""

    enable: bool | None = None
    target_resource: str | None = Field(default=None, alias="targetResource")
    history_data_period: str | None = Field(default=None, alias="historyDataPeriod")
    initial_delay_period: str | None = Field(default=None, alias="initialDelayPeriod")
    interval: str | None = None
    update_threshold: str | None = Field(default=None, alias="updateThreshold")
    margin_fraction: str | None = Field(default=None, alias="marginFraction")
    target_compute_percentile: str | None = Field(default=None, alias="targetComputePercentile")
    lower_bound_compute_percentile: str | None = Field(
        default=None, alias="lowerBoundComputePercentile"
    )
    upper_bound_compute_percentile: str | None = Field(
        default=None, alias="upperBoundComputePercentile"
    )
    target_vram_percentile: str | None = Field(default=None, alias="targetVRAMPercentile")
    lower_bound_vram_percentile: str | None = Field(default=None, alias="lowerBoundVRAMPercentile")
    upper_bound_vram_percentile: str | None = Field(default=None, alias="upperBoundVRAMPercentile")
    min_compute_resources_ratio: str | None = Field(default=None, alias="minComputeResourcesRatio")
    max_compute_resources_ratio: str | None = Field(default=None, alias="maxComputeResourcesRatio")
    min_vram_resources_ratio: str | None = Field(default=None, alias="minVRAMResourcesRatio")
    max_vram_resources_ratio: str | None = Field(default=None, alias="maxVRAMResourcesRatio")


class CronScalingRule(ApiModel):
    """Between `start` and `end` (cron schedules) the workload gets `desiredResources`."""

    name: str | None = None
    enable: bool | None = None
    start: str | None = None
    end: str | None = None
    desired_resources: GPUResourcePair | None = Field(default=None, alias="desiredResources")


class SecretRef(ApiModel):
    name: str | None = None
    namespace: str | None = None


class ExternalScaler(ApiModel):
    enable: bool | None = None
    url: str | None = None
    api_key_secret_ref: SecretRef | None = Field(default=None, alias="apiKeySecretRef")
    initial_delay_period: str | None = Field(default=None, alias="initialDelayPeriod")
    interval: str | None = None


class AutoScalingConfig(ApiModel):
    auto_set_resources: AutoSetResources | None = Field(default=None, alias="autoSetResources")
    cron_scaling_rules: list[CronScalingRule] = Field(
        default_factory=list, alias="cronScalingRules"
    )
    external_scaler: ExternalScaler | None = Field(default=None, alias="externalScaler")


class VerticalScalingRule(ApiModel):
    """A template's autoscaling for the workloads its selector matches."""

    name: str | None = None
    selector: LabelSelector | None = None
    auto_scaling: AutoScalingConfig | None = Field(default=None, alias="autoScaling")
