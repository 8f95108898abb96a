"""AdmissionReview v1 in and out: the patch travels base64-encoded, a denial carries its
message, warnings travel, a dry run takes no enabled-replicas slot, a count that cannot be kept
refuses the pod (500), and anything but a Pod CREATE passes untouched. Counts go to an
in-memory LocalStore."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Iterable
from typing import Any

import pytest

from tensorfusion.api.annotations import ENABLED_REPLICAS, REPLICA_SLOT_LABEL, VRAM_LIMIT
from tensorfusion.errors import StoreError
from tensorfusion.store.local import LocalStore
from tensorfusion.store.objects import JsonObject
from tensorfusion.webhook.admission_review import BadReview, review_response
from tensorfusion.webhook.decision import Admission
from tensorfusion.webhook.replica_slots import ReplicaSlots
from tests.kube.patches import json_patch

from .pods import IMAGE, admission, decided, owned_by, tf_pod


def review(obj: dict[str, Any], **request: Any) -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "req-1",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "operation": "CREATE",
            "object": obj,
            **request,
        },
    }


def answer(body: object, given: Admission | None = None) -> dict[str, Any]:
    result = review_response(body, admission() if given is None else given)
    assert (result["apiVersion"], result["kind"]) == ("admission.k8s.io/v1", "AdmissionReview")
    response: dict[str, Any] = result["response"]
    assert response["uid"] == "req-1"
    return response


@pytest.mark.parametrize("dry_run", [False, True])
def test_a_converted_pod_comes_back_as_a_base64_json_patch(dry_run: bool) -> None:
    pod = tf_pod()
    response = answer(review(pod, dryRun=dry_run))
    assert response["allowed"] is True
    assert response["patchType"] == "JSONPatch"
    assert json.loads(base64.b64decode(response["patch"])) == decided(pod).patch


def test_a_denial_carries_the_message_naming_the_annotation() -> None:
    response = answer(review(tf_pod({VRAM_LIMIT: "lots"})))
    assert response["allowed"] is False
    assert response["status"]["code"] == 403
    assert response["status"]["message"].startswith(f"{VRAM_LIMIT}: ")
    assert "patch" not in response


@pytest.mark.parametrize(
    "request_parts",
    [
        {"operation": "UPDATE"},
        {"kind": {"group": "", "version": "v1", "kind": "ConfigMap"}},
        {"kind": {"group": "apps", "version": "v1", "kind": "Pod"}},
    ],
)
def test_anything_but_a_pod_create_is_allowed_unchanged(request_parts: dict[str, Any]) -> None:
    response = answer(review(tf_pod(), **request_parts))
    assert response == {"uid": "req-1", "allowed": True}


def test_a_pod_not_enabled_lists_no_pools() -> None:
    def pools() -> Iterable[dict[str, Any]]:
        raise AssertionError("listed")

    given = Admission(pools, ReplicaSlots(LocalStore(":memory:")), IMAGE)
    result = review_response(review(tf_pod(enabled="false")), given)
    assert result["response"] == {"uid": "req-1", "allowed": True}


def test_pools_that_cannot_be_listed_refuse_the_pod_saying_so() -> None:
    def pools() -> Iterable[dict[str, Any]]:
        raise StoreError("the API server is unreachable")

    given = Admission(pools, ReplicaSlots(LocalStore(":memory:")), IMAGE)
    response = review_response(review(tf_pod()), given)["response"]
    assert response["allowed"] is False
    assert response["status"]["code"] == 500
    assert "unreachable" in response["status"]["message"]


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"apiVersion": "admission.k8s.io/v1beta1", "request": {"uid": "x"}},
        {"apiVersion": "admission.k8s.io/v1", "request": {}},
        review(tf_pod(), dryRun="yes"),
    ],
)
def test_a_body_that_is_no_review_is_refused(body: object) -> None:
    with pytest.raises(BadReview):
        review_response(body, admission())


def replica() -> dict[str, Any]:
    return owned_by(tf_pod({VRAM_LIMIT: "4Gi", ENABLED_REPLICAS: "1"}))


def test_a_dry_run_review_takes_no_slot() -> None:
    with LocalStore(":memory:") as store:
        given = admission(store=store)
        dry = answer(review(replica(), dryRun=True), given)
        assert dry["patchType"] == "JSONPatch"
        assert store.list("ConfigMap") == []
        assert answer(review(replica(), dryRun=False), given)["patchType"] == "JSONPatch"
        (count,) = store.list("ConfigMap")
        assert len(count["data"]) == 1


def test_the_slot_is_counted_in_the_requests_namespace_and_over_n_warns() -> None:
    with LocalStore(":memory:") as store:
        given = admission(store=store)
        pod = replica()
        del pod["metadata"]["namespace"]
        first = answer(review(pod, namespace="team-a"), given)
        patched = json_patch(copy.deepcopy(pod), json.loads(base64.b64decode(first["patch"])))
        assert REPLICA_SLOT_LABEL in patched["metadata"]["labels"]
        (count,) = store.list("ConfigMap")
        assert count["metadata"]["namespace"] == "team-a"
        over = answer(review(pod, namespace="team-a"), given)
        assert over["allowed"] is True
        assert "patch" not in over
        (warning,) = over["warnings"]
        assert warning.startswith(f"{ENABLED_REPLICAS}: admitted unconverted")


class UnreachableStore(LocalStore):
    def get(self, kind: str, name: str, namespace: str | None = None) -> JsonObject:
        raise StoreError("the API server is unreachable")


def test_a_count_that_cannot_be_read_refuses_the_pod_naming_the_annotation() -> None:
    with UnreachableStore(":memory:") as store:
        response = answer(review(replica()), admission(store=store))
        assert response["allowed"] is False
        assert response["status"]["code"] == 500
        message = response["status"]["message"]
        assert message.startswith(f"{ENABLED_REPLICAS}: cannot count the converted replicas")
        assert "unreachable" in message
        assert store.list("ConfigMap") == []
