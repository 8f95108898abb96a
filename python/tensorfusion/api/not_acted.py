"""The one list of upstream fields that tensor-fusion accepts and keeps (they round-trip
through the store and the CRDs) but does not act on yet, with the upstream feature each
belongs to. `validate` warns once for each of them present in a manifest."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from tensorfusion.api.isolation import ISOLATION_MODE_ACTED_ON

AUTOSCALING = "vertical autoscaling (auto-set resources, cron scaling, external scaler)"
FREEZE = "auto freeze and resume of idle workloads"
HYPERVISOR_TUNING = "hypervisor rate-limit and multi-process queuing tuning"
REBALANCING = "rebalancing workers across GPUs"
GANG = "gang scheduling"
PARTITIONS = "GPU partitions"
ISOLATION = "isolation modes other than soft"
MULTI_VENDOR = "multi-vendor node selection"
COMPONENTS = "pool component images and their rolling updates"
WORKER_AFFINITY = "node affinity of remote workers"
DEVICE_MOUNTS = "provider device mounts and hypervisor environment"


@dataclass(frozen=True)
class NotActed:
    path: str
    """Below the object, `[]` for each list item: `spec.gpuPools[].specTemplate.x`."""
    feature: str
    acted_on: tuple[str, ...] = ()
    """Values tensor-fusion does act on: the field warns only with another value."""


_POOL_SPECS = {"GPUPool": "spec", "TensorFusionCluster": "spec.gpuPools[].specTemplate"}


def _in_pool_specs(*entries: NotActed) -> dict[str, tuple[NotActed, ...]]:
    return {
        kind: tuple(
            NotActed(f"{at}.{entry.path}", entry.feature, entry.acted_on) for entry in entries
        )
        for kind, at in _POOL_SPECS.items()
    }


_WORKLOAD_SPEC = (
    NotActed("spec.autoScalingConfig", AUTOSCALING),
    NotActed("spec.gangScheduling", GANG),
    NotActed("spec.partitionTemplateId", PARTITIONS),
    NotActed("spec.isolation", ISOLATION, (ISOLATION_MODE_ACTED_ON,)),
    NotActed("spec.nodeAffinity", WORKER_AFFINITY),
)
_COMPONENT_ROLLOUT = "nodeManagerConfig.nodePoolRollingUpdatePolicy"

NOT_ACTED: dict[str, tuple[NotActed, ...]] = {
    **_in_pool_specs(
        NotActed("nodeManagerConfig.defaultIsolationMode", ISOLATION, (ISOLATION_MODE_ACTED_ON,)),
        NotActed("nodeManagerConfig.isolationModeRules", ISOLATION),
        NotActed("nodeManagerConfig.multiVendorNodeSelector", MULTI_VENDOR),
        NotActed(f"{_COMPONENT_ROLLOUT}.autoUpdateClient", COMPONENTS),
        NotActed(f"{_COMPONENT_ROLLOUT}.autoUpdateWorker", COMPONENTS),
        NotActed(f"{_COMPONENT_ROLLOUT}.autoUpdateHypervisor", COMPONENTS),
        NotActed("componentConfig.client.image", COMPONENTS),
        NotActed("componentConfig.client.remoteModeImage", COMPONENTS),
        NotActed("componentConfig.client.embeddedModeImage", COMPONENTS),
        NotActed("componentConfig.client.operatorEndpoint", COMPONENTS),
        NotActed("componentConfig.client.patchEmbeddedWorkerToPod", COMPONENTS),
        NotActed("componentConfig.client.patchToEmbeddedWorkerContainer", COMPONENTS),
        NotActed("componentConfig.worker", COMPONENTS),
        NotActed("componentConfig.hypervisor", COMPONENTS),
        NotActed("componentConfig.nodeDiscovery", COMPONENTS),
    ),
    "TensorFusionWorkload": _WORKLOAD_SPEC,
    "WorkloadProfile": _WORKLOAD_SPEC,
    "SchedulingConfigTemplate": (
        NotActed("spec.verticalScalingRules", AUTOSCALING),
        NotActed("spec.hypervisor.autoFreezeAndResume", FREEZE),
        NotActed("spec.hypervisor.elasticRateLimitParameters", HYPERVISOR_TUNING),
        NotActed("spec.hypervisor.multiProcessQueuingParameters", HYPERVISOR_TUNING),
        NotActed("spec.reBalancer", REBALANCING),
    ),
    "ProviderConfig": (
        NotActed("spec.virtualizationTemplates", PARTITIONS),
        NotActed("spec.hardwareMetadata[].partitionTemplateRefs", PARTITIONS),
        NotActed("spec.hardwareMetadata[].maxPartitions", PARTITIONS),
        NotActed("spec.hardwareMetadata[].maxIsolationGroups", PARTITIONS),
        NotActed("spec.hardwareMetadata[].maxPlacementSlots", PARTITIONS),
        NotActed("spec.hardwareMetadata[].totalExtendedResources", PARTITIONS),
        NotActed("spec.hardwareMetadata[].deviceMount", DEVICE_MOUNTS),
        NotActed("spec.hypervisor.deviceMount", DEVICE_MOUNTS),
        NotActed("spec.hypervisor.extraEnv", DEVICE_MOUNTS),
    ),
}


def not_acted_fields(kind: str, obj: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(path, remark) for each listed field present in `obj`, an object of `kind` as
    written (nulls already dropped)."""
    for entry in NOT_ACTED.get(kind, ()):
        for path, value in _present(obj, entry.path.split("."), ""):
            if entry.acted_on and value in entry.acted_on:
                continue
            shown = f"{value!r} is " if entry.acted_on else ""
            yield (
                path,
                f"{shown}accepted and kept, but tensor-fusion does not act on it yet "
                f"(upstream feature: {entry.feature})",
            )


def _present(obj: object, steps: list[str], at: str) -> Iterator[tuple[str, object]]:
    if not steps:
        yield at, obj
        return
    step, rest = steps[0], steps[1:]
    key = step.removesuffix("[]")
    if not isinstance(obj, Mapping) or key not in obj:
        return
    here = f"{at}.{key}" if at else key
    if not step.endswith("[]"):
        yield from _present(obj[key], rest, here)
    elif isinstance(obj[key], list):
        for index, item in enumerate(obj[key]):
            yield from _present(item, rest, f"{here}[{index}]")
