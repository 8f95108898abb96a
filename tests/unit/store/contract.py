"""The behaviour every cluster-store backend keeps. A backend's test module subclasses
`StoreContract` and provides a `store` fixture yielding a fresh, empty store."""

from __future__ import annotations

import copy
import math
import re
import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar

import pytest

from tensorfusion.errors import (
    AlreadyExistsError,
    ConfigError,
    ConflictError,
    NotFoundError,
    StoreError,
)
from tensorfusion.store import ChangeFeed, ClusterStore, WatchEvent

GPU_IDS = "tensor-fusion.ai/gpu-ids"
RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
T0 = 1_700_000_000.0  # a fixed "now" for lease tests


def assert_refused(field: str, call: Callable[..., object], *args: Any, **kwargs: Any) -> None:
    """The call raises a ConfigError naming `field`, and its message starts with it."""
    with pytest.raises(ConfigError) as caught:
        call(*args, **kwargs)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")


def pod(name: str = "web-0", namespace: str | None = None, **extra: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "labels": {"app": "web"}}
    if namespace is not None:
        metadata["namespace"] = namespace
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {"containers": [{"name": "main", "image": "busybox"}]},
        **extra,
    }


def node(name: str = "node-1") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}, "spec": {}}


def placed(
    name: str, node_name: str | None, phase: str = "Pending", namespace: str | None = None
) -> dict[str, Any]:
    """A pod on `node_name` (None: not bound) in `phase`."""
    spec = {**pod()["spec"], **({"nodeName": node_name} if node_name else {})}
    return pod(name, namespace, spec=spec, status={"phase": phase})


def version_of(obj: dict[str, Any]) -> int:
    return int(obj["metadata"]["resourceVersion"])


def taken(feed: ChangeFeed, count: int, timeout_s: float = 30.0) -> list[WatchEvent]:
    """What `feed` gives until it has given `count` changes (or the time is up)."""
    deadline = time.monotonic() + timeout_s
    events: list[WatchEvent] = []
    while len(events) < count and feed.wait(max(deadline - time.monotonic(), 0.0)):
        events += feed.take()
    return events


def given_part(stored: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """The fields of `stored` that `given` has: what a write kept of what it was given, leaving
    out the defaults an API server adds."""
    return {key: stored[key] for key in given if key in stored}


def with_metadata(obj: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {**obj, "metadata": {**obj["metadata"], **fields}}


def _merged_status(stored: dict[str, Any], given: Any) -> dict[str, Any]:
    """The stored object with the given status, if any, merged into its own."""
    if "status" not in given:
        return stored
    return {**stored, "status": {**stored.get("status", {}), **given["status"]}}


# (description, object, the field the ConfigError must name)
BAD_OBJECTS: list[tuple[str, object, str]] = [
    ("not a mapping", ["Pod"], "object"),
    ("kind missing", {"metadata": {"name": "a"}}, "kind"),
    ("kind empty", {**pod(), "kind": ""}, "kind"),
    ("kind not a string", {**pod(), "kind": 3}, "kind"),
    ("kind unknown", {**pod(), "kind": "Widget"}, "kind"),
    ("metadata missing", {"kind": "Pod"}, "metadata"),
    ("metadata not a mapping", {"kind": "Pod", "metadata": "web-0"}, "metadata"),
    ("name missing", {"kind": "Pod", "metadata": {}}, "metadata.name"),
    ("name empty", with_metadata(pod(), name=""), "metadata.name"),
    ("name not a string", with_metadata(pod(), name=7), "metadata.name"),
    ("name upper case", with_metadata(pod(), name="Web-0"), "metadata.name"),
    ("name with underscore", with_metadata(pod(), name="web_0"), "metadata.name"),
    ("name ends with dash", with_metadata(pod(), name="web-"), "metadata.name"),
    ("name too long", with_metadata(pod(), name="a" * 254), "metadata.name"),
    ("namespace on a cluster kind", with_metadata(node(), namespace="x"), "metadata.namespace"),
    ("namespace invalid", with_metadata(pod(), namespace="Team A"), "metadata.namespace"),
    ("namespace not a string", with_metadata(pod(), namespace=1), "metadata.namespace"),
    ("labels not a mapping", with_metadata(pod(), labels=["a"]), "metadata.labels"),
    ("label key invalid", with_metadata(pod(), labels={"-a": "b"}), "metadata.labels"),
    ("label key prefix empty", with_metadata(pod(), labels={"/a": "b"}), "metadata.labels"),
    ("label value invalid", with_metadata(pod(), labels={"a": "b c"}), "metadata.labels"),
    ("label value not a string", with_metadata(pod(), labels={"a": 1}), "metadata.labels"),
    (
        "annotation value not str",
        with_metadata(pod(), annotations={"a": 1}),
        "metadata.annotations",
    ),
    ("annotation key not str", with_metadata(pod(), annotations={1: "a"}), "metadata.annotations"),
    ("uid empty", with_metadata(pod(), uid=""), "metadata.uid"),
    ("uid not a string", with_metadata(pod(), uid=5), "metadata.uid"),
    ("resourceVersion set", with_metadata(pod(), resourceVersion="5"), "metadata.resourceVersion"),
    ("a set in spec", {**pod(), "spec": {"ports": {80}}}, "spec.ports"),
    ("NaN in status", {**pod(), "status": {"load": math.nan}}, "status.load"),
    ("bytes in a list", {**pod(), "spec": {"args": ["a", b"b"]}}, "spec.args[1]"),
    ("a tuple key", {**pod(), "spec": {(1, 2): "a"}}, "spec.(1, 2)"),
]

# RFC 7386, appendix A: (target, patch, result); None as the result means the key is removed.
RFC7386_EXAMPLES: list[tuple[object, object, object]] = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


class StoreContract:
    # Whether `create` keeps a uid the object gives (a local store) or assigns its own, as an
    # API server does whatever a client sends.
    KEEPS_A_GIVEN_UID: ClassVar[bool] = True

    # -- create ------------------------------------------------------------------------

    def test_create_assigns_metadata(self, store: ClusterStore) -> None:
        created = store.create(pod())
        meta = created["metadata"]
        assert meta["namespace"] == "default"
        assert re.fullmatch(r"[0-9a-f-]{36}", meta["uid"])
        assert RFC3339_UTC.match(meta["creationTimestamp"])
        assert meta["resourceVersion"].isdigit()
        assert given_part(created["spec"], pod()["spec"]) == pod()["spec"]
        assert store.get("Pod", "web-0") == created

    def test_create_takes_a_given_uid_as_the_backend_does_and_leaves_the_input_alone(
        self, store: ClusterStore
    ) -> None:
        original = with_metadata(pod(), uid="1234")
        snapshot = repr(original)
        created = store.create(original)
        if self.KEEPS_A_GIVEN_UID:
            assert created["metadata"]["uid"] == "1234"
        else:
            assert re.fullmatch(r"[0-9a-f-]{36}", created["metadata"]["uid"])
        assert repr(original) == snapshot

    def test_returned_objects_are_copies(self, store: ClusterStore) -> None:
        created = store.create(pod())
        snapshot = copy.deepcopy(created)
        created["spec"]["containers"].clear()
        store.get("Pod", "web-0")["metadata"]["labels"]["app"] = "changed"
        store.list("Pod")[0]["spec"]["nodeName"] = "x"
        assert store.get("Pod", "web-0") == snapshot

    def test_cluster_scoped_objects_have_no_namespace(self, store: ClusterStore) -> None:
        created = store.create(node())
        assert "namespace" not in created["metadata"]
        assert store.get("Node", "node-1") == created
        assert store.create(with_metadata(node("node-2"), namespace=""))["metadata"].get(
            "namespace"
        ) in (None, "")

    def test_resource_versions_increase_with_every_write(self, store: ClusterStore) -> None:
        versions = [
            version_of(store.create(pod("a"))),
            version_of(store.create(node())),
            version_of(store.patch("Pod", "a", {"status": {"phase": "Running"}})),
            version_of(store.delete("Node", "node-1")),
        ]
        assert versions == sorted(set(versions))

    def test_create_refuses_a_duplicate(self, store: ClusterStore) -> None:
        store.create(pod())
        with pytest.raises(AlreadyExistsError, match="Pod default/web-0"):
            store.create(pod())
        with pytest.raises(AlreadyExistsError, match="Pod default/web-0"):
            store.create(pod(namespace="default"))

    def test_same_name_in_other_namespaces_and_kinds(self, store: ClusterStore) -> None:
        store.create(pod("x"))
        store.create(pod("x", namespace="team-a"))
        store.create({**node("x")})
        assert store.get("Pod", "x", "team-a")["metadata"]["namespace"] == "team-a"
        assert store.get("Node", "x")["kind"] == "Node"
        assert len(store.list("Pod")) == 2

    @pytest.mark.parametrize(
        ("obj", "field"),
        [(obj, field) for _, obj, field in BAD_OBJECTS],
        ids=[d for d, *_ in BAD_OBJECTS],
    )
    def test_create_refuses_bad_objects(self, store: ClusterStore, obj: Any, field: str) -> None:
        _, before = store.list_with_version("Pod")
        assert_refused(field, store.create, obj)
        assert store.list_with_version("Pod") == ([], before)
        assert store.events_since(before) == []

    def test_null_labels_and_annotations_are_allowed(self, store: ClusterStore) -> None:
        created = store.create(with_metadata(pod(), labels=None, annotations=None))
        assert not created["metadata"].get("labels")
        assert store.list("Pod", label_selector={}) == [created]

    # -- get and list ------------------------------------------------------------------

    def test_get_missing_names_the_object(self, store: ClusterStore) -> None:
        with pytest.raises(NotFoundError, match=r"^Pod team-a/web-0 not found$"):
            store.get("Pod", "web-0", "team-a")
        with pytest.raises(NotFoundError, match=r"^Node node-9 not found$"):
            store.get("Node", "node-9")
        with pytest.raises(KeyError):  # NotFoundError is also a KeyError
            store.get("Pod", "web-0")

    @pytest.mark.parametrize(
        ("kind", "name", "namespace", "field"),
        [
            ("", "a", None, "kind"),
            (None, "a", None, "kind"),
            ("Widget", "a", None, "kind"),
            ("Pod", "", None, "name"),
            ("Pod", None, None, "name"),
            ("Pod", "a", 5, "namespace"),
            ("Pod", "a", "Bad Space", "namespace"),
            ("Node", "a", "default", "namespace"),
        ],
    )
    def test_lookups_refuse_bad_arguments(
        self, store: ClusterStore, kind: Any, name: Any, namespace: Any, field: str
    ) -> None:
        for call in (store.get, store.delete):
            assert_refused(field, call, kind, name, namespace)
        assert_refused(field, store.patch, kind, name, {}, namespace)

    def test_list_orders_by_namespace_then_name(self, store: ClusterStore) -> None:
        for name, namespace in [("b", "team-b"), ("a", "team-b"), ("c", "team-a"), ("z", None)]:
            store.create(pod(name, namespace))
        listed = [(p["metadata"]["namespace"], p["metadata"]["name"]) for p in store.list("Pod")]
        assert listed == [("default", "z"), ("team-a", "c"), ("team-b", "a"), ("team-b", "b")]
        assert [p["metadata"]["name"] for p in store.list("Pod", "team-b")] == ["a", "b"]
        assert store.list("Pod", "team-c") == []
        assert store.list("Node") == []

    def test_list_by_label_selector(self, store: ClusterStore) -> None:
        store.create(with_metadata(pod("a"), labels={"app": "web", "tier": "front"}))
        store.create(with_metadata(pod("b"), labels={"app": "web", "tier": ""}))
        store.create(with_metadata(pod("c"), labels={"tensor-fusion.ai/enabled": "true"}))
        store.create(with_metadata(pod("d"), labels=None))

        def names(selector: dict[str, str]) -> list[str]:
            return [p["metadata"]["name"] for p in store.list("Pod", label_selector=selector)]

        assert names({"app": "web"}) == ["a", "b"]
        assert names({"app": "web", "tier": "front"}) == ["a"]
        assert names({"tier": ""}) == ["b"]
        assert names({"tensor-fusion.ai/enabled": "true"}) == ["c"]
        assert names({"app": "db"}) == []
        assert names({}) == ["a", "b", "c", "d"]

    @pytest.mark.parametrize(
        ("kind", "namespace", "selector", "field"),
        [
            ("Widget", None, None, "kind"),
            ("Node", "default", None, "namespace"),
            ("Pod", "Bad Space", None, "namespace"),
            ("Pod", None, ["app=web"], "label_selector"),
            ("Pod", None, "app=web", "label_selector"),
            ("Pod", None, {"app": 1}, "label_selector"),
            ("Pod", None, {'a"b': "c"}, "label_selector"),
            ("Pod", None, {"app": "not valid"}, "label_selector"),
        ],
    )
    def test_list_refuses_bad_arguments(
        self, store: ClusterStore, kind: Any, namespace: Any, selector: Any, field: str
    ) -> None:
        for call in (store.list, store.list_with_version):
            assert_refused(field, call, kind, namespace, selector)

    def test_list_by_field_selector(self, store: ClusterStore) -> None:
        store.create(placed("a", "node-1", "Running"))
        store.create(placed("b", "node-1"))
        store.create(placed("c", "node-2", "Running"))
        store.create(placed("d", None))
        store.create(placed("a", "node-1", namespace="team-a"))
        last = store.create(node("node-1"))

        def names(kind: str, selector: dict[str, str], **query: Any) -> list[str]:
            return [
                o["metadata"]["name"] for o in store.list(kind, field_selector=selector, **query)
            ]

        assert names("Pod", {"spec.nodeName": "node-1"}) == ["a", "b", "a"]
        assert names("Pod", {"spec.nodeName": "node-1"}, namespace="default") == ["a", "b"]
        assert names("Pod", {"spec.nodeName": "node-1", "status.phase": "Running"}) == ["a"]
        assert names("Pod", {"status.phase": "Pending"}) == ["b", "d", "a"]
        assert names("Pod", {"metadata.namespace": "team-a"}) == ["a"]
        assert names("Pod", {"metadata.name": "c", "spec.nodeName": "node-1"}) == []
        assert names("Pod", {"spec.nodeName": "node-1"}, label_selector={"app": "db"}) == []
        assert names("Pod", {}) == ["a", "b", "c", "d", "a"]
        # An empty value selects a missing field, as the API server's `spec.nodeName=` does.
        assert names("Pod", {"spec.nodeName": ""}) == ["d"]
        assert names("Pod", {"spec.nodeName": "", "status.phase": "Running"}) == []
        assert names("Node", {"metadata.name": ""}) == []
        assert names("Node", {"metadata.name": "node-1"}) == ["node-1"]
        assert names("Node", {"metadata.name": "node-2"}) == []
        listed, version = store.list_with_version("Pod", field_selector={"metadata.name": "d"})
        assert ([p["metadata"]["name"] for p in listed], version) == (["d"], version_of(last))

    @pytest.mark.parametrize(
        ("kind", "selector"),
        [
            ("Pod", ["spec.nodeName=node-1"]),
            ("Pod", "spec.nodeName=node-1"),
            ("Pod", {"spec.hostIP": "10.0.0.1"}),
            ("Pod", {"spec": "node-1"}),
            ("Pod", {1: "node-1"}),
            ("Node", {"spec.nodeName": "node-1"}),
            ("Node", {"metadata.namespace": "default"}),
            ("GPU", {"status.phase": "Running"}),
            ("Pod", {"spec.nodeName": None}),
            ("Pod", {"spec.nodeName": 1}),
            ("Pod", {"spec.nodeName": "node-1,node-2"}),
            ("Pod", {"status.phase": "Running "}),
            ("Pod", {"metadata.name": "a=b"}),
        ],
    )
    def test_list_refuses_bad_field_selectors(
        self, store: ClusterStore, kind: str, selector: Any
    ) -> None:
        for call in (store.list, store.list_with_version):
            assert_refused("field_selector", call, kind, None, None, selector)

    def test_list_with_version_is_the_latest_write(self, store: ClusterStore) -> None:
        objects, before = store.list_with_version("Pod")
        assert objects == []
        store.create(pod("a"))
        last = store.create(node())
        objects, version = store.list_with_version("Pod")
        assert [p["metadata"]["name"] for p in objects] == ["a"]
        assert version == version_of(last) > before

    # -- update ------------------------------------------------------------------------

    def test_update_replaces_and_keeps_identity(self, store: ClusterStore) -> None:
        # On a Node, which an API server does not default: the spec is the replacement's.
        created = store.create({**node(), "spec": {"unschedulable": True}})
        replacement = with_metadata(
            {**created, "spec": {"podCIDR": "10.0.0.0/24"}},
            creationTimestamp="1999-01-01T00:00:00Z",
        )
        updated = store.update(replacement)
        assert updated["spec"] == {"podCIDR": "10.0.0.0/24"}
        assert version_of(updated) > version_of(created)
        for field in ("uid", "creationTimestamp"):
            assert updated["metadata"][field] == created["metadata"][field]
        assert store.get("Node", "node-1") == updated

    def test_update_without_a_version_is_unconditional(self, store: ClusterStore) -> None:
        store.create(pod())
        store.patch("Pod", "web-0", {"status": {"phase": "Running"}})
        updated = store.update({**pod(), "status": {"phase": "Failed"}})
        assert updated["status"] == {"phase": "Failed"}

    def test_update_with_a_stale_version_conflicts(self, store: ClusterStore) -> None:
        created = store.create(pod())
        current = store.update(with_metadata(created, labels={"app": "db"}))
        stale = {**created, "status": {"phase": "Failed"}}
        with pytest.raises(ConflictError, match="Pod default/web-0"):
            store.update(stale)
        assert store.get("Pod", "web-0") == current

    def test_update_with_another_uid_conflicts(self, store: ClusterStore) -> None:
        created = store.create(pod())
        store.delete("Pod", "web-0")
        store.create(pod())
        with pytest.raises(ConflictError, match="uid"):
            store.update(with_metadata(created, resourceVersion=None))

    def test_update_that_changes_nothing_writes_nothing(self, store: ClusterStore) -> None:
        created = store.create(pod())
        assert store.update(created) == created
        assert store.update(pod()) == created
        assert store.events_since(version_of(created)) == []

    def test_update_of_a_missing_object(self, store: ClusterStore) -> None:
        with pytest.raises(NotFoundError, match="Pod default/web-0"):
            store.update(pod())

    @pytest.mark.parametrize(
        ("obj", "field"),
        [(obj, field) for _, obj, field in BAD_OBJECTS if field != "metadata.resourceVersion"],
    )
    def test_update_refuses_bad_objects(self, store: ClusterStore, obj: Any, field: str) -> None:
        created = store.create(pod())
        assert_refused(field, store.update, obj)
        assert store.list("Pod") == [created]

    # -- upsert_many -------------------------------------------------------------------

    def test_upsert_many_creates_merges_and_keeps(self, store: ClusterStore) -> None:
        kept = store.create(node("kept"))
        merged = store.create(pod("merged", status={"phase": "Running", "count": 1}))
        same = store.create(pod("same"))
        outcomes = store.upsert_many(
            [
                pod("new"),
                {**pod("merged"), "status": {"count": 2}},
                {**node("kept"), "spec": {"unschedulable": True}},
                pod("same"),
            ],
            {"Pod": _merged_status},
        )
        assert outcomes == ["created", "updated", "unchanged", "unchanged"]
        now_merged = store.get("Pod", "merged")
        assert now_merged["status"] == {"phase": "Running", "count": 2}
        assert now_merged["metadata"]["uid"] == merged["metadata"]["uid"]
        assert store.get("Node", "kept") == kept  # a kind without a merge is left as stored
        assert store.get("Pod", "same") == same  # the merge changed nothing: not written
        events = store.events_since(version_of(same))
        assert [(e.type, e.object["metadata"]["name"]) for e in events] == [
            ("ADDED", "new"),
            ("MODIFIED", "merged"),
        ]

    def test_upsert_many_is_all_or_nothing(self, store: ClusterStore) -> None:
        store.create(pod("a"))
        version = store.list_with_version("Pod")[1]
        batch = [pod("b"), {**pod("a"), "status": {"count": 2}}, pod("C")]
        assert_refused("objs[2].metadata.name", store.upsert_many, batch, {"Pod": _merged_status})
        assert_refused(
            "objs[2].metadata.name", store.upsert_many, [pod("b"), pod("c"), pod("b")], {}
        )
        assert [p["metadata"]["name"] for p in store.list("Pod")] == ["a"]
        assert store.list_with_version("Pod")[1] == version

    def test_upsert_many_checks_what_a_merge_writes(self, store: ClusterStore) -> None:
        store.create(pod("a"))

        def renaming(stored: dict[str, Any], given: Any) -> dict[str, Any]:
            return with_metadata(stored, name="b")

        def mislabelling(stored: dict[str, Any], given: Any) -> dict[str, Any]:
            return with_metadata(stored, labels={"a": "b c"})

        assert_refused("objs[0].metadata.name", store.upsert_many, [pod("a")], {"Pod": renaming})
        assert_refused(
            "objs[0].metadata.labels", store.upsert_many, [pod("a")], {"Pod": mislabelling}
        )
        assert store.get("Pod", "a")["metadata"]["labels"] == {"app": "web"}

    @pytest.mark.parametrize(
        ("obj", "field"),
        [(obj, field) for _, obj, field in BAD_OBJECTS],
    )
    def test_upsert_many_refuses_bad_objects(
        self, store: ClusterStore, obj: Any, field: str
    ) -> None:
        _, before = store.list_with_version("Pod")
        assert_refused(f"objs[1].{field}", store.upsert_many, [pod("a"), obj], {})
        assert store.list_with_version("Pod") == ([], before)
        assert store.events_since(before) == []

    # -- patch -------------------------------------------------------------------------

    @pytest.mark.parametrize(("target", "patch", "result"), RFC7386_EXAMPLES)
    def test_patch_is_a_json_merge_patch(
        self, store: ClusterStore, target: object, patch: object, result: object
    ) -> None:
        # On a custom kind, which an API server does not default: the spec is the patch's
        # result and nothing else.
        workload = {"kind": "TensorFusionWorkload", "metadata": {"name": "web-0"}}
        store.create({**workload, "spec": target})
        patched = store.patch("TensorFusionWorkload", "web-0", {"spec": patch})
        if result is None:
            assert "spec" not in patched
        else:
            assert patched["spec"] == result
        assert store.get("TensorFusionWorkload", "web-0") == patched

    def test_patch_labels_and_annotations(self, store: ClusterStore) -> None:
        store.create(with_metadata(pod(), annotations={"keep": "1", "drop": "2"}))
        patched = store.patch(
            "Pod",
            "web-0",
            {"metadata": {"labels": {"app": None, "tier": "db"}, "annotations": {"drop": None}}},
        )
        assert patched["metadata"]["labels"] == {"tier": "db"}
        assert patched["metadata"]["annotations"] == {"keep": "1"}
        assert store.list("Pod", label_selector={"tier": "db"}) == [patched]

    def test_patch_checks_a_given_version(self, store: ClusterStore) -> None:
        created = store.create(pod())
        current = {"metadata": {"resourceVersion": created["metadata"]["resourceVersion"]}}
        patched = store.patch("Pod", "web-0", {**current, "status": {"phase": "Running"}})
        with pytest.raises(ConflictError, match="resourceVersion"):
            store.patch("Pod", "web-0", {**current, "status": {"phase": "Failed"}})
        assert store.get("Pod", "web-0") == patched

    def test_patch_that_changes_nothing_writes_nothing(self, store: ClusterStore) -> None:
        created = store.create(pod())
        assert store.patch("Pod", "web-0", {"spec": created["spec"]}) == created
        assert store.patch("Pod", "web-0", {"spec": {"nodeName": None}}) == created
        assert store.events_since(version_of(created)) == []

    def test_patch_of_a_missing_object(self, store: ClusterStore) -> None:
        with pytest.raises(NotFoundError, match=r"^Node node-1 not found$"):
            store.patch("Node", "node-1", {"spec": {"unschedulable": True}})

    @pytest.mark.parametrize(
        ("patch", "field"),
        [
            (["op", "replace"], "patch"),
            ("spec: {}", "patch"),
            (None, "patch"),
            ({"metadata": {"name": "other"}}, "metadata.name"),
            ({"metadata": {"name": None}}, "metadata.name"),
            ({"metadata": {"namespace": "team-a"}}, "metadata.namespace"),
            ({"metadata": None}, "metadata"),
            ({"kind": None}, "kind"),
            ({"kind": "TensorFusionWorkload"}, "kind"),
            ({"metadata": {"labels": {"app": "a b"}}}, "metadata.labels"),
            ({"metadata": {"labels": ["app"]}}, "metadata.labels"),
            ({"metadata": {"uid": 1}}, "metadata.uid"),
            ({"spec": {"when": {1.5j}}}, "spec.when"),
        ],
    )
    def test_patch_refuses_bad_patches(self, store: ClusterStore, patch: Any, field: str) -> None:
        created = store.create(pod())
        assert_refused(field, store.patch, "Pod", "web-0", patch)
        assert store.get("Pod", "web-0") == created

    # -- delete ------------------------------------------------------------------------

    def test_delete_returns_the_last_state(self, store: ClusterStore) -> None:
        created = store.create(pod())
        deleted = store.delete("Pod", "web-0")
        assert version_of(deleted) > version_of(created)
        assert deleted["metadata"]["uid"] == created["metadata"]["uid"]
        assert deleted["spec"] == created["spec"]
        with pytest.raises(NotFoundError):
            store.get("Pod", "web-0")
        assert store.create(pod())["metadata"]["uid"] != created["metadata"]["uid"]

    def test_delete_of_a_missing_object(self, store: ClusterStore) -> None:
        with pytest.raises(NotFoundError, match=r"^Pod team-a/web-0 not found$"):
            store.delete("Pod", "web-0", "team-a")

    # -- bind --------------------------------------------------------------------------

    def test_bind_sets_the_node_and_merges_annotations(self, store: ClusterStore) -> None:
        created = store.create(with_metadata(pod(namespace="team-a"), annotations={"a": "1"}))
        bound = store.bind("team-a", "web-0", "node-1", {GPU_IDS: "gpu-0,gpu-1"})
        assert bound["spec"]["nodeName"] == "node-1"
        assert bound["spec"]["containers"] == created["spec"]["containers"]
        assert bound["metadata"]["annotations"] == {"a": "1", GPU_IDS: "gpu-0,gpu-1"}
        assert version_of(bound) > version_of(created)
        assert store.get("Pod", "web-0", "team-a") == bound

    def test_bind_of_a_bound_pod_conflicts(self, store: ClusterStore) -> None:
        store.create(pod())
        bound = store.bind("default", "web-0", "node-1", {})
        for target in ("node-2", "node-1"):
            with pytest.raises(ConflictError, match="already bound to node 'node-1'"):
                store.bind("default", "web-0", target, {GPU_IDS: "gpu-9"})
        assert store.get("Pod", "web-0") == bound

    def test_bind_of_a_pod_created_with_a_node(self, store: ClusterStore) -> None:
        store.create({**pod(), "spec": {**pod()["spec"], "nodeName": "node-3"}})
        with pytest.raises(ConflictError, match="node-3"):
            store.bind("default", "web-0", "node-1", {})

    def test_bind_of_a_missing_pod(self, store: ClusterStore) -> None:
        with pytest.raises(NotFoundError, match=r"^Pod default/web-0 not found$"):
            store.bind("default", "web-0", "node-1", {})

    @pytest.mark.timing
    def test_concurrent_binds_have_one_winner(self, store: ClusterStore) -> None:
        store.create(pod())
        outcomes: list[str] = []

        def bind(node_name: str) -> None:
            try:
                store.bind("default", "web-0", node_name, {})
                outcomes.append("bound")
            except ConflictError:
                outcomes.append("conflict")

        threads = [threading.Thread(target=bind, args=(f"node-{i}",)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(outcomes) == ["bound"] + ["conflict"] * 7

    @pytest.mark.parametrize(
        ("args", "field"),
        [
            (("default", "web-0", "", {}), "node_name"),
            (("default", "web-0", None, {}), "node_name"),
            (("default", "web-0", "Node_1", {}), "node_name"),
            (("default", "web-0", "node-1", {"a": 1}), "annotations"),
            (("default", "web-0", "node-1", {"a": None}), "annotations"),
            (("default", "web-0", "node-1", ["a"]), "annotations"),
            (("default", "", "node-1", {}), "name"),
            (("Bad Space", "web-0", "node-1", {}), "namespace"),
        ],
    )
    def test_bind_refuses_bad_arguments(
        self, store: ClusterStore, args: tuple[Any, ...], field: str
    ) -> None:
        created = store.create(pod())
        assert_refused(field, store.bind, *args)
        assert store.get("Pod", "web-0") == created

    # -- events and watch ----------------------------------------------------------------

    def test_events_replay_every_change_in_order(self, store: ClusterStore) -> None:
        _, start = store.list_with_version("Pod")
        created = store.create(pod())
        gpu_node = store.create(node())
        patched = store.patch("Pod", "web-0", {"status": {"phase": "Running"}})
        deleted = store.delete("Pod", "web-0")
        expected = [
            WatchEvent("ADDED", created, version_of(created)),
            WatchEvent("ADDED", gpu_node, version_of(gpu_node)),
            WatchEvent("MODIFIED", patched, version_of(patched)),
            WatchEvent("DELETED", deleted, version_of(deleted)),
        ]
        assert store.events_since(start) == expected
        assert store.events_since(start, ["Pod"]) == [expected[0], expected[2], expected[3]]
        assert store.events_since(start, {"Node", "GPU"}) == [expected[1]]
        assert store.events_since(start, []) == []
        assert store.events_since(version_of(created)) == expected[1:]
        assert store.events_since(version_of(deleted)) == []

    def test_list_then_events_has_no_gap(self, store: ClusterStore) -> None:
        store.create(pod("a"))
        objects, version = store.list_with_version("Pod")
        later = store.create(pod("b"))
        assert [p["metadata"]["name"] for p in objects] == ["a"]
        assert store.events_since(version, ["Pod"]) == [
            WatchEvent("ADDED", later, version_of(later))
        ]

    def test_events_from_the_future_are_refused(self, store: ClusterStore) -> None:
        created = store.create(pod())
        with pytest.raises(StoreError, match="newer"):
            store.events_since(version_of(created) + 1)

    @pytest.mark.parametrize(
        ("version", "kinds", "field"),
        [
            (-1, None, "resource_version"),
            ("3", None, "resource_version"),
            (1.5, None, "resource_version"),
            (True, None, "resource_version"),
            (0, "Pod", "kinds"),
            (0, 3, "kinds"),
            (0, ["Pod", "Widget"], "kinds"),
            (0, [None], "kinds"),
        ],
    )
    def test_events_since_refuses_bad_arguments(
        self, store: ClusterStore, version: Any, kinds: Any, field: str
    ) -> None:
        assert_refused(field, store.events_since, version, kinds)

    @pytest.mark.timing
    def test_watch_yields_what_is_there_then_ends(self, store: ClusterStore) -> None:
        created = store.create(pod())
        store.create(node())
        events = list(store.watch(["Pod"], 0, 0))
        assert events == [WatchEvent("ADDED", created, version_of(created))]
        assert list(store.watch(None, version_of(created) + 1, 0.05)) == []

    @pytest.mark.parametrize(
        ("kinds", "since", "timeout", "field"),
        [
            (None, -1, 1, "since"),
            ("Pod", 0, 1, "kinds"),
            (None, 0, -1, "timeout_s"),
            (None, 0, math.inf, "timeout_s"),
            (None, 0, "1", "timeout_s"),
        ],
    )
    def test_watch_refuses_bad_arguments_at_once(
        self, store: ClusterStore, kinds: Any, since: Any, timeout: Any, field: str
    ) -> None:
        assert_refused(field, store.watch, kinds, since, timeout)

    # -- following (ChangeFeed) ---------------------------------------------------------

    @pytest.mark.timing  # a Kubernetes feed's streams deliver in their own time
    def test_a_feed_follows_each_kind_from_its_own_list(self, store: ClusterStore) -> None:
        store.create(pod("a"))
        _, pods_at = store.list_with_version("Pod")
        changed = store.patch("Pod", "a", {"status": {"phase": "Running"}})  # between the lists
        store.create(node("n1"))
        _, nodes_at = store.list_with_version("Node")
        later = store.create(pod("b"))
        feed = store.follow({"Pod": pods_at, "Node": nodes_at})
        try:
            first = taken(feed, 2)
            renamed = store.patch("Node", "n1", {"metadata": {"labels": {"zone": "a"}}})
            second = taken(feed, 1)
        finally:
            feed.close()
        # Each kind in its own order; the node created before the node list is not repeated.
        assert [e for e in first if e.object["kind"] == "Pod"] == [
            WatchEvent("MODIFIED", changed, version_of(changed)),
            WatchEvent("ADDED", later, version_of(later)),
        ]
        assert [e for e in first if e.object["kind"] == "Node"] == []
        assert second == [WatchEvent("MODIFIED", renamed, version_of(renamed))]

    @pytest.mark.timing
    def test_a_feed_waits_for_a_change(self, store: ClusterStore) -> None:
        _, version = store.list_with_version("Pod")
        feed = store.follow({"Pod": version})
        try:
            assert feed.wait(0.05) is False
            assert feed.take() == []
            created = store.create(pod())
            assert feed.wait(30) is True
            assert taken(feed, 1) == [WatchEvent("ADDED", created, version_of(created))]
        finally:
            feed.close()
            feed.close()  # idempotent

    @pytest.mark.timing
    def test_a_feed_narrowed_to_a_node_sees_only_its_pods(self, store: ClusterStore) -> None:
        store.create(placed("here", "node-1"))
        store.create(placed("there", "node-2"))
        store.create(placed("pending", None))
        here = {"spec.nodeName": "node-1"}
        listed, version = store.list_with_version("Pod", field_selector=here)
        assert [p["metadata"]["name"] for p in listed] == ["here"]
        feed = store.follow({"Pod": version, "Node": version}, {"Pod": here})
        try:
            store.patch("Pod", "there", {"status": {"phase": "Running"}})
            store.create(placed("elsewhere", "node-2"))
            store.delete("Pod", "there")
            assert feed.wait(0.3) is False  # no change of the node's pods yet
            bound = store.bind("default", "pending", "node-1", {GPU_IDS: "gpu-0"})
            running = store.patch("Pod", "here", {"status": {"phase": "Running"}})
            gone = store.delete("Pod", "here")
            other_node = store.create(node("node-9"))  # a kind without a selector: all of it
            events = taken(feed, 4)
        finally:
            feed.close()
        assert [e for e in events if e.object["kind"] == "Pod"] == [
            WatchEvent("ADDED", bound, version_of(bound)),
            WatchEvent("MODIFIED", running, version_of(running)),
            WatchEvent("DELETED", gone, version_of(gone)),
        ]
        assert [e for e in events if e.object["kind"] == "Node"] == [
            WatchEvent("ADDED", other_node, version_of(other_node))
        ]

    @pytest.mark.timing
    def test_an_object_leaving_the_selection_comes_as_deleted(self, store: ClusterStore) -> None:
        store.create(placed("a", "node-1"))
        running_only = {"status.phase": "Running"}
        listed, version = store.list_with_version("Pod", field_selector=running_only)
        assert listed == []
        feed = store.follow({"Pod": version}, {"Pod": running_only})
        try:
            running = store.patch("Pod", "a", {"status": {"phase": "Running"}})
            done = store.patch("Pod", "a", {"status": {"phase": "Succeeded"}})
            store.delete("Pod", "a")  # outside the selection by now: not seen
            store.create(placed("b", "node-1", "Running"))
            events = taken(feed, 3)
        finally:
            feed.close()
        # The state the watcher last saw, at the version of the change that took it out.
        left = with_metadata(running, resourceVersion=done["metadata"]["resourceVersion"])
        assert [(e.type, e.object["metadata"]["name"]) for e in events] == [
            ("ADDED", "a"),
            ("DELETED", "a"),
            ("ADDED", "b"),
        ]
        assert events[:2] == [
            WatchEvent("ADDED", running, version_of(running)),
            WatchEvent("DELETED", left, version_of(done)),
        ]

    @pytest.mark.parametrize(
        ("versions", "selectors", "field"),
        [
            ("Pod", None, "versions"),
            ({"Widget": 0}, None, "versions"),
            ({"Pod": -1}, None, "versions[Pod]"),
            ({"Pod": "3"}, None, "versions[Pod]"),
            ({"Pod": 0}, ["Pod"], "field_selectors"),
            ({"Pod": 0}, {"Node": {"metadata.name": "a"}}, "field_selectors"),
            ({"Pod": 0}, {"Widget": {}}, "field_selectors"),
            ({"Pod": 0}, {"Pod": "spec.nodeName=a"}, "field_selectors[Pod]"),
            ({"Pod": 0}, {"Pod": {"spec.hostIP": "a"}}, "field_selectors[Pod]"),
            ({"Pod": 0}, {"Pod": {"spec.nodeName": None}}, "field_selectors[Pod]"),
        ],
    )
    def test_follow_refuses_bad_arguments(
        self, store: ClusterStore, versions: Any, selectors: Any, field: str
    ) -> None:
        assert_refused(field, store.follow, versions, selectors)

    # -- leases ------------------------------------------------------------------------

    def test_lease_is_exclusive_until_it_expires(self, store: ClusterStore) -> None:
        assert store.lease_holder("leader", now=T0) is None
        assert store.acquire_lease("leader", "a", 10, now=T0)
        assert not store.acquire_lease("leader", "b", 10, now=T0 + 5)
        assert store.lease_holder("leader", now=T0 + 9.9) == "a"
        assert store.lease_holder("leader", now=T0 + 10) is None
        assert store.acquire_lease("leader", "b", 10, now=T0 + 10)
        assert store.lease_holder("leader", now=T0 + 11) == "b"
        assert not store.acquire_lease("leader", "a", 10, now=T0 + 11)

    def test_leases_are_independent(self, store: ClusterStore) -> None:
        assert store.acquire_lease("scheduler", "a", 10, now=T0)
        assert store.acquire_lease("operator", "b", 10, now=T0)
        assert store.lease_holder("scheduler", now=T0) == "a"
        assert store.lease_holder("operator", now=T0) == "b"

    def test_holder_reacquires_and_renews(self, store: ClusterStore) -> None:
        assert store.acquire_lease("leader", "a", 10, now=T0)
        assert store.acquire_lease("leader", "a", 10, now=T0 + 8)
        assert store.lease_holder("leader", now=T0 + 15) == "a"
        assert store.renew_lease("leader", "a", 10, now=T0 + 15)
        assert store.lease_holder("leader", now=T0 + 24) == "a"
        assert not store.renew_lease("leader", "b", 10, now=T0 + 16)

    def test_renewing_an_expired_lease_fails(self, store: ClusterStore) -> None:
        assert not store.renew_lease("leader", "a", 10, now=T0)
        assert store.acquire_lease("leader", "a", 10, now=T0)
        assert not store.renew_lease("leader", "a", 10, now=T0 + 10)
        assert store.lease_holder("leader", now=T0 + 10) is None

    def test_release(self, store: ClusterStore) -> None:
        assert store.acquire_lease("leader", "a", 10, now=T0)
        store.release_lease("leader", "b")
        assert store.lease_holder("leader", now=T0) == "a"
        store.release_lease("leader", "a")
        assert store.lease_holder("leader", now=T0) is None
        assert store.acquire_lease("leader", "b", 10, now=T0)
        store.release_lease("unknown", "a")

    def test_lease_on_the_wall_clock(self, store: ClusterStore) -> None:
        assert store.acquire_lease("leader", "a", 3600)
        assert store.lease_holder("leader") == "a"
        assert store.renew_lease("leader", "a", 3600)
        assert not store.acquire_lease("leader", "b", 3600)

    @pytest.mark.parametrize(
        ("args", "field"),
        [
            (("", "a", 10, T0), "name"),
            (("Leader", "a", 10, T0), "name"),
            ((None, "a", 10, T0), "name"),
            (("leader", "", 10, T0), "holder"),
            (("leader", 5, 10, T0), "holder"),
            (("leader", "a", 0, T0), "duration_s"),
            (("leader", "a", -1, T0), "duration_s"),
            (("leader", "a", math.nan, T0), "duration_s"),
            (("leader", "a", True, T0), "duration_s"),
            (("leader", "a", "10", T0), "duration_s"),
            (("leader", "a", 10, math.inf), "now"),
            (("leader", "a", 10, -1), "now"),
            (("leader", "a", 10, "now"), "now"),
        ],
    )
    def test_leases_refuse_bad_arguments(
        self, store: ClusterStore, args: tuple[Any, Any, Any, Any], field: str
    ) -> None:
        name, holder, _, now = args
        for call in (store.acquire_lease, store.renew_lease):
            assert_refused(field, call, *args)
        if field in ("name", "holder"):
            assert_refused(field, store.release_lease, name, holder)
        if field in ("name", "now"):
            assert_refused(field, store.lease_holder, name, now)
        assert store.lease_holder("leader", now=T0) is None

    # -- lifetime ----------------------------------------------------------------------

    def test_closed_store_refuses_calls(self, store: ClusterStore) -> None:
        store.create(pod())
        store.close()
        store.close()
        with pytest.raises(StoreError, match="closed"):
            store.get("Pod", "web-0")
        with pytest.raises(StoreError, match="closed"):
            store.acquire_lease("leader", "a", 10)
        with pytest.raises(StoreError, match="closed"):
            list(store.watch(None, 0, 0))
