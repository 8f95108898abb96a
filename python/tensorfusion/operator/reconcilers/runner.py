"""The reconcilers' controller: list each watched kind into the cache, then follow the store's
changes, each kind from its own list's version (as the scheduling loop does), turning every
change into the keys of the objects it may affect; a worker reconciles the queued keys.
A change log that has expired (410) means a fresh list, which requeues every key: whatever
happened meanwhile (a pod deleted while the controller was down) is recomputed from what is
there now.

A `ReconcilerSet` is what one controller runs (controller-runtime's For/Watches): the fleet's
reconcilers always run; an optional set (the used-by taints) runs as a controller of its own,
in its own leader loop, only where its flag turns it on."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tensorfusion.api.gpu_links import OWNER_LABEL, POOL_LABEL, gpu_node_name, text_at
from tensorfusion.errors import ResourceExpiredError
from tensorfusion.operator.nodepool.config import NodePoolConfig
from tensorfusion.operator.nodepool.reconciler import KIND as NODE_POOL
from tensorfusion.operator.nodepool.reconciler import reconcile_node_pool
from tensorfusion.operator.nodepool.unpooled_agents import KEY as UNPOOLED_AGENTS_KEY
from tensorfusion.operator.nodepool.unpooled_agents import KIND as UNPOOLED_AGENTS
from tensorfusion.operator.nodepool.unpooled_agents import reconcile_unpooled_agents
from tensorfusion.operator.nodepool.view import unschedulable
from tensorfusion.operator.reconcilers.cache import (
    WATCHED_KINDS,
    ObjectCache,
    list_into,
    owner_name,
)
from tensorfusion.operator.reconcilers.cluster import reconcile_cluster
from tensorfusion.operator.reconcilers.context import Context, utc_now
from tensorfusion.operator.reconcilers.gpu_node import reconcile_gpu_node
from tensorfusion.operator.reconcilers.node import reconcile_node
from tensorfusion.operator.reconcilers.pool import reconcile_pool
from tensorfusion.operator.reconcilers.work_queue import Key, Result, WorkQueue
from tensorfusion.store.interface import ChangeFeed, ClusterStore, WatchEvent
from tensorfusion.store.objects import JsonObject

log = logging.getLogger(__name__)

Reconciler = Callable[[Context, Key], Result]
AffectedKeys = Callable[[Mapping[str, Any], Mapping[str, Any] | None, ObjectCache], Iterator[Key]]
RECONCILERS: Mapping[str, Reconciler] = {
    "TensorFusionCluster": reconcile_cluster,
    "GPUPool": reconcile_pool,
    "Node": reconcile_node,
    "GPUNode": reconcile_gpu_node,
    NODE_POOL: reconcile_node_pool,
    UNPOOLED_AGENTS: reconcile_unpooled_agents,
}
IDLE_WAIT_S = 0.5


def _key(kind: str, name: str | None) -> Iterator[Key]:
    if name:
        yield Key(kind, "", name)


def affected_keys(
    obj: Mapping[str, Any], old: Mapping[str, Any] | None, cache: ObjectCache
) -> Iterator[Key]:
    """The keys whose reconcile reads `obj` (in its new state or its `old` one)."""
    yield from _fleet_keys(obj, old, cache)
    yield from _node_pool_keys(obj, old, cache)


def _fleet_keys(
    obj: Mapping[str, Any], old: Mapping[str, Any] | None, cache: ObjectCache
) -> Iterator[Key]:
    kind, name = obj["kind"], obj["metadata"]["name"]
    versions = [obj] if old is None else [obj, old]
    if kind == "TensorFusionCluster":
        yield Key(kind, "", name)
    elif kind == "GPUPool":
        yield Key(kind, "", name)
        for version in versions:
            yield from _key("TensorFusionCluster", owner_name(version, "TensorFusionCluster"))
        if old is None or obj.get("spec") != old.get("spec"):
            # A new selector may pick other nodes; a new oversubscription changes capacity.
            yield from (Key("Node", "", n["metadata"]["name"]) for n in cache.all("Node"))
            yield from (Key("GPUNode", "", n["metadata"]["name"]) for n in cache.all("GPUNode"))
    elif kind == "Node":
        yield Key("Node", "", name)
        yield Key("GPUNode", "", name)
    elif kind == "GPUNode":
        yield Key("GPUNode", "", name)
        yield from _key("Node", owner_name(obj, "Node"))
        for version in versions:
            yield from _key("GPUPool", text_at(version, "metadata", "labels", OWNER_LABEL))
    elif kind == "GPU":
        for version in versions:
            yield from _key("GPUNode", gpu_node_name(version))
    elif kind == "Pod":
        for version in versions:
            yield from _key("GPUNode", text_at(version, "spec", "nodeName"))


def _all_pools(cache: ObjectCache) -> Iterator[Key]:
    yield from (Key(NODE_POOL, "", p["metadata"]["name"]) for p in cache.all("GPUPool"))


def _node_pool_keys(
    obj: Mapping[str, Any], old: Mapping[str, Any] | None, cache: ObjectCache
) -> Iterator[Key]:
    """The node pools whose upkeep reads `obj`: a pool's own, its cluster's (the computing
    vendor), its nodes' and their GPUs' and pods', its claims', and the agents' revisions;
    a pod that could not be scheduled may be any pool's to provision for."""
    kind, name = obj["kind"], obj["metadata"]["name"]
    versions = [obj] if old is None else [obj, old]
    if kind == "GPUPool":
        yield Key(NODE_POOL, "", name)
    elif kind == "TensorFusionCluster":
        for pool in cache.children("GPUPool", name):
            yield Key(NODE_POOL, "", pool["metadata"]["name"])
    elif kind in ("NodeClaim", "GPUNodeClaim"):
        for version in versions:
            yield from _key(NODE_POOL, text_at(version, "metadata", "labels", POOL_LABEL))
    elif kind == "ControllerRevision":
        yield from _all_pools(cache)
        yield UNPOOLED_AGENTS_KEY
    elif kind == "DaemonSet":
        yield UNPOOLED_AGENTS_KEY
    elif kind in ("Node", "GPUNode", "GPU", "Pod"):
        if kind == "GPUNode" or (kind == "Pod" and owner_name(obj, "DaemonSet")):
            yield UNPOOLED_AGENTS_KEY  # an agent came or went, or a node joined or left a pool
        for version in versions:
            node = _node_of(kind, version)
            if node:
                gpu_node = cache.get("GPUNode", node)
                yield from _key(NODE_POOL, text_at(gpu_node, "metadata", "labels", OWNER_LABEL))
                yield from _key(NODE_POOL, text_at(version, "metadata", "labels", POOL_LABEL))
            elif unschedulable(version):
                yield from _all_pools(cache)


def _node_of(kind: str, obj: Mapping[str, Any]) -> str | None:
    """The node a Node, GPUNode, GPU or Pod is, or is on (None for a pod not bound)."""
    if kind in ("Node", "GPUNode"):
        return text_at(obj, "metadata", "name")
    if kind == "GPU":
        return gpu_node_name(obj)
    return text_at(obj, "spec", "nodeName")


@dataclass(frozen=True)
class ReconcilerSet:
    """What one controller runs: the kinds its cache holds, the reconciler of each kind of
    key, and the keys that a change to a cached object affects."""

    kinds: tuple[str, ...]
    reconcilers: Mapping[str, Reconciler]
    affected_keys: AffectedKeys


FLEET = ReconcilerSet(WATCHED_KINDS, RECONCILERS, affected_keys)
"""Pools from clusters, GPUNodes from nodes, and the capacity in their status."""


class Controller:
    """The cache, the queue and the reconcilers, driven one step at a time (`sync`,
    `process`) so that tests control every step; `run` loops them."""

    def __init__(
        self,
        store: ClusterStore,
        reconcilers: ReconcilerSet = FLEET,
        *,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = utc_now,
        node_pools: NodePoolConfig | None = None,
    ):
        """`clock` times the queue's delays and `now` is the wall clock the node pools'
        decisions read: a simulated test clock drives both together."""
        self.store = store
        self.reconcilers = reconcilers
        self.cache = ObjectCache()
        self.context = Context(
            store, self.cache, self._enqueue, now=now, node_pools=node_pools or NodePoolConfig()
        )
        self.queue = WorkQueue(clock=clock)
        self._feed: ChangeFeed | None = None

    def start(self) -> None:
        """List every watched kind into the cache, queue every key, and follow each kind's
        changes from its own list."""
        listed_at: dict[str, int] = {}
        for kind in self.reconcilers.kinds:
            version = list_into(self.cache, self.store, kind)
            if version is not None:
                listed_at[kind] = version
        for kind in self.reconcilers.kinds:
            for obj in self.cache.all(kind):
                self._enqueue(obj, None)
        self.close()
        self._feed = self.store.follow(listed_at)

    def close(self) -> None:
        if self._feed is not None:
            self._feed.close()
            self._feed = None

    def sync(self) -> int:
        """Apply the store's changes that arrived since the last sync to the cache and queue
        the keys they affect; returns how many were applied."""
        if self._feed is None:
            self.start()
            return 0
        try:
            events = self._feed.take()
        except ResourceExpiredError:
            log.info("the store's change log no longer reaches back far enough; listing again")
            self.start()
            return 0
        return self._apply(events)

    def process(self, timeout_s: float = 0.0) -> Key | None:
        """Reconcile the next ready key, if one is ready within `timeout_s`."""
        key = self.queue.get(timeout_s)
        if key is None:
            return None
        try:
            result = self.reconcilers.reconcilers[key.kind](self.context, key)
        except Exception:  # any failure of one key is retried, never fatal to the others
            delay = self.queue.add_rate_limited(key)
            log.exception("reconciling %s failed; retrying in %.3f s", key, delay)
        else:
            self.queue.forget(key)
            if result.requeue_after_s is not None:
                self.queue.add_after(key, result.requeue_after_s)
        finally:
            self.queue.done(key)
        return key

    def drain(self) -> int:
        """Sync and reconcile until nothing is ready; returns how many keys ran."""
        ran = 0
        while True:
            self.sync()
            if self.process() is None:
                return ran
            ran += 1

    def run(self, stop: threading.Event, idle_wait_s: float = IDLE_WAIT_S) -> None:
        self.start()
        try:
            while not stop.is_set():
                self.drain()
                if self._feed is not None:
                    self._feed.wait(idle_wait_s)
        finally:
            self.close()

    def _apply(self, events: list[WatchEvent]) -> int:
        for event in events:
            obj = event.object
            old = self.cache.remove(obj) if event.type == "DELETED" else self.cache.put(obj)
            self._enqueue(obj, old)
        return len(events)

    def _enqueue(self, obj: JsonObject, old: JsonObject | None) -> None:
        for key in self.reconcilers.affected_keys(obj, old, self.cache):
            if key.kind in self.reconcilers.reconcilers:
                self.queue.add(key)


def run_reconcilers(
    store: ClusterStore,
    stop: threading.Event,
    *,
    clock: Callable[[], float] = time.monotonic,
    node_pools: NodePoolConfig | None = None,
) -> None:
    """Reconcile until `stop` is set (the controller's leader runs this)."""
    Controller(store, clock=clock, node_pools=node_pools).run(stop)
