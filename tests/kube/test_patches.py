"""Patch formats: JSON patch, strategic merge patch (unit), and all three through the client."""

from __future__ import annotations

from typing import Any

import kubernetes
import pytest

from tests.kube.helpers import Api, http, pod
from tests.kube.patches import PatchError, json_patch, strategic_merge_patch
from tests.kube.runner import KubeApi

SPEC: dict[str, Any] = {
    "containers": [
        {
            "name": "a",
            "image": "x",
            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
        },
        {"name": "b", "image": "y"},
    ],
    "volumes": [{"name": "v", "emptyDir": {}}],
    "tolerations": [{"key": "t"}],
}


def test_strategic_merge_merges_containers_env_and_volumes_by_name() -> None:
    patch = {
        "containers": [
            {"name": "a", "env": [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}]}
        ],
        "volumes": [{"name": "w", "emptyDir": {}}],
        "tolerations": [{"key": "u"}],
    }
    merged = strategic_merge_patch(SPEC, patch)
    assert [c["name"] for c in merged["containers"]] == ["a", "b"]
    assert merged["containers"][0]["image"] == "x"
    assert merged["containers"][0]["env"] == [
        {"name": "A", "value": "1"},
        {"name": "B", "value": "3"},
        {"name": "C", "value": "4"},
    ]
    assert [v["name"] for v in merged["volumes"]] == ["v", "w"]
    assert merged["tolerations"] == [{"key": "u"}]  # no merge key: replaced whole
    assert SPEC["containers"][0]["env"][1]["value"] == "2"  # the target is unchanged


def test_strategic_merge_directives() -> None:
    patch = {
        "containers": [{"name": "b", "$patch": "delete"}],
        "$setElementOrder/containers": [{"name": "a"}],
        "volumes": None,
    }
    merged = strategic_merge_patch(SPEC, patch)
    assert [c["name"] for c in merged["containers"]] == ["a"]
    assert "volumes" not in merged
    finalizers = strategic_merge_patch({"f": ["x", "y"]}, {"$deleteFromPrimitiveList/f": ["x"]})
    assert finalizers == {"f": ["y"]}


def test_strategic_merge_item_without_its_key_is_refused() -> None:
    with pytest.raises(PatchError, match="merge key 'name'"):
        strategic_merge_patch(SPEC, {"containers": [{"image": "z"}]})


def test_json_patch_operations() -> None:
    doc = {"a": {"b": [1, 2]}, "c": "x"}
    patched = json_patch(
        doc,
        [
            {"op": "add", "path": "/a/b/-", "value": 3},
            {"op": "replace", "path": "/c", "value": "y"},
            {"op": "remove", "path": "/a/b/0"},
            {"op": "copy", "from": "/c", "path": "/d"},
            {"op": "move", "from": "/d", "path": "/e~1f"},
            {"op": "test", "path": "/e~1f", "value": "y"},
        ],
    )
    assert patched == {"a": {"b": [2, 3]}, "c": "y", "e/f": "y"}
    assert doc == {"a": {"b": [1, 2]}, "c": "x"}


@pytest.mark.parametrize(
    ("operations", "message"),
    [
        ({"op": "add"}, "must be a list"),
        ([{"op": "add", "path": "/x"}], r"operation 0.value: Required value"),
        ([{"op": "replace", "path": "/missing", "value": 1}], "operation 0: path does not exist"),
        ([{"op": "test", "path": "/a", "value": 2}], "operation 0: test failed"),
        ([{"op": "jump", "path": "/a"}], "operation 0.op: Unsupported value"),
        ([{"op": "remove", "path": "a"}], "operation 0.path: must be a JSON pointer"),
    ],
)
def test_json_patch_errors_name_the_operation(operations: object, message: str) -> None:
    with pytest.raises(PatchError, match=message):
        json_patch({"a": 1}, operations)


def test_the_three_patch_types_through_the_client(
    core_v1: Api, api_client: kubernetes.client.ApiClient
) -> None:
    core_v1.create_namespaced_pod("default", pod("p"))
    strategic = {"spec": {"containers": [{"name": "main", "env": [{"name": "B", "value": "2"}]}]}}
    core_v1.patch_namespaced_pod("p", "default", strategic)  # the client's default type
    env = core_v1.read_namespaced_pod("p", "default").spec.containers[0].env
    assert [(e.name, e.value) for e in env] == [("A", "1"), ("B", "2")]
    add_label = [{"op": "add", "path": "/metadata/labels/x", "value": "1"}]
    api_client.set_default_header("Content-Type", "application/json-patch+json")
    core_v1.patch_namespaced_pod("p", "default", add_label)
    api_client.set_default_header("Content-Type", "application/merge-patch+json")
    core_v1.patch_namespaced_pod(
        "p", "default", {"spec": {"containers": [{"name": "main", "image": "z"}]}}
    )
    after = core_v1.read_namespaced_pod("p", "default")
    assert after.metadata.labels == {"x": "1"}
    assert after.spec.containers[0].env is None  # a merge patch replaces the list whole


def test_a_bad_patch_is_refused_and_changes_nothing(kube_api: KubeApi) -> None:
    with http(kube_api) as client:
        client.post("/api/v1/namespaces/default/configmaps", json={"metadata": {"name": "c"}})
        before = client.get("/api/v1/namespaces/default/configmaps/c").json()
        bad = client.patch(
            "/api/v1/namespaces/default/configmaps/c",
            json=[{"op": "remove", "path": "/data/x"}],
            headers={"Content-Type": "application/json-patch+json"},
        )
        unknown = client.patch(
            "/api/v1/namespaces/default/configmaps/c",
            json={},
            headers={"Content-Type": "text/plain"},
        )
        after = client.get("/api/v1/namespaces/default/configmaps/c").json()
    assert bad.status_code == 422
    assert "path does not exist" in bad.json()["message"]
    assert unknown.status_code == 415
    assert after == before
