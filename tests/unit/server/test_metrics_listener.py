"""`--metrics-bind-address`: upstream's address forms, and only /metrics on that listener."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, Counter

from tensorfusion.errors import ConfigError
from tensorfusion.server.metrics_listener import metrics_app, parse_bind_address


@pytest.mark.parametrize(
    ("text", "address"),
    [
        (":9000", ("0.0.0.0", 9000)),
        ("127.0.0.1:9000", ("127.0.0.1", 9000)),
        ("[::1]:9100", ("::1", 9100)),
        ("metrics.local:0", ("metrics.local", 0)),
    ],
)
def test_address_forms(text: str, address: tuple[str, int]) -> None:
    assert parse_bind_address(text) == address


@pytest.mark.parametrize("text", ["9000", "host:", "host:port", ":-1", ""])
def test_bad_addresses_name_the_flag(text: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_bind_address(text)
    assert refused.value.field == "--metrics-bind-address"


def test_serves_the_registry_and_nothing_else() -> None:
    registry = CollectorRegistry()
    Counter("tf_probe", "a series of the management app", registry=registry).inc(3)
    with TestClient(metrics_app(registry), client=("203.0.113.7", 1)) as client:
        answer = client.get("/metrics")
        assert answer.status_code == 200
        assert "tf_probe_total 3.0" in answer.text
        assert client.get("/api/workers").status_code == 404
        assert client.get("/openapi.json").status_code == 404
