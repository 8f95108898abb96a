"""TensorFusionCluster: the pools of a cluster and the cloud vendor that provisions them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, ClassVar, Literal, get_args

from pydantic import AfterValidator, Field, model_validator

from tensorfusion.api.advice import OptionalCount, wanted
from tensorfusion.api.base import ApiModel, TensorFusionObject, field_problem, first_duplicate
from tensorfusion.api.names import dns_label_problem
from tensorfusion.api.pool import CapacityStatus, GPUPoolSpec, PoolPhase

VendorType = Literal[
    "aws",
    "lambda-labs",
    "gcp",
    "azure",
    "oracle-oci",
    "ibm",
    "openshift",
    "vultr",
    "together-ai",
    "alibaba",
    "nvidia",
    "tencent",
    "runpod",
    "karpenter",
    "mock",
]
VENDOR_TYPES: tuple[str, ...] = get_args(VendorType)


def _check_pool_name(name: str) -> str:
    if problem := dns_label_problem(name):
        raise ValueError(problem)
    return name


PoolName = Annotated[str, AfterValidator(_check_pool_name)]


class GPUPoolDefinition(ApiModel):
    """One pool of the cluster; the GPUPool object is named `<cluster>-<name>`."""

    name: PoolName
    is_default: bool = Field(default=False, alias="isDefault")
    spec_template: GPUPoolSpec = Field(default_factory=GPUPoolSpec, alias="specTemplate")


class ComputingVendorParams(ApiModel):
    default_region: str | None = Field(default=None, alias="defaultRegion")
    access_key_path: str | None = Field(default=None, alias="accessKeyPath")
    secret_key_path: str | None = Field(default=None, alias="secretKeyPath")
    iam_role: str | None = Field(default=None, alias="iamRole")
    config_file: str | None = Field(default=None, alias="configFile")
    extra_params: dict[str, str] = Field(default_factory=dict, alias="extraParams")


class ComputingVendor(ApiModel):
    name: str | None = None
    type: Annotated[VendorType | None, wanted("no cloud vendor provisions the nodes")] = None
    auth_type: Literal["accessKey", "serviceAccountRole"] = Field(
        default="serviceAccountRole", alias="authType"
    )
    enable: bool = True
    params: ComputingVendorParams = Field(default_factory=ComputingVendorParams)

    def remarks(self) -> Iterator[tuple[str, str]]:
        if self.auth_type == "accessKey":
            for key, value in (
                ("accessKeyPath", self.params.access_key_path),
                ("secretKeyPath", self.params.secret_key_path),
            ):
                if not value:
                    yield f"params.{key}", "missing: authType accessKey cannot sign in without it"


class TensorFusionClusterSpec(ApiModel):
    gpu_pools: list[GPUPoolDefinition] = Field(default_factory=list, alias="gpuPools")
    computing_vendor: ComputingVendor | None = Field(default=None, alias="computingVendor")

    @model_validator(mode="after")
    def _pools_consistent(self) -> TensorFusionClusterSpec:
        if duplicate := first_duplicate(pool.name for pool in self.gpu_pools):
            index, name = duplicate
            raise field_problem(f"gpuPools[{index}].name", f"duplicate pool name {name!r}")
        defaults = [i for i, pool in enumerate(self.gpu_pools) if pool.is_default]
        if len(defaults) > 1:
            raise field_problem(
                f"gpuPools[{defaults[1]}].isDefault",
                f"only one pool may be the default (gpuPools[{defaults[0]}] already is)",
            )
        return self


class TensorFusionClusterStatus(CapacityStatus):
    report_unknown_fields: ClassVar[bool] = False

    phase: PoolPhase = "Pending"
    total_pools: OptionalCount = Field(default=None, alias="totalPools")
    total_nodes: OptionalCount = Field(default=None, alias="totalNodes")
    total_gpus: OptionalCount = Field(default=None, alias="totalGPUs")
    ready_gpu_pools: list[str] = Field(default_factory=list, alias="readyGPUPools")
    not_ready_gpu_pools: list[str] = Field(default_factory=list, alias="notReadyGPUPools")
    retry_count: int = Field(default=0, alias="retryCount")
    cloud_vendor_config_hash: str | None = Field(default=None, alias="cloudVendorConfigHash")
    allocated_tflops_percent: str | None = Field(default=None, alias="allocatedTFlopsPercent")
    allocated_vram_percent: str | None = Field(default=None, alias="allocatedVRAMPercent")
    utilized_tflops_percent: str | None = Field(default=None, alias="utilizedTFlopsPercent")
    utilized_vram_percent: str | None = Field(default=None, alias="utilizedVRAMPercent")
    potential_savings_per_month: str | None = Field(default=None, alias="potentialSavingsPerMonth")
    saved_costs_per_month: str | None = Field(default=None, alias="savedCostsPerMonth")


class TensorFusionCluster(TensorFusionObject):
    kind: Literal["TensorFusionCluster"]
    spec: TensorFusionClusterSpec = Field(default_factory=TensorFusionClusterSpec)
    status: TensorFusionClusterStatus | None = None

    @model_validator(mode="after")
    def _pool_object_names_fit(self) -> TensorFusionCluster:
        # Each pool becomes a GPUPool named "<cluster>-<pool>", and that name is also the value
        # of the pool label on its nodes, so it must fit a label value (63 characters).
        for index, pool in enumerate(self.spec.gpu_pools):
            full = f"{self.metadata.name}-{pool.name}"
            if self.metadata.name and len(full) > 63:
                raise field_problem(
                    f"spec.gpuPools[{index}].name",
                    f"the pool object name {full!r} would be {len(full)} characters; "
                    "cluster and pool names together must stay within 63",
                )
        return self
