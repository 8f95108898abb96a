"""The Helm values users bring (values.yaml, values-production.yaml), modelled key by key.
The chart's values.schema.json is generated from these models (api/values_schema.py), so
`tensor-fusion validate` and `helm install` refuse the same files.

Each block the chart's templates read is closed: a key they do not read is a typo, refused
with its name. Kubernetes objects the chart passes through verbatim (affinity, tolerations,
probes) are left to the API server. The top level stays open for keys shared with other
tools (an umbrella chart's `global`, YAML anchors); `validate` reports them as unknown."""

from __future__ import annotations

import difflib
from typing import Any, ClassVar, Literal, Self

from pydantic import ConfigDict, Field, model_validator

from tensorfusion.api.base import (
    Annotations,
    ApiModel,
    ObjectName,
    field_problem,
    field_problems,
    first_duplicate,
)
from tensorfusion.api.common import FreeForm, ResourceRequirements
from tensorfusion.api.dynamic_config import DynamicConfig
from tensorfusion.api.isolation import IsolationMode, IsolationModeRule
from tensorfusion.api.pool import CapacityConfig
from tensorfusion.api.provider import HardwareModel, ProviderImages, VirtualizationTemplate
from tensorfusion.api.quantity import NonNegativeQuantity
from tensorfusion.api.scheduler_config import KubeSchedulerConfiguration
from tensorfusion.api.scheduling_template import SchedulingConfigTemplateSpec

# Flags of `tensor-fusion controller` (Go flag syntax: one dash or two) and whether each takes
# a value: ours and upstream's, as controller/flags.py reads them (a test keeps the two equal).
CONTROLLER_FLAGS = {
    "kubeconfig": True,
    "namespace": True,
    "leader-elect": False,
    "scheduler-config": True,
    "dynamic-config": True,
    "enable-alert": False,
    "alert-manager-addr": True,
    "metrics-bind-address": True,
    "health-probe-bind-address": True,
    "api-bind-address": True,
    "api-auth": True,
    "state-dir": True,
    "webhook-port": True,
    "webhook-cert-dir": True,
    "webhook-image": True,
    "nvidia-operator-progressive-migration": False,
    "enable-auto-scale": False,
    "enable-auto-expander": False,
}


# Flags the chart sets itself (listeners, mounted files, the namespace): a values file that
# gave one too would run the controller with two.
CHART_OWNED_FLAGS = frozenset(
    {
        "namespace",
        "health-probe-bind-address",
        "api-bind-address",
        "webhook-port",
        "webhook-cert-dir",
        "webhook-image",
        "scheduler-config",
        "dynamic-config",
        "nvidia-operator-progressive-migration",
    }
)
LogLevel = Literal["trace", "debug", "info", "warn", "error"]


def controller_command_problem(command: list[str]) -> tuple[int, str] | None:
    """(index, why) of the first flag that is unknown, misses its value or is the chart's own,
    or None."""
    start = 1 if command and not command[0].startswith("-") else 0  # skip the binary
    index = start
    while index < len(command):
        arg = command[index]
        if not arg.startswith("-"):
            return index, f"unexpected argument {arg!r} (flags start with -)"
        name, has_inline, _ = arg.lstrip("-").partition("=")
        if name not in CONTROLLER_FLAGS:
            known = ", ".join(f"-{flag}" for flag in CONTROLLER_FLAGS)
            return index, f"unknown flag {arg!r} (known: {known})"
        if name in CHART_OWNED_FLAGS:
            return index, f"flag {arg!r} is set by the chart from its own values (remove it)"
        if CONTROLLER_FLAGS[name] and not has_inline:
            if index + 1 >= len(command) or command[index + 1].startswith("-"):
                return index, f"flag {arg!r} needs a value"
            index += 1
        index += 1
    return None


def _unknown_key(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(known)}"
    return f"unknown key: the chart does not read it ({hint})"


class ChartSection(ApiModel):
    """A block of values the templates read key by key, so an unknown key is refused."""

    model_config = ConfigDict(json_schema_extra={"additionalProperties": False})
    report_unknown_fields: ClassVar[bool] = False

    @model_validator(mode="after")
    def _no_unknown_keys(self) -> Self:
        if self.model_extra:
            known = [field.alias or name for name, field in type(self).model_fields.items()]
            raise field_problems([(key, _unknown_key(key, known)) for key in self.model_extra])
        return self


Probe = FreeForm
"""A container probe, passed to the pod as written (the API server checks it)."""


class ImageValues(ChartSection):
    repository: str = Field(min_length=1)
    tag: str = ""
    """Empty: the chart's appVersion."""
    pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = Field(
        default=None, alias="pullPolicy"
    )


class CertManagerValues(ChartSection):
    """cert-manager issues the webhook's certificate instead of Helm."""

    enabled: bool = False
    issuer_ref: FreeForm = Field(default_factory=dict, alias="issuerRef")


class AdmissionWebhookValues(ChartSection):
    failure_policy: Literal["Fail", "Ignore"] = Field(default="Fail", alias="failurePolicy")
    secret_name: ObjectName = Field(default="tensor-fusion-webhook-secret", alias="secretName")
    patch: FreeForm = Field(default_factory=dict)
    """Upstream's certificate-generating job; accepted, as Helm makes the certificate here."""
    cert_manager: CertManagerValues = Field(default_factory=CertManagerValues, alias="certManager")


class ControllerValues(ChartSection):
    replica_count: int = Field(default=1, ge=1, alias="replicaCount")
    nvidia_operator_progressive_migration: bool = Field(
        default=False, alias="nvidiaOperatorProgressiveMigration"
    )
    isolation_mode_policy: str = Field(default="dynamic", alias="isolationModePolicy")
    """Upstream's; accepted, not acted on."""
    image: ImageValues | None = None
    vector_agent_image: str | None = Field(default=None, alias="vectorAgentImage")
    """Upstream's log-shipping sidecar; accepted, as the controller ships its own metrics."""
    command: list[str] = Field(default_factory=list)
    log_level: LogLevel = Field(default="info", alias="logLevel")
    pod_annotations: Annotations = Field(default_factory=dict, alias="podAnnotations")
    tolerations: list[FreeForm] = Field(default_factory=list)
    node_selector: dict[str, str] = Field(default_factory=dict, alias="nodeSelector")
    affinity: FreeForm = Field(default_factory=dict)
    liveness_probe: Probe = Field(default_factory=dict, alias="livenessProbe")
    readiness_probe: Probe = Field(default_factory=dict, alias="readinessProbe")
    resources: ResourceRequirements = Field(default_factory=ResourceRequirements)
    admission_webhooks: AdmissionWebhookValues = Field(
        default_factory=AdmissionWebhookValues, alias="admissionWebhooks"
    )

    @model_validator(mode="after")
    def _command_flags(self) -> ControllerValues:
        if problem := controller_command_problem(self.command):
            index, message = problem
            raise field_problem(f"command[{index}]", message)
        return self


class Persistence(ChartSection):
    enabled: bool = False
    storage_class: str | None = Field(default=None, alias="storageClass")
    size: NonNegativeQuantity | None = None


class GreptimeValues(ChartSection):
    is_cloud: bool = Field(default=False, alias="isCloud")
    install_standalone: bool = Field(default=True, alias="installStandalone")
    host: str | None = None
    port: int = Field(default=4001, ge=1, le=65535)
    user: str | None = None
    password: str | None = None
    db: str = "public"
    image: ImageValues | None = None
    resources: ResourceRequirements = Field(default_factory=ResourceRequirements)
    persistence: Persistence = Field(default_factory=Persistence)

    @model_validator(mode="after")
    def _where_it_lives(self) -> GreptimeValues:
        if self.is_cloud and self.install_standalone:
            raise field_problem(
                "installStandalone", "must be false when isCloud is true (the cloud is the store)"
            )
        if not self.install_standalone and not self.host:
            raise field_problem("host", "required when installStandalone is false")
        return self


class AgentValues(ChartSection):
    enroll_token: str = Field(default="", alias="enrollToken")
    agent_id: str = Field(default="", alias="agentId")
    cloud_endpoint: str = Field(default="", alias="cloudEndpoint")
    """enrollToken, agentId, cloudEndpoint: upstream's cloud enrolment; accepted, not used."""
    image: ImageValues | None = None
    interval: float = Field(default=5, gt=0)
    """Seconds between the agent's passes."""
    runtime_class_name: str = Field(default="", alias="runtimeClassName")
    tolerations: list[FreeForm] = Field(default_factory=list)
    resources: ResourceRequirements = Field(default_factory=ResourceRequirements)


class Receiver(ApiModel):
    report_unknown_fields: ClassVar[bool] = False

    name: str = Field(min_length=1)


class AlertmanagerConfig(ApiModel):
    """Alertmanager's own config format; checked for what breaks it at load time."""

    report_unknown_fields: ClassVar[bool] = False

    global_: FreeForm = Field(default_factory=dict, alias="global")
    receivers: list[Receiver] = Field(default_factory=list)
    route: dict[str, Any] = Field(default_factory=dict)
    templates: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _route_receiver_known(self) -> AlertmanagerConfig:
        names = [receiver.name for receiver in self.receivers]
        if duplicate := first_duplicate(names):
            index, name = duplicate
            raise field_problem(f"receivers[{index}].name", f"duplicate receiver {name!r}")
        target = self.route.get("receiver")
        if target is not None and target not in names:
            raise field_problem("route.receiver", f"names unknown receiver {target!r}")
        return self


class AlertValues(ChartSection):
    enabled: bool = True
    image: ImageValues | None = None
    replica_count: int = Field(default=1, ge=1, alias="replicaCount")
    persistence: Persistence = Field(default_factory=Persistence)
    alert_manager_config: AlertmanagerConfig | None = Field(
        default=None, alias="alertManagerConfig"
    )
    resources: ResourceRequirements = Field(default_factory=ResourceRequirements)


class ServiceAccountValues(ChartSection):
    create: bool = True
    automount: bool = True
    annotations: Annotations = Field(default_factory=dict)
    name: str = ""
    """Empty: the release's full name."""


class ImagePullSecret(ChartSection):
    name: ObjectName


class CloudVendorCredentials(ChartSection):
    """For pools in Provisioned mode on a cloud without workload identity."""

    access_key: str = Field(default="", alias="accessKey")
    secret_key: str = Field(default="", alias="secretKey")


class ProviderConfigValues(ChartSection):
    """A ProviderConfig the chart creates (kept on uninstall) when enabled."""

    enabled: bool = False
    name: ObjectName | None = None
    privileged_hypervisor: bool = Field(default=False, alias="privilegedHypervisor")
    images: ProviderImages | None = None
    in_use_resource_names: list[str] = Field(default_factory=list, alias="inUseResourceNames")
    hardware_metadata: list[HardwareModel] = Field(default_factory=list, alias="hardwareMetadata")
    virtualization_templates: list[VirtualizationTemplate] = Field(
        default_factory=list, alias="virtualizationTemplates"
    )
    extra_env: list[FreeForm] = Field(default_factory=list, alias="extraEnv")


class ClusterPoolValues(ChartSection):
    name: ObjectName = "shared"
    node_selector_key: str = Field(
        default="nvidia.com/gpu.present", min_length=1, alias="nodeSelectorKey"
    )
    default_isolation_mode: IsolationMode = Field(default="soft", alias="defaultIsolationMode")
    isolation_mode_rules: list[IsolationModeRule] = Field(
        default_factory=list, alias="isolationModeRules"
    )
    capacity_config: CapacityConfig = Field(default_factory=CapacityConfig, alias="capacityConfig")


class ClusterValues(ChartSection):
    """The default TensorFusionCluster and its one pool, kept on uninstall."""

    enabled: bool = True
    name: ObjectName = "tensor-fusion"
    hypervisor_image: str | None = Field(default=None, alias="hypervisorImage")
    pool: ClusterPoolValues = Field(default_factory=ClusterPoolValues)


class SchedulingConfigTemplateValues(ChartSection):
    """The default SchedulingConfigTemplate, kept on uninstall."""

    enabled: bool = True
    name: ObjectName = "default"
    spec: SchedulingConfigTemplateSpec = Field(default_factory=SchedulingConfigTemplateSpec)


class HelmValues(ApiModel):
    """A values file: every section optional, as users override only what they change."""

    image_pull_secrets: list[ImagePullSecret] = Field(
        default_factory=list, alias="imagePullSecrets"
    )
    name_override: str = Field(default="", alias="nameOverride")
    fullname_override: str = Field(default="", alias="fullnameOverride")
    namespace_override: str = Field(default="", alias="namespaceOverride")
    service_account: ServiceAccountValues | None = Field(default=None, alias="serviceAccount")
    initial_gpu_node_label_selector: str = Field(
        default="nvidia.com/gpu.present=true",
        pattern=r"^[^=,\s]+(=[^=,\s]*)?$",
        alias="initialGpuNodeLabelSelector",
    )
    """One label, `key=value` or `key`: the GPU nodes the agent runs on."""
    controller: ControllerValues | None = None
    greptime: GreptimeValues | None = None
    agent: AgentValues | None = None
    cloud_vendor_credentials: CloudVendorCredentials | None = Field(
        default=None, alias="cloudVendorCredentials"
    )
    provider_configs: list[ProviderConfigValues] | dict[str, ProviderConfigValues] = Field(
        default_factory=list, alias="providerConfigs"
    )
    """Listed, or keyed by vendor as upstream's later charts write them."""
    scheduling_config_template: SchedulingConfigTemplateValues | None = Field(
        default=None, alias="schedulingConfigTemplate"
    )
    cluster: ClusterValues | None = None
    alert: AlertValues | None = None
    scheduler_config: KubeSchedulerConfiguration | None = Field(
        default=None, alias="schedulerConfig"
    )
    dynamic_config: DynamicConfig | None = Field(default=None, alias="dynamicConfig")


VALUES_SECTIONS = frozenset(field.alias or name for name, field in HelmValues.model_fields.items())
