"""NodeTable: stable indices, resource sums kept by add_pod/remove_pod, cached masks that
follow node changes, and bad node documents refused with the field named."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pytest

from tensorfusion.errors import FleetError
from tensorfusion.scheduler.node_table import (
    ABSENT,
    ALLOCATABLE,
    DEFAULT_MAX_PODS,
    LABELS,
    TAINTS,
    NodeTable,
)
from tensorfusion.scheduler.plugins.host_ports import HostPort
from tensorfusion.scheduler.plugins.taints import NodeTaint
from tensorfusion.scheduler.pod_info import DEFAULT_CPU_REQUEST, PodInfo

GI = 1024**3


def node(
    name: str,
    labels: dict[str, str] | None = None,
    taints: list[dict[str, str]] | None = None,
    unschedulable: bool = False,
    **allocatable: Any,
) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"taints": taints or [], "unschedulable": unschedulable},
        "status": {"allocatable": allocatable or {"cpu": "4", "memory": "16Gi"}},
    }


def pod(name: str, requests: dict[str, str], ports: list[dict[str, Any]] | None = None) -> PodInfo:
    main = {"name": "main", "resources": {"requests": requests}, "ports": ports or []}
    return PodInfo.from_dict({"metadata": {"name": name}, "spec": {"containers": [main]}})


def test_nodes_get_stable_indices_and_their_attributes() -> None:
    taint = {"key": "gpu", "value": "true", "effect": "NoSchedule"}
    table = NodeTable([node("a", {"zone": "1"}), node("b", taints=[taint], unschedulable=True)])
    assert table.size == 2
    assert list(table.names) == ["a", "b"]
    assert dict(table.index_of) == {"a": 0, "b": 1}
    assert table.present.tolist() == [True, True]
    assert table.unschedulable.tolist() == [False, True]
    assert table.labels[0] == {"zone": "1"}
    assert table.taints[1] == (NodeTaint("gpu", "true", "NoSchedule"),)


def test_allocatable_in_pod_units() -> None:
    extended: dict[str, Any] = {"nvidia.com/gpu": 8, "pods": "30"}
    table = NodeTable([node("a", cpu="2500m", memory="1Gi", **extended), node("b", cpu=4)])
    assert table.allocatable("cpu").tolist() == [2500, 4000]
    assert table.allocatable("memory").tolist() == [GI, 0]
    assert table.allocatable("nvidia.com/gpu").tolist() == [8, 0]
    assert table.allocatable("pods").tolist() == [30, DEFAULT_MAX_PODS]
    assert table.allocatable("example.com/none").tolist() == [0, 0]
    assert set(table.resources) == {"pods", "cpu", "memory", "nvidia.com/gpu"}


def test_allocatable_defaults_to_capacity() -> None:
    doc = node("a")
    doc["status"] = {"capacity": {"cpu": "8"}}
    assert NodeTable([doc]).allocatable("cpu").tolist() == [8000]


def test_pods_add_to_and_leave_the_sums() -> None:
    table = NodeTable([node("a"), node("b")])
    web = pod("web", {"cpu": "1", "memory": "1Gi", "example.com/fpga": "1"})
    idle = pod("idle", {})
    table.add_pod(1, web)
    table.add_pod(1, idle)
    assert table.pod_count.tolist() == [0, 2]
    assert table.requested("cpu").tolist() == [0, 1000]
    assert table.free("cpu").tolist() == [4000, 3000]
    assert table.free("memory").tolist() == [16 * GI, 15 * GI]
    assert table.non_zero_requested("cpu").tolist() == [0, 1000 + DEFAULT_CPU_REQUEST]
    # A resource no node has still gets counted (and leaves free negative).
    assert table.requested("example.com/fpga").tolist() == [0, 1]
    assert table.free("example.com/fpga").tolist() == [0, -1]
    # Only cpu and memory have a non-zero variant.
    assert table.non_zero_requested("example.com/fpga").tolist() == [0, 1]
    table.remove_pod(1, web)
    table.remove_pod(1, idle)
    assert table.pod_count.tolist() == [0, 0]
    assert table.free("cpu").tolist() == [4000, 4000]
    assert table.non_zero_requested("memory").tolist() == [0, 0]


def test_host_ports_are_tracked_per_node() -> None:
    table = NodeTable([node("a"), node("b")])
    web = pod(
        "web", {}, [{"hostPort": 80}, {"hostPort": 53, "protocol": "UDP", "hostIP": "10.0.0.1"}]
    )
    table.add_pod(0, web)
    assert dict(table.used_ports(0)) == {HostPort(80): 1, HostPort(53, "UDP", "10.0.0.1"): 1}
    assert dict(table.used_ports(1)) == {}
    assert {i: dict(ips) for i, ips in table.port_users("TCP", 80).items()} == {0: {"0.0.0.0": 1}}
    assert dict(table.port_users("TCP", 53)) == {}
    table.remove_pod(0, web)
    assert dict(table.used_ports(0)) == {}
    assert dict(table.port_users("TCP", 80)) == {}


def test_update_keeps_pods_and_moves_free() -> None:
    table = NodeTable([node("a", cpu="4")])
    table.add_pod(0, pod("web", {"cpu": "3"}))
    assert table.update_node(node("a", {"zone": "2"}, cpu="2")) == 0
    assert table.free("cpu").tolist() == [-1000]
    assert table.requested("cpu").tolist() == [3000]
    assert table.labels[0] == {"zone": "2"}
    assert table.allocatable("memory").tolist() == [0]


def test_removed_node_keeps_its_index_and_gets_it_back() -> None:
    table = NodeTable([node("a"), node("b"), node("c")])
    table.add_pod(1, pod("web", {"cpu": "1"}))
    assert table.remove_node("b") == 1
    assert table.present.tolist() == [True, False, True]
    assert "b" not in table.index_of
    assert table.allocatable("cpu").tolist() == [4000, 0, 4000]
    assert table.size == 3
    assert table.add_node(node("d")) == 3
    assert table.add_node(node("b")) == 1
    assert table.present.tolist() == [True, True, True, True]
    # Its pod was never removed, so it still counts.
    assert table.requested("cpu").tolist() == [0, 1000, 0, 0]
    table.remove_pod(1, pod("web", {"cpu": "1"}))
    assert table.requested("cpu").tolist() == [0, 0, 0, 0]


def test_capacity_grows_and_views_follow() -> None:
    table = NodeTable(capacity=1)
    for index in range(100):
        assert table.add_node(node(f"n{index}", cpu=str(index))) == index
    assert table.allocatable("cpu").tolist() == [1000 * i for i in range(100)]
    assert table.present.tolist() == [True] * 100
    table.add_pod(99, pod("p", {"cpu": "1"}))
    assert table.free("cpu")[99] == 98000


def test_views_see_pod_changes_and_are_read_only() -> None:
    table = NodeTable([node("a")])
    free = table.free("cpu")
    table.add_pod(0, pod("web", {"cpu": "1"}))
    assert free.tolist() == [3000]
    with pytest.raises(ValueError, match="read-only"):
        free[0] = 1
    with pytest.raises(ValueError, match="read-only"):
        table.present[0] = False


def test_node_errors_name_the_node() -> None:
    table = NodeTable([node("a")])
    with pytest.raises(FleetError, match=r"Node/a: metadata\.name: is already in the node table"):
        table.add_node(node("a"))
    with pytest.raises(FleetError, match="Node/x: is not in the node table"):
        table.update_node(node("x"))
    with pytest.raises(FleetError, match="Node/x: is not in the node table"):
        table.remove_node("x")
    with pytest.raises(FleetError, match="no node has index 5"):
        table.add_pod(5, pod("p", {}))
    table.remove_node("a")
    with pytest.raises(FleetError, match="no node has index 0"):
        table.add_pod(0, pod("p", {}))


def test_label_column_and_masks_follow_label_changes() -> None:
    table = NodeTable([node("a", {"zone": "1"}), node("b"), node("c", {"zone": "2"})])
    column = table.label_column("zone")
    assert column.values == ("1", "2")
    assert column.codes.tolist() == [0, -1, 1]
    assert table.label_column("zone") is column  # cached
    table.update_node(node("b", {"zone": "1"}))
    assert table.label_column("zone").codes.tolist() == [0, 0, 1]


def test_unchanged_aspects_keep_their_cache() -> None:
    table = NodeTable([node("a", {"zone": "1"}, cpu="4")])
    builds: list[str] = []

    def build(tag: str) -> str:
        builds.append(tag)
        return tag

    for aspect in (LABELS, TAINTS, ALLOCATABLE):
        table.memo(aspect, "k", functools.partial(build, aspect))
    table.update_node(node("a", {"zone": "1"}, cpu="8"))  # allocatable only
    for aspect in (LABELS, TAINTS, ALLOCATABLE):
        table.memo(aspect, "k", functools.partial(build, aspect))
    assert builds == ["labels", "taints", "allocatable", "allocatable"]
    table.add_node(node("b"))
    table.memo(LABELS, "k", lambda: build("again"))
    assert builds[-1] == "again"


def test_memo_arrays_are_read_only_and_bounded() -> None:
    table = NodeTable([node("a")])
    mask = table.memo(LABELS, "mask", lambda: np.ones(1, np.bool_))
    assert not mask.flags.writeable
    for key in range(2000):
        table.memo(LABELS, key, lambda: np.zeros(1, np.bool_))
    rebuilt = table.memo(LABELS, "mask", lambda: np.zeros(1, np.bool_))
    assert rebuilt is not mask  # the oldest entries were dropped


def test_taint_columns_follow_taint_changes() -> None:
    gpu = {"key": "gpu", "value": "true", "effect": "NoSchedule"}
    spot = {"key": "spot", "effect": "PreferNoSchedule"}
    table = NodeTable([node("a", taints=[spot, gpu]), node("b", taints=[spot]), node("c")])
    columns = table.taint_columns()
    assert columns.taints == (
        NodeTaint("spot", "", "PreferNoSchedule"),
        NodeTaint("gpu", "true", "NoSchedule"),
    )
    assert columns.positions.tolist() == [[0, 0, ABSENT], [1, ABSENT, ABSENT]]
    assert table.taint_columns() is columns  # cached
    table.update_node(node("b", taints=[{"key": "x", "effect": "NoExecute"}]))
    columns = table.taint_columns()
    assert columns.taints[-1] == NodeTaint("x", "", "NoExecute")
    assert columns.positions[:, 1].tolist() == [ABSENT, ABSENT, 0]


def named(**parts: Any) -> dict[str, Any]:
    return {"metadata": {"name": "n"}, **parts}


def tainted(*taints: Any) -> dict[str, Any]:
    return named(spec={"taints": list(taints)})


@pytest.mark.parametrize(
    ("doc", "obj", "field", "fragment"),
    [
        (node("n", cpu="-1"), "Node/n", "status.allocatable.cpu", "must not be negative"),
        (node("n", memory="lots"), "Node/n", "status.allocatable.memory", "not a Kubernetes"),
        (node("n", memory=None), "Node/n", "status.allocatable.memory", "must be a quantity"),
        (node("n", cpu="1e30"), "Node/n", "status.allocatable.cpu", "out of range"),
        (tainted({"key": "k", "effect": "Never"}), "Node/n", "spec.taints[0].effect", "one of"),
        (tainted({"key": "k"}), "Node/n", "spec.taints[0].effect", "got None"),
        (tainted({"effect": "NoSchedule"}), "Node/n", "spec.taints[0].key", "non-empty"),
        (
            tainted({"key": "k", "value": 1, "effect": "NoSchedule"}),
            "Node/n",
            "spec.taints[0].value",
            "got a number",
        ),
        (tainted("k"), "Node/n", "spec.taints[0]", "must be an object"),
        (named(spec={"taints": {}}), "Node/n", "spec.taints", "must be a list"),
        (named(spec={"unschedulable": "yes"}), "Node/n", "spec.unschedulable", "boolean"),
        (named(spec=[]), "Node/n", "spec", "must be an object"),
        (named(status={"allocatable": [1]}), "Node/n", "status.allocatable", "an object"),
        (
            {"metadata": {"name": "n", "labels": {"a": 1}}},
            "Node/n",
            "metadata.labels",
            "strings to strings",
        ),
        ({"metadata": {}}, "Node", "metadata.name", "non-empty string"),
        ({"metadata": "n"}, "Node", "metadata.name", "non-empty string"),
        ([], "Node", "", "must be an object"),
    ],
)
def test_bad_nodes_are_refused_naming_the_field(
    doc: Any, obj: str, field: str, fragment: str
) -> None:
    table = NodeTable([node("ok")])
    with pytest.raises(FleetError) as caught:
        table.add_node(doc)
    assert (caught.value.obj, caught.value.field) == (obj, field)
    assert fragment in caught.value.message
    assert table.size == 1  # nothing half-added


def test_a_bad_update_changes_nothing() -> None:
    table = NodeTable([node("a", {"zone": "1"}, cpu="4")])
    with pytest.raises(FleetError, match=r"status\.allocatable\.cpu"):
        table.update_node(node("a", {"zone": "2"}, cpu="four"))
    assert table.labels[0] == {"zone": "1"}
    assert table.allocatable("cpu").tolist() == [4000]
