"""Namespaced kinds that describe what workloads ask for: TensorFusionWorkload,
WorkloadProfile, TensorFusionConnection, and the GPUResourceQuota that bounds them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Literal

from pydantic import Field, model_validator

from tensorfusion.api.advice import Count, OptionalCount, Text, between, one_of, wanted
from tensorfusion.api.autoscaling import AutoScalingConfig, CronScalingRule
from tensorfusion.api.base import ApiModel, TensorFusionObject, field_problem
from tensorfusion.api.common import (
    Condition,
    FreeForm,
    GPUResource,
    GPUResourcePair,
    GPUResources,
    QoSLevel,
)
from tensorfusion.api.gang import GangScheduling, GangStatus
from tensorfusion.api.isolation import IsolationMode
from tensorfusion.api.node_affinity import NodeAffinity
from tensorfusion.api.quota_status import GPUResourceQuotaStatus

MAX_GPU_COUNT = 128


class WorkloadProfileSpec(ApiModel):
    """A reusable description of a GPU workload; also the spec of TensorFusionWorkload."""

    replicas: OptionalCount = None
    pool_name: str | None = Field(default=None, alias="poolName")
    resources: GPUResources = Field(default_factory=GPUResources)
    qos: QoSLevel | None = None
    is_local_gpu: bool = Field(default=False, alias="isLocalGPU")
    sidecar_worker: bool = Field(default=False, alias="sidecarWorker")
    isolation: IsolationMode = "soft"
    gpu_model: str | None = Field(default=None, alias="gpuModel")
    gpu_count: int = Field(default=1, ge=1, le=MAX_GPU_COUNT, alias="gpuCount")
    gpu_indices: list[int] = Field(default_factory=list, alias="gpuIndices")
    vendor: str | None = None
    partition_template_id: str | None = Field(default=None, alias="partitionTemplateId")
    auto_scaling_config: AutoScalingConfig | None = Field(default=None, alias="autoScalingConfig")
    gang_scheduling: GangScheduling | None = Field(default=None, alias="gangScheduling")
    node_affinity: NodeAffinity | None = Field(default=None, alias="nodeAffinity")
    worker_pod_template: FreeForm | None = Field(default=None, alias="workerPodTemplate")

    @model_validator(mode="after")
    def _indices_match_count(self) -> WorkloadProfileSpec:
        if self.gpu_indices and len(self.gpu_indices) != self.gpu_count:
            raise field_problem(
                "gpuIndices",
                f"lists {len(self.gpu_indices)} GPUs but gpuCount is {self.gpu_count}",
            )
        return self


class WorkloadProfile(TensorFusionObject):
    kind: Literal["WorkloadProfile"]
    spec: WorkloadProfileSpec = Field(default_factory=WorkloadProfileSpec)
    status: FreeForm | None = None


class WorkloadStatus(ApiModel):
    phase: Literal["Pending", "Running", "Failed", "Unknown"] = "Pending"
    worker_count: Count = Field(default=0, alias="workerCount")
    ready_workers: Count = Field(default=0, alias="readyWorkers")
    pod_template_hash: str | None = Field(default=None, alias="podTemplateHash")
    conditions: list[Condition] = Field(default_factory=list)
    recommendation: GPUResourcePair | None = None
    applied_recommended_replicas: int | None = Field(
        default=None, alias="appliedRecommendedReplicas"
    )
    active_cron_scaling_rule: CronScalingRule | None = Field(
        default=None, alias="activeCronScalingRule"
    )
    gang: GangStatus | None = None


class TensorFusionWorkload(TensorFusionObject):
    kind: Literal["TensorFusionWorkload"]
    spec: WorkloadProfileSpec = Field(default_factory=WorkloadProfileSpec)
    status: WorkloadStatus | None = None


class ConnectionSpec(ApiModel):
    """A client pod's link to a remote worker of a workload."""

    workload_name: Text = Field(alias="workloadName")
    client_pod: Text = Field(alias="clientPod")


class ConnectionStatus(ApiModel):
    phase: Annotated[str, one_of("Pending", "Starting", "Running")]
    connection_url: str = Field(alias="connectionURL")
    worker_name: str = Field(alias="workerName")


class TensorFusionConnection(TensorFusionObject):
    """A connection from a client pod to a worker of a TensorFusionWorkload."""

    kind: Literal["TensorFusionConnection"]
    spec: Annotated[
        ConnectionSpec | None, wanted("the connection names no workload or client pod")
    ] = None
    status: ConnectionStatus | None = None


class QuotaTotal(ApiModel):
    """Namespace-wide bounds, like a ResourceQuota."""

    requests: GPUResource | None = None
    limits: GPUResource | None = None
    max_workers: Count = Field(default=32768, alias="maxWorkers")
    alert_threshold_percent: int = Field(default=95, ge=0, le=100, alias="alertThresholdPercent")


class QuotaSingle(ApiModel):
    """Per-workload bounds and defaults, like a LimitRange."""

    max_requests: GPUResource | None = Field(default=None, alias="maxRequests")
    max_limits: GPUResource | None = Field(default=None, alias="maxLimits")
    max_gpu_count: Annotated[int | None, between(1, MAX_GPU_COUNT)] = Field(
        default=None, alias="maxGPUCount"
    )
    default_requests: GPUResource | None = Field(default=None, alias="defaultRequests")
    default_limits: GPUResource | None = Field(default=None, alias="defaultLimits")


def _above(
    low: GPUResource | None, high: GPUResource | None, low_path: str, high_path: str
) -> Iterator[tuple[str, str]]:
    if low is None or high is None:
        return
    for dim in ("tflops", "vram"):
        lo, hi = getattr(low, dim), getattr(high, dim)
        if lo is not None and hi is not None and lo > hi:
            yield f"{low_path}.{dim}", f"is above {high_path}.{dim} ({lo} > {hi})"


class GPUResourceQuotaSpec(ApiModel):
    total: QuotaTotal = Field(default_factory=QuotaTotal)
    single: QuotaSingle = Field(default_factory=QuotaSingle)

    def remarks(self) -> Iterator[tuple[str, str]]:
        # Upstream does not order these. Each bound is checked on its own, so a pair out of
        # order only means the stricter one decides.
        total, single = self.total, self.single
        yield from _above(total.requests, total.limits, "total.requests", "total.limits")
        yield from _above(
            single.max_requests, single.max_limits, "single.maxRequests", "single.maxLimits"
        )
        yield from _above(
            single.default_requests,
            single.default_limits,
            "single.defaultRequests",
            "single.defaultLimits",
        )
        yield from _above(
            single.default_requests,
            single.max_requests,
            "single.defaultRequests",
            "single.maxRequests",
        )
        yield from _above(
            single.default_limits, single.max_limits, "single.defaultLimits", "single.maxLimits"
        )


class GPUResourceQuota(TensorFusionObject):
    kind: Literal["GPUResourceQuota"]
    spec: GPUResourceQuotaSpec = Field(default_factory=GPUResourceQuotaSpec)
    status: GPUResourceQuotaStatus | None = None
