"""`list_values`: the values at given paths of the objects `list` gives, decoded alone. On
SQLite they come from json_extract, so they must equal what the same paths read in the whole
objects, value for value (numbers to the last digit, text with any character), on both
backends."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tensorfusion.store import ClusterStore, LocalStore
from tensorfusion.store.kube import KubeStore
from tensorfusion.store.projection import MAX_PATHS, FieldPath, projected, values_at
from tests.kube.runner import EmulatorThread

from .contract import assert_refused, placed, pod, version_of

KEYS = ["a", "b", "x.y", "tensor-fusion.ai/gpu-ids", "$[0]", " "]
"""Keys that objects hold and paths name, some with a JSON path's own characters."""
ANNOTATION_KEYS = ["a", "x.y", "tensor-fusion.ai/gpu-ids"]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=3), inner, max_size=4)
    ),
    max_leaves=10,
)
objects = st.lists(
    st.tuples(
        st.dictionaries(st.sampled_from(ANNOTATION_KEYS), st.text(max_size=8), max_size=3),
        st.dictionaries(st.sampled_from(KEYS), json_values, max_size=4),
        json_values,
    ),
    min_size=1,
    max_size=6,
)
paths = st.lists(
    st.sampled_from(["metadata", "spec", "status", *KEYS]).flatmap(
        lambda top: st.lists(st.sampled_from(["name", "annotations", *KEYS]), max_size=2).map(
            lambda rest: (top, *rest)
        )
    ),
    min_size=1,
    max_size=5,
)


@settings(max_examples=25, deadline=None)
@given(objects, paths)
def test_local_values_equal_those_read_in_the_listed_objects(
    bodies: list[tuple[dict[str, str], dict[str, Any], Any]], wanted: list[FieldPath]
) -> None:
    with LocalStore(":memory:") as store:
        for number, (annotations, spec, status) in enumerate(bodies):
            obj = pod(f"p-{number}", spec=spec, status=status)
            obj["metadata"]["annotations"] = annotations
            store.create(obj)
        values = store.list_values("Pod", wanted)
        assert values == [values_at(obj, wanted) for obj in store.list("Pod")]


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("metadata", "name"), "web-0"),
        (("spec", "nodeName"), "node-1"),
        (("spec", "nodeName", "deeper"), None),  # through a string
        (("spec", "containers", "name"), None),  # through a list
        (("status", "missing"), None),
        (("status", "phase"), "Running"),
    ],
)
def test_a_single_path_gives_its_value_or_none(path: FieldPath, value: object) -> None:
    with LocalStore(":memory:") as store:
        store.create(placed("web-0", "node-1", "Running"))
        assert store.list_values("Pod", [path]) == [[value]]


def test_values_follow_the_lists_selection_and_order() -> None:
    with LocalStore(":memory:") as store:
        for name, node_name, namespace in [
            ("b", "node-1", "ns-2"),
            ("a", "node-2", "ns-2"),
            ("c", "node-1", "ns-1"),
            ("d", None, "ns-1"),
        ]:
            store.create(placed(name, node_name, namespace=namespace))
        names = [("metadata", "namespace"), ("metadata", "name")]
        assert store.list_values("Pod", names) == [
            ["ns-1", "c"],
            ["ns-1", "d"],
            ["ns-2", "a"],
            ["ns-2", "b"],
        ]
        assert store.list_values("Pod", names, field_selector={"spec.nodeName": "node-1"}) == [
            ["ns-1", "c"],
            ["ns-2", "b"],
        ]
        assert store.list_values("Pod", names, "ns-2", {"app": "web"}) == [
            ["ns-2", "a"],
            ["ns-2", "b"],
        ]


@pytest.mark.parametrize(
    ("paths", "field"),
    [
        ([], "paths"),
        ("metadata.name", "paths"),
        ([("metadata", "name"), ()], "paths[1]"),
        (["metadata.name"], "paths[0]"),
        ([("metadata", 'a"b')], "paths[0]"),
        ([("metadata", "a\\b")], "paths[0]"),
        ([("metadata", "é")], "paths[0]"),
        ([("metadata", "")], "paths[0]"),
        ([("metadata", 3)], "paths[0]"),
    ],
)
def test_a_bad_path_is_refused_by_its_position(paths: object, field: str) -> None:
    with LocalStore(":memory:") as store:
        assert_refused(field, store.list_values, "Pod", paths)


def test_as_many_paths_as_allowed_are_listed_and_more_are_refused() -> None:
    wanted = [("metadata", "annotations", f"key-{number}") for number in range(MAX_PATHS + 1)]
    with LocalStore(":memory:") as store:
        store.create(placed("web-0", "node-1"))
        assert store.list_values("Pod", wanted[:MAX_PATHS]) == [[None] * MAX_PATHS]
        assert_refused("paths", store.list_values, "Pod", wanted)


def test_values_come_with_the_version_a_list_gives() -> None:
    wanted = [("metadata", "name")]
    with LocalStore(":memory:") as store:
        store.create(placed("a", None))
        last = store.create(placed("b", "node-1"))
        store.create({"kind": "Node", "apiVersion": "v1", "metadata": {"name": "node-1"}})
        unbound = {"spec.nodeName": ""}
        _, version = store.list_with_version("Pod")
        assert store.list_values_with_version("Pod", wanted) == ([["a"], ["b"]], version)
        assert store.list_values_with_version("Pod", wanted, field_selector=unbound) == (
            [["a"]],
            version,
        )
        assert version > version_of(last)


@settings(max_examples=50, deadline=None)
@given(paths)
def test_projected_values_read_back_as_they_were(wanted: list[FieldPath]) -> None:
    # Of paths that run through one another only the outermost hold values of their own.
    distinct = list(dict.fromkeys(tuple(p) for p in wanted))
    outer = [p for p in distinct if not any(p != q and p[: len(q)] == q for q in distinct)]
    obj = projected(outer, [f"value-{number}" for number in range(len(outer))])
    assert values_at(obj, outer) == [f"value-{number}" for number in range(len(outer))]


def test_a_bad_kind_is_refused_as_list_refuses_it() -> None:
    with LocalStore(":memory:") as store:
        assert_refused("kind", store.list_values, "Pods", [("metadata", "name")])


@pytest.fixture
def kube_store(tmp_path: Path) -> Iterator[ClusterStore]:
    # Pods are built in: the emulator needs none of the custom resource definitions.
    with EmulatorThread(tmp_path / "kubeconfig") as api, KubeStore(api.kubeconfig) as store:
        yield store


def test_both_backends_give_the_same_values(kube_store: ClusterStore) -> None:
    wanted: list[FieldPath] = [
        ("metadata", "name"),
        ("metadata", "annotations", "tensor-fusion.ai/gpu-ids"),
        ("spec", "nodeName"),
        ("status", "phase"),
        ("spec", "containers", "image"),
    ]
    with LocalStore(":memory:") as local:
        for store in (local, kube_store):
            store.create(placed("a", "node-1", "Running"))
            gpu = placed("b", "node-2", "Pending")
            gpu["metadata"]["annotations"] = {"tensor-fusion.ai/gpu-ids": "g0,g1"}
            store.create(gpu)
            store.create(placed("c", None, "Pending"))
        selector = {"spec.nodeName": "node-2"}
        assert kube_store.list_values("Pod", wanted) == local.list_values("Pod", wanted)
        assert kube_store.list_values("Pod", wanted, field_selector=selector) == [
            ["b", "g0,g1", "node-2", "Pending", None]
        ]
        assert kube_store.list_values("Pod", wanted, field_selector={"spec.nodeName": ""}) == [
            ["c", None, None, "Pending", None]
        ]
        _, version = kube_store.list_with_version("Pod")
        assert kube_store.list_values_with_version("Pod", wanted[:1])[1] == version
        assert_refused("paths[0]", kube_store.list_values, "Pod", [()])
