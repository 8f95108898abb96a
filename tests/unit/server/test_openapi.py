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
        "/api/pools/{name}/plan",
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
        ("get", "/api/pools/{name}/plan", "PoolPlan"),
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
    assert {"gpuIndices", "createdAt", "usage", "vramTiers", "pids"} <= set(worker)
    assert set(schemas["VramTiers"]["properties"]) == {"device", "host", "disk"}
    assert "env" in schemas["CreatedWorker"]["properties"]
    create = operation(spec, "post", "/api/workers")
    assert response_ref(create, "201") == "CreatedWorker"
    assert response_ref(create, "409") == "Error"
    body = create["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    request = schemas[body.rsplit("/", 1)[1]]
    # A request defaults to its limit: one of each pair, not null, is required.
    assert "required" not in request
    pairs = [[option["required"] for option in rule["anyOf"]] for rule in request["allOf"]]
    assert pairs == [[["tflopsRequest"], ["tflopsLimit"]], [["vramRequest"], ["vramLimit"]]]
    assert request["allOf"][1]["anyOf"][1]["properties"]["vramLimit"] == {"not": {"type": "null"}}
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


def test_allocation_documents_its_filters_paging_and_refusals(spec: dict[str, Any]) -> None:
    op = operation(spec, "get", "/api/allocation")
    parameters = {p["name"]: p for p in op["parameters"]}
    assert set(parameters) == {"node", "pool", "gpu", "limit", "continue"}
    assert all(p["in"] == "query" and not p["required"] for p in parameters.values())
    limit = parameters["limit"]["schema"]["anyOf"][0]
    assert (limit["type"], limit["minimum"]) == ("integer", 1)
    for status in ("400", "410", "422"):
        assert response_ref(op, status) == "Error"
    snapshot = spec["components"]["schemas"]["AllocationSnapshot"]
    assert set(snapshot["required"]) == {"gpus", "workersPerNode", "allocations", "gpuWorkers"}
    meta = spec["components"]["schemas"]["ListMeta"]["properties"]
    assert set(meta) == {"continue", "remainingItemCount"}
