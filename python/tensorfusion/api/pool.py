"""GPUPool: a set of GPU nodes with one capacity, oversubscription, provisioning and QoS
policy. The same spec is the `specTemplate` of each pool of a TensorFusionCluster."""

from __future__ import annotations

import itertools
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from tensorfusion.api.base import ApiModel, TensorFusionObject, field_problem
from tensorfusion.api.common import (
    Condition,
    FreeForm,
    GPUOrCPUResource,
    NodeSelector,
    NodeSelectorRequirement,
    QoSLevel,
    Taint,
)
from tensorfusion.api.cron import CronSchedule
from tensorfusion.api.duration import Duration
from tensorfusion.api.quantity import NonNegativeQuantity

ProvisioningMode = Literal["Provisioned", "AutoSelect", "Karpenter"]
CAPACITY_TYPE_KEY = "karpenter.sh/capacity-type"
CAPACITY_TYPE_VALUES = ("on-demand", "spot", "reserved")


class Oversubscription(ApiModel):
    """How far limits may exceed the physical GPU.

    Virtual TFLOPS = physical x tflopsOversellRatio / 100; virtual VRAM = physical VRAM
    expanded by the given percentages into host memory and disk."""

    tflops_oversell_ratio: int = Field(default=500, ge=100, le=100000, alias="tflopsOversellRatio")
    vram_expand_to_host_mem: int = Field(default=50, ge=0, le=100, alias="vramExpandToHostMem")
    vram_expand_to_host_disk: int = Field(default=70, ge=0, le=100, alias="vramExpandToHostDisk")


class CapacityConfig(ApiModel):
    min_resources: GPUOrCPUResource | None = Field(default=None, alias="minResources")
    max_resources: GPUOrCPUResource | None = Field(default=None, alias="maxResources")
    warm_resources: GPUOrCPUResource | None = Field(default=None, alias="warmResources")
    oversubscription: Oversubscription = Field(default_factory=Oversubscription)

    @model_validator(mode="after")
    def _bounds_ordered(self) -> CapacityConfig:
        # min <= warm <= max for every dimension that both sides give.
        ladder = [
            ("minResources", self.min_resources),
            ("warmResources", self.warm_resources),
            ("maxResources", self.max_resources),
        ]
        present = [(name, bound) for name, bound in ladder if bound is not None]
        for (low_name, low), (high_name, high) in itertools.pairwise(present):
            for dim in ("tflops", "vram", "cpu", "memory"):
                lo, hi = getattr(low, dim), getattr(high, dim)
                if lo is not None and hi is not None and lo > hi:
                    raise field_problem(
                        f"{low_name}.{dim}", f"must be <= {high_name}.{dim} ({lo} > {hi})"
                    )
        return self


class GroupKindName(ApiModel):
    group: str = Field(min_length=1)
    kind: str = Field(min_length=1)
    name: str = Field(min_length=1)
    version: str | None = None


class PeriodicalBudget(ApiModel):
    """Spending caps in dollars; a new VM that would exceed one is not created."""

    budget_per_day: NonNegativeQuantity | None = Field(default=None, alias="budgetPerDay")
    budget_per_month: NonNegativeQuantity | None = Field(default=None, alias="budgetPerMonth")
    budget_per_quarter: NonNegativeQuantity | None = Field(default=None, alias="budgetPerQuarter")
    budget_exceed_strategy: Literal["AlertOnly", "AlertAndTerminateVM"] = Field(
        default="AlertOnly", alias="budgetExceedStrategy"
    )


class NodeProvisioner(ApiModel):
    node_class: str | None = Field(default=None, alias="nodeClass")
    karpenter_node_class_ref: GroupKindName | None = Field(
        default=None, alias="karpenterNodeClassRef"
    )
    gpu_requirements: list[NodeSelectorRequirement] = Field(
        default_factory=list, alias="gpuRequirements"
    )
    gpu_taints: list[Taint] = Field(default_factory=list, alias="gpuTaints")
    gpu_node_labels: dict[str, str] = Field(default_factory=dict, alias="gpuNodeLabels")
    gpu_node_annotations: dict[str, str] = Field(default_factory=dict, alias="gpuNodeAnnotations")
    cpu_requirements: list[NodeSelectorRequirement] = Field(
        default_factory=list, alias="cpuRequirements"
    )
    cpu_taints: list[Taint] = Field(default_factory=list, alias="cpuTaints")
    cpu_node_labels: dict[str, str] = Field(default_factory=dict, alias="cpuNodeLabels")
    budget: PeriodicalBudget | None = None

    @model_validator(mode="after")
    def _capacity_types_known(self) -> NodeProvisioner:
        for field, requirements in (
            ("gpuRequirements", self.gpu_requirements),
            ("cpuRequirements", self.cpu_requirements),
        ):
            for index, req in enumerate(requirements):
                unknown = [v for v in req.values if v not in CAPACITY_TYPE_VALUES]
                if req.key == CAPACITY_TYPE_KEY and unknown:
                    raise field_problem(
                        f"{field}[{index}].values",
                        f"capacity type {unknown[0]!r} is not one of "
                        f"{', '.join(CAPACITY_TYPE_VALUES)}",
                    )
        return self


class MaintenanceWindow(ApiModel):
    includes: list[CronSchedule] = Field(default_factory=list)


class NodeRollingUpdatePolicy(ApiModel):
    """Rolling update of the pool's node components: batches, pauses, window, time cap."""

    auto_update: bool = Field(default=True, alias="autoUpdate")
    batch_percentage: int = Field(default=100, ge=1, le=100, alias="batchPercentage")
    batch_interval: Duration = Field(default="1s", alias="batchInterval")
    max_duration: Duration = Field(default="10m", alias="maxDuration")
    maintenance_window: MaintenanceWindow = Field(
        default_factory=MaintenanceWindow, alias="maintenanceWindow"
    )


class NodeCompaction(ApiModel):
    period: Duration = "5m"


class NodeManagerConfig(ApiModel):
    provisioning_mode: ProvisioningMode = Field(default="AutoSelect", alias="provisioningMode")
    default_vendor: str | None = Field(default=None, alias="defaultVendor")
    node_selector: NodeSelector | None = Field(default=None, alias="nodeSelector")
    node_provisioner: NodeProvisioner | None = Field(default=None, alias="nodeProvisioner")
    node_compaction: NodeCompaction | None = Field(default=None, alias="nodeCompaction")
    node_pool_rolling_update_policy: NodeRollingUpdatePolicy | None = Field(
        default=None, alias="nodePoolRollingUpdatePolicy"
    )

    @model_validator(mode="after")
    def _mode_has_its_parts(self) -> NodeManagerConfig:
        if self.node_selector is not None and self.node_provisioner is not None:
            raise field_problem(
                "nodeSelector",
                "nodeSelector (existing nodes) and nodeProvisioner (managed nodes) are "
                "exclusive: give one",
            )
        if self.provisioning_mode == "Karpenter" and (
            self.node_provisioner is None or self.node_provisioner.karpenter_node_class_ref is None
        ):
            raise field_problem(
                "nodeProvisioner.karpenterNodeClassRef",
                "required when provisioningMode is Karpenter",
            )
        return self


class QosDefinition(ApiModel):
    name: QoSLevel
    description: str = ""
    priority: int | None = Field(default=None, ge=1, le=100)


class QosPricingUnit(ApiModel):
    per_fp16_tflops_per_hour: str | None = Field(default=None, alias="perFP16TFlopsPerHour")
    per_gb_of_vram_per_hour: str | None = Field(default=None, alias="perGBOfVRAMPerHour")


class QosPricing(ApiModel):
    qos: QoSLevel
    requests: QosPricingUnit = Field(default_factory=QosPricingUnit)
    limits_over_requests: str | None = Field(default=None, alias="limitsOverRequests")


class QosConfig(ApiModel):
    definitions: list[QosDefinition] = Field(default_factory=list)
    default_qos: QoSLevel | None = Field(default=None, alias="defaultQoS")
    pricing: list[QosPricing] = Field(default_factory=list)
    eviction_protection_price_ratio: str | None = Field(
        default=None, alias="evictionProtectionPriceRatio"
    )


class GPUPoolSpec(ApiModel):
    default_using_local_gpu: bool | None = Field(default=None, alias="defaultUsingLocalGPU")
    capacity_config: CapacityConfig = Field(default_factory=CapacityConfig, alias="capacityConfig")
    node_manager_config: NodeManagerConfig = Field(
        default_factory=NodeManagerConfig, alias="nodeManagerConfig"
    )
    qos_config: QosConfig | None = Field(default=None, alias="qosConfig")
    component_config: FreeForm | None = Field(default=None, alias="componentConfig")
    scheduling_config_template: str | None = Field(default=None, alias="schedulingConfigTemplate")


PoolPhase = Literal["Pending", "Running", "Updating", "Destroying", "Unknown"]


class CapacityStatus(ApiModel):
    """Totals written by reconcilers on pools, nodes and clusters."""

    total_tflops: NonNegativeQuantity | None = Field(default=None, alias="totalTFlops")
    total_vram: NonNegativeQuantity | None = Field(default=None, alias="totalVRAM")
    virtual_tflops: NonNegativeQuantity | None = Field(default=None, alias="virtualTFlops")
    virtual_vram: NonNegativeQuantity | None = Field(default=None, alias="virtualVRAM")
    available_tflops: NonNegativeQuantity | None = Field(default=None, alias="availableTFlops")
    available_vram: NonNegativeQuantity | None = Field(default=None, alias="availableVRAM")
    conditions: list[Condition] = Field(default_factory=list)


class GPUPoolStatus(CapacityStatus):
    report_unknown_fields: ClassVar[bool] = False

    phase: PoolPhase = "Pending"
    cluster: str | None = None
    total_nodes: int | None = Field(default=None, ge=0, alias="totalNodes")
    total_gpus: int | None = Field(default=None, ge=0, alias="totalGPUs")
    ready_nodes: int | None = Field(default=None, ge=0, alias="readyNodes")
    not_ready_nodes: int | None = Field(default=None, ge=0, alias="notReadyNodes")


class GPUPool(TensorFusionObject):
    kind: Literal["GPUPool"]
    spec: GPUPoolSpec = Field(default_factory=GPUPoolSpec)
    status: GPUPoolStatus | None = None
