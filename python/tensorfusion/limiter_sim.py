"""A deterministic, event-driven GPU timeline for the TFLOPS limiter (no sleeping, no CUDA).

One GPU runs the kernels it is given one after another, in submission order across all
workers. Each worker is a loop that launches kernels as fast as its `_native.Limiter` lets it:
it asks `admit` before each launch, sleeps the wait it is told, and, like a real CUDA stream,
blocks once `stream_depth` of its kernels are queued. As the shim does with CUDA events, a
worker learns that its kernels finished only when it next wakes, and reports each one's busy
time with `complete`. The result is each worker's achieved share of GPU busy time."""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum

from tensorfusion import _native
from tensorfusion.errors import ConfigError


@dataclass(frozen=True)
class WorkerSpec:
    share: float
    kernels_ns: tuple[int, ...] = (2_000_000,)
    """Kernel durations, launched in this order, round and round."""
    estimate_ratio: float = 1.0
    """The cost passed to admit is the true duration times this (2x busy: 0.5)."""
    window_ns: int = 100_000_000
    max_in_flight_ns: int = 20_000_000
    max_wait_ns: int = 50_000_000
    stream_depth: int = 1024
    launch_gap_ns: int = 5_000
    """CPU time between two launches of the worker."""
    share_changes: tuple[tuple[int, float], ...] = ()
    """(time_ns, share): calls to set_share during the run."""

    def __post_init__(self) -> None:
        if not self.kernels_ns or any(d <= 0 for d in self.kernels_ns):
            raise ConfigError("kernels_ns", f"must be durations > 0, got {self.kernels_ns!r}")
        if not (self.estimate_ratio > 0 and math.isfinite(self.estimate_ratio)):
            raise ConfigError("estimate_ratio", f"must be > 0, got {self.estimate_ratio!r}")
        if self.stream_depth < 1:
            raise ConfigError("stream_depth", f"must be >= 1, got {self.stream_depth}")
        if self.launch_gap_ns < 1:
            raise ConfigError("launch_gap_ns", f"must be >= 1, got {self.launch_gap_ns}")
        if any(time < 0 for time, _ in self.share_changes):
            raise ConfigError("share_changes", "times must be >= 0")


@dataclass(frozen=True)
class WorkerResult:
    shares: tuple[float, ...]
    """Busy share of the worker's kernels in each interval after the warm-up."""
    counters: dict[str, int]
    max_queued_ns: int
    """The most GPU time of this worker's kernels ever queued or running at once."""

    @property
    def share(self) -> float:
        """The busy share over the whole measured time."""
        return sum(self.shares) / len(self.shares)


class _Event(IntEnum):
    SET_SHARE = 0  # before a launch at the same instant
    WAKE = 1


@dataclass
class _Worker:
    spec: WorkerSpec
    limiter: _native.Limiter
    busy_ns: list[int]  # per measured interval
    pending: deque[tuple[int, int]] = field(default_factory=deque)  # (end_ns, duration_ns)
    launched: int = 0
    queued_ns: int = 0
    max_queued_ns: int = 0


class _Timeline:
    def __init__(
        self, specs: Sequence[WorkerSpec], start_ns: int, end_ns: int, interval_ns: int
    ) -> None:
        intervals = (end_ns - start_ns) // interval_ns
        self.workers = [
            _Worker(
                spec,
                _native.Limiter(
                    spec.share, spec.window_ns, spec.max_in_flight_ns, spec.max_wait_ns
                ),
                [0] * intervals,
            )
            for spec in specs
        ]
        self.start_ns = start_ns
        self.end_ns = end_ns
        self.interval_ns = interval_ns
        self.gpu_free_at = 0
        self.events: list[tuple[int, int, int, int, float]] = []
        self.sequence = 0
        for index, spec in enumerate(specs):
            self.push(0, _Event.WAKE, index)
            for time, share in spec.share_changes:
                self.push(time, _Event.SET_SHARE, index, share)

    def push(self, time: int, kind: _Event, worker: int, share: float = 0.0) -> None:
        # The sequence number breaks ties in insertion order, so every run is identical.
        heapq.heappush(self.events, (time, kind, self.sequence, worker, share))
        self.sequence += 1

    def run(self) -> None:
        while self.events and self.events[0][0] < self.end_ns:
            now, kind, _, index, share = heapq.heappop(self.events)
            if kind == _Event.SET_SHARE:
                self.workers[index].limiter.set_share(share)
            else:
                self.step(now, index)

    def step(self, now: int, index: int) -> None:
        worker = self.workers[index]
        while worker.pending and worker.pending[0][0] <= now:
            _, duration = worker.pending.popleft()
            worker.queued_ns -= duration
            worker.limiter.complete(now, duration)
        if len(worker.pending) >= worker.spec.stream_depth:
            self.push(worker.pending[0][0], _Event.WAKE, index)
            return
        kernels = worker.spec.kernels_ns
        duration = kernels[worker.launched % len(kernels)]
        cost = max(1, round(duration * worker.spec.estimate_ratio))
        wait = worker.limiter.admit(now, cost)
        if wait > 0:
            self.push(now + wait, _Event.WAKE, index)
            return
        start = max(self.gpu_free_at, now)
        self.gpu_free_at = start + duration
        worker.pending.append((self.gpu_free_at, duration))
        worker.launched += 1
        self.account(worker.busy_ns, start, self.gpu_free_at)
        worker.queued_ns += duration
        worker.max_queued_ns = max(worker.max_queued_ns, worker.queued_ns)
        self.push(now + worker.spec.launch_gap_ns, _Event.WAKE, index)

    def account(self, busy_ns: list[int], start: int, end: int) -> None:
        """Adds the run [start, end) of a kernel to the intervals it overlaps."""
        start = max(start, self.start_ns)
        end = min(end, self.end_ns)
        while start < end:
            index = (start - self.start_ns) // self.interval_ns
            stop = min(end, self.start_ns + (index + 1) * self.interval_ns)
            busy_ns[index] += stop - start
            start = stop


def simulate(
    workers: Sequence[WorkerSpec],
    duration_ns: int,
    warmup_ns: int = 0,
    interval_ns: int | None = None,
) -> list[WorkerResult]:
    """Runs `workers` on one GPU for `duration_ns` of simulated time. Shares are measured
    after `warmup_ns` (once the initial burst allowance is spent), per `interval_ns` (which
    must divide the measured time; one interval by default)."""
    if not workers:
        raise ConfigError("workers", "at least one worker is needed")
    if not 0 <= warmup_ns < duration_ns:
        raise ConfigError(
            "warmup_ns", f"must be >= 0 and below duration_ns ({duration_ns}), got {warmup_ns}"
        )
    measured = duration_ns - warmup_ns
    interval = measured if interval_ns is None else interval_ns
    if interval <= 0 or measured % interval:
        raise ConfigError(
            "interval_ns", f"must be > 0 and divide the measured {measured} ns, got {interval}"
        )
    timeline = _Timeline(workers, warmup_ns, duration_ns, interval)
    timeline.run()
    return [
        WorkerResult(
            tuple(busy / interval for busy in w.busy_ns), w.limiter.counters(), w.max_queued_ns
        )
        for w in timeline.workers
    ]
