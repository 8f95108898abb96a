"""What a reconcile works with: the cache to read and the store to write. Every write goes
through here, so that it carries the resourceVersion it was computed from and the cache
sees it at once (the next reconcile of a key never works from before its own write)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from tensorfusion.errors import AlreadyExistsError, NotFoundError
from tensorfusion.operator.nodepool.config import NodePoolConfig
from tensorfusion.operator.reconcilers.cache import ObjectCache
from tensorfusion.store.interface import ClusterStore
from tensorfusion.store.objects import JsonObject

EVENT_NAMESPACE = "default"
"""Where Events about cluster-scoped objects go."""


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Context:
    store: ClusterStore
    cache: ObjectCache
    changed: Callable[[JsonObject, JsonObject | None], None] = field(default=lambda new, old: None)
    """Told of each object written (its new state, and the one the cache held): the cache
    takes the write at once, so its watch event will look like no change."""
    writes: int = 0
    """Writes made (creates, patches, deletes, Events): an idempotent pass makes none."""
    now: Callable[[], datetime] = field(default=utc_now)
    """The wall clock decisions in time are made by (maintenance windows, intervals,
    compaction periods); tests drive a simulated one."""
    node_pools: NodePoolConfig = field(default_factory=NodePoolConfig)

    def create(self, obj: Mapping[str, object]) -> JsonObject:
        created = self.store.create(obj)
        self.writes += 1
        self.changed(created, self.cache.put(created))
        return created

    def patch(self, obj: Mapping[str, Any], patch: Mapping[str, object]) -> JsonObject:
        """Merge `patch` into `obj`, refused if `obj` is no longer the stored version."""
        metadata = obj["metadata"]
        meta_patch = patch.get("metadata")
        guarded = {
            **patch,
            "metadata": {
                **(meta_patch if isinstance(meta_patch, Mapping) else {}),
                "resourceVersion": metadata["resourceVersion"],
            },
        }
        written = self.store.patch(
            obj["kind"], metadata["name"], guarded, metadata.get("namespace")
        )
        self.writes += 1
        self.changed(written, self.cache.put(written))
        return written

    def write_status(self, obj: Mapping[str, Any], status: Mapping[str, object]) -> bool:
        """Write the status fields in `status` unless each already has that value."""
        current = obj.get("status") or {}
        if all(current.get(field) == value for field, value in status.items()):
            return False
        self.patch(obj, {"status": dict(status)})
        return True

    def delete(self, obj: Mapping[str, Any]) -> None:
        metadata = obj["metadata"]
        try:
            gone = self.store.delete(obj["kind"], metadata["name"], metadata.get("namespace"))
        except NotFoundError:
            gone = dict(obj)
        self.writes += 1
        self.changed(gone, self.cache.remove(gone))

    def warn(self, obj: Mapping[str, Any], reason: str, message: str) -> None:
        """A Warning Event about `obj`; the same warning again is not repeated (its name is
        derived from what it says)."""
        self.event(obj, "Warning", reason, message)

    def event(
        self,
        obj: Mapping[str, Any],
        kind: Literal["Normal", "Warning"],
        reason: str,
        message: str,
    ) -> None:
        """An Event about `obj`, recorded once for the same reason and message."""
        metadata = obj["metadata"]
        digest = hashlib.sha256(f"{reason}\n{message}".encode()).hexdigest()[:12]
        namespace = metadata.get("namespace") or EVENT_NAMESPACE
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{metadata['name']}.{digest}", "namespace": namespace},
            "involvedObject": {
                "apiVersion": obj.get("apiVersion"),
                "kind": obj["kind"],
                "name": metadata["name"],
                "uid": metadata.get("uid"),
            },
            "type": kind,
            "reason": reason,
            "message": message,
        }
        try:
            self.store.create(event)
        except AlreadyExistsError:
            return
        self.writes += 1
