"""Registering a generated 1,000-node fleet (8 H100s a node, 60% filled: about 22,500
objects) in a LocalStore on disk, as `tensor-fusion up --fleet` does: into a fresh store (all
created), then again (all unchanged). The baselines, measured in the same run: a plain
`create_many` of the same objects into a fresh store (one transaction, no lookups), and
reading and checking the fleet's YAML file, which `up` does before registering. Run with
`python -m pytest bench/test_bench_register.py --benchmark-only`; the figures are printed at
the end (see conftest.py)."""

from __future__ import annotations

import gc
import statistics
import tempfile
import timeit
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from tensorfusion.agent.discovery import fleet_objects, register
from tensorfusion.scheduler.fleet_generator import generate_fleet
from tensorfusion.store.local import LocalStore

NODES = 1000
ROUNDS = 5
TARGET_S = 3.0
"""Registration at this size, created or unchanged, should take no longer."""


@dataclass(frozen=True)
class Fleet:
    objects: list[dict[str, Any]]
    """As read from the fleet's YAML file."""
    stores: Path
    """Where each round's fresh store goes."""
    create_many_s: float
    """Median of a plain `create_many` of `objects` into a fresh store."""
    read_s: float
    """Median of reading and checking the fleet's YAML file."""

    def fresh_store(self) -> LocalStore:
        return LocalStore(tempfile.mkdtemp(dir=self.stores))


def _median_s(step: Callable[[], object], setup: Callable[[], object], rounds: int) -> float:
    """The median time of `step`, each time after `setup`, with the collector running as it
    does under the benchmark (timeit pauses it unless the setup starts it)."""

    def prepare() -> None:
        gc.enable()
        setup()

    return statistics.median(timeit.repeat(step, setup=prepare, number=1, repeat=rounds))


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Fleet:
    root = tmp_path_factory.mktemp("register")
    generated = generate_fleet(NODES, 8, "H100", 0.6, seed=7)
    file = root / "fleet.yaml"
    file.write_text(generated.to_yaml())
    objects = fleet_objects(file)
    stores = root / "stores"
    stores.mkdir()
    opened: list[LocalStore] = []
    try:
        create_many_s = _median_s(
            lambda: opened[-1].create_many(objects),
            lambda: opened.append(LocalStore(tempfile.mkdtemp(dir=stores))),
            ROUNDS,
        )
    finally:
        for store in opened:
            store.close()
    read_s = _median_s(lambda: fleet_objects(file), lambda: None, rounds=3)
    return Fleet(objects, stores, create_many_s, read_s)


def _figure(fleet: Fleet, what: str, ours: float) -> str:
    return (
        f"register {len(fleet.objects):,} objects ({NODES:,} nodes), {what}: "
        f"{ours:.2f} s median (target {TARGET_S:.0f} s); a plain create_many of them: "
        f"{fleet.create_many_s:.2f} s ({ours / fleet.create_many_s:.2f}x); reading and "
        f"checking the fleet file: {fleet.read_s:.2f} s ({ours / fleet.read_s:.2f}x)"
    )


def test_register_a_fleet_into_a_fresh_store(
    benchmark: BenchmarkFixture, fleet: Fleet, record_figure: Callable[[str], None]
) -> None:
    stores: list[LocalStore] = []

    def fresh() -> tuple[tuple[LocalStore, list[dict[str, Any]]], dict[str, Any]]:
        stores.append(fleet.fresh_store())
        return (stores[-1], fleet.objects), {}

    try:
        report = benchmark.pedantic(register, setup=fresh, rounds=ROUNDS, iterations=1)
    finally:
        for store in stores:
            store.close()
    assert report.created == len(fleet.objects)
    if benchmark.stats is not None:
        record_figure(_figure(fleet, "all created", benchmark.stats.stats.median))


def test_register_a_fleet_again(
    benchmark: BenchmarkFixture, fleet: Fleet, record_figure: Callable[[str], None]
) -> None:
    with fleet.fresh_store() as store:
        register(store, fleet.objects)
        report = benchmark.pedantic(
            register, args=(store, fleet.objects), rounds=ROUNDS, iterations=1
        )
    assert report.unchanged == len(fleet.objects)
    if benchmark.stats is not None:
        record_figure(_figure(fleet, "all unchanged", benchmark.stats.stats.median))
