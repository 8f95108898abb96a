"""The management API over HTTP on loopback: uvicorn (start_in_thread) over the real embedded
control plane, one keep-alive httpx client sending one request at a time.

- `POST /api/simulate-schedule` with the guide's R9 Pod on 5,000 nodes x 8 H100 with 60% of
  their VRAM allocated (target: p99 <= 10 ms);
- `GET /api/allocation` with about 10,000 allocations (800 such nodes at 60%): whole and
  unchanged (and revalidated with its ETag), narrowed to one node or to a page of 500 against
  the whole in the same run, and whole after each change (a pod placed between requests)
  against the unchanged one in the same run.

Starting a control plane registers the whole fleet in its store, which takes a minute at
5,000 nodes; that is setup, not measured."""

from __future__ import annotations

import gc
import os
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import httpx
import orjson
import pytest
from pytest_benchmark.fixture import BenchmarkFixture
from starlette.responses import JSONResponse

from tensorfusion.embedded.control_plane import ControlPlane, ControlPlaneConfig
from tensorfusion.scheduler.fleet_generator import generate_fleet
from tensorfusion.server.allocation_listing import render
from tensorfusion.server.app import create_app
from tensorfusion.server.backend import WorkerRequest
from tensorfusion.server.runner import start_in_thread
from tensorfusion.server.settings import ServerSettings

R9 = Path(__file__).parents[1] / "tests" / "fixtures" / "guide" / "r09-simulate-pod.yaml"
YAML = {"Content-Type": "application/yaml"}


class Served(NamedTuple):
    client: httpx.Client
    plane: ControlPlane
    allocations: int
    """How many allocations the fleet starts with."""


@contextmanager
def serving(root: Path, nodes: int, fill: float) -> Iterator[Served]:
    """A client of a server over a fresh control plane on a generated fleet."""
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
            yield Served(client, plane, len(fleet.pods))
    finally:
        plane.stop()


def latency_figure(benchmark: BenchmarkFixture, what: str, target: str = "") -> str:
    """p50, p99 and requests/s from every measured round."""
    if benchmark.stats is None:  # benchmarks disabled: nothing was measured
        return f"{what}: not measured"
    rounds: list[float] = benchmark.stats.stats.data
    rate = len(rounds) / sum(rounds)
    return (
        f"{what}: {percentiles(rounds)}{target}, "
        f"{rate:.3g} requests/s ({len(rounds)} requests, one keep-alive client)"
    )


def percentiles(rounds: list[float]) -> str:
    p99 = statistics.quantiles(rounds, n=100, method="inclusive")[98]
    return f"p50 {statistics.median(rounds) * 1e3:.2f} ms, p99 {p99 * 1e3:.2f} ms"


@pytest.fixture(scope="module")
def simulate_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    with serving(tmp_path_factory.mktemp("api-5000"), 5_000, 0.6) as served:
        yield served.client


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

    benchmark.pedantic(simulate, rounds=2000, iterations=1, warmup_rounds=50)  # type: ignore[no-untyped-call]
    record_figure(
        latency_figure(
            benchmark,
            "POST /api/simulate-schedule (R9 Pod), 5,000 nodes x 8 GPUs, 60% full",
            " (target <= 10 ms)",
        )
    )


@pytest.fixture(scope="module")
def allocation_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serving(tmp_path_factory.mktemp("api-alloc"), 800, 0.6) as served:
        yield served


def timed_get(client: httpx.Client, **headers: str) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    answer = client.get("/api/allocation", headers=headers)
    return answer, time.perf_counter() - started


@pytest.mark.benchmark(group="management-api")
def test_allocation_snapshot_over_http(
    benchmark: BenchmarkFixture,
    allocation_client: Served,
    record_figure: Callable[[str], None],
) -> None:
    """The request as the client receives it; the body is checked against the first answer
    (a byte comparison), since parsing 7 MB is the client's time, not the server's. Then
    the same request with the first answer's ETag, which an unchanged snapshot answers with
    304 and no body."""
    client = allocation_client.client
    first = client.get("/api/allocation")
    assert len(first.json()["allocations"]) == allocation_client.allocations

    def snapshot() -> None:
        answer = client.get("/api/allocation")
        assert answer.content == first.content

    benchmark.pedantic(snapshot, rounds=50, iterations=1, warmup_rounds=2)  # type: ignore[no-untyped-call]
    what = (
        f"GET /api/allocation, {allocation_client.allocations:,} allocations on 800 nodes "
        f"({len(first.content) / 1e6:.1f} MB)"
    )
    record_figure(latency_figure(benchmark, what, " (target <= 100 ms)"))
    if benchmark.stats is None:  # benchmarks disabled: nothing was measured
        return
    revalidations = []
    for _ in range(50):
        answer, seconds = timed_get(client, **{"If-None-Match": first.headers["ETag"]})
        assert answer.status_code == 304
        revalidations.append(seconds)
    record_figure(f"  the same with its ETag in If-None-Match (304): {percentiles(revalidations)}")


@pytest.mark.benchmark(group="allocation-body")
@pytest.mark.parametrize("implementation", ["native", "reference"])
def test_rendering_the_allocation_body(
    benchmark: BenchmarkFixture,
    allocation_client: Served,
    record_median: Callable[[str, str, BenchmarkFixture], None],
    implementation: str,
) -> None:
    """What a change of the allocations costs the next request: the body rendered again,
    by orjson (served) against the standard encoder (JSONResponse)."""
    snapshot = allocation_client.client.get("/api/allocation").json()
    if implementation == "native":
        benchmark.pedantic(render, args=(snapshot,), rounds=10, iterations=1)  # type: ignore[no-untyped-call]
    else:
        benchmark.pedantic(JSONResponse, args=(snapshot,), rounds=10, iterations=1)  # type: ignore[no-untyped-call]
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
    allocation_client: Served,
    record_figure: Callable[[str], None],
    what: str,
    params: Callable[[httpx.Client], dict[str, str]],
) -> None:
    """The full request runs before each round of the narrow one (untimed by the benchmark,
    timed here), so both medians come from the same stretch of the run; its garbage is
    collected before the narrow round, which would otherwise pay for it (the client and the
    server share one interpreter). Both times end when the body has arrived: the answers
    are parsed and checked after the timing, as parsing is the client's time."""
    client, allocations = allocation_client.client, allocation_client.allocations
    query = params(client)
    full_rounds: list[float] = []
    answers: list[httpx.Response] = []

    def full() -> None:
        answer, seconds = timed_get(client)
        full_rounds.append(seconds)
        assert len(answer.json()["allocations"]) == allocations
        del answer
        gc.collect()

    def narrow() -> None:
        answers.append(client.get("/api/allocation", params=query))

    benchmark.pedantic(narrow, setup=full, rounds=15, iterations=1, warmup_rounds=1)  # type: ignore[no-untyped-call]
    for answer in answers:
        assert answer.status_code == 200, answer.text
        assert 0 < len(answer.json()["allocations"]) < allocations
    if benchmark.stats is None:  # benchmarks disabled: nothing was measured
        return
    narrow_median = benchmark.stats.stats.median
    full_median = statistics.median(full_rounds)
    record_figure(
        f"GET /api/allocation{what} vs the full snapshot, {allocations:,} allocations: "
        f"{narrow_median * 1e3:.2f} ms vs {full_median * 1e3:.1f} ms (medians), "
        f"{full_median / narrow_median:.1f}x faster"
    )


@pytest.mark.benchmark(group="management-api")
def test_allocation_snapshot_after_each_change(
    benchmark: BenchmarkFixture,
    allocation_client: Served,
    record_figure: Callable[[str], None],
) -> None:
    """A pod placed before each round (untimed), so that each request finds the allocations
    changed: the allocator's snapshot is built again and its body rendered again, once. An
    unchanged request follows each round (timed here), the baseline from the same stretch
    of the run. Last in this file: the pods placed stay until the module's plane stops."""
    client, plane = allocation_client.client, allocation_client.plane
    placed: list[str] = []
    unchanged_rounds: list[float] = []
    bodies: list[bytes] = []

    def place() -> None:
        worker = plane.create_worker(WorkerRequest("1", "1Gi", pid=os.getpid()))
        placed.append(worker["uid"])
        gc.collect()

    def changed() -> None:
        bodies.append(client.get("/api/allocation").content)

    def unchanged() -> None:
        answer, seconds = timed_get(client)
        assert answer.content == bodies[-1]
        unchanged_rounds.append(seconds)

    benchmark.pedantic(  # type: ignore[no-untyped-call]
        changed, setup=place, teardown=unchanged, rounds=20, iterations=1, warmup_rounds=1
    )
    assert len(set(bodies)) == len(bodies), "each change answered with a new body"
    last = orjson.loads(bodies[-1])["allocations"]
    assert set(placed) <= set(last)
    assert len(last) == allocation_client.allocations + len(placed)
    if benchmark.stats is None:  # benchmarks disabled: nothing was measured
        return
    record_figure(
        f"GET /api/allocation after each change (a pod placed), "
        f"{allocation_client.allocations:,}+ allocations: {percentiles(benchmark.stats.stats.data)}"
        f" vs unchanged {percentiles(unchanged_rounds)} (same run)"
    )
