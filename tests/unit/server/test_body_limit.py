"""Bodies over the limit are refused with a JSON 413, whether or not they say their size."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tensorfusion.server.app import create_app
from tensorfusion.server.settings import DEFAULT_MAX_BODY_BYTES, ServerSettings
from tests.unit.server.conftest import AUTH, LOOPBACK, TOKEN
from tests.unit.server.fake_backend import FakeBackend

LIMIT = 1000
POD = b"apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {}\n"


@pytest.fixture
def client(backend: FakeBackend) -> Iterator[TestClient]:
    app = create_app(backend, ServerSettings(token=TOKEN, max_body_bytes=LIMIT))
    with TestClient(app, client=LOOPBACK) as client:
        yield client


def padded(size: int) -> bytes:
    """The Pod, padded with a YAML comment to exactly `size` bytes."""
    return POD + b"#" + b"x" * (size - len(POD) - 1)


def chunks(body: bytes, size: int = 100) -> Iterator[bytes]:
    """Streamed without Content-Length (chunked transfer encoding)."""
    for start in range(0, len(body), size):
        yield body[start : start + size]


def test_the_default_limit_is_one_mebibyte() -> None:
    assert ServerSettings(token=TOKEN).max_body_bytes == DEFAULT_MAX_BODY_BYTES == 1 << 20


def test_a_body_at_the_limit_is_accepted(client: TestClient, backend: FakeBackend) -> None:
    answer = client.post("/api/simulate-schedule", content=padded(LIMIT))
    assert answer.status_code == 200
    assert backend.received[0]["kind"] == "Pod"


def test_a_declared_oversized_body_is_refused(client: TestClient, backend: FakeBackend) -> None:
    answer = client.post("/api/simulate-schedule", content=padded(LIMIT + 1))
    assert answer.status_code == 413
    assert answer.json() == {
        "error": "PayloadTooLarge",
        "message": f"the body is over the limit of {LIMIT} bytes",
    }
    assert backend.received == []


def test_a_streamed_oversized_body_is_refused(client: TestClient, backend: FakeBackend) -> None:
    answer = client.post("/api/simulate-schedule", content=chunks(padded(LIMIT + 1)))
    assert "content-length" not in answer.request.headers
    assert answer.status_code == 413
    assert answer.json()["error"] == "PayloadTooLarge"
    assert backend.received == []


def test_a_streamed_body_under_the_limit_passes(client: TestClient) -> None:
    assert client.post("/api/simulate-schedule", content=chunks(padded(LIMIT))).status_code == 200


def test_the_limit_applies_to_json_bodies_too(client: TestClient, backend: FakeBackend) -> None:
    body = {"tflopsRequest": "50", "vramRequest": "4Gi", "command": ["x" * LIMIT]}
    assert client.post("/api/workers", json=body, headers=AUTH).status_code == 413
    streamed = client.post(
        "/api/workers",
        content=chunks(f'{{"command": ["{"x" * LIMIT}"]}}'.encode()),
        headers=AUTH | {"Content-Type": "application/json"},
    )
    assert streamed.status_code == 413
    assert backend.received == []
