"""Watch: replay from a resourceVersion, selectors, bookmarks, timeoutSeconds, 410 Gone, and
watches the server ends (`drop_watches`)."""

from __future__ import annotations

import json
import time
from typing import Any

import kubernetes
import pytest

from tests.kube.helpers import Api, http, pod
from tests.kube.runner import KubeApi

pytestmark = pytest.mark.timing

PODS = "/api/v1/namespaces/default/pods"


def _events(
    kube_api: KubeApi, params: dict[str, str], count: int | None = None
) -> list[dict[str, Any]]:
    """The events of one watch, until it ends or `count` arrived."""
    events: list[dict[str, Any]] = []
    with (
        http(kube_api) as client,
        client.stream("GET", PODS, params={"watch": "true", **params}) as stream,
    ):
        for line in stream.iter_lines():
            if line:
                events.append(json.loads(line))
            if count is not None and len(events) >= count:
                break
    return events


def test_watch_replays_the_changes_after_a_version(kube_api: KubeApi, core_v1: Api) -> None:
    first = core_v1.create_namespaced_pod("default", pod("a"))
    core_v1.create_namespaced_pod("default", pod("b"))
    core_v1.patch_namespaced_pod("a", "default", {"metadata": {"labels": {"x": "1"}}})
    core_v1.delete_namespaced_pod("b", "default")
    events = _events(kube_api, {"resourceVersion": first.metadata.resource_version}, count=3)
    seen = [(e["type"], e["object"]["metadata"]["name"]) for e in events]
    assert seen == [("ADDED", "b"), ("MODIFIED", "a"), ("DELETED", "b")]
    versions = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert versions == sorted(versions)


def test_watch_without_a_version_starts_with_the_current_objects(
    kube_api: KubeApi, core_v1: Api
) -> None:
    core_v1.create_namespaced_pod("default", pod("a"))
    events = _events(kube_api, {"timeoutSeconds": "1"})
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "a")]


def test_watch_with_a_selector_sees_objects_enter_and_leave_it(
    kube_api: KubeApi, core_v1: Api
) -> None:
    start = core_v1.create_namespaced_pod("default", pod("a")).metadata.resource_version
    core_v1.patch_namespaced_pod("a", "default", {"metadata": {"labels": {"x": "1"}}})
    core_v1.patch_namespaced_pod("a", "default", {"metadata": {"labels": {"x": "2"}}})
    core_v1.create_namespaced_pod("default", pod("b"))
    params = {"resourceVersion": start, "labelSelector": "x=1", "timeoutSeconds": "1"}
    assert [e["type"] for e in _events(kube_api, params)] == ["ADDED", "DELETED"]


def test_timeout_seconds_ends_the_watch_with_a_bookmark(kube_api: KubeApi, core_v1: Api) -> None:
    created = core_v1.create_namespaced_pod("default", pod("a"))
    params = {
        "resourceVersion": created.metadata.resource_version,
        "allowWatchBookmarks": "true",
        "timeoutSeconds": "2",
    }
    events = _events(kube_api, params)  # returns only because the server ends the stream
    assert events
    assert {e["type"] for e in events} == {"BOOKMARK"}
    assert events[-1]["object"]["metadata"]["resourceVersion"] == created.metadata.resource_version
    assert events[-1]["object"]["kind"] == "Pod"


def test_a_watch_that_times_out_with_changes_queued_sends_no_bookmark_past_them(
    kube_api: KubeApi, core_v1: Api
) -> None:
    start = core_v1.create_namespaced_pod("default", pod("a")).metadata.resource_version
    params = {
        "watch": "true",
        "resourceVersion": start,
        "allowWatchBookmarks": "true",
        "timeoutSeconds": "1",
    }

    def write_and_stall() -> None:
        # Queued to the open watch in one step, then the loop is held past its deadline.
        for name in ("b", "c", "d"):
            obj = {"metadata": {"name": name, "namespace": "default"}}
            kube_api.emulator.store.write(("", "pods"), ("default", name), "ADDED", obj)
        time.sleep(1.5)

    with http(kube_api) as client, client.stream("GET", PODS, params=params) as stream:
        time.sleep(0.2)  # the watch subscribes once its headers are sent
        kube_api.call(write_and_stall)
        events = [json.loads(line) for line in stream.iter_lines() if line]
    delivered = 0
    for event in events:
        version = int(event["object"]["metadata"]["resourceVersion"])
        if event["type"] == "BOOKMARK":
            assert version <= delivered, f"a bookmark at {version} skips changes after {delivered}"
        else:
            delivered = version


def test_bookmarks_follow_later_changes(kube_api: KubeApi, core_v1: Api) -> None:
    created = core_v1.create_namespaced_pod("default", pod("a"))
    core_v1.create_namespaced_config_map("default", {"metadata": {"name": "c"}})  # not a pod
    params = {"resourceVersion": created.metadata.resource_version, "allowWatchBookmarks": "true"}
    bookmark = _events(kube_api, params, count=1)[0]
    assert bookmark["type"] == "BOOKMARK"
    assert int(bookmark["object"]["metadata"]["resourceVersion"]) > int(
        created.metadata.resource_version
    )


def test_a_version_older_than_the_log_is_410_gone(kube_api: KubeApi, core_v1: Api) -> None:
    old = core_v1.create_namespaced_pod("default", pod("a")).metadata.resource_version
    current = core_v1.create_namespaced_pod("default", pod("b")).metadata.resource_version
    kube_api.compact()
    watch = kubernetes.watch.Watch()
    with pytest.raises(kubernetes.client.ApiException) as gone:
        for _ in watch.stream(
            core_v1.list_namespaced_pod, "default", resource_version=old, timeout_seconds=5
        ):
            pass
    assert gone.value.status == 410
    events = _events(kube_api, {"resourceVersion": current, "timeoutSeconds": "1"})
    assert events == []  # the current version is still watchable


def test_the_official_client_watch_follows_new_pods(kube_api: KubeApi, core_v1: Api) -> None:
    listed = core_v1.list_namespaced_pod("default")
    core_v1.create_namespaced_pod("default", pod("a"))
    stream = kubernetes.watch.Watch().stream(
        core_v1.list_namespaced_pod,
        "default",
        resource_version=listed.metadata.resource_version,
        timeout_seconds=5,
    )
    first = next(stream)
    assert (first["type"], first["object"].metadata.name) == ("ADDED", "a")


def test_dropping_the_watches_ends_them_and_with_the_log_a_resumed_watch_is_gone(
    kube_api: KubeApi, core_v1: Api
) -> None:
    old = core_v1.create_namespaced_pod("default", pod("a")).metadata.resource_version
    params = {"watch": "true", "resourceVersion": old, "timeoutSeconds": "30"}
    with http(kube_api) as client, client.stream("GET", PODS, params=params) as stream:
        lines = (json.loads(line) for line in stream.iter_lines() if line)
        core_v1.create_namespaced_pod("default", pod("b"))
        first = next(lines)
        kube_api.drop_watches()
        core_v1.create_namespaced_pod("default", pod("c"))  # after the end: never sent
        rest = list(lines)  # returns at once: the server ended the stream
    assert (first["type"], first["object"]["metadata"]["name"]) == ("ADDED", "b")
    assert rest == []
    # Without compaction the log is kept: the watch resumes where it was.
    resumed = _events(kube_api, {"resourceVersion": old}, count=2)
    assert [e["object"]["metadata"]["name"] for e in resumed] == ["b", "c"]
    kube_api.drop_watches(compact=True)
    assert kube_api.expired_reads() == 0
    gone = _events(kube_api, {"resourceVersion": old})
    assert [(e["type"], e["object"]["code"]) for e in gone] == [("ERROR", 410)]
    assert kube_api.expired_reads() == 1
