"""The management API over HTTP on loopback: uvicorn (start_in_thread) over the real embedded
control plane, one keep-alive httpx client sending one request at a time.

- `POST /api/simulate-schedule` with the guide's R9 Pod on 5,000 nodes x 8 H100 with 60% of
  their VRAM allocated (target: p99 <= 10 ms);
- `GET /api/allocation` with about 10,000 allocations (800 such nodes at 60%), whole, and
  narrowed to one node or to a page of 500 against the whole in the same run.

Starting a control plane registers the whole fleet in its store, which takes a minute at
5,000 nodes; that is setup, not measured."""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from pytest_benchmark.fixture import BenchmarkFixture
from starlette.responses import JSONResponse

from tensorfusion.embedded.control_plane import ControlPlane, ControlPlaneConfig
from tensorfusion.scheduler.fleet_generator import generate_fleet
from tensorfusion.server.allocation_listing import render
from tensorfusion.server.app import create_app
from tensorfusion.server.runner import start_in_thread
from tensorfusion.server.settings import ServerSettings

R9 = Path(__file__).parents[1] / "tests" / "fixtures" / "guide" / "r09-simulate-pod.yaml"
YAML = {"Content-Type": "application/yaml"}


@contextmanager
def serving(root: Path, nodes: int, fill: float) -> Iterator[tuple[httpx.Client, int]]:
    """A client of a server over a fresh control plane on a generated fleet, and the
    number of allocations the fleet starts with."""
    fleet = generate_fleet(nodes=nodes, gpus_per_node=8, model="H100", fill=fill)
    path = root / "fleet.yaml"
    path.write_text(fleet.to_yaml())
    plane = ControlPlane(ControlPlaneConfig(state_dir=root / "state", fleet=path))
    plane.start()
    try:
        app = create_app(plane, ServerSettings(token=plane.token))
        # A generous timeout: the control plane's own threads can stall requests for seconds
        # at this scale, and that is a figure to report, not a failure.
        with (
            start_in_thread(app) as server,
            httpx.Client(base_url=server.url, timeout=120) as client,
        ):
            yield client, len(fleet.pods)
    finally:
        plane.stop()


def latency_figure(benchmark: BenchmarkFixture, what: str, target: str = "") -> str:
    """p50, p99 and requests/s from every measured round."""
    if benchmark.stats is None:  # benchmarks disabled: nothing was measured
        return f"{what}: not measured"
    rounds: list[float] = benchmark.stats.stats.data
    p50 = statistics.median(rounds)
    p99 = statistics.quantiles(rounds, n=100, method="inclusive")[98]
    rate = len(rounds) / sum(rounds)
    return (
        f"{what}: p50 {p50 * 1e3:.2f} ms, p99 {p99 * 1e3:.2f} ms{target}, "
        f"{rate:.3g} requests/s ({len(rounds)} requests, one keep-alive client)"
    )


@pytest.fixture(scope="module")
def simulate_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    with serving(tmp_path_factory.mktemp("api-5000"), 5_000, 0.6) as (client, _):
        yield client


@pytest.mark.benchmark(group="management-api")
def test_simulate_schedule_over_http(
    benchmark: BenchmarkFixture,
    simulate_client: httpx.Client,
    record_figure: Callable[[str], None],
) -> None:
    body = R9.read_bytes()

    def simulate() -> None:
        answer = simulate_client.post("/api/simulate-schedule", content=body, headers=YAML)
        assert answer.json()["schedulable"] is True, answer.text

    benchmark.pedantic(simulate, rounds=2000, iterations=1, warmup_rounds=50)
    record_figure(
        latency_figure(
            benchmark,
            "POST /api/simulate-schedule (R9 Pod), 5,000 nodes x 8 GPUs, 60% full",
            " (target <= 10 ms)",
        )
    )


@pytest.fixture(scope="module")
def allocation_client(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[httpx.Client, int]]:
    with serving(tmp_path_factory.mktemp("api-alloc"), 800, 0.6) as served:
        yield served


@pytest.mark.benchmark(group="management-api")
def test_allocation_snapshot_over_http(
    benchmark: BenchmarkFixture,
    allocation_client: tuple[httpx.Client, int],
    record_figure: Callable[[str], None],
) -> None:
    """The request as the client receives it; the body is checked against the first answer
    (a byte comparison), since parsing 7.7 MB is the client's time, not the server's."""
    client, allocations = allocation_client
    first = client.get("/api/allocation")
    assert len(first.json()["allocations"]) == allocations

    def snapshot() -> None:
        answer = client.get("/api/allocation")
        assert answer.content == first.content

    benchmark.pedantic(snapshot, rounds=50, iterations=1, warmup_rounds=2)
    record_figure(
        latency_figure(
            benchmark,
            f"GET /api/allocation, {allocations:,} allocations on 800 nodes "
            f"({len(first.content) / 1e6:.1f} MB)",
            " (target <= 100 ms)",
        )
    )


@pytest.mark.benchmark(group="allocation-body")
@pytest.mark.parametrize("implementation", ["native", "reference"])
def test_rendering_the_allocation_body(
    benchmark: BenchmarkFixture,
    allocation_client: tuple[httpx.Client, int],
    record_median: Callable[[str, str, BenchmarkFixture], None],
    implementation: str,
) -> None:
    """What a change of the allocations costs the next request: the body rendered again,
    by orjson (served) against the standard encoder (JSONResponse)."""
    client, _ = allocation_client
    snapshot = client.get("/api/allocation").json()
    if implementation == "native":
        benchmark.pedantic(render, args=(snapshot,), rounds=10, iterations=1)
    else:
        benchmark.pedantic(JSONResponse, args=(snapshot,), rounds=10, iterations=1)
    record_median("GET /api/allocation body at 10k allocations", implementation, benchmark)


def second_page(client: httpx.Client) -> dict[str, str]:
    first = client.get("/api/allocation", params={"limit": 500}).json()
    return {"limit": "500", "continue": first["metadata"]["continue"]}


@pytest.mark.benchmark(group="management-api")
@pytest.mark.parametrize(
    ("what", "params"),
    [
        ("?node=<one of 800>", lambda _: {"node": "node-00417"}),
        ("?limit=500 (first page, with all 6,400 GPUs)", lambda _: {"limit": "500"}),
        ("?limit=500&continue= (second page)", second_page),
    ],
)
def test_filtered_allocation_against_the_full_snapshot(
    benchmark: BenchmarkFixture,
    allocation_client: tuple[httpx.Client, int],
    record_figure: Callable[[str], None],
    what: str,
    params: Callable[[httpx.Client], dict[str, str]],
) -> None:
    """The full request runs before each round of the narrow one (untimed by the benchmark,
    timed here), so both medians come from the same stretch of the run; its garbage is
    collected before the narrow round, which would otherwise pay for it (the client and the
    server share one interpreter)."""
    client, allocations = allocation_client
    query = params(client)
    full_rounds: list[float] = []

    def full() -> None:
        started = time.perf_counter()
        answer = client.get("/api/allocation")
        assert len(answer.json()["allocations"]) == allocations
        full_rounds.append(time.perf_counter() - started)
        gc.collect()

    def narrow() -> None:
        answer = client.get("/api/allocation", params=query)
        assert answer.status_code == 200, answer.text
        assert 0 < len(answer.json()["allocations"]) < allocations

    benchmark.pedantic(narrow, setup=full, rounds=15, iterations=1, warmup_rounds=1)
    if benchmark.stats is None:  # benchmarks disabled: nothing was measured
        return
    narrow_median = benchmark.stats.stats.median
    full_median = statistics.median(full_rounds)
    record_figure(
        f"GET /api/allocation{what} vs the full snapshot, {allocations:,} allocations: "
        f"{narrow_median * 1e3:.2f} ms vs {full_median * 1e3:.1f} ms (medians), "
        f"{full_median / narrow_median:.1f}x faster"
    )
