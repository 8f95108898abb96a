"""The controller's command line, read as Go's `flag` package reads upstream's: `-name` or
`--name`, a value as `-name=value` or `-name value`, a boolean as `-name` or
`-name=true|false` (never `-name false`), and flags end at `--` or the first argument that is
not one. The controller takes no arguments, so anything left over is refused.

Upstream's flags that are not implemented yet are accepted, each with a warning naming it,
so that the chart's `controller.command` runs unchanged."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tensorfusion.api.names import is_decimal
from tensorfusion.errors import ConfigError
from tensorfusion.operator.nodepool.config import (
    DEFAULT_AGENT_DAEMONSET,
    DEFAULT_NAMESPACE,
    NodePoolConfig,
)
from tensorfusion.server.metrics_listener import parse_bind_address
from tensorfusion.webhook.serving_certs import DEFAULT_CERT_DIR
from tensorfusion.webhook.shim_injection import DEFAULT_IMAGE

SERVICE_ACCOUNT_NAMESPACE: Final = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
NOT_IMPLEMENTED: Final = frozenset({"enable-auto-scale", "enable-auto-expander"})
"""Upstream's boolean flags for features this controller does not have yet."""
API_AUTH_MODES: Final = ("writes", "all")
UTC_ZONE: Final = ZoneInfo("UTC")
HELP_FLAGS: Final = frozenset({"h", "help"})

USAGE: Final = f"""usage: tensor-fusion controller [flags]

Run the operator: leader election, the scheduler for pods of the tensor-fusion-scheduler
profile, and the management API. Flags take one dash or two, and a value as -flag=value or
-flag value.

  -kubeconfig FILE               default: $KUBECONFIG, else the pod's service account
  -namespace NAME                the controller's namespace, where its lease lives
                                 (default: the service account's, else tensor-fusion-sys)
  -leader-elect                  elect a leader among replicas (default false: lead at once)
  -scheduler-config FILE         KubeSchedulerConfiguration (default: the guide's R8)
  -dynamic-config FILE           metricsTTL, metricsFormat and alertRules
  -enable-alert                  evaluate alert rules (needs -alert-manager-addr)
  -alert-manager-addr ADDR       the Alertmanager alerts are posted to
  -metrics-bind-address ADDR     serve /metrics here too, e.g. :9000 (default 0: off)
  -health-probe-bind-address ADDR  /healthz and /readyz (default :8081)
  -api-bind-address ADDR         the management API (default :8080)
  -api-auth writes|all           which requests need a bearer token (default writes)
  -state-dir DIR                 the metrics buffer (default: a fresh temporary dir)
  -webhook-port PORT             the pod admission webhook, over HTTPS (default 9443)
  -webhook-cert-dir DIR          its tls.crt and tls.key (default {DEFAULT_CERT_DIR};
                                 when the default does not exist, no webhook is served)
  -webhook-image IMAGE           the image converted pods copy the shim from
                                 (default {DEFAULT_IMAGE})
  -agent-daemonset NAME          the node agents' DaemonSet in -namespace, whose agents the
                                 pools' rolling update restarts (default {DEFAULT_AGENT_DAEMONSET})
  -time-zone NAME                 the IANA time zone the pools' maintenance windows are
                                 read in (default UTC)
  -nvidia-operator-progressive-migration
                                 share GPU nodes with the NVIDIA device plugin: pods
                                 that keep nvidia.com/gpu avoid nodes with TensorFusion
                                 workers, which carry the used-by taint (default false)
  -enable-auto-scale, -enable-auto-expander
                                 upstream's; accepted and ignored, with a warning
"""

BindAddress = tuple[str, int]


class HelpRequested(Exception):
    """`-h` or `-help` was given: print USAGE and do nothing else."""


@dataclass(frozen=True)
class ControllerFlags:
    kubeconfig: Path | None = None
    """Else `KUBECONFIG`, else the pod's service account."""
    namespace: str = DEFAULT_NAMESPACE
    """Where the leader-election lease lives: the controller's own namespace."""
    leader_elect: bool = False
    """Off, as upstream's default: this replica leads at once (run one replica only)."""
    scheduler_config: Path | None = None
    dynamic_config: Path | None = None
    enable_alert: bool = False
    alert_manager_addr: str | None = None
    metrics_bind_address: BindAddress | None = None
    """`/metrics` on a listener of its own; None (`0`, the default) serves it only on the API."""
    health_probe_bind_address: BindAddress = ("0.0.0.0", 8081)
    api_bind_address: BindAddress = ("0.0.0.0", 8080)
    api_auth: Literal["writes", "all"] = "writes"
    """Which requests need a bearer token: the writes (reads are open inside the cluster, as
    upstream's are), or all of them."""
    state_dir: Path | None = None
    """The metrics buffer (and the embedded metrics store); default: a fresh temporary dir."""
    webhook_port: int = 9443
    webhook_cert_dir: Path | None = None
    """None: controller-runtime's default directory, served from only when it exists."""
    webhook_image: str = DEFAULT_IMAGE
    agent_daemonset: str = DEFAULT_AGENT_DAEMONSET
    """The node agents' DaemonSet, in `namespace`: the node pools' rolling update restarts
    its pods."""
    time_zone: ZoneInfo = UTC_ZONE
    """Where the pools' maintenance-window cron schedules are read."""
    nvidia_operator_progressive_migration: bool = False
    """The chart's `controller.nvidiaOperatorProgressiveMigration` (R6)."""

    @property
    def node_pools(self) -> NodePoolConfig:
        """What the node pools' upkeep (and the plans the API shows) is configured with."""
        return NodePoolConfig(
            agent_namespace=self.namespace,
            agent_daemonset=self.agent_daemonset,
            time_zone=self.time_zone,
        )

    not_implemented: tuple[str, ...] = ()
    """Upstream flags given that this controller accepts and ignores."""


def default_namespace(account_file: Path = SERVICE_ACCOUNT_NAMESPACE) -> str:
    """The pod's namespace from its service account, else `tensor-fusion-sys`."""
    try:
        return account_file.read_text(encoding="utf-8").strip() or DEFAULT_NAMESPACE
    except OSError:
        return DEFAULT_NAMESPACE


def _go_bool(flag: str, text: str) -> bool:
    """The spellings Go's strconv.ParseBool accepts."""
    if text in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if text in ("0", "f", "F", "false", "FALSE", "False"):
        return False
    raise ConfigError(flag, f"invalid boolean value {text!r} (use true or false)")


def _bind(flag: str, text: str) -> BindAddress:
    try:
        return parse_bind_address(text)
    except ConfigError as exc:
        raise ConfigError(flag, exc.message) from None


def _metrics_bind(flag: str, text: str) -> BindAddress | None:
    return None if text == "0" else _bind(flag, text)


def _api_auth(flag: str, text: str) -> str:
    if text not in API_AUTH_MODES:
        raise ConfigError(flag, f"must be one of {', '.join(API_AUTH_MODES)}, got {text!r}")
    return text


def _path(flag: str, text: str) -> Path:
    if not text:
        raise ConfigError(flag, "must not be empty")
    return Path(text)


def _port(flag: str, text: str) -> int:
    if not is_decimal(text) or int(text) > 65535:
        raise ConfigError(flag, f"must be a port from 0 (any free one) to 65535, got {text!r}")
    return int(text)


def _zone(flag: str, text: str) -> ZoneInfo:
    try:
        return ZoneInfo(text)
    except (ValueError, ZoneInfoNotFoundError):
        raise ConfigError(
            flag, f"{text!r} is not an IANA time zone (such as UTC or Europe/Berlin)"
        ) from None


def _text(flag: str, text: str) -> str:
    if not text:
        raise ConfigError(flag, "must not be empty")
    return text


_VALUED: Final[Mapping[str, Callable[[str, str], object]]] = {
    "kubeconfig": _path,
    "namespace": _text,
    "scheduler-config": _path,
    "dynamic-config": _path,
    "alert-manager-addr": _text,
    "metrics-bind-address": _metrics_bind,
    "health-probe-bind-address": _bind,
    "api-bind-address": _bind,
    "api-auth": _api_auth,
    "state-dir": _path,
    "webhook-port": _port,
    "webhook-cert-dir": _path,
    "webhook-image": _text,
    "agent-daemonset": _text,
    "time-zone": _zone,
}
_BOOLEAN: Final = frozenset(
    {"leader-elect", "enable-alert", "nvidia-operator-progressive-migration", *NOT_IMPLEMENTED}
)


def parse_flags(
    argv: Sequence[str], *, namespace: Callable[[], str] = default_namespace
) -> ControllerFlags:
    """The flags in `argv`; ConfigError naming the first flag that is unknown or malformed."""
    values: dict[str, object] = {}
    ignored: list[str] = []
    rest = list(argv)
    while rest:
        argument = rest.pop(0)
        if argument == "--":
            break
        if not argument.startswith("-") or argument == "-":
            rest.insert(0, argument)
            break
        name, equals, value = argument.lstrip("-").partition("=")
        flag = f"--{name}"
        if argument.startswith("---") or not name:
            raise ConfigError(argument, "bad flag syntax")
        if name in HELP_FLAGS:
            raise HelpRequested
        if name in _BOOLEAN:
            given = _go_bool(flag, value) if equals else True
            if name in NOT_IMPLEMENTED:
                ignored.append(flag)
            else:
                values[name] = given
        elif name in _VALUED:
            if not equals:
                if not rest:
                    raise ConfigError(flag, "needs a value")
                value = rest.pop(0)
            values[name] = _VALUED[name](flag, value)
        else:
            raise ConfigError(flag, "no such flag (see `tensor-fusion controller --help`)")
    if rest:
        raise ConfigError(rest[0], "unexpected argument: the controller takes only flags")
    if values.get("enable-alert") and not values.get("alert-manager-addr"):
        raise ConfigError("--alert-manager-addr", "required with --enable-alert")
    fields = {name.replace("-", "_"): value for name, value in values.items()}
    fields.setdefault("namespace", namespace())
    return ControllerFlags(**fields, not_implemented=tuple(ignored))  # type: ignore[arg-type]
