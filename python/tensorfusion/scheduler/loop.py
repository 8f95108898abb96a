"""The scheduling loop: pending pods of our profiles, highest priority first, scheduled one at
a time and bound through the cluster store. A pod that does not fit waits with exponential
backoff (kube-scheduler's 1 s doubling to 10 s) and is retried when the cluster changes.

A pod that a PreEnqueue plugin refuses is not queued at all: it is looked at again when it
changes. A pod that a Permit plugin asks to wait keeps its reservation while the loop goes
on with the others; each pass binds the waiting pods that were allowed and sends back to
the queue those rejected or whose wait ran out (timed by the loop's clock)."""

from __future__ import annotations

import gc
import heapq
import logging
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from tensorfusion.api.gpu_links import text_at
from tensorfusion.api.scheduler_config import KubeSchedulerConfiguration
from tensorfusion.errors import ResourceExpiredError
from tensorfusion.scheduler.allocation import RebuildReport
from tensorfusion.scheduler.allocator import TERMINAL_PHASES
from tensorfusion.scheduler.cluster_state import ClusterState
from tensorfusion.scheduler.cycle import (
    Outcome,
    kept_out,
    pre_enqueue,
    release_waiting,
    schedule_one,
    settle_waiting,
)
from tensorfusion.scheduler.fleet import Fleet
from tensorfusion.scheduler.framework import Code
from tensorfusion.scheduler.pod_info import PodInfo
from tensorfusion.scheduler.pod_keys import pod_key
from tensorfusion.scheduler.profile import Profile, build_profiles, default_config
from tensorfusion.store.interface import ChangeFeed, ClusterStore, WatchEvent

log = logging.getLogger(__name__)

WATCHED_KINDS = ("SchedulingConfigTemplate", "GPUPool", "Node", "GPUNode", "GPU", "Pod")
"""In the order a snapshot is applied: what a GPU refers to comes before it."""
INITIAL_BACKOFF_S = 1.0
MAX_BACKOFF_S = 10.0
UNSCHEDULABLE_REASON = "Unschedulable"


@dataclass
class _Waiting:
    pod: dict[str, Any]
    info: PodInfo
    seq: int = 0
    """The queue entry that is current for this pod (older entries are skipped)."""
    attempts: int = 0
    ready_at: float = 0.0
    message: str = ""


@dataclass
class LoopStats:
    scheduled: int = 0
    unschedulable: int = 0
    waiting: int = 0
    """Attempts that reserved a node and wait at Permit."""
    outcomes: list[Outcome] = field(default_factory=list)


class SchedulingLoop:
    def __init__(
        self,
        store: ClusterStore,
        config: KubeSchedulerConfiguration | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_unschedulable: Callable[[dict[str, Any], str], None] | None = None,
    ) -> None:
        """`on_unschedulable(pod, message)` is told each new reason a pod does not fit,
        after its PodScheduled=False condition is written (the controller adds an Event)."""
        self.store = store
        self.clock = clock
        self.on_unschedulable = on_unschedulable
        self.profiles: dict[str, Profile] = build_profiles(
            config or default_config(), self._bind, clock
        )
        self.cluster = ClusterState()
        self.report = RebuildReport()
        self.totals = LoopStats()
        """Attempts since the loop was made (allocation metrics read them); no outcomes."""
        self._waiting: dict[str, _Waiting] = {}
        """Queued pods (those in backoff included), by UID."""
        self._gated: dict[str, _Waiting] = {}
        """Pods a PreEnqueue plugin keeps out of the queue."""
        self._held: dict[str, _Waiting] = {}
        """Pods waiting at Permit with a reservation (in their profile's `waiting`)."""
        self._heap: list[tuple[int, int, str]] = []
        self._seq = 0
        self._feed: ChangeFeed | None = None
        """The store's changes since the lists `start` took, each kind from its own."""

    # --- start and sync ------------------------------------------------------------------

    def start(self) -> RebuildReport:
        """Build the cluster state from the store (allocations from pods' gpu-ids) and
        queue the pending pods. Problems are logged and returned, never dropped."""
        lists: dict[str, list[dict[str, Any]]] = {}
        listed_at: dict[str, int] = {}
        for kind in WATCHED_KINDS:
            lists[kind], listed_at[kind] = self.store.list_with_version(kind)
        self.cluster, self.report = ClusterState.build(
            Fleet(
                nodes=lists["Node"],
                gpu_nodes=lists["GPUNode"],
                gpus=lists["GPU"],
                pools=lists["GPUPool"],
                pods=lists["Pod"],
                templates=lists["SchedulingConfigTemplate"],
            )
        )
        for problem in self.report.problems():
            log.warning("allocation not restored: %s", problem)
        for problem in self.cluster.problems:
            log.warning("object left out: %s", problem)
        # The cluster state lives as long as the loop and holds no garbage: keep the cyclic
        # collector from walking its hundreds of thousands of objects on every collection.
        gc.collect()
        gc.freeze()
        earlier = {**self._gated, **self._held, **self._waiting}
        self._waiting, self._gated, self._held, self._heap = {}, {}, {}, []
        for profile in self.profiles.values():
            profile.waiting.clear()  # their reservations went with the previous state
        for pod in lists["Pod"]:
            self._offer(pod, earlier)
        self.close()
        self._feed = self.store.follow(listed_at)  # each kind from its own list, as informers
        return self.report

    def close(self) -> None:
        """Stop following the store's changes (`start` follows them again)."""
        if self._feed is not None:
            self._feed.close()
            self._feed = None

    def sync(self) -> int:
        """Apply the store's changes that have arrived since the last sync; returns how many
        were applied. If the store no longer has the changes a kind's watch needs, start
        over from a list."""
        if self._feed is None:  # never started: follow from the beginning
            self._feed = self.store.follow(dict.fromkeys(WATCHED_KINDS, 0))
        try:
            events = self._feed.take()
        except ResourceExpiredError:
            log.info("the store's change log no longer reaches back far enough; listing again")
            self.start()
            return 0
        for event in events:
            self._apply(event)
        return len(events)

    # --- scheduling ----------------------------------------------------------------------

    def run_once(self) -> LoopStats:
        """Sync, then schedule every pod whose backoff has expired, in priority order; pods
        waiting at Permit are bound or sent back before and after."""
        self.sync()
        stats = LoopStats()
        self._settle(stats)
        now = self.clock()
        deferred: list[tuple[int, int, str]] = []
        while self._heap:
            entry = heapq.heappop(self._heap)
            waiting = self._waiting.get(entry[2])
            if waiting is None or entry[1] != waiting.seq:
                continue  # superseded by a newer offer of the same pod
            if waiting.ready_at > now:
                deferred.append(entry)
                continue
            self._attempt(entry[2], waiting, stats)
        for entry in deferred:
            heapq.heappush(self._heap, entry)
        self._settle(stats)
        self.totals.scheduled += stats.scheduled
        self.totals.unschedulable += stats.unschedulable
        return stats

    def run(
        self,
        stop: threading.Event,
        idle_wait_s: float = 0.5,
        lock: AbstractContextManager[object] | None = None,
    ) -> None:
        """Schedule until `stop` is set, waking on store changes or when a backoff ends.
        `lock` is held around each pass, so that readers of `cluster` in other threads
        (simulate, listings) see it between passes, never in the middle of one."""
        while not stop.is_set():
            with lock or nullcontext():
                self.run_once()
            wait = idle_wait_s
            deadlines = (profile.waiting.next_deadline() for profile in self.profiles.values())
            wakes = [w.ready_at for w in self._waiting.values()]
            wakes.extend(deadline for deadline in deadlines if deadline is not None)
            if wakes:
                wait = min(wait, max(min(wakes) - self.clock(), 0.0))
            if self._feed is not None:
                self._feed.wait(wait)

    def pending(self) -> dict[str, str]:
        """Pods waiting to be scheduled, with why the last attempt failed ("" if none yet),
        why they are kept out of the queue, or which Permit plugins they wait for."""
        pending = {
            f"{w.info.namespace}/{w.info.name}": w.message
            for w in (*self._waiting.values(), *self._gated.values())
        }
        for profile in self.profiles.values():
            for held in profile.waiting:
                plugins = ", ".join(held.pending_plugins())
                pending[f"{held.pod.namespace}/{held.pod.name}"] = f"waiting at permit: {plugins}"
        return pending

    def _profile_of(self, waiting: _Waiting) -> Profile:
        return self.profiles[text_at(waiting.pod, "spec", "schedulerName") or ""]

    def _attempt(self, uid: str, waiting: _Waiting, stats: LoopStats) -> None:
        outcome = schedule_one(self._profile_of(waiting), self.cluster.view, waiting.info)
        stats.outcomes.append(outcome)
        if outcome.status.code is Code.WAIT:
            del self._waiting[uid]
            self._held[uid] = waiting
            stats.waiting += 1
            return
        self._conclude(uid, waiting, outcome, stats)

    def _settle(self, stats: LoopStats) -> None:
        """Bind the pods waiting at Permit that every plugin allowed; requeue those rejected
        or timed out, whose released reservations may let queued pods fit."""
        released = False
        for profile in self.profiles.values():
            if not profile.waiting:
                continue
            for outcome in settle_waiting(profile, self.cluster.view):
                uid = outcome.pod.uid
                stats.outcomes.append(outcome)
                self._conclude(uid, self._held.pop(uid), outcome, stats)
                released = released or not outcome.scheduled
        if released:
            self._cluster_changed()

    def _conclude(self, uid: str, waiting: _Waiting, outcome: Outcome, stats: LoopStats) -> None:
        if outcome.scheduled:
            self.cluster.assume(waiting.info, outcome.node_index)
            self._waiting.pop(uid, None)
            stats.scheduled += 1
            return
        stats.unschedulable += 1
        waiting.attempts += 1
        backoff = min(INITIAL_BACKOFF_S * 2 ** (waiting.attempts - 1), MAX_BACKOFF_S)
        waiting.ready_at = self.clock() + backoff
        self._record(waiting, outcome.summary())
        self._waiting[uid] = waiting
        self._push(uid, waiting)

    def _record(self, waiting: _Waiting, message: str) -> None:
        """Say why the pod is not scheduled, once per change of reason."""
        if message != waiting.message:
            waiting.message = message
            self._report_unschedulable(waiting.pod, message)
            if self.on_unschedulable is not None:
                self.on_unschedulable(waiting.pod, message)

    def _bind(self, pod: PodInfo, node: str, annotations: Mapping[str, str]) -> None:
        self.store.bind(pod.namespace, pod.name, node, annotations)

    def _report_unschedulable(self, pod: dict[str, Any], message: str) -> None:
        """Write the PodScheduled=False condition users see in `kubectl describe`."""
        metadata = pod.get("metadata") or {}
        condition = {
            "type": "PodScheduled",
            "status": "False",
            "reason": UNSCHEDULABLE_REASON,
            "message": message,
        }
        try:
            self.store.patch(
                "Pod",
                metadata.get("name", ""),
                {"status": {"conditions": [condition]}},
                namespace=metadata.get("namespace") or "default",
            )
        except Exception as exc:  # a status write must never stop the loop
            log.warning("could not record why %s is unschedulable: %s", metadata.get("name"), exc)

    # --- events --------------------------------------------------------------------------

    def _apply(self, event: WatchEvent) -> None:
        if not self.cluster.guarded(event.object, lambda: self._apply_change(event)):
            log.warning("object left out: %s", self.cluster.problems[-1])

    def _apply_change(self, event: WatchEvent) -> None:
        obj = event.object
        kind = obj.get("kind")
        deleted = event.type == "DELETED"
        name = text_at(obj, "metadata", "name") or ""
        if kind == "Pod":
            self._apply_pod(obj, deleted)
            return
        if kind == "Node":
            self.cluster.remove_node(name) if deleted else self.cluster.upsert_node(obj)
        elif kind == "GPU":
            self.cluster.remove_gpu(name) if deleted else self.cluster.upsert_gpu(obj)
        elif kind == "GPUNode" and not deleted:
            self.cluster.upsert_gpu_node(obj)
        elif kind == "GPUPool":
            self.cluster.remove_pool(name) if deleted else self.cluster.upsert_pool(obj)
        elif kind == "SchedulingConfigTemplate" and not deleted:
            self.cluster.upsert_template(obj)
        self._cluster_changed()

    def _apply_pod(self, pod: dict[str, Any], deleted: bool) -> None:
        uid = pod_key(pod.get("metadata") or {})[0]
        terminal = text_at(pod, "status", "phase") in TERMINAL_PHASES
        if deleted or terminal or text_at(pod, "spec", "nodeName"):
            self._gated.pop(uid, None)
            self._drop_held(uid)
        if deleted or terminal:
            self._waiting.pop(uid, None)
            if uid in self.cluster.bound or uid in self.cluster.gpus.allocations:
                self.cluster.remove_pod(pod)
                self._cluster_changed()
            return
        if text_at(pod, "spec", "nodeName"):
            self._waiting.pop(uid, None)
            for problem in self.cluster.add_pod(pod).problems():
                log.warning("allocation not restored: %s", problem)
            return
        self._offer(pod)

    def _drop_held(self, uid: str) -> None:
        """A pod waiting at Permit was deleted, finished or bound elsewhere: give its
        reservation back."""
        held = self._held.pop(uid, None)
        if held is None:
            return
        waiting = self._profile_of(held).waiting.remove(uid)
        if waiting is not None:
            release_waiting(self.cluster.view, waiting)
            self._cluster_changed()

    def _offer(self, pod: dict[str, Any], earlier: Mapping[str, _Waiting] | None = None) -> None:
        """Queue a pending pod of one of our profiles (or refresh a queued one, keeping its
        backoff; `earlier` is where its previous entry is, if not in the queue), unless a
        PreEnqueue plugin keeps it out. A pod waiting at Permit keeps its attempt."""
        if text_at(pod, "spec", "nodeName") or text_at(pod, "status", "phase") in TERMINAL_PHASES:
            return
        if text_at(pod, "spec", "schedulerName") not in self.profiles:
            return
        waiting = _Waiting(pod, PodInfo.from_dict(pod))
        uid = waiting.info.uid
        # Held at Permit, or bound by this loop before the store's event saying so arrived
        # (the scheduler's own annotation patch comes first).
        if uid in self._held or uid in self.cluster.bound:
            return
        if earlier is None:
            previous = self._waiting.get(uid) or self._gated.get(uid)
        else:
            previous = earlier.get(uid)
        if previous is not None:
            waiting.attempts, waiting.ready_at = previous.attempts, previous.ready_at
            waiting.message = previous.message
        profile = self._profile_of(waiting)
        if profile.pre_enqueue:
            verdicts = pre_enqueue(profile, waiting.info)
            gated = kept_out(self.cluster.view, waiting.info, verdicts)
            if gated is not None:
                self._waiting.pop(uid, None)
                self._gated[uid] = waiting
                self._record(waiting, gated.summary())
                return
        self._gated.pop(uid, None)
        self._waiting[uid] = waiting
        self._push(uid, waiting)

    def _push(self, uid: str, waiting: _Waiting) -> None:
        self._seq += 1
        waiting.seq = self._seq
        heapq.heappush(self._heap, (-waiting.info.priority, waiting.seq, uid))

    def _cluster_changed(self) -> None:
        """Something that could make a waiting pod fit happened: retry them all as soon as
        their backoff allows."""
        for uid, waiting in self._waiting.items():
            if waiting.attempts:
                self._push(uid, waiting)
