"""The reconcilers' work queue, with controller-runtime's guarantees: a key waits in the queue
at most once, is never handed to two workers at once (one added while it runs is handed out
again when it is done), failures come back after an exponential backoff, and success forgets
the failures."""

from __future__ import annotations

import heapq
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from tensorfusion.errors import ConfigError


class Key(NamedTuple):
    """What a reconcile is given: the object's kind, namespace ("" when cluster-scoped), name."""

    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind}/{where}{self.name}"


@dataclass(frozen=True)
class Result:
    """A reconcile that succeeded; `requeue_after_s` asks to look again after that delay."""

    requeue_after_s: float | None = None


class WorkQueue:
    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        base_delay_s: float = 0.005,
        max_delay_s: float = 300.0,
    ) -> None:
        if not 0 < base_delay_s <= max_delay_s:
            raise ConfigError(
                "base_delay_s", f"must be > 0 and <= max_delay_s ({base_delay_s}, {max_delay_s})"
            )
        self._clock = clock
        self._base, self._max = base_delay_s, max_delay_s
        self._ready: deque[Key] = deque()
        self._dirty: set[Key] = set()
        """Keys that wait to be handed out (in `_ready`, or after their worker is done)."""
        self._processing: set[Key] = set()
        self._delayed: list[tuple[float, int, Key]] = []
        self._seq = 0
        self._failures: dict[Key, int] = {}
        self._changed = threading.Condition()

    def __len__(self) -> int:
        with self._changed:
            return len(self._dirty) + len(self._delayed)

    def add(self, key: Key) -> None:
        with self._changed:
            self._add(key)

    def add_after(self, key: Key, delay_s: float) -> None:
        if delay_s <= 0:
            self.add(key)
            return
        with self._changed:
            self._seq += 1
            heapq.heappush(self._delayed, (self._clock() + delay_s, self._seq, key))
            self._changed.notify()

    def add_rate_limited(self, key: Key) -> float:
        """Requeue after a failure: base x 2^(failures so far), capped; returns the delay."""
        with self._changed:
            failures = self._failures.get(key, 0)
            self._failures[key] = failures + 1
        delay = min(self._base * 2.0**failures, self._max)
        self.add_after(key, delay)
        return delay

    def failures(self, key: Key) -> int:
        with self._changed:
            return self._failures.get(key, 0)

    def forget(self, key: Key) -> None:
        with self._changed:
            self._failures.pop(key, None)

    def get(self, timeout_s: float = 0.0) -> Key | None:
        """The next ready key, now marked as processing; None if none is ready within
        `timeout_s` (measured on the wall clock; delays on the queue's clock)."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while True:
                self._promote_due()
                if self._ready:
                    key = self._ready.popleft()
                    self._dirty.discard(key)
                    self._processing.add(key)
                    return key
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                if self._delayed:
                    left = min(left, max(self._delayed[0][0] - self._clock(), 0.001))
                self._changed.wait(left)

    def done(self, key: Key) -> None:
        """The worker finished `key`; if it was added meanwhile, it is ready again."""
        with self._changed:
            self._processing.discard(key)
            if key in self._dirty:
                self._ready.append(key)
                self._changed.notify()

    def _add(self, key: Key) -> None:
        if key in self._dirty:
            return
        self._dirty.add(key)
        if key not in self._processing:
            self._ready.append(key)
            self._changed.notify()

    def _promote_due(self) -> None:
        now = self._clock()
        while self._delayed and self._delayed[0][0] <= now:
            self._add(heapq.heappop(self._delayed)[2])
