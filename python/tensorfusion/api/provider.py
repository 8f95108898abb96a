"""ProviderConfig: per hardware vendor, the images, device metadata and resource names
that TensorFusion needs to take over that vendor's GPUs."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tensorfusion.api.base import ApiModel, TensorFusionObject
from tensorfusion.api.quantity import NonNegativeQuantity


class ProviderImages(ApiModel):
    middleware: str = Field(min_length=1)
    remote_client: str | None = Field(default=None, alias="remoteClient")
    remote_worker: str | None = Field(default=None, alias="remoteWorker")


class HostPathMount(ApiModel):
    name: str = Field(min_length=1)
    host_path: str = Field(alias="hostPath", min_length=1)
    mount_path: str = Field(alias="mountPath", min_length=1)
    read_only: bool = Field(default=False, alias="readOnly")


class ProviderHypervisor(ApiModel):
    privileged_hypervisor: bool = Field(default=False, alias="privilegedHypervisor")
    ld_library_path: str | None = Field(default=None, alias="ldLibraryPath")
    host_path_mounts: list[HostPathMount] = Field(default_factory=list, alias="hostPathMounts")


class HardwareModel(ApiModel):
    model: str = Field(min_length=1)
    full_model_name: str = Field(alias="fullModelName", min_length=1)
    cost_per_hour: str | None = Field(default=None, alias="costPerHour")
    fp16_tflops: NonNegativeQuantity = Field(alias="fp16TFlops")
    max_partitions: int | None = Field(default=None, ge=0, alias="maxPartitions")
    partition_template_refs: list[str] = Field(default_factory=list, alias="partitionTemplateRefs")


class VirtualizationTemplate(ApiModel):
    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    memory_gigabytes: int = Field(ge=0, alias="memoryGigabytes")
    compute_percent: str = Field(alias="computePercent")
    description: str = ""
    max_instances: int | None = Field(default=None, ge=0, alias="maxInstances")
    isolation_group_sharing: Literal["exclusive", "shared"] = Field(
        default="exclusive", alias="isolationGroupSharing"
    )


class DevicePluginDetection(ApiModel):
    resource_name_prefixes: list[str] = Field(default_factory=list, alias="resourceNamePrefixes")
    used_by_system_name: str | None = Field(default=None, alias="usedBySystemName")


class ProviderConfigSpec(ApiModel):
    vendor: str = Field(min_length=1)
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
    spec: ProviderConfigSpec
