"""The workers bound to one node, kept current from the store's change feed as an informer
keeps its cache: one list of the pods, then their changes from that list's version, and a
fresh list when the feed expires (410 Gone) or breaks.

A worker here is a pod bound to the node (`spec.nodeName`), carrying the scheduler's
`gpu-ids`, and not finished (phase Succeeded or Failed): the pods whose regions the agent
keeps. Only the node's own pods are listed and followed (the field selector
`spec.nodeName=<node>`, which the API server applies), so an agent's traffic grows with its
node, not with the cluster; the rest is checked here, since a selector can only ask for
equality and the gpu-ids are an annotation.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tensorfusion.agent.regions import PodKey, key_of
from tensorfusion.api.annotations import GPU_IDS
from tensorfusion.api.gpu_links import text_at
from tensorfusion.errors import StoreError
from tensorfusion.scheduler.allocator import TERMINAL_PHASES
from tensorfusion.store.interface import ChangeFeed, ClusterStore, WatchEvent
from tensorfusion.store.objects import JsonObject

log = logging.getLogger(__name__)


@dataclass
class PodChanges:
    """What a sync found: workers new or changed since the last one, and workers gone
    (deleted, finished or bound elsewhere), in their last known state."""

    changed: list[JsonObject] = field(default_factory=list)
    gone: list[JsonObject] = field(default_factory=list)


def is_worker(pod: Mapping[str, Any]) -> bool:
    """Whether the agent of the node `pod` is bound to keeps regions for it."""
    return (
        bool(text_at(pod, "metadata", "annotations", GPU_IDS))
        and text_at(pod, "status", "phase") not in TERMINAL_PHASES
    )


def is_worker_of(pod: Mapping[str, Any], node: str) -> bool:
    """Whether the agent of `node` keeps regions for `pod`."""
    return text_at(pod, "spec", "nodeName") == node and is_worker(pod)


class NodePods:
    """Not thread-safe: one thread syncs (the agent's)."""

    def __init__(self, store: ClusterStore, node: str) -> None:
        self.store = store
        self.node = node
        self._selector = {"spec.nodeName": node}
        self._pods: dict[PodKey, JsonObject] = {}
        self._feed: ChangeFeed | None = None

    @property
    def synced(self) -> bool:
        """Whether the pods have been listed (and are followed since)."""
        return self._feed is not None

    def pods(self) -> list[JsonObject]:
        """The workers as of the last sync."""
        return list(self._pods.values())

    def sync(self) -> PodChanges:
        """The changes the feed delivered since the last sync; the first sync, and one after
        the feed failed, lists the pods instead. StoreError when the store cannot be read."""
        if self._feed is not None:
            try:
                return self._apply(self._feed.take())
            except StoreError as exc:  # ResourceExpiredError among them
                log.info("the pod feed stopped (%s): listing the pods again", exc)
                self.close()
        pods, version = self.store.list_with_version("Pod", field_selector=self._selector)
        self._feed = self.store.follow({"Pod": version}, {"Pod": self._selector})
        return self._replace(pods)

    def wait(self, timeout_s: float) -> bool:
        """Wait until a sync has changes to take (True), or `timeout_s` passed; False at once
        while nothing is followed."""
        return self._feed is not None and self._feed.wait(timeout_s)

    def close(self) -> None:
        if self._feed is not None:
            self._feed.close()
            self._feed = None

    def _apply(self, events: list[WatchEvent]) -> PodChanges:
        before = dict(self._pods)
        for event in events:
            pod, key = event.object, key_of(event.object)
            if event.type != "DELETED" and is_worker(pod):
                self._pods[key] = pod
            else:
                self._pods.pop(key, None)
        return self._changes(before)

    def _replace(self, pods: list[JsonObject]) -> PodChanges:
        before = self._pods
        self._pods = {key_of(pod): pod for pod in pods if is_worker(pod)}
        return self._changes(before)

    def _changes(self, before: Mapping[PodKey, JsonObject]) -> PodChanges:
        changes = PodChanges()
        for key, pod in self._pods.items():
            old = before.get(key)
            if old is None or _version(old) != _version(pod):
                changes.changed.append(pod)
        changes.gone = [pod for key, pod in before.items() if key not in self._pods]
        return changes


def _version(pod: Mapping[str, Any]) -> str | None:
    return text_at(pod, "metadata", "resourceVersion")
