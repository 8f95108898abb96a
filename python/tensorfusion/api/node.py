"""GPU nodes and devices (written by the agent and reconcilers) and the objects used to
provision new nodes: GPUNodeClaim and GPUNodeClass."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from tensorfusion.api.advice import Count, OptionalCount, between, one_of
from tensorfusion.api.base import ApiModel, TensorFusionObject
from tensorfusion.api.common import Condition, FreeForm, GPUResource, QoSLevel
from tensorfusion.api.gpu_topology import GPUTopology, NVLinkInfo
from tensorfusion.api.isolation import IsolationMode, IsolationPolicy
from tensorfusion.api.partitions import AllocatedPartition
from tensorfusion.api.pool import CapacityStatus, GroupKindName
from tensorfusion.api.quantity import NonNegativeQuantity, QuantityText

UsedBy = Literal["tensor-fusion", "nvidia-device-plugin"]
USED_BY_TENSOR_FUSION: UsedBy = "tensor-fusion"
USED_BY_DEVICE_PLUGIN: UsedBy = "nvidia-device-plugin"
INT32_MAX = 2**31 - 1


class GPUNodeSpec(ApiModel):
    manage_mode: Literal["Manual", "AutoSelect", "Provisioned"] = Field(
        default="AutoSelect", alias="manageMode"
    )
    cost_per_hour: str | None = Field(default=None, alias="costPerHour")
    gpu_card_indices: list[int] = Field(default_factory=list, alias="gpuCardIndices")
    cloud_vendor_param: str | None = Field(default=None, alias="cloudVendorParam")


class GPUNodeInfo(ApiModel):
    """What the agent learned about the host; RAM and disk bound VRAM expansion."""

    report_unknown_fields: ClassVar[bool] = False

    hostname: str | None = None
    ip: str | None = None
    gpu_model: str | None = Field(default=None, alias="gpuModel")
    gpu_count: int | None = Field(default=None, ge=0, alias="gpuCount")
    ram_size: NonNegativeQuantity | None = Field(default=None, alias="ramSize")
    data_disk_size: NonNegativeQuantity | None = Field(default=None, alias="dataDiskSize")


class PodGPUAllocation(ApiModel):
    """One pod's share of a GPU."""

    name: str | None = None
    namespace: str = "default"
    uid: str | None = None
    requests: GPUResource = Field(default_factory=GPUResource)
    limits: GPUResource = Field(default_factory=GPUResource)
    qos: QoSLevel | None = None
    is_external: bool | None = Field(default=None, alias="isExternal")
    """Not placed by TensorFusion (e.g. a pod of the NVIDIA device plugin)."""


class HypervisorStatus(ApiModel):
    hypervisor_state: str | None = Field(default=None, alias="hypervisorState")
    hypervisor_version: str | None = Field(default=None, alias="hypervisorVersion")
    last_heartbeat_time: str | None = Field(default=None, alias="lastHeartbeatTime")


NodePhase = Literal[
    "Pending",
    "Provisioning",
    "Migrating",
    "Running",
    "Succeeded",
    "Failed",
    "Unknown",
    "Destroying",
]


class GPUNodeStatus(CapacityStatus):
    report_unknown_fields: ClassVar[bool] = False

    phase: NodePhase = "Pending"
    total_gpus: OptionalCount = Field(default=None, alias="totalGPUs")
    managed_gpus: OptionalCount = Field(default=None, alias="managedGPUs")
    node_info: GPUNodeInfo = Field(default_factory=GPUNodeInfo, alias="nodeInfo")
    allocated_pods: dict[str, list[PodGPUAllocation]] = Field(
        default_factory=dict, alias="allocatedPods"
    )
    total_gpu_pods: OptionalCount = Field(default=None, alias="totalGPUPods")
    managed_gpu_device_ids: list[str] = Field(default_factory=list, alias="managedGPUDeviceIDs")
    loaded_models: list[str] = Field(default_factory=list, alias="loadedModels")
    hypervisor_status: HypervisorStatus | None = Field(default=None, alias="hypervisorStatus")
    observed_generation: int | None = Field(default=None, alias="observedGeneration")


class GPUNode(TensorFusionObject):
    kind: Literal["GPUNode"]
    spec: GPUNodeSpec = Field(default_factory=GPUNodeSpec)
    status: GPUNodeStatus | None = None


class RunningApp(ApiModel):
    name: str | None = None
    namespace: str = "default"
    count: Count = 0
    pods: list[PodGPUAllocation] = Field(default_factory=list)


class GPUStatus(ApiModel):
    report_unknown_fields: ClassVar[bool] = False

    phase: Literal["Pending", "Provisioning", "Running", "Unknown", "Destroying", "Migrating"] = (
        "Pending"
    )
    vendor: str = "NVIDIA"
    gpu_model: str | None = Field(default=None, alias="gpuModel")
    model: str | None = None
    capacity: GPUResource | None = None
    available: GPUResource | None = None
    uuid: str | None = None
    index: int | None = Field(default=None, ge=0, le=INT32_MAX)
    numa_node: int | None = Field(default=None, ge=-1, le=INT32_MAX, alias="numaNode")
    """-1 where the host has no NUMA; the scheduler's topology arrays hold it as int32."""
    isolation_mode: IsolationMode = Field(default="soft", alias="isolationMode")
    isolation_policy: IsolationPolicy | None = Field(default=None, alias="isolationPolicy")
    active_isolation_mode: str | None = Field(default=None, alias="activeIsolationMode")
    dynamic_isolation_conflict: bool | None = Field(default=None, alias="dynamicIsolationConflict")
    allocated_partitions: dict[str, AllocatedPartition] = Field(
        default_factory=dict, alias="allocatedPartitions"
    )
    node_selector: dict[str, str] = Field(default_factory=dict, alias="nodeSelector")
    nvlink_peers: list[str] = Field(default_factory=list, alias="nvlinkPeers")
    """Names of the GPUs on the same node that this one has an NVLink to."""
    nv_link: NVLinkInfo | None = Field(default=None, alias="nvLink")
    topology: GPUTopology | None = None
    used_by: UsedBy = Field(default=USED_BY_TENSOR_FUSION, alias="usedBy")
    message: str = ""
    running_apps: list[RunningApp] = Field(default_factory=list, alias="runningApps")
    conditions: list[Condition] = Field(default_factory=list)


class GPU(TensorFusionObject):
    kind: Literal["GPU"]
    status: GPUStatus | None = None


class GPUNodeClaimSpec(ApiModel):
    node_name: str | None = Field(default=None, alias="nodeName")
    region: str | None = None
    zone: str | None = None
    instance_type: str | None = Field(default=None, alias="instanceType")
    node_class_ref: GroupKindName | None = Field(default=None, alias="nodeClassRef")
    capacity_type: Annotated[str, one_of("OnDemand", "Reserved", "Spot")] = Field(
        default="OnDemand", alias="capacityType"
    )
    tflops_offered: NonNegativeQuantity | None = Field(default=None, alias="tflopsOffered")
    vram_offered: NonNegativeQuantity | None = Field(default=None, alias="vramOffered")
    gpu_device_offered: OptionalCount = Field(default=None, alias="gpuDeviceOffered")
    extra_params: dict[str, str] = Field(default_factory=dict, alias="extraParams")


ClaimPhase = Literal["Pending", "Provisioning", "Running", "Terminating", "Failed"]
"""Pending: recorded, not launched yet (or waiting to retry); Provisioning: launched, its node
not registered; Running: its node registered; Terminating: released, the instance going;
Failed: the vendor refused it for a reason that waiting does not mend."""


class GPUNodeClaimStatus(ApiModel):
    phase: str = "Pending"
    """Upstream's free string; tensor-fusion writes one of ClaimPhase."""
    instance_id: str | None = Field(default=None, alias="instanceID")
    cost_per_hour: QuantityText | None = Field(default=None, alias="costPerHour")
    """The instance's price per hour, a decimal string (e.g. "0.805")."""
    message: str = ""
    """Why the claim is where it is: types passed over, the vendor's last error."""


class GPUNodeClaim(TensorFusionObject):
    kind: Literal["GPUNodeClaim"]
    spec: GPUNodeClaimSpec = Field(default_factory=GPUNodeClaimSpec)
    status: GPUNodeClaimStatus | None = None


class SelectorTerm(ApiModel):
    id: str | None = None
    name: str | None = None
    owner: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)


class BlockDevice(ApiModel):
    volume_size: QuantityText | None = Field(default=None, alias="volumeSize")
    volume_type: str | None = Field(default=None, alias="volumeType")
    encrypted: bool = True
    delete_on_termination: bool = Field(default=True, alias="deleteOnTermination")


class BlockDeviceMapping(ApiModel):
    device_name: str | None = Field(default=None, alias="deviceName")
    root_volume: bool = Field(default=False, alias="rootVolume")
    ebs: BlockDevice | None = None


class MetadataOptions(ApiModel):
    """The VM's instance metadata service (AWS IMDS)."""

    http_endpoint: bool = Field(default=True, alias="httpEndpoint")
    http_protocol_ipv6: bool = Field(default=False, alias="httpProtocolIPv6")
    http_put_response_hop_limit: Annotated[int, between(1, 64)] = Field(
        default=1, alias="httpPutResponseHopLimit"
    )
    http_tokens: Annotated[str, one_of("required", "optional")] = Field(
        default="required", alias="httpTokens"
    )


class GPUNodeClassSpec(ApiModel):
    """How a provisioned VM is built: image, disks, network, identity, user data."""

    launch_template: SelectorTerm | None = Field(default=None, alias="launchTemplate")
    os_image_type: Literal["Private", "Public", "System"] = Field(
        default="Private", alias="osImageType"
    )
    os_image_family: str | None = Field(default=None, alias="osImageFamily")
    os_image_selector_terms: list[SelectorTerm] = Field(
        default_factory=list, alias="osImageSelectorTerms"
    )
    instance_profile: str | None = Field(default=None, alias="instanceProfile")
    metadata_options: MetadataOptions | None = Field(default=None, alias="metadataOptions")
    security_group_selector_terms: list[SelectorTerm] = Field(
        default_factory=list, alias="securityGroupSelectorTerms"
    )
    subnet_selector_terms: list[SelectorTerm] = Field(
        default_factory=list, alias="subnetSelectorTerms"
    )
    block_device_mappings: list[BlockDeviceMapping] = Field(
        default_factory=list, alias="blockDeviceMappings"
    )
    tags: dict[str, str] = Field(default_factory=dict)
    user_data: str | None = Field(default=None, alias="userData")


class GPUNodeClass(TensorFusionObject):
    kind: Literal["GPUNodeClass"]
    spec: GPUNodeClassSpec = Field(default_factory=GPUNodeClassSpec)
    status: FreeForm | None = None
