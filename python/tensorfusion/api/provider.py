"""ProviderConfig: per hardware vendor, the images, device metadata and resource names
that TensorFusion needs to take over that vendor's GPUs."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from tensorfusion.api.advice import Count, OptionalCount, Text, wanted
from tensorfusion.api.base import ApiModel, TensorFusionObject
from tensorfusion.api.common import FreeForm
from tensorfusion.api.quantity import NonNegativeQuantity


class ProviderImages(ApiModel):
    middleware: Text
    remote_client: str | None = Field(default=None, alias="remoteClient")
    remote_worker: str | None = Field(default=None, alias="remoteWorker")


class HostPathMount(ApiModel):
    name: Text
    host_path: Text = Field(alias="hostPath")
    mount_path: Text = Field(alias="mountPath")
    read_only: bool = Field(default=False, alias="readOnly")


class DeviceMount(ApiModel):
    """Which device files the hypervisor and workers mount: rules for whole and partitioned
    GPUs, and the devices every GPU shares."""

    device_mount_rule: str | None = Field(default=None, alias="deviceMountRule")
    partitioned_device_mount_rule: str | None = Field(
        default=None, alias="partitionedDeviceMountRule"
    )
    shared_devices: list[str] = Field(default_factory=list, alias="sharedDevices")


class EnvVar(ApiModel):
    name: str
    value: str | None = None


class ProviderHypervisor(ApiModel):
    privileged_hypervisor: bool = Field(default=False, alias="privilegedHypervisor")
    ld_library_path: str | None = Field(default=None, alias="ldLibraryPath")
    host_path_mounts: list[HostPathMount] = Field(default_factory=list, alias="hostPathMounts")
    device_mount: DeviceMount | None = Field(default=None, alias="deviceMount")
    extra_env: list[EnvVar] = Field(default_factory=list, alias="extraEnv")


class HardwareModel(ApiModel):
    model: Text
    full_model_name: Text = Field(alias="fullModelName")
    cost_per_hour: str | None = Field(default=None, alias="costPerHour")
    fp16_tflops: NonNegativeQuantity = Field(alias="fp16TFlops")
    max_partitions: OptionalCount = Field(default=None, alias="maxPartitions")
    partition_template_refs: list[str] = Field(default_factory=list, alias="partitionTemplateRefs")
    max_isolation_groups: int | None = Field(default=None, alias="maxIsolationGroups")
    max_placement_slots: int | None = Field(default=None, alias="maxPlacementSlots")
    total_extended_resources: dict[str, int] = Field(
        default_factory=dict, alias="totalExtendedResources"
    )
    device_mount: DeviceMount | None = Field(default=None, alias="deviceMount")


class VirtualizationTemplate(ApiModel):
    id: Text
    name: Text
    memory_gigabytes: Count = Field(alias="memoryGigabytes")
    compute_percent: str = Field(alias="computePercent")
    description: str = ""
    max_instances: OptionalCount = Field(default=None, alias="maxInstances")
    isolation_group_sharing: Literal["exclusive", "shared"] = Field(
        default="exclusive", alias="isolationGroupSharing"
    )
    isolation_group_slots: int | None = Field(default=None, alias="isolationGroupSlots")
    max_partitions_per_isolation_group: int | None = Field(
        default=None, alias="maxPartitionsPerIsolationGroup"
    )
    nvml_profile_id: int | None = Field(default=None, alias="nvmlProfileId")
    placement_limit: list[int] = Field(default_factory=list, alias="placementLimit")
    placement_offset: int | None = Field(default=None, alias="placementOffset")
    extended_resources: dict[str, int] = Field(default_factory=dict, alias="extendedResources")


class DevicePluginDetection(ApiModel):
    resource_name_prefixes: list[str] = Field(default_factory=list, alias="resourceNamePrefixes")
    used_by_system_name: str | None = Field(default=None, alias="usedBySystemName")


class ProviderConfigSpec(ApiModel):
    vendor: Text
    images: ProviderImages
    hypervisor: ProviderHypervisor | None = None
    hardware_metadata: list[HardwareModel] = Field(default_factory=list, alias="hardwareMetadata")
    virtualization_templates: list[VirtualizationTemplate] = Field(
        default_factory=list, alias="virtualizationTemplates"
    )
    in_use_resource_names: list[str] = Field(default_factory=list, alias="inUseResourceNames")
    device_plugin_detection: DevicePluginDetection | None = Field(
        default=None, alias="devicePluginDetection"
    )


class ProviderConfig(TensorFusionObject):
    kind: Literal["ProviderConfig"]
    spec: Annotated[ProviderConfigSpec | None, wanted("the config describes no vendor")] = None
    status: FreeForm | None = None
