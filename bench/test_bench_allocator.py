"""The scheduler's start from the local SQLite store at 100,000 allocated pods (target: the
allocator rebuilt from the listed pods in at most 2 s), its parts timed apart: the SQLite
read, the JSON decode (orjson, against the standard library as the baseline), and the
rebuild. The start lists whole pods: its queue and node accounting read every pod's spec,
so the whole cluster state's build from the pods in memory is timed too."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from tensorfusion.gc_pause import collector_paused
from tensorfusion.scheduler.allocation import RebuildReport
from tensorfusion.scheduler.allocator import GpuAllocator
from tensorfusion.scheduler.cluster_state import ClusterState
from tensorfusion.scheduler.fleet import Fleet
from tensorfusion.scheduler.fleet_generator import generate_fleet
from tensorfusion.store.local import LocalStore

PODS = 100_000
Recorder = Callable[[str, str, BenchmarkFixture], None]
ROUNDS = 5
BUILD_ROUNDS = 3
"""A whole build takes seconds: fewer rounds keep the run short."""
LISTING = f"listing {PODS:,} pods from SQLite, orjson against the standard library's json"
START = (
    f"allocator rebuild from {PODS:,} pods listed from SQLite, orjson against the standard"
    " library's json"
)
"""Comparisons: the standard library's decode is the baseline ("reference")."""


@pytest.fixture(scope="module")
def fleet() -> Fleet:
    fleet = generate_fleet(8_000, 8, "H100", 0.6, seed=1)
    assert len(fleet.pods) >= PODS
    fleet.pods = fleet.pods[:PODS]
    return fleet


@pytest.fixture(scope="module")
def store(fleet: Fleet, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStore]:
    with LocalStore(tmp_path_factory.mktemp("allocator-store")) as store:
        store.create_many(fleet.pods)
        yield store


def _read(store: LocalStore) -> list[str]:
    """The pods' stored JSON text, read as `LocalStore.list` reads it."""
    with sqlite3.connect(store.file) as conn:
        rows = conn.execute(
            "SELECT body FROM objects WHERE kind = 'Pod' ORDER BY namespace, name"
        ).fetchall()
    return [body for (body,) in rows]


def _listed_by_stdlib(store: LocalStore) -> list[dict[str, Any]]:
    with collector_paused():
        return [json.loads(body) for body in _read(store)]


def _empty_allocator(fleet: Fleet) -> GpuAllocator:
    state, _ = ClusterState.build(
        Fleet(nodes=fleet.nodes, gpu_nodes=fleet.gpu_nodes, gpus=fleet.gpus, pools=fleet.pools)
    )
    return state.gpus


def _rebuild(
    benchmark: BenchmarkFixture, fleet: Fleet, rebuild: Callable[[GpuAllocator], RebuildReport]
) -> float:
    def setup() -> tuple[tuple[GpuAllocator], dict[str, Any]]:
        return (_empty_allocator(fleet),), {}

    def run(allocator: GpuAllocator) -> None:
        report = rebuild(allocator)
        assert report.restored == PODS, report.problems()[:3]

    return _median(benchmark, run, setup=setup)


def _listing(benchmark: BenchmarkFixture, listing: Callable[[], list[Any]]) -> float:
    def run() -> None:
        assert len(listing()) == PODS

    return _median(benchmark, run)


def _median(
    benchmark: BenchmarkFixture, run: Callable[..., None], rounds: int = ROUNDS, **options: Any
) -> float:
    benchmark.pedantic(run, rounds=rounds, iterations=1, **options)  # type: ignore[no-untyped-call]
    assert benchmark.stats is not None
    median: float = benchmark.stats.stats.median
    return median


@pytest.mark.benchmark(group="allocator-list")
def test_read_pods(
    benchmark: BenchmarkFixture, store: LocalStore, record_figure: Callable[[str], None]
) -> None:
    median = _listing(benchmark, lambda: _read(store))
    record_figure(f"SQLite read of {PODS:,} pods' JSON text (no decode): {median:.2f} s")


@pytest.mark.benchmark(group="allocator-list")
def test_list_pods_by_stdlib(
    benchmark: BenchmarkFixture, store: LocalStore, record_median: Recorder
) -> None:
    _listing(benchmark, lambda: _listed_by_stdlib(store))
    record_median(LISTING, "reference", benchmark)


@pytest.mark.benchmark(group="allocator-list")
def test_list_pods(benchmark: BenchmarkFixture, store: LocalStore, record_median: Recorder) -> None:
    _listing(benchmark, lambda: store.list("Pod"))
    record_median(LISTING, "native", benchmark)


@pytest.mark.benchmark(group="allocator-rebuild")
def test_rebuild_from_pods_in_memory(
    benchmark: BenchmarkFixture, fleet: Fleet, record_figure: Callable[[str], None]
) -> None:
    median = _rebuild(benchmark, fleet, lambda allocator: allocator.rebuild(fleet.pods))
    record_figure(f"allocator rebuild from {PODS:,} pod objects in memory: {median:.2f} s")


@pytest.mark.benchmark(group="cluster-state-build")
def test_build_cluster_state_from_objects_in_memory(
    benchmark: BenchmarkFixture, fleet: Fleet, record_figure: Callable[[str], None]
) -> None:
    def run() -> None:
        _, report = ClusterState.build(fleet)
        assert report.restored == PODS, report.problems()[:3]

    median = _median(benchmark, run, rounds=BUILD_ROUNDS)
    record_figure(
        f"cluster state build (the scheduler's start) from {PODS:,} pods and their nodes and"
        f" GPUs in memory: {median:.2f} s"
    )


@pytest.mark.benchmark(group="allocator-rebuild-from-store")
def test_rebuild_from_pods_listed_by_stdlib(
    benchmark: BenchmarkFixture, fleet: Fleet, store: LocalStore, record_median: Recorder
) -> None:
    _rebuild(benchmark, fleet, lambda allocator: allocator.rebuild(_listed_by_stdlib(store)))
    record_median(START, "reference", benchmark)


@pytest.mark.benchmark(group="allocator-rebuild-from-store")
def test_rebuild_from_the_local_store(
    benchmark: BenchmarkFixture,
    fleet: Fleet,
    store: LocalStore,
    record_median: Recorder,
    record_figure: Callable[[str], None],
) -> None:
    median = _rebuild(benchmark, fleet, lambda allocator: allocator.rebuild(store.list("Pod")))
    record_median(START, "native", benchmark)
    record_figure(
        f"allocator rebuild from {PODS:,} pods listed from the SQLite store, as the scheduler's"
        f" start does: {median:.2f} s (target <= 2 s)"
    )
