"""The control plane's alerting against the real Alertmanager (Debian's package): with an
Alertmanager address it evaluates the rules (only while it leads) and WatchDog arrives."""

from __future__ import annotations

import queue
from pathlib import Path

import pytest

from tensorfusion.embedded.control_plane import ControlPlane, ControlPlaneConfig
from tensorfusion.engine.observability import ObservabilityConfig
from tensorfusion.errors import ConfigError
from tensorfusion.scheduler.fleet_generator import generate_fleet
from tensorfusion.store.local import LocalStore
from tests.integration.alertmanager_fixture import Webhook, needs_alertmanager, next_notification

FAST_WATCHDOG = """
alertRules:
  - name: WatchDog
    query: "SELECT 'tensor-fusion' AS source"
    threshold: 0
    evaluationInterval: 1s
    consecutiveCount: 1
    severity: none
    summary: the alerting pipeline works
    description: always firing
    alertTargetInstance: "{{ .source }}"
"""


def _fleet(tmp_path: Path) -> Path:
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(generate_fleet(nodes=1, gpus_per_node=2, model="L4").to_yaml())
    return fleet


@pytest.mark.timing
@needs_alertmanager
def test_watchdog_reaches_alertmanager(tmp_path: Path, alertmanager: str, webhook: Webhook) -> None:
    rules = tmp_path / "dynamic.yaml"
    rules.write_text(FAST_WATCHDOG)
    plane = ControlPlane(
        ControlPlaneConfig(
            state_dir=tmp_path / "state",
            fleet=_fleet(tmp_path),
            observability=ObservabilityConfig(
                dynamic_config=rules, alert_manager_addr=alertmanager, interval_s=0.2
            ),
        )
    )
    plane.start()
    try:
        firing = next_notification(webhook, "firing")
        (alert,) = firing["alerts"]
        assert alert["labels"]["alertname"] == "WatchDog"
        assert alert["labels"]["severity"] == "none"
        assert alert["labels"]["instance"] == "tensor-fusion"
    finally:
        plane.stop()
    assert (tmp_path / "state" / "metrics.db").exists()


@pytest.mark.timing
def test_a_follower_does_not_evaluate(tmp_path: Path, webhook: Webhook) -> None:
    """Without the lease (held by another replica) nothing is posted."""
    state = tmp_path / "state"
    state.mkdir()
    with LocalStore(state / "store.db") as store:
        assert store.acquire_lease("tensor-fusion-controller", "another-replica", 3600)
    rules = tmp_path / "dynamic.yaml"
    rules.write_text(FAST_WATCHDOG)
    plane = ControlPlane(
        ControlPlaneConfig(
            state_dir=state,
            fleet=_fleet(tmp_path),
            observability=ObservabilityConfig(
                dynamic_config=rules,
                alert_manager_addr=f"127.0.0.1:{webhook.server_address[1]}",
                interval_s=0.2,
            ),
        )
    )
    plane.start(wait_ready=False)
    try:
        with pytest.raises(queue.Empty):
            webhook.notifications.get(timeout=2.0)
        assert plane.readiness()[0] is False
    finally:
        plane.stop()


@pytest.mark.parametrize("fmt", ["json", "otel"])
def test_other_metrics_formats_are_refused(tmp_path: Path, fmt: str) -> None:
    rules = tmp_path / "dynamic.yaml"
    rules.write_text(f"metricsFormat: {fmt}\n")
    plane = ControlPlane(
        ControlPlaneConfig(
            state_dir=tmp_path / "state",
            fleet=_fleet(tmp_path),
            observability=ObservabilityConfig(dynamic_config=rules),
        )
    )
    with pytest.raises(ConfigError) as refused:
        plane.start()
    assert refused.value.field.endswith("metricsFormat")
    assert "influx" in str(refused.value)
