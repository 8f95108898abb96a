"""Scheduling through KubeStore on the API-server emulator: the scheduler's pass over a batch
of pending pods (list, place, then for each pod the annotation patch and the `pods/binding`
POST), in pods per second. The baseline, measured in the same run on the same emulator: the
emulator's own create rate for the same pods through the same client. Their ratio is what
scheduling adds to getting a pod into the cluster at all. Run with
`python -m pytest bench/test_bench_kube_scheduling.py --benchmark-only`; the figures are
printed at the end (see conftest.py)."""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_benchmark.fixture import BenchmarkFixture
from tests.controller.cluster import add_fleet, apply_crds, guide_pod
from tests.kube.runner import EmulatorThread

from tensorfusion.scheduler.loop import SchedulingLoop
from tensorfusion.store.kube import KubeStore

NODES = 20
GPUS_PER_NODE = 8
BATCH = 300
ROUNDS = 5


@pytest.fixture
def store(tmp_path: Path) -> Iterator[KubeStore]:
    with EmulatorThread(tmp_path / "kubeconfig") as api:
        apply_crds(api.kubeconfig)
        with KubeStore(api.kubeconfig) as store:
            add_fleet(store, nodes=NODES, gpus_per_node=GPUS_PER_NODE)
            yield store


def _small_pod(name: str) -> dict[str, Any]:
    """The guide's pod, small enough that every round's batch fits beside the earlier ones."""
    pod = guide_pod(name)
    annotations = pod["metadata"]["annotations"]
    for size, value in (("tflops", "1"), ("vram", "1Gi")):
        annotations[f"tensor-fusion.ai/{size}-request"] = value
        annotations[f"tensor-fusion.ai/{size}-limit"] = value
    return pod


def test_bench_scheduling_through_kube_store(
    benchmark: BenchmarkFixture, store: KubeStore, record_figure: Callable[[str], None]
) -> None:
    names = (f"pod-{index:05d}" for index in itertools.count())
    create_s: list[float] = []

    def pending_batch() -> tuple[tuple[SchedulingLoop], dict[str, Any]]:
        started = time.perf_counter()
        for _ in range(BATCH):
            store.create(_small_pod(next(names)))
        create_s.append(time.perf_counter() - started)
        return (SchedulingLoop(store),), {}

    def schedule(loop: SchedulingLoop) -> None:
        loop.start()
        stats = loop.run_once()
        loop.close()
        assert stats.scheduled == BATCH, loop.pending()

    benchmark.pedantic(schedule, setup=pending_batch, rounds=ROUNDS, iterations=1)
    if benchmark.stats is None:  # benchmarks disabled
        return
    scheduled_per_s = BATCH / benchmark.stats.stats.median
    created_per_s = BATCH / statistics.median(create_s)
    record_figure(
        f"scheduling through KubeStore on the kube emulator: {scheduled_per_s:.0f} pods/s "
        f"(median of {ROUNDS} passes of {BATCH} pods, {NODES}x{GPUS_PER_NODE} GPUs); the "
        f"emulator creates {created_per_s:.0f} pods/s through the same client: scheduling "
        f"runs at {scheduled_per_s / created_per_s:.2f}x the create rate"
    )
