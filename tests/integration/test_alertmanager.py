"""The evaluator against the real Alertmanager (Debian's prometheus-alertmanager): a rule's
alert must reach a webhook receiver with its labels and annotations, then its resolution."""

from __future__ import annotations

import json
import queue
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tensorfusion.alert.alertmanager import AlertmanagerClient
from tensorfusion.alert.evaluator import Evaluator
from tensorfusion.api.dynamic_config import AlertRule
from tensorfusion.metrics.embedded_sink import EmbeddedSink
from tensorfusion.metrics.point import Point

BINARY = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
pytestmark = pytest.mark.skipif(
    BINARY is None,
    reason="Alertmanager binary absent: apt-get install -y prometheus-alertmanager",
)

CONFIG = """
route:
  receiver: hook
  group_by: [alertname, instance]
  group_wait: 100ms
  group_interval: 200ms
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: {url}
        send_resolved: true
"""


class Webhook(ThreadingHTTPServer):
    def __init__(self) -> None:
        self.notifications: queue.Queue[dict[str, Any]] = queue.Queue()
        super().__init__(("127.0.0.1", 0), _Hook)


class _Hook(BaseHTTPRequestHandler):
    server: Webhook

    def do_POST(self) -> None:
        self.server.notifications.put(
            json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        )
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"alertmanager exited: {process.stderr.read().decode() if process.stderr else ''}"
            )
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("alertmanager did not become ready in 30 s")


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    server = Webhook()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def alertmanager(tmp_path: Path, webhook: Webhook) -> Iterator[str]:
    assert BINARY is not None
    config = tmp_path / "alertmanager.yml"
    config.write_text(CONFIG.format(url=f"http://127.0.0.1:{webhook.server_address[1]}/hook"))
    addr = f"127.0.0.1:{free_port()}"
    process = subprocess.Popen(
        [
            BINARY,
            f"--config.file={config}",
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address={addr}",
            "--cluster.listen-address=",  # no gossip: a single instance on loopback
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_ready(f"http://{addr}/-/ready", process)
        yield addr
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stderr:
            process.stderr.close()


def next_notification(webhook: Webhook, status: str) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while (left := deadline - time.monotonic()) > 0:
        notification = webhook.notifications.get(timeout=left)
        if notification["status"] == status:
            return notification
    raise AssertionError(f"no {status} notification within 20 s")


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
