"""The registry of our kinds: model, scope, plural and the columns `kubectl get` shows.
CRD generation and `validate` both read it, so a kind is declared in one place."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from tensorfusion.api.base import TensorFusionObject
from tensorfusion.api.cluster import TensorFusionCluster
from tensorfusion.api.node import GPU, GPUNode, GPUNodeClaim, GPUNodeClass
from tensorfusion.api.pool import GPUPool
from tensorfusion.api.provider import ProviderConfig
from tensorfusion.api.scheduling_template import SchedulingConfigTemplate
from tensorfusion.api.workload import (
    GPUResourceQuota,
    TensorFusionConnection,
    TensorFusionWorkload,
    WorkloadProfile,
)


@dataclass(frozen=True)
class PrinterColumn:
    name: str
    json_path: str
    type: Literal["string", "integer", "number", "boolean", "date"] = "string"


@dataclass(frozen=True)
class KindInfo:
    kind: str
    model: type[TensorFusionObject]
    scope: Literal["Cluster", "Namespaced"]
    plural: str
    columns: tuple[PrinterColumn, ...] = ()

    @property
    def singular(self) -> str:
        return self.kind.lower()


def _capacity_columns(prefix: str) -> tuple[PrinterColumn, ...]:
    return (
        PrinterColumn("Phase", f"{prefix}.phase"),
        PrinterColumn("Total TFlops", f"{prefix}.totalTFlops"),
        PrinterColumn("Total VRAM", f"{prefix}.totalVRAM"),
        PrinterColumn("Virtual TFlops", f"{prefix}.virtualTFlops"),
        PrinterColumn("Virtual VRAM", f"{prefix}.virtualVRAM"),
        PrinterColumn("Available TFlops", f"{prefix}.availableTFlops"),
        PrinterColumn("Available VRAM", f"{prefix}.availableVRAM"),
    )


KINDS: tuple[KindInfo, ...] = (
    KindInfo(
        "TensorFusionCluster",
        TensorFusionCluster,
        "Cluster",
        "tensorfusionclusters",
        _capacity_columns(".status"),
    ),
    KindInfo("GPUPool", GPUPool, "Cluster", "gpupools", _capacity_columns(".status")),
    KindInfo("GPUNode", GPUNode, "Cluster", "gpunodes", _capacity_columns(".status")),
    KindInfo(
        "GPU",
        GPU,
        "Cluster",
        "gpus",
        (
            PrinterColumn("Model", ".status.gpuModel"),
            PrinterColumn("Phase", ".status.phase"),
            PrinterColumn("Total TFlops", ".status.capacity.tflops"),
            PrinterColumn("Total VRAM", ".status.capacity.vram"),
            PrinterColumn("Available TFlops", ".status.available.tflops"),
            PrinterColumn("Available VRAM", ".status.available.vram"),
            PrinterColumn("Used By", ".status.usedBy"),
        ),
    ),
    KindInfo(
        "GPUNodeClaim",
        GPUNodeClaim,
        "Cluster",
        "gpunodeclaims",
        (
            PrinterColumn("Phase", ".status.phase"),
            PrinterColumn("Instance Type", ".spec.instanceType"),
            PrinterColumn("Capacity Type", ".spec.capacityType"),
        ),
    ),
    KindInfo("GPUNodeClass", GPUNodeClass, "Cluster", "gpunodeclasses"),
    KindInfo(
        "SchedulingConfigTemplate",
        SchedulingConfigTemplate,
        "Cluster",
        "schedulingconfigtemplates",
        (PrinterColumn("Mode", ".spec.placement.mode"),),
    ),
    KindInfo(
        "ProviderConfig",
        ProviderConfig,
        "Cluster",
        "providerconfigs",
        (PrinterColumn("Vendor", ".spec.vendor"),),
    ),
    KindInfo(
        "TensorFusionWorkload",
        TensorFusionWorkload,
        "Namespaced",
        "tensorfusionworkloads",
        (
            PrinterColumn("Pool", ".spec.poolName"),
            PrinterColumn("QoS", ".spec.qos"),
            PrinterColumn("Replicas", ".spec.replicas", "integer"),
            PrinterColumn("Ready", ".status.readyWorkers", "integer"),
        ),
    ),
    KindInfo(
        "WorkloadProfile",
        WorkloadProfile,
        "Namespaced",
        "workloadprofiles",
        (
            PrinterColumn("Pool", ".spec.poolName"),
            PrinterColumn("QoS", ".spec.qos"),
            PrinterColumn("GPUs", ".spec.gpuCount", "integer"),
        ),
    ),
    KindInfo(
        "TensorFusionConnection",
        TensorFusionConnection,
        "Namespaced",
        "tensorfusionconnections",
        (
            PrinterColumn("Workload", ".spec.workloadName"),
            PrinterColumn("Client Pod", ".spec.clientPod"),
            PrinterColumn("Worker", ".status.workerName"),
            PrinterColumn("Phase", ".status.phase"),
        ),
    ),
    KindInfo(
        "GPUResourceQuota",
        GPUResourceQuota,
        "Namespaced",
        "gpuresourcequotas",
        (
            PrinterColumn("Max Workers", ".spec.total.maxWorkers", "integer"),
            PrinterColumn("Alert Threshold", ".spec.total.alertThresholdPercent", "integer"),
        ),
    ),
)
KINDS_BY_NAME = {info.kind: info for info in KINDS}
