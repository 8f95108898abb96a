"""AdmissionReview v1 in and out: the patch travels base64-encoded, a denial carries its
message, and anything but a Pod CREATE passes untouched."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from typing import Any

import pytest

from tensorfusion.api.annotations import VRAM_LIMIT
from tensorfusion.errors import StoreError
from tensorfusion.webhook.admission_review import BadReview, review_response

from .pods import IMAGE, POOLS, decided, tf_pod


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


def answer(body: object) -> dict[str, Any]:
    result = review_response(body, lambda: POOLS, IMAGE)
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

    result = review_response(review(tf_pod(enabled="false")), pools, IMAGE)
    assert result["response"] == {"uid": "req-1", "allowed": True}


def test_pools_that_cannot_be_listed_refuse_the_pod_saying_so() -> None:
    def pools() -> Iterable[dict[str, Any]]:
        raise StoreError("the API server is unreachable")

    response = review_response(review(tf_pod()), pools, IMAGE)["response"]
    assert response["allowed"] is False
    assert response["status"]["code"] == 500
    assert "unreachable" in response["status"]["message"]


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"apiVersion": "admission.k8s.io/v1beta1", "request": {"uid": "x"}},
        {"apiVersion": "admission.k8s.io/v1", "request": {}},
    ],
)
def test_a_body_that_is_no_review_is_refused(body: object) -> None:
    with pytest.raises(BadReview):
        review_response(body, lambda: POOLS, IMAGE)
