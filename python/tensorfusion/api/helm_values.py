"""The Helm values users bring (values.yaml, values-production.yaml): the sections whose
meaning is part of the contract. Other chart keys (images, tolerations, ...) pass through."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, model_validator

from tensorfusion.api.base import ApiModel, field_problem, first_duplicate
from tensorfusion.api.cluster import TensorFusionClusterSpec
from tensorfusion.api.common import FreeForm, ResourceRequirements
from tensorfusion.api.dynamic_config import DynamicConfig
from tensorfusion.api.quantity import NonNegativeQuantity
from tensorfusion.api.scheduler_config import KubeSchedulerConfiguration

# Controller flags (Go flag syntax: one or two dashes) and whether each takes a value.
CONTROLLER_FLAGS = {
    "metrics-bind-address": True,
    "health-probe-bind-address": True,
    "leader-elect": False,
    "enable-alert": False,
    "alert-manager-addr": True,
    "enable-auto-scale": False,
    "dynamic-config": True,
    "scheduler-config": True,
}


def controller_command_problem(command: list[str]) -> tuple[int, str] | None:
    """(index, why) of the first flag that is unknown or misses its value, or None."""
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
        if CONTROLLER_FLAGS[name] and not has_inline:
            if index + 1 >= len(command) or command[index + 1].startswith("-"):
                return index, f"flag {arg!r} needs a value"
            index += 1
        index += 1
    return None


class ControllerValues(ApiModel):
    report_unknown_fields: ClassVar[bool] = False

    replica_count: int = Field(default=1, ge=1, alias="replicaCount")
    nvidia_operator_progressive_migration: bool = Field(
        default=False, alias="nvidiaOperatorProgressiveMigration"
    )
    command: list[str] = Field(default_factory=list)
    resources: ResourceRequirements = Field(default_factory=ResourceRequirements)
    admission_webhooks: FreeForm = Field(default_factory=dict, alias="admissionWebhooks")

    @model_validator(mode="after")
    def _command_flags(self) -> ControllerValues:
        if problem := controller_command_problem(self.command):
            index, message = problem
            raise field_problem(f"command[{index}]", message)
        return self


class GreptimeValues(ApiModel):
    report_unknown_fields: ClassVar[bool] = False

    is_cloud: bool = Field(default=False, alias="isCloud")
    install_standalone: bool = Field(default=True, alias="installStandalone")
    host: str | None = None
    port: int = Field(default=4001, ge=1, le=65535)
    user: str | None = None
    password: str | None = None
    db: str = "public"

    @model_validator(mode="after")
    def _where_it_lives(self) -> GreptimeValues:
        if self.is_cloud and self.install_standalone:
            raise field_problem(
                "installStandalone", "must be false when isCloud is true (the cloud is the store)"
            )
        if not self.install_standalone and not self.host:
            raise field_problem("host", "required when installStandalone is false")
        return self


class AgentValues(ApiModel):
    report_unknown_fields: ClassVar[bool] = False

    resources: ResourceRequirements = Field(default_factory=ResourceRequirements)


class Persistence(ApiModel):
    enabled: bool = False
    size: NonNegativeQuantity | None = None


class Receiver(ApiModel):
    report_unknown_fields: ClassVar[bool] = False

    name: str = Field(min_length=1)


class AlertmanagerConfig(ApiModel):
    """Alertmanager's own config format; checked for what breaks it at load time."""

    report_unknown_fields: ClassVar[bool] = False

    global_: FreeForm = Field(default_factory=dict, alias="global")
    receivers: list[Receiver] = Field(default_factory=list)
    route: dict[str, Any] = Field(default_factory=dict)

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


class AlertValues(ApiModel):
    report_unknown_fields: ClassVar[bool] = False

    enabled: bool = True
    replica_count: int = Field(default=1, ge=1, alias="replicaCount")
    persistence: Persistence = Field(default_factory=Persistence)
    alert_manager_config: AlertmanagerConfig | None = Field(
        default=None, alias="alertManagerConfig"
    )
    resources: ResourceRequirements = Field(default_factory=ResourceRequirements)


class HelmValues(ApiModel):
    """A values file: every section optional, as users override only what they change."""

    report_unknown_fields: ClassVar[bool] = False

    controller: ControllerValues | None = None
    greptime: GreptimeValues | None = None
    agent: AgentValues | None = None
    alert: AlertValues | None = None
    scheduler_config: KubeSchedulerConfiguration | None = Field(
        default=None, alias="schedulerConfig"
    )
    dynamic_config: DynamicConfig | None = Field(default=None, alias="dynamicConfig")
    cluster: TensorFusionClusterSpec | None = None


VALUES_SECTIONS = frozenset(field.alias or name for name, field in HelmValues.model_fields.items())
