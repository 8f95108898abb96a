"""The emulator's objects, its resourceVersion counter and its change log (what watches replay).

Everything here runs on the emulator's event loop and never awaits, so each call is atomic.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

ResourceKey = tuple[str, str]  # (group, plural)
ObjectKey = tuple[str | None, str]  # (namespace, name)
Obj = dict[str, Any]
EventType = Literal["ADDED", "MODIFIED", "DELETED"]

# Like etcd's compaction, the log keeps a bounded window: a watch from before it gets 410.
DEFAULT_LOG_LIMIT = 100_000


@dataclass(frozen=True)
class Change:
    version: int
    type: EventType
    resource: ResourceKey
    obj: Obj
    old: Obj | None


class Expired(Exception):
    """The resourceVersion asked for is older than the change log keeps."""


class ObjectStore:
    def __init__(self, log_limit: int = DEFAULT_LOG_LIMIT) -> None:
        self._objects: dict[ResourceKey, dict[ObjectKey, Obj]] = {}
        self._version = 0
        self._log: deque[Change] = deque(maxlen=log_limit)
        self._oldest_watchable = 0
        self._watchers: set[asyncio.Queue[Change | None]] = set()
        self.expired_reads = 0
        """How many reads asked for a version older than the log keeps (each a 410 Gone)."""

    @property
    def version(self) -> int:
        return self._version

    def get(self, resource: ResourceKey, key: ObjectKey) -> Obj | None:
        return self._objects.get(resource, {}).get(key)

    def objects(self, resource: ResourceKey, namespace: str | None) -> list[Obj]:
        objects = self._objects.get(resource, {})
        if namespace is None:
            return list(objects.values())
        return [obj for (ns, _), obj in objects.items() if ns == namespace]

    def write(self, resource: ResourceKey, key: ObjectKey, event: EventType, obj: Obj) -> Obj:
        """Store (or, for DELETED, drop) `obj` under the next resourceVersion, and tell every
        watcher. Returns the object as stored."""
        self._version += 1
        stored: Obj = {
            **obj,
            "metadata": {**obj["metadata"], "resourceVersion": str(self._version)},
        }
        objects = self._objects.setdefault(resource, {})
        old = objects.get(key)
        if event == "DELETED":
            objects.pop(key, None)
        else:
            objects[key] = stored
        if len(self._log) == self._log.maxlen:
            self._oldest_watchable = self._log[0].version
        change = Change(self._version, event, resource, stored, old)
        self._log.append(change)
        for queue in self._watchers:
            queue.put_nowait(change)
        return stored

    def drop_resource(self, resource: ResourceKey) -> None:
        """Forget every object of `resource` (its CustomResourceDefinition was deleted)."""
        for key, obj in list(self._objects.get(resource, {}).items()):
            self.write(resource, key, "DELETED", obj)

    def compact(self) -> None:
        """Forget the change log: a watch from any earlier resourceVersion gets 410 Gone."""
        self._log.clear()
        self._oldest_watchable = self._version

    def changes_since(self, version: int) -> list[Change]:
        if version < self._oldest_watchable:
            self.expired_reads += 1
            raise Expired(f"too old resource version: {version} ({self._oldest_watchable})")
        return [change for change in self._log if change.version > version]

    def subscribe(self) -> asyncio.Queue[Change | None]:
        """A queue that gets every later change, and None when the store closes."""
        queue: asyncio.Queue[Change | None] = asyncio.Queue()
        self._watchers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Change | None]) -> None:
        self._watchers.discard(queue)

    def end_watches(self) -> None:
        """End every open watch; the store serves on, and later watches are not affected."""
        for queue in self._watchers:
            queue.put_nowait(None)

    def close(self) -> None:
        """End every watch (the emulator is stopping)."""
        self.end_watches()


def meta(obj: Mapping[str, Any]) -> dict[str, Any]:
    value = obj.get("metadata")
    return value if isinstance(value, dict) else {}
