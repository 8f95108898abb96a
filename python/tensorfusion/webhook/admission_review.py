"""AdmissionReview v1 in, AdmissionReview v1 out: the request's pod goes to `decide`, the
decision comes back as a response with a base64 JSONPatch or a denial.

A dry-run request is decided as any other: deciding has no side effects (it only reads the
GPU pools), so the webhook can declare `sideEffects: None`."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from tensorfusion.errors import StoreError
from tensorfusion.webhook.decision import Decision, decide

API_VERSION: Final = "admission.k8s.io/v1"
WEBHOOK_PATH: Final = "/mutate-v1-pod"
DENIED_CODE: Final = 403
UNAVAILABLE_CODE: Final = 500


class BadReview(ValueError):
    """The body is not an AdmissionReview v1 request."""


def _request_of(review: object) -> Mapping[str, Any]:
    if not isinstance(review, Mapping) or review.get("apiVersion") != API_VERSION:
        raise BadReview(f"apiVersion: expected {API_VERSION!r}")
    request = review.get("request")
    if not isinstance(request, Mapping) or not isinstance(request.get("uid"), str):
        raise BadReview("request.uid: required")
    return request


def _is_pod_create(request: Mapping[str, Any]) -> bool:
    kind = request.get("kind") or {}
    return (
        request.get("operation") == "CREATE"
        and kind.get("group") == ""
        and kind.get("kind") == "Pod"
        and isinstance(request.get("object"), Mapping)
    )


def _response(uid: str, decision: Decision, code: int = DENIED_CODE) -> dict[str, Any]:
    response: dict[str, Any] = {"uid": uid, "allowed": decision.allowed}
    if decision.warnings:
        response["warnings"] = list(decision.warnings)
    if not decision.allowed:
        response["status"] = {"code": code, "message": decision.message}
    elif decision.patch:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(json.dumps(decision.patch).encode()).decode()
    return {"apiVersion": API_VERSION, "kind": "AdmissionReview", "response": response}


def review_response(
    review: object, pools: Callable[[], Iterable[Mapping[str, Any]]], image: str
) -> dict[str, Any]:
    """The answer to `review`. Anything but a Pod CREATE is allowed unchanged; `pools`
    lists the GPUPool objects, and when it fails the pod is refused saying so. BadReview
    when the body is not a review."""
    request = _request_of(review)
    uid = request["uid"]
    if not _is_pod_create(request):
        return _response(uid, Decision(allowed=True))
    try:
        decision = decide(request["object"], pools, image)
    except StoreError as exc:
        message = f"cannot read the GPU pools: {exc}"
        return _response(uid, Decision(allowed=False, message=message), UNAVAILABLE_CODE)
    return _response(uid, decision)
