"""What each route hands the backend and answers with (the backend here is canned; the real
control plane is in tests/integration/test_server_api.py)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tensorfusion.errors import ConfigError, UnavailableError
from tensorfusion.server.backend import WorkerRequest
from tensorfusion.server.worker_requests import WorkerCreate
from tests.unit.server.conftest import AUTH
from tests.unit.server.fake_backend import GPU, NODE, PLAN, POOL, SNAPSHOT, WORKER, FakeBackend


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"tflopsRequest": "50", "vramRequest": "4Gi"},
            WorkerRequest(tflops_request="50", vram_request="4Gi"),
        ),
        (
            {"tflopsLimit": 50, "vramLimit": "4Gi"},
            WorkerRequest(tflops_limit="50", vram_limit="4Gi"),
        ),
        (
            {"tflopsRequest": 50, "vramRequest": 4294967296, "tflopsLimit": 100.5},
            WorkerRequest(tflops_request="50", vram_request="4294967296", tflops_limit="100.5"),
        ),
        (
            {
                "tflopsRequest": "500m",
                "vramRequest": "1Gi",
                "vramLimit": 2147483648,
                "gpuCount": 2,
                "pool": "p",
                "gpuModel": "H100",
                "name": "w",
                "pid": 4242,
                "command": ["python", "train.py"],
            },
            WorkerRequest(
                tflops_request="500m",
                vram_request="1Gi",
                vram_limit="2147483648",
                gpu_count=2,
                pool="p",
                gpu_model="H100",
                name="w",
                pid=4242,
                command=("python", "train.py"),
            ),
        ),
    ],
)
def test_a_worker_body_becomes_a_worker_request(
    body: dict[str, Any], expected: WorkerRequest
) -> None:
    assert WorkerCreate.model_validate(body).to_request() == expected


@pytest.mark.parametrize(
    ("amounts", "field"),
    [
        ({"vramLimit": "4Gi"}, "tflopsRequest"),
        ({"tflopsRequest": "50", "tflopsLimit": "60"}, "vramRequest"),
        ({"tflopsRequest": "50", "vramRequest": None, "vramLimit": None}, "vramRequest"),
    ],
)
def test_a_slice_needs_one_amount_of_each_pair(amounts: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as refused:
        WorkerCreate.model_validate(amounts).to_request()
    assert refused.value.field == field
    assert f"or {field.replace('Request', 'Limit')}" in refused.value.message


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("tflopsRequest", True),
        ("tflopsRequest", float("nan")),
        ("tflopsRequest", float("inf")),
        ("tflopsRequest", ["50"]),
        ("vramRequest", 4.5),
        ("vramRequest", False),
    ],
)
def test_quantities_are_numbers_or_strings(field: str, value: object) -> None:
    body = {"tflopsRequest": "50", "vramRequest": "4Gi", field: value}
    with pytest.raises(ValueError, match="quantity string"):
        WorkerCreate.model_validate(body)


def test_create_answers_201_with_the_env(local: TestClient, backend: FakeBackend) -> None:
    answer = local.post(
        "/api/workers", json={"tflopsRequest": 50, "vramRequest": "4Gi"}, headers=AUTH
    )
    assert answer.status_code == 201
    assert answer.json()["env"] == {"TF_WORKER_NAME": WORKER["name"]}
    assert backend.received == [WorkerRequest(tflops_request="50", vram_request="4Gi")]


def test_patch_and_delete_name_the_worker(local: TestClient, backend: FakeBackend) -> None:
    patched = local.patch("/api/workers/w-1", json={"pids": [7, 8]}, headers=AUTH)
    assert patched.status_code == 200
    deleted = local.delete("/api/workers/w-1", headers=AUTH)
    assert deleted.status_code == 200
    assert deleted.json() == {"released": "w-1"}
    assert backend.received == [("w-1", [7, 8]), "w-1"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/pools", {"pools": [POOL]}),
        ("/api/nodes", {"nodes": [NODE]}),
        ("/api/gpus", {"gpus": [GPU]}),
        ("/api/workers", {"workers": [WORKER]}),
        ("/api/allocation", SNAPSHOT),
    ],
)
def test_reads_wrap_the_backend_lists(local: TestClient, path: str, body: object) -> None:
    answer = local.get(path)
    assert answer.status_code == 200
    assert answer.json() == body


def test_a_pool_plan_is_served_and_an_unknown_pool_is_404(local: TestClient) -> None:
    answer = local.get("/api/pools/default-pool/plan")
    assert answer.status_code == 200
    assert answer.json() == PLAN
    missing = local.get("/api/pools/nope/plan")
    assert missing.status_code == 404
    assert "nope" in missing.json()["message"]


def test_health_and_readiness(local: TestClient, backend: FakeBackend) -> None:
    assert local.get("/healthz").json() == {"status": "ok"}
    assert local.get("/readyz").json() == {"status": "ready"}
    backend.ready = (False, "registering GPUs")
    backend.fail = UnavailableError("starting")
    assert local.get("/healthz").status_code == 200
    answer = local.get("/readyz")
    assert answer.status_code == 503
    assert answer.json() == {"error": "Unavailable", "message": "not ready: registering GPUs"}
