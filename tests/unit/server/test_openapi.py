"""The OpenAPI spec describes the real shapes and which operations need the token."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tensorfusion.server.openapi import SCHEME


@pytest.fixture
def spec(local: TestClient) -> dict[str, Any]:
    answer = local.get("/openapi.json")
    assert answer.status_code == 200
    document: dict[str, Any] = answer.json()
    return document


def operation(spec: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    found: dict[str, Any] = spec["paths"][path][method]
    return found


def response_ref(op: dict[str, Any], status: str) -> str:
    ref: str = op["responses"][status]["content"]["application/json"]["schema"]["$ref"]
    return ref.rsplit("/", 1)[1]


def test_every_documented_route_is_there(spec: dict[str, Any]) -> None:
    assert set(spec["paths"]) == {
        "/api/simulate-schedule",
        "/api/allocation",
        "/api/pools",
        "/api/nodes",
        "/api/gpus",
        "/api/workers",
        "/api/workers/{name}",
        "/metrics",
        "/healthz",
        "/readyz",
    }


@pytest.mark.parametrize(
    ("method", "path", "schema"),
    [
        ("get", "/api/pools", "PoolList"),
        ("get", "/api/gpus", "GPUList"),
        ("get", "/api/workers", "WorkerList"),
        ("post", "/api/simulate-schedule", "SimulateReport"),
        ("get", "/api/allocation", "AllocationSnapshot"),
    ],
)
def test_responses_have_real_schemas(
    spec: dict[str, Any], method: str, path: str, schema: str
) -> None:
    op = operation(spec, method, path)
    assert response_ref(op, "200") == schema
    assert response_ref(op, "401") == "Error"
    assert spec["components"]["schemas"][schema]["properties"]


def test_worker_schemas_use_the_wire_names(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    worker = schemas["Worker"]["properties"]
    assert {"gpuIndices", "createdAt", "usage", "pids"} <= set(worker)
    assert "env" in schemas["CreatedWorker"]["properties"]
    create = operation(spec, "post", "/api/workers")
    assert response_ref(create, "201") == "CreatedWorker"
    assert response_ref(create, "409") == "Error"
    body = create["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    request = schemas[body.rsplit("/", 1)[1]]
    assert set(request["required"]) == {"tflopsRequest", "vramRequest"}
    assert request["additionalProperties"] is False
    assert set(schemas["Error"]["required"]) == {"error", "message"}


def test_simulate_takes_yaml_or_json(spec: dict[str, Any]) -> None:
    content = operation(spec, "post", "/api/simulate-schedule")["requestBody"]["content"]
    assert set(content) == {"application/yaml", "application/json"}
    assert content["application/yaml"]["schema"]["properties"]["kind"]["enum"] == ["Pod"]


@pytest.mark.parametrize(
    ("method", "path", "required"),
    [
        ("post", "/api/workers", True),
        ("patch", "/api/workers/{name}", True),
        ("delete", "/api/workers/{name}", True),
        ("get", "/api/workers", False),
        ("post", "/api/simulate-schedule", False),
        ("get", "/metrics", False),
    ],
)
def test_security_says_which_operations_need_the_token(
    spec: dict[str, Any], method: str, path: str, required: bool
) -> None:
    assert spec["components"]["securitySchemes"][SCHEME]["scheme"] == "bearer"
    security = operation(spec, method, path)["security"]
    assert security == ([{SCHEME: []}] if required else [{}, {SCHEME: []}])
