"""The cluster store: the interface the engine uses for state, and its backends (`local`, on
SQLite). See `interface` for the contract every backend keeps."""

from tensorfusion.store.interface import (
    ChangeFeed,
    ClusterStore,
    EventType,
    Merge,
    WatchEvent,
    WriteOutcome,
)
from tensorfusion.store.local import LocalStore
from tensorfusion.store.scopes import KIND_SCOPES

__all__ = [
    "KIND_SCOPES",
    "ChangeFeed",
    "ClusterStore",
    "EventType",
    "LocalStore",
    "Merge",
    "WatchEvent",
    "WriteOutcome",
]
