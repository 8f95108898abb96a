"""GPUPool: a set of GPU nodes with one capacity, oversubscription, provisioning and QoS
policy. The same spec is the `specTemplate` of each pool of a TensorFusionCluster."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, ClassVar, Literal

from pydantic import Field, model_validator

from tensorfusion.api.advice import OptionalCount, Text, at_least, between, wanted
from tensorfusion.api.base import ApiModel, TensorFusionObject, field_problem, field_problems
from tensorfusion.api.common import (
    Condition,
    GPUOrCPUResource,
    NodeSelector,
    NodeSelectorRequirement,
    QoSLevel,
    Taint,
)
from tensorfusion.api.component_config import ComponentConfig, ComponentStatus
from tensorfusion.api.cron import CronSchedule
from tensorfusion.api.defrag import Defrag
from tensorfusion.api.duration import Duration
from tensorfusion.api.isolation import IsolationMode, IsolationModeRule
from tensorfusion.api.quantity import NonNegativeQuantity, QuantityText

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
    def _within_max(self) -> CapacityConfig:
        # minResources is the least total capacity and warmResources the free capacity kept
        # ready; both live under the maxResources cap, but neither bounds the other.
        high = self.max_resources or GPUOrCPUResource()
        problems = []
        for low_name, low in (
            ("minResources", self.min_resources),
            ("warmResources", self.warm_resources),
        ):
            for dim in ("tflops", "vram", "cpu", "memory"):
                lo, hi = getattr(low, dim, None), getattr(high, dim)
                if lo is not None and hi is not None and lo > hi:
                    problems.append(
                        (f"{low_name}.{dim}", f"must be <= maxResources.{dim} ({lo} > {hi})")
                    )
        if problems:
            raise field_problems(problems)
        return self


class GroupKindName(ApiModel):
    group: Text
    kind: Text
    name: Text
    version: str | None = None


CAPACITY_CAPPED_CONDITION = "CapacityCapped"
"""The GPUPool condition saying that maxResources or the daily budget holds nodes back (node
provisioning writes it; the allocation tables report it)."""


class PeriodicalBudget(ApiModel):
    """Spending caps in dollars. budgetPerDay is enforced: no new VM is provisioned that would
    take the pool's cost per hour x 24 past it (AlertAndTerminateVM terminates nothing: new
    VMs are held and the alert fires); the month and quarter caps are kept, not checked."""

    budget_per_day: QuantityText = Field(default="100", alias="budgetPerDay")
    budget_per_month: QuantityText = Field(default="1000", alias="budgetPerMonth")
    budget_per_quarter: QuantityText = Field(default="3000", alias="budgetPerQuarter")
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
    batch_percentage: Annotated[int, at_least(1, ": no node would ever be updated")] = Field(
        default=100, ge=0, le=100, alias="batchPercentage"
    )
    batch_interval: Duration = Field(default="1s", alias="batchInterval")
    max_duration: Duration = Field(default="10m", alias="maxDuration")
    auto_update_client: bool | None = Field(default=None, alias="autoUpdateClient")
    auto_update_worker: bool | None = Field(default=None, alias="autoUpdateWorker")
    auto_update_hypervisor: bool | None = Field(default=None, alias="autoUpdateHypervisor")
    maintenance_window: MaintenanceWindow = Field(
        default_factory=MaintenanceWindow, alias="maintenanceWindow"
    )


class NodeCompaction(ApiModel):
    period: Duration = "5m"
    defrag: Defrag | None = None


class NodeManagerConfig(ApiModel):
    provisioning_mode: ProvisioningMode = Field(default="AutoSelect", alias="provisioningMode")
    default_vendor: str = Field(default="NVIDIA", alias="defaultVendor")
    default_isolation_mode: IsolationMode = Field(default="soft", alias="defaultIsolationMode")
    isolation_mode_rules: list[IsolationModeRule] = Field(
        default_factory=list, alias="isolationModeRules"
    )
    node_selector: NodeSelector | None = Field(default=None, alias="nodeSelector")
    multi_vendor_node_selector: dict[str, NodeSelector] = Field(
        default_factory=dict, alias="multiVendorNodeSelector"
    )
    """Per GPU vendor, the existing nodes that have that vendor's GPUs."""
    node_provisioner: NodeProvisioner | None = Field(default=None, alias="nodeProvisioner")
    node_compaction: NodeCompaction | None = Field(default=None, alias="nodeCompaction")
    node_pool_rolling_update_policy: NodeRollingUpdatePolicy | None = Field(
        default=None, alias="nodePoolRollingUpdatePolicy"
    )

    def remarks(self) -> Iterator[tuple[str, str]]:
        if self.node_selector is not None and self.node_provisioner is not None:
            used = "nodeSelector" if self.provisioning_mode == "AutoSelect" else "nodeProvisioner"
            yield (
                "nodeSelector",
                "nodeSelector (existing nodes) and nodeProvisioner (managed nodes) are both "
                f"given: provisioningMode {self.provisioning_mode} uses only {used}",
            )
        if self.provisioning_mode == "Karpenter" and (
            self.node_provisioner is None or self.node_provisioner.karpenter_node_class_ref is None
        ):
            yield (
                "nodeProvisioner.karpenterNodeClassRef",
                "missing: provisioningMode Karpenter provisions no node without it",
            )


class QosDefinition(ApiModel):
    name: Annotated[QoSLevel | None, wanted("the definition applies to no QoS level")] = None
    description: str = ""
    priority: Annotated[int | None, between(1, 100)] = None


class QosPricingUnit(ApiModel):
    per_fp16_tflops_per_hour: str = Field(default="$0.0069228", alias="perFP16TFlopsPerHour")
    per_gb_of_vram_per_hour: str = Field(default="$0.01548", alias="perGBOfVRAMPerHour")


class QosPricing(ApiModel):
    qos: Annotated[QoSLevel | None, wanted("the price applies to no QoS level")] = None
    requests: QosPricingUnit = Field(default_factory=QosPricingUnit)
    limits_over_requests: str = Field(default="1", alias="limitsOverRequests")


class QosConfig(ApiModel):
    definitions: list[QosDefinition] = Field(default_factory=list)
    default_qos: QoSLevel | None = Field(default=None, alias="defaultQoS")
    pricing: list[QosPricing] = Field(default_factory=list)
    eviction_protection_price_ratio: str = Field(
        default="1.2", alias="evictionProtectionPriceRatio"
    )


class GPUPoolSpec(ApiModel):
    default_using_local_gpu: bool | None = Field(default=None, alias="defaultUsingLocalGPU")
    capacity_config: CapacityConfig = Field(default_factory=CapacityConfig, alias="capacityConfig")
    node_manager_config: NodeManagerConfig = Field(
        default_factory=NodeManagerConfig, alias="nodeManagerConfig"
    )
    qos_config: QosConfig | None = Field(default=None, alias="qosConfig")
    component_config: ComponentConfig | None = Field(default=None, alias="componentConfig")
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
    virtual_available_tflops: NonNegativeQuantity | None = Field(
        default=None, alias="virtualAvailableTFlops"
    )
    virtual_available_vram: NonNegativeQuantity | None = Field(
        default=None, alias="virtualAvailableVRAM"
    )
    conditions: list[Condition] = Field(default_factory=list)


class GPUPoolStatus(CapacityStatus):
    report_unknown_fields: ClassVar[bool] = False

    phase: PoolPhase = "Pending"
    cluster: str | None = None
    total_nodes: OptionalCount = Field(default=None, alias="totalNodes")
    total_gpus: OptionalCount = Field(default=None, alias="totalGPUs")
    ready_nodes: OptionalCount = Field(default=None, alias="readyNodes")
    not_ready_nodes: OptionalCount = Field(default=None, alias="notReadyNodes")
    running_apps_cnt: OptionalCount = Field(default=None, alias="runningAppsCnt")
    provisioning_phase: Literal["None", "Initializing", "Provisioning", "Completed"] = Field(
        default="None", alias="provisioningPhase"
    )
    component_status: ComponentStatus | None = Field(default=None, alias="componentStatus")
    last_compaction_time: str | None = Field(default=None, alias="lastCompactionTime")
    last_defrag_time: str | None = Field(default=None, alias="lastDefragTime")
    budget_exceeded: str = Field(default="", alias="budgetExceeded")
    cost_per_hour: str | None = Field(default=None, alias="costPerHour")
    """Dollars per hour of the nodes provisioned for the pool, a decimal string: an estimate
    at on-demand prices (spot capacity costs less)."""
    potential_savings_per_month: str | None = Field(default=None, alias="potentialSavingsPerMonth")
    saved_costs_per_month: str | None = Field(default=None, alias="savedCostsPerMonth")


class GPUPool(TensorFusionObject):
    kind: Literal["GPUPool"]
    spec: GPUPoolSpec = Field(default_factory=GPUPoolSpec)
    status: GPUPoolStatus | None = None
