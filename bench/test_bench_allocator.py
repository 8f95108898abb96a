"""Rebuilding the allocator from 100,000 allocated pods, as the scheduler does on start
(target: at most 2 s): from pod objects already in memory, and from the local SQLite store
(listing the pods included). Both figures are printed at the end of the run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from tensorfusion.scheduler.allocator import GpuAllocator
from tensorfusion.scheduler.cluster_state import ClusterState
from tensorfusion.scheduler.fleet import Fleet
from tensorfusion.scheduler.fleet_generator import generate_fleet
from tensorfusion.store.local import LocalStore

PODS = 100_000


@pytest.fixture(scope="module")
def fleet() -> Fleet:
    fleet = generate_fleet(8_000, 8, "H100", 0.6, seed=1)
    assert len(fleet.pods) >= PODS
    fleet.pods = fleet.pods[:PODS]
    return fleet


def _empty_allocator(fleet: Fleet) -> GpuAllocator:
    state, _ = ClusterState.build(
        Fleet(nodes=fleet.nodes, gpu_nodes=fleet.gpu_nodes, gpus=fleet.gpus, pools=fleet.pools)
    )
    return state.gpus


def _rebuild(benchmark: BenchmarkFixture, fleet: Fleet, pods: Callable[[], list[Any]]) -> float:
    def setup() -> tuple[tuple[GpuAllocator], dict[str, Any]]:
        return (_empty_allocator(fleet),), {}

    def rebuild(allocator: GpuAllocator) -> None:
        report = allocator.rebuild(pods())
        assert report.restored == PODS, report.problems()[:3]

    benchmark.pedantic(rebuild, setup=setup, rounds=5, iterations=1)
    median: float = benchmark.stats.stats.median
    return median


@pytest.mark.benchmark(group="allocator-rebuild")
def test_rebuild_from_pod_objects(
    benchmark: BenchmarkFixture, fleet: Fleet, record_figure: Callable[[str], None]
) -> None:
    median = _rebuild(benchmark, fleet, lambda: fleet.pods)
    record_figure(f"allocator rebuild from {PODS:,} pods in memory: {median:.2f} s (target <= 2 s)")


@pytest.mark.benchmark(group="allocator-rebuild")
def test_rebuild_from_the_local_store(
    benchmark: BenchmarkFixture,
    fleet: Fleet,
    tmp_path: Path,
    record_figure: Callable[[str], None],
) -> None:
    store = LocalStore(tmp_path)
    store.create_many(fleet.pods)
    median = _rebuild(benchmark, fleet, lambda: store.list("Pod"))
    store.close()
    record_figure(
        f"allocator rebuild from {PODS:,} pods listed from the SQLite store: {median:.2f} s "
        "(target <= 2 s)"
    )
