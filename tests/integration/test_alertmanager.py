"""The evaluator against the real Alertmanager (Debian's prometheus-alertmanager): a rule's
alert must reach a webhook receiver with its labels and annotations, then its resolution."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tensorfusion.alert.alertmanager import AlertmanagerClient
from tensorfusion.alert.evaluator import Evaluator
from tensorfusion.api.dynamic_config import AlertRule
from tensorfusion.metrics.embedded_sink import EmbeddedSink
from tensorfusion.metrics.point import Point
from tests.integration.alertmanager_fixture import (
    Webhook,
    free_port,
    needs_alertmanager,
    next_notification,
)

pytestmark = [needs_alertmanager, pytest.mark.timing]

RULE = AlertRule.model_validate(
    {
        "name": "GPUTemperatureHigh",
        "query": "SELECT node, uuid, AVG(temperature) AS value FROM tf_gpu_usage "
        "WHERE {{ .Conditions }} GROUP BY node, uuid HAVING AVG(temperature) > {{ .Threshold }}",
        "threshold": 90,
        "evaluationInterval": "1s",
        "consecutiveCount": 2,
        "severity": "P1",
        "summary": "GPU temperature high",
        "description": "GPU {{ .uuid }} on {{ .node }} at {{ .value }} > {{ .Threshold }}",
        "alertTargetInstance": "{{ .node }}-{{ .uuid }}",
        "runbookURL": "https://runbooks.example/temperature",
    }
)


def test_rule_alert_reaches_the_receiver_and_then_resolves(
    alertmanager: str, webhook: Webhook, tmp_path: Path
) -> None:
    sink = EmbeddedSink(tmp_path / "metrics.db")
    evaluator = Evaluator(sink, AlertmanagerClient(alertmanager))
    evaluator.set_rules([RULE])
    now = time.time_ns() - 3_000_000_000  # three evaluations ending now, not in the future
    for step in range(2):
        at = now + step * 1_000_000_000
        sink.write(
            [
                Point(
                    "tf_gpu_usage",
                    {"node": "n1", "uuid": "GPU-0"},
                    {"temperature": 95.0},
                    at - 500_000_000,
                )
            ]
        )
        evaluator.tick(at)
    firing = next_notification(webhook, "firing")
    [alert] = firing["alerts"]
    assert alert["labels"] == {
        "alertname": "GPUTemperatureHigh",
        "severity": "P1",
        "job": "tensor-fusion",
        "instance": "n1-GPU-0",
    }
    assert alert["annotations"] == {
        "summary": "GPU temperature high",
        "description": "GPU GPU-0 on n1 at 95 > 90",
        "runbook_url": "https://runbooks.example/temperature",
    }
    evaluator.tick(now + 2_000_000_000)  # no rows in the window: resolved
    resolved = next_notification(webhook, "resolved")
    assert resolved["alerts"][0]["labels"]["instance"] == "n1-GPU-0"
    assert resolved["alerts"][0]["status"] == "resolved"
    sink.close()


def test_alerts_sent_while_alertmanager_is_down_arrive_when_it_is_up(
    tmp_path: Path, webhook: Webhook, request: pytest.FixtureRequest
) -> None:
    port_holder = free_port()
    client = AlertmanagerClient(f"127.0.0.1:{port_holder}", timeout_s=1)
    sink = EmbeddedSink(tmp_path / "metrics.db")
    evaluator = Evaluator(sink, client)
    evaluator.set_rules([RULE.model_copy(update={"consecutive_count": 1})])
    now = time.time_ns()
    sink.write(
        [
            Point(
                "tf_gpu_usage",
                {"node": "n2", "uuid": "GPU-1"},
                {"temperature": 99.0},
                now - 500_000_000,
            )
        ]
    )
    evaluator.tick(now)
    assert client.queued == 1
    addr = request.getfixturevalue("alertmanager")
    client.url = f"http://{addr}/api/v2/alerts"  # the same service, back under a new port
    assert client.flush()
    firing = next_notification(webhook, "firing")
    assert firing["alerts"][0]["labels"]["instance"] == "n2-GPU-1"
    sink.close()
