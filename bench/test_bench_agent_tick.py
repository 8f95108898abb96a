"""One pass of the Kubernetes node agent at 8 GPUs and 200 workers (regions under a tmp
directory, pods in a LocalStore, which the agent follows as it follows the API server),
against the same pass with no worker, measured in the same run: what 200 workers add to a
pass (usage rows of every region read, pods synced; regions already made, as at steady
state). Run with `python -m pytest bench/test_bench_agent_tick.py --benchmark-only`; the
figures are printed at the end (see conftest.py)."""

from __future__ import annotations

import statistics
import timeit
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from pytest_benchmark.fixture import BenchmarkFixture
from tests.kube.node_agents import FakeNvml, agent_config
from tests.unit.agent.conftest import worker

from tensorfusion.agent.kube_agent import KubeAgent
from tensorfusion.metrics.point import Point
from tensorfusion.store.local import LocalStore

GPUS = 8
WORKERS = 200
NODE = "bench-node"
BASELINE_ROUNDS = 50


def _discard(_points: Sequence[Point]) -> None:
    """Rows go nowhere: the sink's cost is not the agent's."""


@pytest.fixture
def agent_for(tmp_path: Path) -> Iterator[Callable[[int], KubeAgent]]:
    stores: list[LocalStore] = []

    def make(workers: int) -> KubeAgent:
        store = LocalStore(":memory:")
        stores.append(store)
        for i in range(workers):
            pod = worker(f"w-{i}", node=NODE, gpu_ids=f"{NODE}-gpu-{i % GPUS}")
            del pod["metadata"]["uid"]
            store.create(pod)
        agent = KubeAgent(
            store,
            agent_config(NODE, tmp_path / str(workers)),
            FakeNvml(NODE, gpus=GPUS),
            record=_discard,
        )
        first = agent.tick()  # registers the GPUs and makes every region
        assert (first.problems, len(first.prepared)) == ([], workers)
        return agent

    yield make
    for store in stores:
        store.close()


def _tick(agent: KubeAgent, workers: int) -> None:
    result = agent.tick()
    assert result.problems == []
    assert result.workers == workers
    assert result.points == workers + GPUS


def test_tick_at_200_workers_against_none(
    agent_for: Callable[[int], KubeAgent],
    benchmark: BenchmarkFixture,
    record_figure: Callable[[str], None],
) -> None:
    idle = agent_for(0)
    baseline = statistics.median(
        timeit.repeat(lambda: _tick(idle, 0), number=1, repeat=BASELINE_ROUNDS)
    )
    busy = agent_for(WORKERS)
    benchmark(_tick, busy, WORKERS)
    if benchmark.stats is not None:
        median = benchmark.stats.stats.median
        record_figure(
            f"agent tick, {GPUS} GPUs: {WORKERS} workers {median * 1e3:.2f} ms, none "
            f"{baseline * 1e3:.2f} ms (medians), ratio {median / baseline:.1f}x"
        )
