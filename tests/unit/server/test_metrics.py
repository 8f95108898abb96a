"""`/metrics`: gauges read from the backend at scrape time, request counters by route."""

from __future__ import annotations

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tensorfusion.errors import UnavailableError
from tensorfusion.server.app import create_app
from tensorfusion.server.settings import ServerSettings
from tests.unit.server.conftest import AUTH, LOOPBACK, TOKEN
from tests.unit.server.fake_backend import GIB, FakeBackend


def samples(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    answer = client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def test_pool_and_gpu_gauges_come_from_the_backend(local: TestClient) -> None:
    found = samples(local)
    pool = (("pool", "default-pool"),)
    gpu = (("gpu", "node-0-gpu-0"), ("node", "node-0"), ("pool", "default-pool"))
    assert found["tf_ready", ()] == 1
    assert found["tf_pool_capacity_tflops", pool] == 989.0
    assert found["tf_pool_virtual_capacity_tflops", pool] == 989.0 * 5
    assert found["tf_pool_allocated_vram_bytes", pool] == 4 * GIB
    assert found["tf_pool_allocated_limits_tflops", pool] == 100.0
    assert found["tf_pool_gpus", pool] == 1
    assert found["tf_gpu_capacity_vram_bytes", gpu] == 80 * GIB
    assert found["tf_gpu_virtual_capacity_vram_bytes", gpu] == 160 * GIB
    assert found["tf_gpu_workers", gpu] == 1
    assert found["tf_workers", (("phase", "Running"),)] == 1


def test_gauges_follow_the_backend_between_scrapes(local: TestClient, backend: FakeBackend) -> None:
    running, pending = (
        ("tf_workers", (("phase", "Running"),)),
        ("tf_workers", (("phase", "Pending"),)),
    )
    assert samples(local)[running] == 1
    backend.workers = lambda: []  # type: ignore[method-assign]
    found = samples(local)
    assert found[running] == found[pending] == 0


def test_a_backend_that_is_not_ready_still_scrapes(local: TestClient, backend: FakeBackend) -> None:
    backend.ready = (False, "starting")
    backend.fail = UnavailableError("starting")
    found = samples(local)
    assert found["tf_ready", ()] == 0
    assert not any(name.startswith("tf_pool_") for name, _ in found)


def test_requests_are_counted_by_route_template_and_status(
    local: TestClient, remote: TestClient
) -> None:
    local.delete("/api/workers/alpha", headers=AUTH)
    local.delete("/api/workers/beta", headers=AUTH)
    local.delete("/api/workers/alpha")
    remote.get("/api/pools")
    local.get("/nowhere")
    local.request("BREW", "/api/pools", headers=AUTH)
    found = samples(local)
    route = (("method", "DELETE"), ("route", "/api/workers/{name}"))
    assert found["tf_api_requests_total", (*route, ("status", "200"))] == 2
    assert found["tf_api_requests_total", (*route, ("status", "401"))] == 1
    assert found["tf_api_request_duration_seconds_count", route] == 3
    pools = (("method", "GET"), ("route", "/api/pools"), ("status", "401"))
    assert found["tf_api_requests_total", pools] == 1
    nowhere = (("method", "GET"), ("route", "unmatched"), ("status", "404"))
    assert found["tf_api_requests_total", nowhere] == 1
    brew = (("method", "other"), ("route", "/api/pools"), ("status", "405"))
    assert found["tf_api_requests_total", brew] == 1
    assert not any("alpha" in str(labels) for _, labels in found)


def test_each_app_has_its_own_registry(backend: FakeBackend) -> None:
    settings = ServerSettings(token=TOKEN)
    with (
        TestClient(create_app(backend, settings), client=LOOPBACK) as first,
        TestClient(create_app(backend, settings), client=LOOPBACK) as second,
    ):
        first.get("/api/pools")
        first.get("/api/pools")
        pools = (("method", "GET"), ("route", "/api/pools"), ("status", "200"))
        assert samples(first)["tf_api_requests_total", pools] == 2
        assert ("tf_api_requests_total", pools) not in samples(second)
