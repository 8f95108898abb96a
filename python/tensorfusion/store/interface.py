"""The cluster store: the one interface the engine uses for state.

Objects are Kubernetes-shaped JSON dicts (`apiVersion`, `kind`, `metadata`, `spec`,
`status`). A store checks and assigns metadata (name, namespace, uid, resourceVersion,
creationTimestamp, labels, annotations) and never interprets spec or status. Every object it
returns is the caller's own copy.

Bad arguments raise `ConfigError` naming the field; refusals raise the `StoreError` family:
`NotFoundError`, `AlreadyExistsError`, `ConflictError`, and `ResourceExpiredError` from
`events_since`, `watch` or a `ChangeFeed` when the change log no longer reaches back to the
version asked for (Kubernetes' 410 Gone): list again with `list_with_version` and continue
from there.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Protocol, Self

from tensorfusion.store.field_selectors import FieldSelector
from tensorfusion.store.objects import JsonObject

EventType = Literal["ADDED", "MODIFIED", "DELETED"]
WriteOutcome = Literal["created", "updated", "unchanged"]
Merge = Callable[[JsonObject, Mapping[str, Any]], Mapping[str, object]]
"""Given a stored object and one given for it, the object to write over the stored one."""


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One change: the object after it (for DELETED, its last state), and the resource
    version the change got, which is also the object's `metadata.resourceVersion`."""

    type: EventType
    object: JsonObject
    resource_version: int


class ChangeFeed(Protocol):
    """The changes to some kinds, each after the version its own list was taken at, as an
    informer follows them (`ClusterStore.follow`). Changes of one kind come in their order;
    the kinds' streams are independent, so a change may come before an older one of another
    kind."""

    def take(self) -> builtins.list[WatchEvent]:
        """The changes that arrived since the last take, without waiting. On LocalStore that
        is every change up to the store's version at the call; on Kubernetes, what the watch
        streams have delivered. ResourceExpiredError when a kind's change log no longer
        reaches back to where its stream was (list again and follow afresh); StoreError when
        a stream broke."""
        ...

    def wait(self, timeout_s: float) -> bool:
        """Wait until `take` has something to give (True) or `timeout_s` has passed."""
        ...

    def close(self) -> None:
        """Stop following; idempotent."""
        ...


class ClusterStore(Protocol):
    """Reading, writing and watching objects, binding pods, and leader-election leases."""

    def get(self, kind: str, name: str, namespace: str | None = None) -> JsonObject:
        """The object; a namespaced kind defaults to namespace "default". NotFoundError names
        `Kind namespace/name`."""
        ...

    def list(
        self,
        kind: str,
        namespace: str | None = None,
        label_selector: Mapping[str, str] | None = None,
        field_selector: FieldSelector | None = None,
    ) -> builtins.list[JsonObject]:
        """Objects of `kind`, in every namespace unless one is given, whose labels hold every
        key/value pair of `label_selector` and whose fields every path/value pair of
        `field_selector` (`{"spec.nodeName": "node-1"}`, on the fields the module
        `field_selectors` lists; `{"spec.nodeName": ""}`: pods not yet bound); ordered by
        namespace, then name. ConfigError names the bad argument."""
        ...

    def list_with_version(
        self,
        kind: str,
        namespace: str | None = None,
        label_selector: Mapping[str, str] | None = None,
        field_selector: FieldSelector | None = None,
    ) -> tuple[builtins.list[JsonObject], int]:
        """`list` and the store's resource version at that moment, from which `watch` continues
        without missing or repeating a change."""
        ...

    def create(self, obj: Mapping[str, object]) -> JsonObject:
        """Store a new object and return it as stored. Assigns uid (unless given),
        resourceVersion and creationTimestamp (RFC 3339, UTC); a namespaced kind defaults to
        namespace "default". ConfigError for a missing or invalid kind, name (a DNS subdomain),
        namespace (none for a cluster-scoped kind), labels or annotations, or a given
        resourceVersion; AlreadyExistsError if the key is taken."""
        ...

    def update(self, obj: Mapping[str, object]) -> JsonObject:
        """Replace a stored object. With `metadata.resourceVersion` (or uid) given and different
        from the stored one: ConflictError. uid and creationTimestamp are kept. An update that
        changes nothing writes nothing and keeps the resource version."""
        ...

    def upsert_many(
        self, objs: Iterable[Mapping[str, object]], merges: Mapping[str, Merge]
    ) -> builtins.list[WriteOutcome]:
        """Store many objects in one transaction, all or none, and say what became of each, in
        order. A missing object is created as by `create`. Over a stored one of a kind in
        `merges`, `merges[kind](stored, given)` is written as by `update` (so one that changes
        nothing is not written and keeps its resource version); it may not change kind, name
        or namespace. A stored object of another kind is left as it is. `objs` is read once,
        inside the transaction. A ConfigError names the failing object's position
        (`objs[3].metadata.name`); an object given twice is refused."""
        ...

    def patch(
        self, kind: str, name: str, patch: Mapping[str, object], namespace: str | None = None
    ) -> JsonObject:
        """Apply a JSON merge patch (RFC 7386: null deletes a key, mappings merge, lists
        replace). A resourceVersion in the patch is checked as in `update`; a patch may not
        change kind, name or namespace."""
        ...

    def delete(self, kind: str, name: str, namespace: str | None = None) -> JsonObject:
        """Remove an object and return its last state, stamped with the deletion's resource
        version."""
        ...

    def bind(
        self, namespace: str, name: str, node_name: str, annotations: Mapping[str, str]
    ) -> JsonObject:
        """Atomically set a Pod's `spec.nodeName` and merge `annotations` into it (the
        `pods/binding` subresource). ConflictError if it is already bound to a node."""
        ...

    def events_since(
        self, resource_version: int, kinds: Collection[str] | None = None
    ) -> builtins.list[WatchEvent]:
        """Every change after `resource_version` (to objects of `kinds`, or all), oldest first.
        A plain StoreError if the change log no longer reaches back that far."""
        ...

    def watch(
        self, kinds: Collection[str] | None, since: int, timeout_s: float
    ) -> Iterator[WatchEvent]:
        """The changes after `since`, as they happen, until `timeout_s` has passed; waits while
        there are none. Fails like `events_since` when `since` is too old."""
        ...

    def follow(
        self,
        versions: Mapping[str, int],
        field_selectors: Mapping[str, FieldSelector] | None = None,
    ) -> ChangeFeed:
        """Follow the kinds `versions` names, each after its version (the one its
        `list_with_version` gave), until the feed is closed. A kind in `field_selectors` is
        narrowed as its list was: a change that brings an object into the selection comes as
        ADDED, one that takes it out as DELETED (carrying the object's state before that
        change, at the change's version), and a change to an object outside it not at all.
        ConfigError names an unknown kind, a bad version (`versions[Pod]`) or selector
        (`field_selectors[Pod]`)."""
        ...

    def acquire_lease(
        self, name: str, holder: str, duration_s: float, now: float | None = None
    ) -> bool:
        """Take or extend the lease until `now + duration_s`; False while another holder has
        it and it has not expired. `now` is seconds since the epoch (default: the wall clock)."""
        ...

    def renew_lease(
        self, name: str, holder: str, duration_s: float, now: float | None = None
    ) -> bool:
        """Extend the lease only if `holder` still holds it unexpired; False means leadership
        was lost and must be acquired again."""
        ...

    def release_lease(self, name: str, holder: str) -> None:
        """Give the lease up if `holder` holds it; otherwise do nothing (it may have passed on
        already)."""
        ...

    def lease_holder(self, name: str, now: float | None = None) -> str | None:
        """Who holds the lease unexpired at `now`, or None."""
        ...

    def close(self) -> None:
        """Release the backend's resources; any later call raises StoreError."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
