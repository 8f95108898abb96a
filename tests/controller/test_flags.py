"""The controller's flags, read as Go's flag package reads upstream's."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tensorfusion.controller.flags import (
    USAGE,
    ControllerFlags,
    HelpRequested,
    default_namespace,
    parse_flags,
)
from tensorfusion.errors import ConfigError
from tensorfusion.operator.nodepool.config import DEFAULT_NAMESPACE, NodePoolConfig

UPSTREAM_COMMAND = [
    "-metrics-bind-address",
    ":9000",
    "-leader-elect",
    "-enable-auto-scale",
    "-enable-alert",
    "-enable-auto-expander",
    "-alert-manager-addr",
    "alertmanager:9093",
]


def parse(*argv: str) -> ControllerFlags:
    return parse_flags(argv, namespace=lambda: "from-account")


def test_no_flags_are_the_defaults() -> None:
    assert parse() == ControllerFlags(namespace="from-account")


def test_upstreams_command_is_accepted_and_names_what_is_ignored() -> None:
    flags = parse(*UPSTREAM_COMMAND)
    assert flags.metrics_bind_address == ("0.0.0.0", 9000)
    assert flags.leader_elect
    assert flags.enable_alert
    assert flags.alert_manager_addr == "alertmanager:9093"
    assert flags.not_implemented == ("--enable-auto-scale", "--enable-auto-expander")


@pytest.mark.parametrize(
    "argv",
    [
        ["--api-bind-address=127.0.0.1:8090"],
        ["-api-bind-address=127.0.0.1:8090"],
        ["--api-bind-address", "127.0.0.1:8090"],
        ["-api-bind-address", "127.0.0.1:8090"],
    ],
)
def test_one_dash_or_two_and_either_value_form(argv: list[str]) -> None:
    assert parse(*argv).api_bind_address == ("127.0.0.1", 8090)


def test_every_valued_flag() -> None:
    flags = parse(
        "-kubeconfig=/k",
        "-namespace=tf",
        "-scheduler-config=/s.yaml",
        "-dynamic-config=/d.yaml",
        "-health-probe-bind-address=[::1]:8082",
        "-api-auth=all",
        "-state-dir=/state",
        "-metrics-bind-address=0",
        "-webhook-port=10250",
        "-webhook-cert-dir=/certs",
        "-webhook-image=registry.example/tf:1",
        "-agent-daemonset=rel-agent",
        "-time-zone=Europe/Berlin",
    )
    assert flags == ControllerFlags(
        kubeconfig=Path("/k"),
        namespace="tf",
        scheduler_config=Path("/s.yaml"),
        dynamic_config=Path("/d.yaml"),
        health_probe_bind_address=("::1", 8082),
        api_auth="all",
        state_dir=Path("/state"),
        metrics_bind_address=None,
        webhook_port=10250,
        webhook_cert_dir=Path("/certs"),
        webhook_image="registry.example/tf:1",
        agent_daemonset="rel-agent",
        time_zone=ZoneInfo("Europe/Berlin"),
    )
    assert flags.node_pools == NodePoolConfig(
        agent_namespace="tf", agent_daemonset="rel-agent", time_zone=ZoneInfo("Europe/Berlin")
    )


def test_the_webhook_defaults_to_controller_runtimes_port_and_directory() -> None:
    flags = parse()
    assert flags.webhook_port == 9443
    assert flags.webhook_cert_dir is None
    for flag in ("-webhook-port", "-webhook-cert-dir", "-webhook-image"):
        assert f"  {flag} " in USAGE


@pytest.mark.parametrize(("text", "value"), [("true", True), ("1", True), ("F", False)])
def test_booleans_take_gos_spellings(text: str, value: bool) -> None:
    assert parse(f"-leader-elect={text}").leader_elect is value


def test_flags_end_at_a_double_dash() -> None:
    assert parse("-leader-elect", "--").leader_elect


@pytest.mark.parametrize(
    ("argv", "field", "fragment"),
    [
        (["-no-such-flag"], "--no-such-flag", "no such flag"),
        (["--metrics-secure"], "--metrics-secure", "no such flag"),
        (["-leader-elect=yes"], "--leader-elect", "invalid boolean value 'yes'"),
        (["-api-bind-address=8080"], "--api-bind-address", "not host:port"),
        (["-health-probe-bind-address=:http"], "--health-probe-bind-address", "not host:port"),
        (["-api-auth=none"], "--api-auth", "must be one of writes, all"),
        (["-kubeconfig"], "--kubeconfig", "needs a value"),
        (["-namespace="], "--namespace", "must not be empty"),
        (["-webhook-port=65536"], "--webhook-port", "must be a port from 0"),
        (["-webhook-port=:9443"], "--webhook-port", "must be a port from 0"),
        (["-webhook-cert-dir="], "--webhook-cert-dir", "must not be empty"),
        (["-webhook-image="], "--webhook-image", "must not be empty"),
        (["-agent-daemonset="], "--agent-daemonset", "must not be empty"),
        (["-time-zone=Mars/Olympus"], "--time-zone", "not an IANA time zone"),
        (["-time-zone=../etc"], "--time-zone", "not an IANA time zone"),
        (["-enable-alert"], "--alert-manager-addr", "required with --enable-alert"),
        (["---leader-elect"], "---leader-elect", "bad flag syntax"),
        (["-leader-elect", "false"], "false", "the controller takes only flags"),
        (["extra"], "extra", "the controller takes only flags"),
    ],
)
def test_bad_flags_are_refused_by_name(argv: list[str], field: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse(*argv)
    assert raised.value.field == field
    assert fragment in raised.value.message


@pytest.mark.parametrize("flag", ["-h", "--help", "-help"])
def test_help_is_asked_for(flag: str) -> None:
    with pytest.raises(HelpRequested):
        parse("-leader-elect", flag)


def test_the_namespace_comes_from_the_service_account(tmp_path: Path) -> None:
    account = tmp_path / "namespace"
    assert default_namespace(account) == DEFAULT_NAMESPACE
    account.write_text("tf-system\n")
    assert default_namespace(account) == "tf-system"
    assert parse_flags([], namespace=lambda: default_namespace(account)).namespace == "tf-system"
