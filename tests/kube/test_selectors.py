"""Label and field selectors on lists."""

from __future__ import annotations

from typing import Any

import pytest

from tests.kube.helpers import Api, api_error, pod
from tests.kube.selectors import SelectorError, field_selector, label_selector, selector_object


@pytest.fixture
def pods(core_v1: Api) -> Api:
    core_v1.create_namespaced_pod(
        "default", pod("a", labels={"app": "x", "tier": "1"}, nodeName="n1")
    )
    core_v1.create_namespaced_pod(
        "default", pod("b", labels={"app": "y"}, schedulerName="tensor-fusion-scheduler")
    )
    core_v1.create_namespaced_pod("other", pod("c", labels={"app": "x"}))
    return core_v1


def _names(listed: Any) -> list[str]:
    return [item.metadata.name for item in listed.items]


@pytest.mark.parametrize(
    ("selector", "names"),
    [
        ("app=x", ["a", "c"]),
        ("app==x,tier=1", ["a"]),
        ("app!=x", ["b"]),
        ("app in (y, z)", ["b"]),
        ("app notin (y)", ["a", "c"]),
        ("tier", ["a"]),
        ("!tier", ["b", "c"]),
    ],
)
def test_label_selectors(pods: Api, selector: str, names: list[str]) -> None:
    assert sorted(_names(pods.list_pod_for_all_namespaces(label_selector=selector))) == names


@pytest.mark.parametrize(
    ("selector", "names"),
    [
        ("spec.nodeName=n1", ["a"]),
        ("spec.nodeName=", ["b", "c"]),
        ("spec.schedulerName=tensor-fusion-scheduler", ["b"]),
        ("metadata.name=c", ["c"]),
        ("metadata.name!=c,spec.nodeName!=n1", ["b"]),
    ],
)
def test_field_selectors(pods: Api, selector: str, names: list[str]) -> None:
    assert sorted(_names(pods.list_pod_for_all_namespaces(field_selector=selector))) == names


def test_namespace_scopes_a_list(pods: Api) -> None:
    assert _names(pods.list_namespaced_pod("other")) == ["c"]


def test_a_bad_selector_is_400_naming_the_parameter(pods: Api) -> None:
    error = api_error(pods.list_pod_for_all_namespaces, field_selector="spec.nodeName")
    assert error.status == 400
    assert "fieldSelector" in error.message
    with pytest.raises(SelectorError, match="labelSelector"):
        label_selector("app in")
    with pytest.raises(SelectorError, match="fieldSelector"):
        field_selector("a<b")


def test_label_selector_objects() -> None:
    selects = selector_object(
        {
            "matchLabels": {"a": "1"},
            "matchExpressions": [{"key": "b", "operator": "NotIn", "values": ["2"]}],
        },
        "objectSelector",
    )
    assert selects({"a": "1"})
    assert not selects({"a": "1", "b": "2"})
    assert selector_object(None, "x")({})
    with pytest.raises(SelectorError, match=r"objectSelector.matchExpressions\[0\].operator"):
        selector_object({"matchExpressions": [{"key": "a", "operator": "Near"}]}, "objectSelector")
