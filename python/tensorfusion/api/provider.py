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


class ProviderHypervisor(ApiModel):
    privileged_hypervisor: bool = Field(default=False, alias="privilegedHypervisor")
    ld_library_path: str | None = Field(default=None, alias="ldLibraryPath")
    host_path_mounts: list[HostPathMount] = Field(default_factory=list, alias="hostPathMounts")


class HardwareModel(ApiModel):
    model: Text
    full_model_name: Text = Field(alias="fullModelName")
    cost_per_hour: str | None = Field(default=None, alias="costPerHour")
    fp16_tflops: NonNegativeQuantity = Field(alias="fp16TFlops")
    max_partitions: OptionalCount = Field(default=None, alias="maxPartitions")
    partition_template_refs: list[str] = Field(default_factory=list, alias="partitionTemplateRefs")


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
