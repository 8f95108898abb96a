"""Pods waiting at Permit, as kube-scheduler's waitingPods map: each holds its reservation
until every plugin that asked it to wait allows it, one rejects it, or a wait times out.

Nothing here blocks: plugins (or tests) call `allow` and `reject`, and the scheduling loop
collects the pods whose fate is decided with `settled` on each pass, binding or unreserving
them. Deadlines are read from an injectable clock."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tensorfusion.scheduler.framework import ReservePlugin, Status

if TYPE_CHECKING:
    from tensorfusion.scheduler.cycle import Outcome
    from tensorfusion.scheduler.pod_info import PodInfo

MAX_PERMIT_WAIT_S = 15 * 60.0
"""kube-scheduler's cap on a Permit plugin's timeout."""


@dataclass
class WaitingPod:
    outcome: Outcome
    """The attempt that reserved the pod (its state, chosen node and stages)."""
    node: int
    reserved: list[ReservePlugin]
    """The Reserve plugins to undo, in the order they reserved."""
    deadlines: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Plugins still to allow the pod: clock time by which they must, and their timeout."""
    rejection: Status | None = None

    @property
    def pod(self) -> PodInfo:
        return self.outcome.pod

    def pending_plugins(self) -> list[str]:
        return list(self.deadlines)

    def allow(self, plugin: str) -> None:
        """The plugin lets the pod go; it is bound once no plugin is left to allow it."""
        self.deadlines.pop(plugin, None)

    def reject(self, plugin: str, message: str) -> None:
        """The pod gives up its reservation and goes back to the queue (first rejection
        wins)."""
        if self.rejection is None:
            self.rejection = Status.unschedulable(plugin, message)

    def expire(self, now: float) -> bool:
        """Reject the pod if a plugin's wait has run out; whether its fate is decided."""
        for plugin, (deadline, timeout) in self.deadlines.items():
            if deadline <= now:
                self.reject(plugin, f"rejected due to timeout after waiting {timeout:g}s")
                break
        return self.rejection is not None or not self.deadlines


class WaitingPods:
    """The pods of one profile waiting at Permit, by pod key."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._pods: dict[str, WaitingPod] = {}

    def __len__(self) -> int:
        return len(self._pods)

    def __iter__(self) -> Iterator[WaitingPod]:
        return iter(list(self._pods.values()))

    def get(self, uid: str) -> WaitingPod | None:
        return self._pods.get(uid)

    def add(self, waiting: WaitingPod, timeouts: dict[str, float]) -> None:
        """Start the waits: each plugin's timeout (seconds, capped as kube caps them)."""
        now = self.clock()
        for plugin, timeout in timeouts.items():
            capped = min(max(timeout, 0.0), MAX_PERMIT_WAIT_S)
            waiting.deadlines[plugin] = (now + capped, capped)
        self._pods[waiting.pod.uid] = waiting

    def remove(self, uid: str) -> WaitingPod | None:
        return self._pods.pop(uid, None)

    def clear(self) -> None:
        self._pods.clear()

    def settled(self) -> list[WaitingPod]:
        """Take out the pods whose fate is decided: allowed by every plugin, rejected, or
        timed out (then rejected)."""
        now = self.clock()
        done = [waiting for waiting in self._pods.values() if waiting.expire(now)]
        for waiting in done:
            del self._pods[waiting.pod.uid]
        return done

    def next_deadline(self) -> float | None:
        """The clock time of the earliest wait to run out, if any pod waits."""
        return min(
            (deadline for w in self._pods.values() for deadline, _ in w.deadlines.values()),
            default=None,
        )
