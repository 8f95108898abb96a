"""`KubeStore`: the cluster store over the Kubernetes API server, for the controller.

Each kind maps to its API (`kube_kinds`); resource versions, uids and timestamps are the
server's. Arguments and objects are checked here first, with the checks and messages of
`LocalStore`, so bad input is refused without a request. Where the server keeps status apart
(the `/status` subresource), a write that changes status also writes that subresource, as a
second request.

What the API cannot give as one transaction is done in steps: `upsert_many` checks the whole
batch before writing anything, then writes object by object (a server refusal midway leaves
the earlier writes); `bind` patches the scheduler's annotations, then posts `pods/binding`, as
kube-scheduler's PreBind and Bind do.

A field selector goes to the server as `fieldSelector`, on a list and on each watch of a
followed kind, so that only the selected objects cross the network.

`watch` and `events_since` open one watch stream per kind. A change log reaching back to a
version is the server's to keep: an older one gets 410 Gone, raised as ResourceExpiredError.
A kind with no change since the version asked for costs a whole second (the shortest watch a
server ends), so `events_since` suits tests and tools, and a controller watches instead.

Leases are `coordination.k8s.io/v1` Lease objects in `lease_namespace`, with holderIdentity,
renewTime and leaseDurationSeconds (whole seconds, rounded up).
"""

from __future__ import annotations

import builtins
import json
import math
import time
from collections.abc import Collection, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from tensorfusion.api.field_errors import type_name
from tensorfusion.errors import (
    AlreadyExistsError,
    ConfigError,
    ConflictError,
    NotFoundError,
    StoreError,
)
from tensorfusion.store.arguments import (
    checked_holder,
    checked_lease_term,
    checked_now,
    checked_object_name,
    checked_seconds,
    checked_version,
)
from tensorfusion.store.field_selectors import (
    FieldSelector,
    checked_field_selector,
    checked_field_selectors,
    selector_query,
)
from tensorfusion.store.interface import ChangeFeed, Merge, WatchEvent, WriteOutcome
from tensorfusion.store.keys import DEFAULT_NAMESPACE, ObjectKey, lookup_key
from tensorfusion.store.kube_http import MERGE_PATCH, KubeApi
from tensorfusion.store.kube_kinds import KUBE_KINDS, KubeKind
from tensorfusion.store.kube_watch import StreamFeed, merged_watch, replay
from tensorfusion.store.kubeconfig import client_configuration
from tensorfusion.store.merge_patch import merge_patch
from tensorfusion.store.objects import (
    JsonObject,
    checked_annotations,
    checked_key,
    checked_list_query,
    checked_object,
    encoded,
)
from tensorfusion.store.rewrites import checked_rewrite, refuse_version_on_create
from tensorfusion.store.scopes import checked_kinds, checked_versions

_LEASE = KUBE_KINDS["Lease"]
_POD = KUBE_KINDS["Pod"]
_DELETE_NOW = {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0}


def _micro_time(seconds: float) -> str:
    """A Kubernetes MicroTime: RFC 3339, UTC, microseconds."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _seconds(micro_time: object) -> float:
    if not isinstance(micro_time, str):
        return 0.0
    return datetime.fromisoformat(micro_time.replace("Z", "+00:00")).timestamp()


def _version(obj: Mapping[str, Any]) -> int:
    return int(obj["metadata"]["resourceVersion"])


def _wire(kind: KubeKind, obj: JsonObject) -> bytes:
    """The request body for a checked object: metadata set to null is left out (null and
    absent mean the same to the server), and a missing apiVersion is filled in. A value JSON
    cannot carry is a ConfigError naming its path."""
    body = {**obj, "metadata": {k: v for k, v in obj["metadata"].items() if v is not None}}
    body.setdefault("apiVersion", kind.api_version)
    return encoded(body).encode()


def _new(obj: object) -> tuple[ObjectKey, JsonObject]:
    """A checked object that may be created."""
    key, new = checked_object(obj)
    refuse_version_on_create(new)
    encoded(new)
    return key, new


def _rewritten(key: ObjectKey, obj: object, source: str) -> JsonObject:
    """`checked_rewrite`, and the result found to be JSON."""
    new = checked_rewrite(key, obj, source)
    encoded(new)
    return new


def _conflict(key: ObjectKey, metadata: Mapping[str, Any], error: ConflictError) -> ConflictError:
    """A refused conditional write, naming what the caller gave that no longer matches."""
    given = [
        f"{field} {metadata[field]} was given"
        for field in ("resourceVersion", "uid")
        if metadata.get(field)
    ]
    return ConflictError(
        f"{key} has changed: {' and '.join(given) or 'it was written meanwhile'}; read it again "
        f"and retry ({error})"
    )


class KubeStore:
    """The cluster store on a Kubernetes API server; see `ClusterStore` for what each method
    promises.

    `kubeconfig` is the file to read (else `KUBECONFIG`, else the pod's service account);
    `lease_namespace` holds the leader-election leases; `request_timeout_s` bounds every
    request but a watch.
    """

    def __init__(
        self,
        kubeconfig: str | Path | None = None,
        *,
        lease_namespace: str = DEFAULT_NAMESPACE,
        request_timeout_s: float = 30.0,
    ) -> None:
        timeout_s = checked_seconds("request_timeout_s", request_timeout_s)
        self._lease_namespace = lookup_key("Lease", "lease", lease_namespace).namespace
        self._api = KubeApi(client_configuration(kubeconfig), timeout_s)

    # -- reading -----------------------------------------------------------------------

    def _read(self, kind: KubeKind, key: ObjectKey) -> JsonObject:
        return self._api.request("GET", kind.path(key.name, key.namespace), str(key))

    def get(self, kind: str, name: str, namespace: str | None = None) -> JsonObject:
        key = lookup_key(kind, name, namespace)
        return self._read(KUBE_KINDS[key.kind], key)

    def _stored_or_none(self, kind: KubeKind, key: ObjectKey) -> JsonObject | None:
        try:
            return self._read(kind, key)
        except NotFoundError:
            return None

    def list(
        self,
        kind: str,
        namespace: str | None = None,
        label_selector: Mapping[str, str] | None = None,
        field_selector: FieldSelector | None = None,
    ) -> builtins.list[JsonObject]:
        return self.list_with_version(kind, namespace, label_selector, field_selector)[0]

    def list_with_version(
        self,
        kind: str,
        namespace: str | None = None,
        label_selector: Mapping[str, str] | None = None,
        field_selector: FieldSelector | None = None,
    ) -> tuple[builtins.list[JsonObject], int]:
        checked, only, selector = checked_list_query(kind, namespace, label_selector)
        fields = checked_field_selector("field_selector", checked, field_selector)
        api_kind = KUBE_KINDS[checked]
        query = [
            ("labelSelector", ",".join(f"{k}={v}" for k, v in selector.items())),
            ("fieldSelector", selector_query(fields)),
        ]
        answer = self._api.request(
            "GET", api_kind.collection(only), f"list of {api_kind.kind}", query=query
        )
        items: builtins.list[JsonObject] = answer.get("items") or []
        for item in items:  # a list's items carry no kind of their own
            item.setdefault("apiVersion", api_kind.api_version)
            item.setdefault("kind", api_kind.kind)
        items.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
        return items, int(answer["metadata"]["resourceVersion"] or 0)

    def _current_version(self) -> int:
        """The server's resource version now: that of a consistent (quorum) list."""
        answer = self._api.request(
            "GET", _POD.collection(), "resource version", query=[("limit", "1")]
        )
        return int(answer["metadata"]["resourceVersion"] or 0)

    # -- writing -----------------------------------------------------------------------

    def create(self, obj: Mapping[str, object]) -> JsonObject:
        return self._create(*_new(obj))

    def _create(self, key: ObjectKey, new: JsonObject) -> JsonObject:
        kind = KUBE_KINDS[key.kind]
        created = self._api.request(
            "POST", kind.collection(key.namespace), str(key), body=_wire(kind, new)
        )
        return self._write_status(kind, key, created, new)

    def _write_status(
        self, kind: KubeKind, key: ObjectKey, written: JsonObject, new: JsonObject
    ) -> JsonObject:
        """`written` with the status `new` gives, if any: the server leaves status out of a
        write to the object itself where status is a subresource, so it is written there. A
        `new` without status leaves the server's (a new Pod's phase, say) alone."""
        if (
            not kind.status_subresource
            or "status" not in new
            or written.get("status") == new["status"]
        ):
            return written
        with_status = {**written, "status": new["status"]}
        return self._api.request(
            "PUT",
            kind.path(key.name, key.namespace, "status"),
            str(key),
            body=_wire(kind, with_status),
        )

    def create_many(self, objs: Iterable[Mapping[str, object]]) -> builtins.list[JsonObject]:
        """Check every object, then create them in order. An error names the failing
        object's position (`objs[3].metadata.name`)."""
        checked = []
        for index, obj in enumerate(objs):
            try:
                checked.append(_new(obj))
            except ConfigError as error:
                raise ConfigError(f"objs[{index}].{error.field}", error.message) from None
        return [self._create(key, new) for key, new in checked]

    def update(self, obj: Mapping[str, object]) -> JsonObject:
        key, new = checked_object(obj)
        encoded(new)
        return self._replace(key, new)

    def _replace(self, key: ObjectKey, new: JsonObject) -> JsonObject:
        kind = KUBE_KINDS[key.kind]
        try:
            written = self._api.request(
                "PUT", kind.path(key.name, key.namespace), str(key), body=_wire(kind, new)
            )
        except ConflictError as error:
            raise _conflict(key, new["metadata"], error) from None
        return self._write_status(kind, key, written, new)

    def upsert_many(
        self, objs: Iterable[Mapping[str, object]], merges: Mapping[str, Merge]
    ) -> builtins.list[WriteOutcome]:
        """Check the whole batch (reading each stored object), then create the missing objects
        and write `merges[kind](stored, given)` over the stored ones, in order. See
        `ClusterStore.upsert_many`."""
        plans: builtins.list[tuple[ObjectKey, JsonObject | None, JsonObject | None]] = []
        positions: dict[ObjectKey, int] = {}
        for index, obj in enumerate(objs):
            try:
                key = checked_key(obj)
                if (first := positions.setdefault(key, index)) != index:
                    raise ConfigError("metadata.name", f"{key} is also objs[{first}]")
                stored = self._stored_or_none(KUBE_KINDS[key.kind], key)
                merge = merges.get(key.kind)
                if stored is None:
                    plans.append((key, None, _new(obj)[1]))
                elif merge is None or (merged := merge(stored, obj)) == stored:
                    plans.append((key, stored, None))
                else:
                    plans.append((key, stored, _rewritten(key, merged, "a merge")))
            except ConfigError as error:
                raise ConfigError(f"objs[{index}].{error.field}", error.message) from None
        outcomes: builtins.list[WriteOutcome] = []
        for key, stored, new in plans:
            if new is None:
                outcomes.append("unchanged")
            elif stored is None:
                self._create(key, new)
                outcomes.append("created")
            else:
                written = self._replace(key, new)
                outcomes.append("unchanged" if _version(written) == _version(stored) else "updated")
        return outcomes

    def patch(
        self, kind: str, name: str, patch: Mapping[str, object], namespace: str | None = None
    ) -> JsonObject:
        key = lookup_key(kind, name, namespace)
        if not isinstance(patch, Mapping):
            raise ConfigError(
                "patch", f"must be a mapping (a JSON merge patch), got {type_name(patch)}"
            )
        stored = self._read(KUBE_KINDS[key.kind], key)
        # The result is checked, and a stale version refused, before anything is sent.
        new = _rewritten(key, merge_patch(stored, patch), "a patch")
        given = new["metadata"].get("resourceVersion")
        if given and str(given) != stored["metadata"]["resourceVersion"]:
            raise ConflictError(
                f"{key} has changed: resourceVersion {given} was given but the stored one is "
                f"{stored['metadata']['resourceVersion']}; read it again and retry"
            )
        if new == stored:
            return stored
        return self._send_patch(key, dict(patch))

    def _send_patch(self, key: ObjectKey, patch: JsonObject) -> JsonObject:
        """Send a merge patch; where status is a subresource, its status part goes there (the
        resourceVersion, if given, guards the first of the two writes)."""
        kind = KUBE_KINDS[key.kind]
        parts: builtins.list[tuple[str, JsonObject]] = []
        if kind.status_subresource and "status" in patch:
            status = {"status": patch.pop("status")}
            metadata = patch.get("metadata")
            if isinstance(metadata, Mapping) and set(metadata) <= {"resourceVersion"}:
                status["metadata"] = patch.pop("metadata")
            parts.append(("status", status))
        if patch:
            parts.insert(0, ("", patch))
        written: JsonObject = {}
        for subresource, body in parts:
            try:
                written = self._api.request(
                    "PATCH",
                    kind.path(key.name, key.namespace, subresource),
                    str(key),
                    body=encoded(body).encode(),
                    content_type=MERGE_PATCH,
                )
            except ConflictError as error:
                raise _conflict(key, body.get("metadata") or {}, error) from None
        return written

    def delete(self, kind: str, name: str, namespace: str | None = None) -> JsonObject:
        key = lookup_key(kind, name, namespace)
        api_kind = KUBE_KINDS[key.kind]
        stored = self._read(api_kind, key)
        options = {**_DELETE_NOW, "preconditions": {"uid": stored["metadata"]["uid"]}}
        answer = self._api.request(
            "DELETE",
            api_kind.path(key.name, key.namespace),
            str(key),
            body=json.dumps(options).encode(),
        )
        if answer.get("kind") == api_kind.kind:
            return answer
        # Some resources answer a delete with a Status, not the object: the last state read is
        # then stamped with a version at least as new as the deletion's.
        stored["metadata"]["resourceVersion"] = str(self._current_version())
        return stored

    def bind(
        self, namespace: str, name: str, node_name: str, annotations: Mapping[str, str]
    ) -> JsonObject:
        key = lookup_key("Pod", name, namespace)
        checked_object_name("node_name", node_name)
        extra = checked_annotations("annotations", annotations)
        stored = self._read(_POD, key)
        self._refuse_bound(key, stored)
        if extra:
            # Conditional on the version read unbound, so a pod that another scheduler binds
            # meanwhile keeps that scheduler's annotations.
            version = stored["metadata"]["resourceVersion"]
            patch = {"metadata": {"annotations": extra, "resourceVersion": version}}
            try:
                self._send_patch(key, patch)
            except ConflictError:
                self._refuse_bound(key, self._read(_POD, key))
                raise
        binding = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": key.name, "namespace": key.namespace},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node_name},
        }
        try:
            self._api.request(
                "POST",
                _POD.path(key.name, key.namespace, "binding"),
                str(key),
                body=json.dumps(binding).encode(),
            )
        except ConflictError:
            self._refuse_bound(key, self._read(_POD, key))
            raise
        return self._read(_POD, key)

    @staticmethod
    def _refuse_bound(key: ObjectKey, pod: JsonObject) -> None:
        spec = pod.get("spec")
        bound = spec.get("nodeName") if isinstance(spec, Mapping) else None
        if bound:
            raise ConflictError(f"{key} is already bound to node {bound!r}")

    # -- watching ----------------------------------------------------------------------

    def _watched(self, kinds: object) -> builtins.list[KubeKind]:
        wanted = checked_kinds(kinds)
        if wanted is None:
            return [kind for kind in KUBE_KINDS.values() if not kind.optional]
        return [KUBE_KINDS[kind] for kind in wanted]

    def _checked_since(self, since: int) -> int:
        """The current version, after refusing a `since` from beyond it."""
        current = self._current_version()
        if since > current:
            raise StoreError(
                f"resource version {since} is newer than the server's ({current}); "
                "it was not read from this server"
            )
        return current

    def events_since(
        self, resource_version: int, kinds: Collection[str] | None = None
    ) -> builtins.list[WatchEvent]:
        since = checked_version("resource_version", resource_version)
        watched = self._watched(kinds)
        current = self._checked_since(since)
        if since == current or not watched:
            return []
        return replay(self._api, watched, since, current)

    def watch(
        self, kinds: Collection[str] | None, since: int, timeout_s: float
    ) -> Iterator[WatchEvent]:
        start = checked_version("since", since)
        watched = self._watched(kinds)
        deadline = time.monotonic() + checked_seconds("timeout_s", timeout_s, allow_zero=True)
        return merged_watch(self._api, watched, start, self._checked_since(start), deadline)

    def follow(
        self,
        versions: Mapping[str, int],
        field_selectors: Mapping[str, FieldSelector] | None = None,
    ) -> ChangeFeed:
        """One endless watch stream per kind (a StreamFeed), as informers follow; the server
        narrows a kind's stream to its field selector."""
        wanted = checked_versions(versions)
        selectors = checked_field_selectors(field_selectors, wanted)
        self._checked_since(max(wanted.values(), default=0))
        return StreamFeed(
            self._api,
            {KUBE_KINDS[kind]: since for kind, since in wanted.items()},
            {KUBE_KINDS[kind]: selector_query(selector) for kind, selector in selectors.items()},
        )

    # -- leases ------------------------------------------------------------------------

    def _lease_key(self, name: str) -> ObjectKey:
        return ObjectKey("Lease", self._lease_namespace, name)

    def _lease(self, name: str) -> JsonObject | None:
        return self._stored_or_none(_LEASE, self._lease_key(name))

    @staticmethod
    def _holder_at(lease: JsonObject | None, now: float) -> str | None:
        """Who holds `lease` unexpired at `now`."""
        spec = (lease or {}).get("spec") or {}
        holder = spec.get("holderIdentity")
        expires = _seconds(spec.get("renewTime")) + (spec.get("leaseDurationSeconds") or 0)
        return holder if holder and expires > now else None

    def _write_lease(self, name: str, lease: JsonObject | None, spec: Mapping[str, object]) -> bool:
        """Create or replace the lease read as `lease`; False when another writer came
        first."""
        key = self._lease_key(name)
        try:
            if lease is None:
                body = {"kind": "Lease", "metadata": {"name": name}, "spec": dict(spec)}
                self._api.request(
                    "POST", _LEASE.collection(key.namespace), str(key), body=_wire(_LEASE, body)
                )
            else:
                # A field given as None is dropped, as a typed server drops a null.
                merged = {**lease.get("spec", {}), **spec}
                body = {**lease, "spec": {k: v for k, v in merged.items() if v is not None}}
                self._api.request(
                    "PUT", _LEASE.path(name, key.namespace), str(key), body=_wire(_LEASE, body)
                )
        except (ConflictError, AlreadyExistsError, NotFoundError):
            return False
        return True

    def acquire_lease(
        self, name: str, holder: str, duration_s: float, now: float | None = None
    ) -> bool:
        name, holder, expires, at = checked_lease_term(name, holder, duration_s, now)
        lease = self._lease(name)
        current = self._holder_at(lease, at)
        if current not in (None, holder):
            return False
        spec: dict[str, object] = {
            "holderIdentity": holder,
            "renewTime": _micro_time(at),
            "leaseDurationSeconds": math.ceil(expires - at),
        }
        if current != holder:
            previous = ((lease or {}).get("spec") or {}).get("leaseTransitions") or 0
            spec["acquireTime"] = _micro_time(at)
            spec["leaseTransitions"] = previous + 1 if lease else 0
        return self._write_lease(name, lease, spec)

    def renew_lease(
        self, name: str, holder: str, duration_s: float, now: float | None = None
    ) -> bool:
        name, holder, expires, at = checked_lease_term(name, holder, duration_s, now)
        lease = self._lease(name)
        if self._holder_at(lease, at) != holder:
            return False
        spec = {"renewTime": _micro_time(at), "leaseDurationSeconds": math.ceil(expires - at)}
        return self._write_lease(name, lease, spec)

    def release_lease(self, name: str, holder: str) -> None:
        lease_name, who = checked_object_name("name", name), checked_holder(holder)
        lease = self._lease(lease_name)
        if lease is not None and (lease.get("spec") or {}).get("holderIdentity") == who:
            # A lost race means the lease has passed on already: nothing is left to give up.
            self._write_lease(lease_name, lease, {"holderIdentity": None})

    def lease_holder(self, name: str, now: float | None = None) -> str | None:
        lease_name, at = checked_object_name("name", name), checked_now(now)
        return self._holder_at(self._lease(lease_name), at)

    # -- lifetime ----------------------------------------------------------------------

    def close(self) -> None:
        self._api.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
