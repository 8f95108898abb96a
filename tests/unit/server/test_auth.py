"""Access: the token for every state-changing request, loopback-only open reads."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tensorfusion.errors import ConfigError
from tensorfusion.server.app import create_app
from tensorfusion.server.auth import bearer_token, is_loopback, needs_token, token_matches
from tensorfusion.server.settings import ServerSettings
from tests.unit.server.conftest import AUTH, REMOTE, TOKEN
from tests.unit.server.fake_backend import FakeBackend

WORKER_BODY = {"tflopsRequest": "50", "vramRequest": "4Gi"}
R9_POD = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: []}\n"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.200.3.4", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("10.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("2001:db8::1", False),
        ("128.0.0.1", False),
        ("testclient", False),
        ("localhost", False),
        ("", False),
        (None, False),
    ],
)
def test_loopback_is_only_127_8_and_ipv6_one(host: str | None, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(
    ("header", "token"),
    [
        (b"Bearer abc", b"abc"),
        (b"bearer abc", b"abc"),
        (b"BEARER   abc  ", b"abc"),
        (b"Basic YWJj", None),
        (b"Bearer", None),
        (b"Bearer ", None),
        (b"abc", None),
        (None, None),
    ],
)
def test_bearer_token_parsing(header: bytes | None, token: bytes | None) -> None:
    assert bearer_token(header) == token


def test_token_must_match_exactly() -> None:
    assert token_matches(b"Bearer " + TOKEN.encode(), TOKEN)
    assert not token_matches(b"Bearer " + TOKEN[:-1].encode(), TOKEN)
    assert not token_matches(b"Bearer " + TOKEN.encode() + b"x", TOKEN)
    assert not token_matches(b"Bearer " + TOKEN.upper().encode(), TOKEN)
    assert not token_matches(None, TOKEN)


@pytest.mark.parametrize(
    ("method", "path", "needed"),
    [
        ("GET", "/api/workers", False),
        ("HEAD", "/api/pools", False),
        ("POST", "/api/simulate-schedule", False),
        ("POST", "/api/workers", True),
        ("PATCH", "/api/workers/w", True),
        ("DELETE", "/api/workers/w", True),
        ("PUT", "/api/workers/w", True),
        ("POST", "/api/simulate-schedule/", True),
    ],
)
def test_what_changes_state(method: str, path: str, needed: bool) -> None:
    assert needs_token(method, path) is needed


@pytest.mark.parametrize("token", ["", " padded", "padded "])
def test_settings_refuse_an_unusable_token(token: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ServerSettings(token=token)
    assert caught.value.field == "token"


def test_settings_refuse_a_negative_body_limit() -> None:
    with pytest.raises(ConfigError, match="max_body_bytes"):
        ServerSettings(token=TOKEN, max_body_bytes=-1)


@pytest.mark.parametrize("path", ["/api/workers", "/api/pools", "/metrics", "/openapi.json"])
def test_loopback_reads_need_no_token(local: TestClient, path: str) -> None:
    assert local.get(path).status_code == 200


def test_loopback_simulate_needs_no_token(local: TestClient) -> None:
    answer = local.post(
        "/api/simulate-schedule", content=R9_POD, headers={"Content-Type": "application/yaml"}
    )
    assert answer.status_code == 200


@pytest.mark.parametrize("path", ["/api/workers", "/api/allocation", "/metrics", "/openapi.json"])
def test_remote_reads_without_token_are_refused(remote: TestClient, path: str) -> None:
    answer = remote.get(path)
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == "Bearer"
    assert answer.json()["error"] == "Unauthorized"
    assert REMOTE[0] in answer.json()["message"]


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_probes_are_open_to_every_client(remote: TestClient, path: str) -> None:
    """Kubelet probes carry no token."""
    assert remote.get(path).status_code == 200
    assert remote.post(path).status_code != 200  # only reads are open


def test_remote_simulate_without_token_is_refused(remote: TestClient) -> None:
    answer = remote.post("/api/simulate-schedule", content=R9_POD)
    assert answer.status_code == 401


def test_remote_reads_with_the_token_pass(remote: TestClient) -> None:
    assert remote.get("/api/workers", headers=AUTH).status_code == 200


def test_a_test_client_host_is_not_loopback(backend: FakeBackend) -> None:
    with TestClient(create_app(backend, ServerSettings(token=TOKEN))) as client:
        assert client.get("/api/workers").status_code == 401


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/workers", WORKER_BODY),
        ("PATCH", "/api/workers/w", {"pids": [1]}),
        ("DELETE", "/api/workers/w", None),
    ],
)
def test_writes_need_the_token_even_on_loopback(
    local: TestClient, backend: FakeBackend, method: str, path: str, body: object
) -> None:
    answer = local.request(method, path, json=body)
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == "Bearer"
    assert "Authorization: Bearer" in answer.json()["message"]
    assert backend.received == []
    assert local.request(method, path, json=body, headers=AUTH).status_code in (200, 201)


@pytest.mark.parametrize(
    "header", [f"Bearer {TOKEN}x", f"Basic {TOKEN}", TOKEN, "Bearer", f"Bearer {TOKEN.upper()}"]
)
def test_a_wrong_token_is_refused(local: TestClient, backend: FakeBackend, header: str) -> None:
    answer = local.post("/api/workers", json=WORKER_BODY, headers={"Authorization": header})
    assert answer.status_code == 401
    assert answer.json() == {
        "error": "Unauthorized",
        "message": "the bearer token is wrong; use the one the server generated",
    }
    assert backend.received == []


def test_public_reads_open_reads_but_not_writes(backend: FakeBackend) -> None:
    app = create_app(backend, ServerSettings(token=TOKEN, public_reads=True))
    with TestClient(app, client=REMOTE) as remote:
        assert remote.get("/api/gpus").status_code == 200
        assert remote.post("/api/workers", json=WORKER_BODY).status_code == 401
        assert remote.delete("/api/workers/w").status_code == 401
