"""What the API server itself sets on objects when they are created and updated: identity,
timestamps, generation, the split between spec and the status subresource."""

from __future__ import annotations

import base64
import datetime
import secrets
import uuid
from collections.abc import Mapping
from typing import Any

from tests.kube.protocol import bad_request, conflict, invalid
from tests.kube.resources import ApiResource
from tests.kube.store import Obj, meta

# Set by the server only: a client's value is ignored on create and kept from the old object
# on update.
_SYSTEM_FIELDS = ("uid", "creationTimestamp", "generation", "deletionTimestamp")
_NAME_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # apimachinery's generateName alphabet


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _spec_of(obj: Mapping[str, Any]) -> dict[str, Any]:
    """What `metadata.generation` counts changes of: everything but metadata and status."""
    return {key: value for key, value in obj.items() if key not in ("metadata", "status")}


def checked_body(body: Any, resource: ApiResource, namespace: str | None) -> Obj:
    """The body of a create or update, with kind, apiVersion and namespace checked and filled."""
    if not isinstance(body, dict):
        raise bad_request(f"the request body must be a {resource.kind} object")
    for field, expected in (("kind", resource.kind), ("apiVersion", resource.api_version)):
        if body.get(field, expected) != expected:
            raise bad_request(f"{field}: expected {expected!r}, got {body.get(field)!r}")
    metadata = body.get("metadata")
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise bad_request("metadata: must be an object")
    metadata = dict(metadata)
    if resource.namespaced:
        if metadata.get("namespace") not in (None, "", namespace):
            raise bad_request(
                "metadata.namespace: the namespace of the provided object does not match "
                "the namespace sent on the request"
            )
        metadata["namespace"] = namespace
    else:
        metadata.pop("namespace", None)
    return {**body, "kind": resource.kind, "apiVersion": resource.api_version, "metadata": metadata}


def _qualified(resource: ApiResource) -> str:
    """The resource as a Conflict's message names it: `pods`, `gpus.tensor-fusion.ai`."""
    return resource.plural if resource.group == "" else f"{resource.plural}.{resource.group}"


def _generated_name(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_NAME_SUFFIX_ALPHABET) for _ in range(5))


def _valid_pod(obj: Obj, name: str) -> Obj:
    spec = obj.get("spec")
    if not isinstance(spec, dict) or not isinstance(spec.get("containers"), list):
        raise invalid("Pod", name, "spec.containers: Required value")
    if not spec["containers"]:
        raise invalid("Pod", name, "spec.containers: Required value")
    return obj


def _with_defaults(resource: ApiResource, obj: Obj) -> Obj:
    """`obj` with the kind's defaults, which kube-apiserver applies to every object it decodes,
    on create and on update alike."""
    if resource.kind == "Secret" and resource.group == "" and "stringData" in obj:
        # Write-only: merged into `data`, base64-encoded, over any key given in both.
        text = obj.get("stringData") or {}
        encoded = {key: base64.b64encode(str(v).encode()).decode() for key, v in text.items()}
        rest = {key: value for key, value in obj.items() if key != "stringData"}
        return {**rest, "data": {**(obj.get("data") or {}), **encoded}}
    spec = obj.get("spec")
    if resource.kind != "Pod" or resource.group != "" or not isinstance(spec, dict):
        return obj
    return {**obj, "spec": {"schedulerName": "default-scheduler", **spec}}


def prepare_create(resource: ApiResource, obj: Obj) -> Obj:
    """`obj` as stored on create: named, identified, stamped, with the kind's status rule."""
    metadata = {key: value for key, value in meta(obj).items() if key not in _SYSTEM_FIELDS}
    metadata.pop("resourceVersion", None)
    name = metadata.get("name")
    if not name:
        prefix = metadata.get("generateName")
        if not prefix:
            raise invalid(
                resource.kind, "", "metadata.name: Required value: name or generateName is required"
            )
        name = _generated_name(str(prefix))
    if not isinstance(name, str):
        raise invalid(resource.kind, str(name), "metadata.name: must be a string")
    metadata.update(name=name, uid=str(uuid.uuid4()), creationTimestamp=now(), generation=1)
    created: Obj = {**obj, "metadata": metadata}
    if resource.kind == "Pod" and resource.group == "":
        created = _valid_pod(created, name)
    created = _with_defaults(resource, created)
    if resource.status_on_create == "pending":
        created["status"] = {"phase": "Pending"}
    elif resource.status_on_create == "drop" and resource.has_status:
        created.pop("status", None)
    return created


def prepare_update(resource: ApiResource, old: Obj, new: Obj, subresource: str | None) -> Obj:
    """`new` as stored over `old`: system fields kept, the status subresource kept apart from
    the rest, the generation bumped when the spec changed. A stale resourceVersion is a 409."""
    name = meta(old)["name"]
    if meta(new).get("name", name) != name:
        raise bad_request(
            f"metadata.name: the name of the object ({meta(new).get('name')}) does not "
            f"match the name on the URL ({name})"
        )
    version = meta(new).get("resourceVersion")
    if version and version != meta(old).get("resourceVersion"):
        raise conflict(
            _qualified(resource),
            name,
            "the object has been modified; "
            "please apply your changes to the latest version and try again",
        )
    if subresource == "status":
        updated = {**old, "status": new.get("status")}
        if updated["status"] is None:
            updated.pop("status")
        return updated
    metadata = {**meta(new), **{key: meta(old)[key] for key in _SYSTEM_FIELDS if key in meta(old)}}
    metadata["name"] = name
    if "namespace" in meta(old):
        metadata["namespace"] = meta(old)["namespace"]
    updated = _with_defaults(resource, {**new, "metadata": metadata})
    if resource.has_status:
        updated.pop("status", None)
        if "status" in old:
            updated["status"] = old["status"]
    if _spec_of(updated) != _spec_of(old):
        metadata["generation"] = int(meta(old).get("generation", 1)) + 1
    return updated


def check_uid_precondition(resource: ApiResource, old: Obj, new: Obj) -> None:
    """A PUT whose body names a uid is conditional on it, as kube-apiserver makes it: another
    uid (the object was deleted and created again) is a 409."""
    given, stored = meta(new).get("uid"), meta(old).get("uid")
    if given and given != stored:
        raise conflict(
            _qualified(resource),
            meta(old)["name"],
            f"Precondition failed: UID in precondition: {given}, UID in object meta: {stored}",
        )


def unchanged(old: Obj, new: Obj) -> bool:
    """Whether writing `new` over `old` changes nothing (kube-apiserver then skips the write)."""
    strip = ("resourceVersion",)
    return {**old, "metadata": {k: v for k, v in meta(old).items() if k not in strip}} == {
        **new,
        "metadata": {k: v for k, v in meta(new).items() if k not in strip},
    }
