"""Registration of a fleet in the store: one transaction, a report that says what was
registered, progress while it runs long, and no write for what did not change."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tensorfusion.agent import discovery
from tensorfusion.agent.discovery import RegisterReport, fleet_objects, register
from tensorfusion.errors import ConfigError
from tensorfusion.scheduler.fleet_generator import generate_fleet
from tensorfusion.store.local import LocalStore

EXAMPLE_FLEET = Path(__file__).resolve().parents[3] / "examples" / "fleets" / "h100.yaml"


@pytest.fixture
def store() -> Iterator[LocalStore]:
    with LocalStore(":memory:") as opened:
        yield opened


def _versions(store: LocalStore) -> dict[tuple[str, str], str]:
    """The resource version of every stored object, by kind and name."""
    return {
        (kind, obj["metadata"]["name"]): obj["metadata"]["resourceVersion"]
        for kind in discovery.REGISTERED_KINDS
        for obj in store.list(kind)
    }


def test_the_example_fleet_reports_nodes_gpus_and_pools(store: LocalStore) -> None:
    objects = fleet_objects(EXAMPLE_FLEET)
    first = register(store, objects)
    assert str(first) == "registered 2 nodes, 8 GPUs, 1 pool: 13 created"
    assert str(register(store, objects)) == "registered 2 nodes, 8 GPUs, 1 pool: 13 unchanged"


def test_the_report_counts_each_kind_and_outcome() -> None:
    report = RegisterReport(nodes=1, gpus=1, pools=2, pods=1, templates=2, created=3, updated=4)
    assert str(report) == (
        "registered 1 node, 1 GPU, 2 pools, 1 pod, 2 scheduling templates: 3 created, 4 updated"
    )
    assert str(RegisterReport()) == "registered 0 nodes, 0 GPUs, 0 pools: nothing"


def test_a_node_is_counted_once_for_its_node_and_gpu_node(store: LocalStore) -> None:
    objects = list(generate_fleet(3, 2, "L4", 0.0).documents())
    gpu_nodes_only = [obj for obj in objects if obj["kind"] != "Node"]
    report = register(store, objects)
    assert (report.nodes, report.gpus, report.pools) == (3, 6, 1)
    assert register(store, gpu_nodes_only).nodes == 3


def test_a_changed_fleet_updates_only_what_changed(store: LocalStore) -> None:
    objects = list(generate_fleet(4, 2, "H100", 0.5, seed=3).documents())
    register(store, objects)
    before = _versions(store)
    _, version = store.list_with_version("GPU")
    changed = copy.deepcopy(objects)
    gpu = next(obj for obj in changed if obj["kind"] == "GPU")
    gpu["status"]["capacity"]["tflops"] = "900"
    node = next(obj for obj in changed if obj["kind"] == "Node")
    node["metadata"]["labels"]["rack"] = "r7"
    report = register(store, changed)
    assert (report.created, report.updated, report.unchanged) == (0, 2, len(objects) - 2)
    moved = {key for key, rv in _versions(store).items() if before[key] != rv}
    assert moved == {("GPU", gpu["metadata"]["name"]), ("Node", node["metadata"]["name"])}
    events = store.events_since(version)
    assert [(event.type, event.object["kind"]) for event in events] == [
        ("MODIFIED", "Node"),
        ("MODIFIED", "GPU"),
    ]
    stored_gpu = store.get("GPU", gpu["metadata"]["name"])
    assert stored_gpu["status"]["capacity"]["tflops"] == "900"


def test_an_object_the_store_refuses_leaves_nothing_written(store: LocalStore) -> None:
    objects = list(generate_fleet(2, 2, "H100", 0.5).documents())
    bad = copy.deepcopy(objects)
    gpus = [index for index, obj in enumerate(bad) if obj["kind"] == "GPU"]
    bad[gpus[-1]]["metadata"]["labels"]["team"] = "not a label value"
    with pytest.raises(ConfigError) as caught:
        register(store, bad)
    assert caught.value.field == f"objs[{gpus[-1]}].metadata.labels"
    assert _versions(store) == {}
    register(store, objects)
    before = _versions(store)
    changed = bad[gpus[0]]
    changed["status"]["capacity"]["tflops"] = "900"  # a change ahead of the refused object
    with pytest.raises(ConfigError):
        register(store, bad)
    assert _versions(store) == before
    assert store.get("GPU", changed["metadata"]["name"])["status"]["capacity"]["tflops"] != "900"


def test_an_object_given_twice_is_refused(store: LocalStore) -> None:
    objects = list(generate_fleet(1, 1, "H100", 0.0).documents())
    with pytest.raises(ConfigError) as caught:
        register(store, [*objects, objects[1]])
    assert caught.value.field == f"objs[{len(objects)}].metadata.name"
    assert "objs[1]" in caught.value.message
    assert _versions(store) == {}


class _Clock:
    """A monotonic clock that moves `step` seconds each time it is read."""

    def __init__(self, step: float) -> None:
        self.now = 100.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def _registered_with_clock(
    store: LocalStore, objects: list[dict[str, Any]], step: float
) -> list[str]:
    lines: list[str] = []
    register(store, objects, progress=lines.append, clock=_Clock(step))
    return lines


def test_a_long_registration_reports_count_and_rate(store: LocalStore) -> None:
    objects = list(generate_fleet(2, 2, "H100", 0.5).documents())
    lines = _registered_with_clock(store, objects, step=0.5)
    total = len(objects)
    # Read at the start, then once per object: past a second at the second object, and
    # every other object after it.
    assert lines[0] == f"registering: 1 of {total} objects (1/s)"
    assert lines[1] == f"registering: 3 of {total} objects (2/s)"
    assert len(lines) == total // 2


def test_a_quick_registration_reports_nothing(store: LocalStore) -> None:
    objects = list(generate_fleet(2, 2, "H100", 0.5).documents())
    assert _registered_with_clock(store, objects, step=0.0) == []
    assert len(_versions(store)) == len(objects)
