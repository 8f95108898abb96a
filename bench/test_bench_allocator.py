"""Rebuilding the allocator from 100,000 allocated pods, as the scheduler does on start
(target: at most 2 s): from pod objects already in memory, and from the local SQLite store
(listing the pods included).

Listing and rebuilding are also timed apart, each both ways: whole pod objects (the
baseline) and only the values that are read (`rebuild_from_values`; the pods as the
scheduler's start lists them, `POD_PATHS`). Each pair's medians are printed at the end of
the run with their ratio; the targets' figures after them. The pods are listed twice: as the
fleet generator writes them (spec and metadata only: the projection has nothing to drop),
and as an API server keeps them (with status and managed fields)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from tensorfusion.scheduler.allocation import RebuildReport
from tensorfusion.scheduler.allocator import GpuAllocator, rebuild_values
from tensorfusion.scheduler.cluster_state import POD_PATHS, ClusterState
from tensorfusion.scheduler.fleet import Fleet
from tensorfusion.scheduler.fleet_generator import generate_fleet
from tensorfusion.store.local import LocalStore
from tensorfusion.store.projection import projected

PODS = 100_000
Recorder = Callable[[str, str, BenchmarkFixture], None]
ROUNDS = 5


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


@pytest.fixture(scope="module")
def kept_store(fleet: Fleet, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStore]:
    """The pods as an API server keeps them: with the status their kubelet writes and the
    managed fields of the three writers each pod has."""
    with LocalStore(tmp_path_factory.mktemp("allocator-kept-store")) as store:
        store.create_many([_as_kept(pod) for pod in fleet.pods])
        yield store


def _as_kept(pod: dict[str, Any]) -> dict[str, Any]:
    at = "2026-01-01T00:00:00Z"
    container = pod["spec"]["containers"][0]["name"]
    status = {
        "phase": "Running",
        "hostIP": "10.0.0.1",
        "podIP": "10.1.2.3",
        "startTime": at,
        "qosClass": "Burstable",
        "conditions": [
            {"type": kind, "status": "True", "lastTransitionTime": at}
            for kind in ("Initialized", "Ready", "ContainersReady", "PodScheduled")
        ],
        "containerStatuses": [
            {
                "name": container,
                "ready": True,
                "started": True,
                "restartCount": 0,
                "image": pod["spec"]["containers"][0]["image"],
                "imageID": "sha256:" + "a" * 64,
                "containerID": "containerd://" + "b" * 64,
                "state": {"running": {"startedAt": at}},
            }
        ],
    }
    fields = {
        "f:metadata": {"f:annotations": {f"f:{key}": {} for key in pod["metadata"]["annotations"]}},
        "f:spec": {f'k:{{"name":"{container}"}}': {".": {}, "f:image": {}, "f:resources": {}}},
        "f:status": {"f:conditions": {'k:{"type":"Ready"}': {".": {}, "f:status": {}}}},
    }
    managed = [
        {"manager": manager, "operation": "Update", "time": at, "fieldsV1": fields}
        for manager in ("kubelet", "tensor-fusion-scheduler", "controller")
    ]
    metadata = {**pod["metadata"], "managedFields": managed}
    return {**pod, "metadata": metadata, "status": status}


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


def _median(benchmark: BenchmarkFixture, run: Callable[..., None], **options: Any) -> float:
    benchmark.pedantic(run, rounds=ROUNDS, iterations=1, **options)  # type: ignore[no-untyped-call]
    assert benchmark.stats is not None
    median: float = benchmark.stats.stats.median
    return median


REBUILD_IN_MEMORY = f"allocator rebuild from {PODS:,} pods in memory, values against objects"
LISTING = f"listing {PODS:,} pods from SQLite, as start lists them against whole objects"
LISTING_KEPT = (
    f"listing {PODS:,} pods with status and managed fields from SQLite, as start lists them"
    " against whole objects"
)
REBUILD_FROM_STORE = (
    f"allocator rebuild from {PODS:,} pods listed from SQLite, as start lists them against"
    " whole objects"
)
"""Comparisons: the whole objects are the baseline ("reference"), the values "native"."""


def _started_pods(store: LocalStore) -> list[dict[str, Any]]:
    """The pods as `SchedulingLoop.start` lists them for the cluster state."""
    return [projected(POD_PATHS, pod) for pod in store.list_values("Pod", POD_PATHS)]


@pytest.mark.benchmark(group="allocator-rebuild")
def test_rebuild_from_pod_objects(
    benchmark: BenchmarkFixture,
    fleet: Fleet,
    record_median: Recorder,
    record_figure: Callable[[str], None],
) -> None:
    median = _rebuild(benchmark, fleet, lambda allocator: allocator.rebuild(fleet.pods))
    record_median(REBUILD_IN_MEMORY, "reference", benchmark)
    record_figure(
        f"allocator rebuild from {PODS:,} pod objects in memory: {median:.2f} s (target <= 2 s)"
    )


@pytest.mark.benchmark(group="allocator-rebuild")
def test_rebuild_from_pod_values(
    benchmark: BenchmarkFixture, fleet: Fleet, record_median: Recorder
) -> None:
    values = [rebuild_values(pod) for pod in fleet.pods]
    _rebuild(benchmark, fleet, lambda allocator: allocator.rebuild_from_values(values))
    record_median(REBUILD_IN_MEMORY, "native", benchmark)


@pytest.mark.benchmark(group="allocator-list")
def test_list_pod_objects(
    benchmark: BenchmarkFixture, store: LocalStore, record_median: Recorder
) -> None:
    _listing(benchmark, lambda: store.list("Pod"))
    record_median(LISTING, "reference", benchmark)


@pytest.mark.benchmark(group="allocator-list")
def test_list_pods_as_start_does(
    benchmark: BenchmarkFixture, store: LocalStore, record_median: Recorder
) -> None:
    _listing(benchmark, lambda: _started_pods(store))
    record_median(LISTING, "native", benchmark)


@pytest.mark.benchmark(group="allocator-list-kept")
def test_list_kept_pod_objects(
    benchmark: BenchmarkFixture, kept_store: LocalStore, record_median: Recorder
) -> None:
    _listing(benchmark, lambda: kept_store.list("Pod"))
    record_median(LISTING_KEPT, "reference", benchmark)


@pytest.mark.benchmark(group="allocator-list-kept")
def test_list_kept_pods_as_start_does(
    benchmark: BenchmarkFixture, kept_store: LocalStore, record_median: Recorder
) -> None:
    _listing(benchmark, lambda: _started_pods(kept_store))
    record_median(LISTING_KEPT, "native", benchmark)


@pytest.mark.benchmark(group="allocator-rebuild-from-store")
def test_rebuild_from_the_local_store(
    benchmark: BenchmarkFixture, fleet: Fleet, store: LocalStore, record_median: Recorder
) -> None:
    _rebuild(benchmark, fleet, lambda allocator: allocator.rebuild(store.list("Pod")))
    record_median(REBUILD_FROM_STORE, "reference", benchmark)


@pytest.mark.benchmark(group="allocator-rebuild-from-store")
def test_rebuild_from_pods_listed_as_start_does(
    benchmark: BenchmarkFixture,
    fleet: Fleet,
    store: LocalStore,
    record_median: Recorder,
    record_figure: Callable[[str], None],
) -> None:
    median = _rebuild(benchmark, fleet, lambda allocator: allocator.rebuild(_started_pods(store)))
    record_median(REBUILD_FROM_STORE, "native", benchmark)
    record_figure(
        f"allocator rebuild from {PODS:,} pods listed from the SQLite store as the scheduler's"
        f" start lists them: {median:.2f} s (target <= 2 s)"
    )
