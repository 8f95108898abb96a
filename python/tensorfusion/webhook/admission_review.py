"""AdmissionReview v1 in, AdmissionReview v1 out: the request's pod goes to `decide`, the
decision comes back as a response with a base64 JSONPatch or a denial.

Deciding writes only for a pod with enabled-replicas, whose slot in its controller's count is
taken (`replica_slots`); a dry-run request is decided the same way but writes nothing, so the
webhook declares `sideEffects: NoneOnDryRun`."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any, Final

from tensorfusion.errors import StoreError, UnavailableError
from tensorfusion.webhook.decision import Admission, Decision, decide

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
    dry_run = request.get("dryRun")
    if dry_run is not None and not isinstance(dry_run, bool):
        raise BadReview(f"request.dryRun: must be true or false, got {dry_run!r}")
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


def review_response(review: object, admission: Admission) -> dict[str, Any]:
    """The answer to `review`. Anything but a Pod CREATE is allowed unchanged. When the GPU
    pools cannot be listed or enabled-replicas cannot be counted, the pod is refused (500)
    saying so. BadReview when the body is not a review."""
    request = _request_of(review)
    uid = request["uid"]
    if not _is_pod_create(request):
        return _response(uid, Decision(allowed=True))
    namespace = request.get("namespace")
    try:
        decision = decide(
            request["object"],
            admission,
            namespace=namespace if isinstance(namespace, str) and namespace else None,
            dry_run=request.get("dryRun") is True,
        )
    except StoreError as exc:
        message = f"cannot read the GPU pools: {exc}"
        return _response(uid, Decision(allowed=False, message=message), UNAVAILABLE_CODE)
    except UnavailableError as exc:
        return _response(uid, Decision(allowed=False, message=str(exc)), UNAVAILABLE_CODE)
    return _response(uid, decision)
