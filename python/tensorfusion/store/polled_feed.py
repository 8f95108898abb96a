"""A `ChangeFeed` read from a store's change log on demand (`events_since`), for a store that
answers "every change up to now" cheaply and exactly (LocalStore): a take sees every write
made before it, so a caller reads its own writes back at once.

Until the first take each kind continues from its own list's version: the log is read from
the oldest of them, and a kind's changes that its list already held are dropped. After it,
every kind has been read up to one version, which serves them all. A kind with a field
selector is read as the store narrows it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from tensorfusion.errors import ResourceExpiredError, StoreError
from tensorfusion.store.field_selectors import FieldSelector
from tensorfusion.store.interface import WatchEvent

if TYPE_CHECKING:  # LocalStore makes these feeds: its module imports this one
    from tensorfusion.store.local import LocalStore


class PolledFeed:
    def __init__(
        self,
        store: LocalStore,
        versions: Mapping[str, int],
        field_selectors: Mapping[str, FieldSelector],
    ) -> None:
        self._store = store
        self._selectors = field_selectors
        self._kinds = tuple(versions)
        self._listed_at = dict(versions)
        self._version = min(versions.values(), default=0)
        self._closed = False

    def take(self) -> list[WatchEvent]:
        if self._closed:
            raise StoreError("the change feed is closed")
        if not self._kinds:
            return []
        events = self._store.events_since(self._version, self._kinds, self._selectors)
        fresh = [
            event
            for event in events
            if event.resource_version > self._listed_at.get(event.object.get("kind", ""), 0)
        ]
        self._version = max([self._version, *(e.resource_version for e in events)])
        # The log was read up to the store's version at the call, which is past every list.
        self._version = max([self._version, *self._listed_at.values()])
        self._listed_at = {}
        return fresh

    def wait(self, timeout_s: float) -> bool:
        if self._closed or not self._kinds:
            return False
        try:
            for _ in self._store.watch(self._kinds, self._version, timeout_s, self._selectors):
                return True
        except ResourceExpiredError:
            return True  # the next take says so
        return False

    def close(self) -> None:
        self._closed = True
