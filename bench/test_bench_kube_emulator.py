"""The API-server emulator's speed through the official Python client: pods created per
second (first and last batch of 1,000 pods, so that a slowdown as objects accumulate shows)
and pods read per second. Run with `python -m pytest bench/test_bench_kube_emulator.py
--benchmark-only`; the figures are printed at the end (see conftest.py)."""

from __future__ import annotations

import itertools
import statistics
import timeit
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from pytest_benchmark.fixture import BenchmarkFixture
from tests.kube.runner import EmulatorThread

BATCH = 200
ROUNDS = 5


def _pod(name: str) -> dict[str, object]:
    return {
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "main", "image": "busybox"}]},
    }


@pytest.fixture
def core_v1(tmp_path: Path) -> Iterator[Any]:
    """CoreV1Api, untyped: its signatures want the client's models, and this passes dicts."""
    with EmulatorThread(tmp_path / "kubeconfig") as api:
        client = kubernetes.config.new_client_from_config(config_file=str(api.kubeconfig))
        yield kubernetes.client.CoreV1Api(client)
        client.close()


def test_bench_creates_and_gets(
    benchmark: BenchmarkFixture,
    core_v1: Any,
    record_figure: Callable[[str], None],
) -> None:
    names = (f"p{index}" for index in itertools.count())

    def create_batch() -> None:
        for _ in range(BATCH):
            core_v1.create_namespaced_pod("default", _pod(next(names)))

    benchmark.pedantic(create_batch, rounds=ROUNDS, iterations=1)
    if benchmark.stats is None:  # benchmarks disabled
        return
    batch_rates = [BATCH / seconds for seconds in benchmark.stats.stats.data]
    created = BATCH * ROUNDS

    def get_batch() -> None:
        for index in range(BATCH):
            core_v1.read_namespaced_pod(f"p{index * (created // BATCH)}", "default")

    get_s = statistics.median(timeit.repeat(get_batch, number=1, repeat=ROUNDS))
    record_figure(
        f"kube emulator, official client: {BATCH / benchmark.stats.stats.median:.0f} creates/s "
        f"(first batch {batch_rates[0]:.0f}/s, last {batch_rates[-1]:.0f}/s, {created} pods), "
        f"{BATCH / get_s:.0f} gets/s"
    )
