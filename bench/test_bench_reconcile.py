"""Reconciling a 1,000-node fleet (8 H100s a node) from empty on a LocalStore: the cluster's
pool, a GPUNode for every node its selector picks, every GPU's available capacity, then the
pool's and the cluster's totals. The baseline, measured in the same run on the same store:
listing the watched kinds, which the controller does before it reconciles anything. Run with
`python -m pytest bench/test_bench_reconcile.py --benchmark-only`; the figures are printed at
the end (see conftest.py)."""

from __future__ import annotations

import statistics
import tempfile
import timeit
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from tensorfusion.api.base import API_VERSION
from tensorfusion.operator.reconcilers.cache import WATCHED_KINDS
from tensorfusion.operator.reconcilers.runner import Controller
from tensorfusion.scheduler.fleet_generator import generate_fleet
from tensorfusion.store.local import LocalStore

NODES = 1000
GPUS_PER_NODE = 8
ROUNDS = 3
CLUSTER = {
    "apiVersion": API_VERSION,
    "kind": "TensorFusionCluster",
    "metadata": {"name": "c"},
    "spec": {
        "gpuPools": [
            {
                "name": "p",
                "isDefault": True,
                "specTemplate": {
                    "nodeManagerConfig": {
                        "nodeSelector": {
                            "nodeSelectorTerms": [
                                {
                                    "matchExpressions": [
                                        {
                                            "key": "kubernetes.io/os",
                                            "operator": "In",
                                            "values": ["linux"],
                                        }
                                    ]
                                }
                            ]
                        }
                    }
                },
            }
        ]
    },
}


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    """The cluster, the nodes and the GPUs the agents registered; nothing reconciled yet."""
    fleet = generate_fleet(NODES, GPUS_PER_NODE, "H100", pool="c-p")
    return [CLUSTER, *fleet.nodes, *fleet.gpus]


@pytest.fixture
def stores(tmp_path: Path, objects: list[dict[str, Any]]) -> Iterator[Callable[[], LocalStore]]:
    made: list[LocalStore] = []

    def fresh() -> LocalStore:
        store = LocalStore(Path(tempfile.mkdtemp(dir=tmp_path)) / "store.db")
        store.create_many(objects)
        made.append(store)
        return store

    yield fresh
    for store in made:
        store.close()


def _reconcile(store: LocalStore) -> Controller:
    controller = Controller(store)
    controller.start()
    controller.drain()
    return controller


def _list_all(store: LocalStore) -> None:
    for kind in WATCHED_KINDS:
        store.list_with_version(kind)


def test_reconcile_from_empty(
    benchmark: BenchmarkFixture,
    stores: Callable[[], LocalStore],
    record_figure: Callable[[str], None],
) -> None:
    listed = stores()
    list_s = statistics.median(timeit.repeat(lambda: _list_all(listed), number=1, repeat=ROUNDS))
    done: list[Controller] = []

    def setup() -> tuple[tuple[LocalStore], dict[str, Any]]:
        return (stores(),), {}

    benchmark.pedantic(  # type: ignore[no-untyped-call]
        lambda store: done.append(_reconcile(store)), setup=setup, rounds=ROUNDS
    )
    last = done[-1].store
    assert len(last.list("GPUNode")) == NODES
    assert last.get("GPUPool", "c-p")["status"]["totalGPUs"] == NODES * GPUS_PER_NODE
    if benchmark.stats is not None:
        reconcile_s = benchmark.stats.stats.median
        record_figure(
            f"reconcile {NODES} nodes x {GPUS_PER_NODE} GPUs from empty: {reconcile_s:.2f} s; "
            f"listing the objects: {list_s:.3f} s (medians): {reconcile_s / list_s:.0f}x the list"
        )
