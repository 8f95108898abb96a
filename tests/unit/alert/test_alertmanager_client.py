from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tensorfusion.alert.alertmanager import AlertmanagerClient, alerts_url
from tensorfusion.alert.model import Alert, rfc3339
from tensorfusion.errors import ConfigError


class FakeAlertmanager(ThreadingHTTPServer):
    """Records posted alert lists; `status` is what it answers."""

    def __init__(self) -> None:
        self.received: list[tuple[str, list[dict[str, Any]]]] = []
        self.status = 200
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: FakeAlertmanager

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.server.status == 200:
            self.server.received.append((self.path, json.loads(body)))
        self.send_response(self.server.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def alertmanager() -> Iterator[FakeAlertmanager]:
    server = FakeAlertmanager()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def alert(name: str, ends_at_ns: int = 2_000_000_000_000_000_000) -> Alert:
    return Alert(
        labels={"alertname": name, "severity": "P1", "job": "tensor-fusion", "instance": "i"},
        annotations={"summary": "s", "description": "d", "runbook_url": ""},
        starts_at_ns=1_700_000_000_123_456_789,
        ends_at_ns=ends_at_ns,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_alerts_are_posted_as_the_v2_api_wants(alertmanager: FakeAlertmanager) -> None:
    client = AlertmanagerClient(alertmanager.addr)
    assert client.send([alert("A"), alert("B")])
    [(path, body)] = alertmanager.received
    assert path == "/api/v2/alerts"
    assert body[0] == {
        "labels": {"alertname": "A", "severity": "P1", "job": "tensor-fusion", "instance": "i"},
        "annotations": {"summary": "s", "description": "d", "runbook_url": ""},
        "startsAt": "2023-11-14T22:13:20.123Z",
        "endsAt": "2033-05-18T03:33:20.000Z",
    }
    assert [a["labels"]["alertname"] for a in body] == ["A", "B"]


def test_generator_url_is_sent_only_when_set() -> None:
    with_url = Alert({}, {}, 0, 0, generator_url="http://tf/alerts")
    assert with_url.to_json()["generatorURL"] == "http://tf/alerts"
    assert "generatorURL" not in alert("A").to_json()


def test_rfc3339_is_utc_with_milliseconds() -> None:
    assert rfc3339(0) == "1970-01-01T00:00:00.000Z"
    assert rfc3339(1_999_999) == "1970-01-01T00:00:00.001Z"


def test_outage_keeps_alerts_and_delivers_them_in_order_later(
    alertmanager: FakeAlertmanager,
) -> None:
    client = AlertmanagerClient(alertmanager.addr)
    alertmanager.status = 503
    assert not client.send([alert("A")])
    assert not client.send([alert("B")])
    assert client.queued == 2
    alertmanager.status = 200
    assert client.send([])
    names = [a["labels"]["alertname"] for _, body in alertmanager.received for a in body]
    assert names == ["A", "B"]
    assert client.queued == 0


def test_unreachable_alertmanager_is_retried() -> None:
    client = AlertmanagerClient(f"127.0.0.1:{free_port()}", timeout_s=1)
    assert not client.send([alert("A")])
    assert not client.flush()
    assert client.queued == 1
    assert client.dropped == 0


def test_full_queue_drops_the_oldest_and_counts_them() -> None:
    client = AlertmanagerClient(f"127.0.0.1:{free_port()}", timeout_s=1, max_queued=2)
    client.send([alert("A"), alert("B"), alert("C")])
    assert client.queued == 2
    assert client.dropped == 1


def test_rejected_payload_is_dropped_rather_than_blocking_the_queue(
    alertmanager: FakeAlertmanager,
) -> None:
    client = AlertmanagerClient(alertmanager.addr)
    alertmanager.status = 400
    assert client.send([alert("bad")])
    assert client.dropped == 1
    assert client.queued == 0


@pytest.mark.parametrize(
    ("addr", "url"),
    [
        ("alertmanager:9093", "http://alertmanager:9093/api/v2/alerts"),
        ("http://am.monitoring:9093/", "http://am.monitoring:9093/api/v2/alerts"),
        ("https://am.example/prefix", "https://am.example/prefix/api/v2/alerts"),
    ],
)
def test_addresses_as_the_flag_takes_them(addr: str, url: str) -> None:
    assert alerts_url(addr) == url


@pytest.mark.parametrize("addr", ["", "  ", "ftp://am:21", "am:notaport", "http://:9093"])
def test_bad_addresses_name_the_flag(addr: str) -> None:
    with pytest.raises(ConfigError) as caught:
        alerts_url(addr)
    assert caught.value.field == "-alert-manager-addr"


def test_queue_bound_must_be_positive() -> None:
    with pytest.raises(ConfigError, match="max_queued"):
        AlertmanagerClient("am:9093", max_queued=0)
