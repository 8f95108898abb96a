"""Mutating admission: the emulator calls each MutatingWebhookConfiguration's webhooks on CREATE,
as kube-apiserver does (AdmissionReview v1 over HTTPS, checked against `caBundle`).
`recorded_calls` gives each call's duration as the API server sees it, for the benchmarks."""

from __future__ import annotations

import base64
import binascii
import functools
import json
import ssl
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp

from tests.kube.patches import json_patch
from tests.kube.resources import ApiResource
from tests.kube.selectors import Labels, SelectorError, labels_of, selector_object
from tests.kube.store import Obj

DEFAULT_TIMEOUT_S = 10  # admissionregistration/v1's default timeoutSeconds
MAX_TIMEOUT_S = 30
ADMIN_USER = {"username": "kubernetes-admin", "groups": ["system:masters", "system:authenticated"]}
_SAFE_ON_DRY_RUN = ("None", "NoneOnDryRun")


class AdmissionError(Exception):
    """The request is refused: a webhook denied it, or a Fail-policy webhook could not answer."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message


class _CallFailed(Exception):
    """The webhook did not give a usable answer; its failurePolicy decides what follows."""


@dataclass(frozen=True)
class Attributes:
    """What is being admitted."""

    resource: ApiResource
    operation: str
    namespace: str | None
    obj: Obj
    dry_run: bool


@dataclass
class Admitted:
    obj: Obj
    warnings: list[str]


@dataclass(frozen=True)
class WebhookCall:
    """One call to a webhook: from before the connection to the parsed answer."""

    webhook: str
    namespace: str
    duration_s: float
    failed: bool


# What every emulator in the process appends its webhook calls to (`recorded_calls`), by id.
_recorders: dict[int, list[WebhookCall]] = {}


@contextmanager
def recorded_calls() -> Iterator[list[WebhookCall]]:
    """The webhook calls the emulators in this process make until the end, in order."""
    calls: list[WebhookCall] = []
    _recorders[id(calls)] = calls
    try:
        yield calls
    finally:
        del _recorders[id(calls)]


def _record(call: WebhookCall) -> None:
    for calls in _recorders.values():
        calls.append(call)


def _since(started: float) -> float:
    return time.perf_counter() - started


def _matches(values: Sequence[str] | None, value: str) -> bool:
    return values is not None and ("*" in values or value in values)


def _rule_matches(rule: Mapping[str, Any], attributes: Attributes) -> bool:
    resource = attributes.resource
    scope = rule.get("scope", "*")
    return (
        _matches(rule.get("operations"), attributes.operation)
        and _matches(rule.get("apiGroups"), resource.group)
        and _matches(rule.get("apiVersions"), resource.version)
        and _matches(rule.get("resources"), resource.plural)
        and (scope == "*" or (scope == "Namespaced") == resource.namespaced)
    )


def _selected(webhook: Mapping[str, Any], attributes: Attributes, namespace_labels: Labels) -> bool:
    where = f"webhooks[{webhook.get('name')}]"
    try:
        objects = selector_object(webhook.get("objectSelector"), f"{where}.objectSelector")
        namespaces = selector_object(webhook.get("namespaceSelector"), f"{where}.namespaceSelector")
    except SelectorError as error:
        raise AdmissionError(500, "InternalError", str(error)) from error
    in_namespace = attributes.namespace is None or namespaces(namespace_labels)
    return in_namespace and objects(labels_of(attributes.obj))


def _ssl_context(client_config: Mapping[str, Any]) -> ssl.SSLContext:
    return _ssl_context_for(client_config.get("caBundle") or "")


# One context per caBundle, as kube-apiserver keeps one client per webhook: calls then reuse
# their connection instead of a TLS handshake each.
@functools.lru_cache(maxsize=64)
def _ssl_context_for(bundle: str) -> ssl.SSLContext:
    if not bundle:
        return ssl.create_default_context()
    try:
        return ssl.create_default_context(cadata=base64.b64decode(bundle).decode())
    except (binascii.Error, ValueError, ssl.SSLError) as error:
        raise _CallFailed(f"clientConfig.caBundle: not a base64 PEM bundle: {error}") from error


def _url(client_config: Mapping[str, Any]) -> str:
    if "url" in client_config:
        url = str(client_config["url"])
        if not url.startswith("https://"):
            raise _CallFailed(f"clientConfig.url: must use https, got {url!r}")
        return url
    service = client_config.get("service") or {}
    # The in-cluster address: unreachable from tests unless something resolves it.
    return (
        f"https://{service.get('name')}.{service.get('namespace')}.svc:"
        f"{service.get('port', 443)}{service.get('path', '')}"
    )


def _review(attributes: Attributes, uid: str) -> dict[str, Any]:
    resource, meta = attributes.resource, attributes.obj.get("metadata", {})
    kind = {"group": resource.group, "version": resource.version, "kind": resource.kind}
    plural = {"group": resource.group, "version": resource.version, "resource": resource.plural}
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": kind,
            "resource": plural,
            "requestKind": kind,
            "requestResource": plural,
            "name": meta.get("name", ""),
            "namespace": attributes.namespace or "",
            "operation": attributes.operation,
            "userInfo": ADMIN_USER,
            "object": attributes.obj,
            "oldObject": None,
            "dryRun": attributes.dry_run,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        },
    }


async def _call(
    session: aiohttp.ClientSession, webhook: Mapping[str, Any], review: dict[str, Any]
) -> dict[str, Any]:
    client_config = webhook.get("clientConfig") or {}
    timeout = min(int(webhook.get("timeoutSeconds", DEFAULT_TIMEOUT_S)), MAX_TIMEOUT_S)
    try:
        async with session.post(
            _url(client_config),
            json=review,
            ssl=_ssl_context(client_config),
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as reply:
            if reply.status != 200:
                raise _CallFailed(f"expected response code 200, got {reply.status}")
            answer = await reply.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, json.JSONDecodeError) as error:
        raise _CallFailed(f"{type(error).__name__}: {error}") from error
    response = answer.get("response") if isinstance(answer, Mapping) else None
    if not isinstance(response, dict):
        raise _CallFailed("the webhook returned no AdmissionReview response")
    if response.get("uid") != review["request"]["uid"]:
        raise _CallFailed("the response uid does not match the request uid")
    return response


def _apply(response: Mapping[str, Any], name: str, obj: Obj) -> Obj:
    if "patch" not in response:
        return obj
    if response.get("patchType") != "JSONPatch":
        patch_type = response.get("patchType")
        message = f'admission webhook "{name}": patchType: Unsupported value: "{patch_type}"'
        raise AdmissionError(500, "InternalError", message)
    try:
        patched: Obj = json_patch(obj, json.loads(base64.b64decode(response["patch"])))
    except (binascii.Error, ValueError) as error:  # PatchError is a ValueError
        message = (
            f'Internal error occurred: admission webhook "{name}" returned a bad patch: {error}'
        )
        raise AdmissionError(500, "InternalError", message) from error
    return patched


async def mutate(
    session: aiohttp.ClientSession,
    configurations: Sequence[Obj],
    attributes: Attributes,
    namespace_labels: Labels,
) -> Admitted:
    """`attributes.obj` after every matching mutating webhook, in kube-apiserver's order
    (configurations by name, webhooks in order), or an AdmissionError."""
    admitted = Admitted(attributes.obj, [])
    for configuration in sorted(configurations, key=lambda c: str(c["metadata"]["name"])):
        for webhook in configuration.get("webhooks") or ():
            current = Attributes(
                attributes.resource,
                attributes.operation,
                attributes.namespace,
                admitted.obj,
                attributes.dry_run,
            )
            if not any(_rule_matches(rule, current) for rule in webhook.get("rules") or ()):
                continue
            if not _selected(webhook, current, namespace_labels):
                continue
            admitted.obj = await _admit_one(session, webhook, current, admitted.warnings)
    return admitted


async def _admit_one(
    session: aiohttp.ClientSession,
    webhook: Mapping[str, Any],
    attributes: Attributes,
    warnings: list[str],
) -> Obj:
    name = str(webhook.get("name"))
    if attributes.dry_run and webhook.get("sideEffects") not in _SAFE_ON_DRY_RUN:
        message = f'admission webhook "{name}" does not support dry run'
        raise AdmissionError(400, "BadRequest", message)
    started = time.perf_counter()
    try:
        response = await _call(session, webhook, _review(attributes, str(uuid.uuid4())))
    except _CallFailed as error:
        _record(WebhookCall(name, attributes.namespace or "", _since(started), failed=True))
        if webhook.get("failurePolicy", "Fail") == "Ignore":
            return attributes.obj
        message = f'Internal error occurred: failed calling webhook "{name}": {error}'
        raise AdmissionError(500, "InternalError", message) from error
    _record(WebhookCall(name, attributes.namespace or "", _since(started), failed=False))
    warnings.extend(str(warning) for warning in response.get("warnings") or ())
    if not response.get("allowed", False):
        status = response.get("status") or {}
        message = f'admission webhook "{name}" denied the request'
        if status.get("message"):
            message += f": {status['message']}"
        raise AdmissionError(int(status.get("code") or 403), "Forbidden", message)
    return _apply(response, name, attributes.obj)
