"""Every error is `{error, message, field?}` with the status docs/api.md gives it."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tensorfusion.errors import (
    AllocationError,
    AlreadyExistsError,
    AnnotationError,
    ConfigError,
    ConflictError,
    FleetError,
    NotFoundError,
    QuantityError,
    UnavailableError,
    UnschedulableError,
)
from tensorfusion.server.errors import validation_field
from tests.unit.server.conftest import AUTH
from tests.unit.server.fake_backend import REPORT, FakeBackend

WORKER_BODY = {"tflopsRequest": "50", "vramRequest": "4Gi"}


@pytest.mark.parametrize(
    ("error", "status", "kind", "field"),
    [
        (ConfigError("vramRequest", "must be positive"), 422, "Invalid", "vramRequest"),
        (
            AnnotationError("tensor-fusion.ai/vram-limit", "bad quantity"),
            422,
            "Invalid",
            "tensor-fusion.ai/vram-limit",
        ),
        (FleetError("GPU/g0", "status.capacity", "missing"), 422, "Invalid", "status.capacity"),
        (QuantityError("'4Gb' is not a quantity"), 422, "Invalid", None),
        (NotFoundError("worker 'w' not found"), 404, "NotFound", None),
        (AlreadyExistsError("worker 'w' already exists"), 409, "Conflict", None),
        (ConflictError("worker 'w' changed"), 409, "Conflict", None),
        (AllocationError("over capacity on node-0-gpu-0"), 409, "Conflict", None),
        (UnavailableError("not the leader"), 503, "Unavailable", None),
    ],
)
def test_backend_errors_map_to_statuses(
    local: TestClient,
    backend: FakeBackend,
    *,
    error: Exception,
    status: int,
    kind: str,
    field: str | None,
) -> None:
    backend.fail = error
    answer = local.post("/api/workers", json=WORKER_BODY, headers=AUTH)
    assert answer.status_code == status
    expected: dict[str, Any] = {"error": kind, "message": str(error)}
    if field is not None:
        expected["field"] = field
    assert answer.json() == expected


def test_unschedulable_carries_the_diagnosis(local: TestClient, backend: FakeBackend) -> None:
    report = REPORT | {"schedulable": False, "diagnosis": {"message": "0/1 nodes"}}
    backend.fail = UnschedulableError("no node can take 'w' now", report)
    answer = local.post("/api/workers", json=WORKER_BODY, headers=AUTH)
    assert answer.status_code == 409
    assert answer.json() == {
        "error": "Unschedulable",
        "message": "no node can take 'w' now",
        "diagnosis": report,
    }


def test_unexpected_failure_is_a_json_500_without_internals(
    local: TestClient, backend: FakeBackend
) -> None:
    backend.fail = RuntimeError("secret internal detail")
    answer = local.get("/api/pools")
    assert answer.status_code == 500
    assert answer.json()["error"] == "Internal"
    assert "secret" not in answer.text


def test_unknown_route_is_a_json_404(local: TestClient) -> None:
    answer = local.get("/api/nope")
    assert answer.status_code == 404
    assert answer.json() == {
        "error": "NotFound",
        "message": "no such route; the API is listed at /docs",
    }


def test_wrong_method_is_a_json_405_with_allow(local: TestClient) -> None:
    answer = local.put("/api/pools", headers=AUTH)
    assert answer.status_code == 405
    assert answer.json()["error"] == "MethodNotAllowed"
    assert "GET" in answer.headers["Allow"]
    assert "GET" in answer.json()["message"]


@pytest.mark.parametrize(
    ("body", "field", "needle"),
    [
        ({"vramRequest": "4Gi"}, "tflopsRequest", "required, or tflopsLimit"),
        ({"tflopsLimit": 5}, "vramRequest", "required, or vramLimit"),
        (WORKER_BODY | {"gpuCount": "two"}, "gpuCount", "integer"),
        (WORKER_BODY | {"gpuCount": True}, "gpuCount", "integer"),
        (WORKER_BODY | {"vramRequest": 4.5}, "vramRequest", ""),
        (WORKER_BODY | {"tflopsRequest": None}, "tflopsRequest", ""),
        (WORKER_BODY | {"pid": 0}, "pid", "greater than or equal to 1"),
        (WORKER_BODY | {"pid": 1 << 40}, "pid", "less than or equal to"),
        (WORKER_BODY | {"command": ["python", 3]}, "command[1]", "string"),
        (WORKER_BODY | {"tflopLimit": "100"}, "tflopLimit", "Extra inputs"),
    ],
)
def test_a_bad_field_is_422_naming_it(
    local: TestClient, backend: FakeBackend, body: dict[str, Any], field: str, needle: str
) -> None:
    answer = local.post("/api/workers", json=body, headers=AUTH)
    assert answer.status_code == 422
    problem = answer.json()
    assert problem["error"] == "Invalid"
    assert problem["field"] == field
    assert problem["message"].startswith(f"{field}: ")
    assert needle in problem["message"]
    assert backend.received == []


def test_several_bad_fields_are_all_named_without_one_field(local: TestClient) -> None:
    body = {"vramRequest": 4.5, "gpuCount": "x", "pid": 0}
    answer = local.post("/api/workers", json=body, headers=AUTH)
    assert answer.status_code == 422
    problem = answer.json()
    assert "field" not in problem
    for name in body:
        assert name in problem["message"]


@pytest.mark.parametrize(
    "content", ['{"tflopsRequest": "50",', "[1, 2]", '"text"', "", "tflopsRequest: 50"]
)
def test_a_body_that_is_not_a_json_object_is_400(local: TestClient, content: str) -> None:
    headers = AUTH | {"Content-Type": "application/json"}
    answer = local.post("/api/workers", content=content, headers=headers)
    assert answer.status_code == 400
    assert answer.json()["error"] == "BadRequest"


def test_pids_must_be_a_non_empty_list_of_pids(local: TestClient, backend: FakeBackend) -> None:
    for body, field in (({"pids": []}, "pids"), ({"pids": [1, -2]}, "pids[1]"), ({}, "pids")):
        answer = local.patch("/api/workers/w", json=body, headers=AUTH)
        assert answer.status_code == 422
        assert answer.json()["field"] == field
    assert backend.received == []


@pytest.mark.parametrize(
    ("loc", "field"),
    [
        (("body", "tflopsRequest"), "tflopsRequest"),
        (("body", "command", 1), "command[1]"),
        (("body", "pids", 0), "pids[0]"),
        (("path", "name"), "path.name"),
        (("body",), ""),
    ],
)
def test_validation_field_paths(loc: tuple[int | str, ...], field: str) -> None:
    assert validation_field(loc) == field
