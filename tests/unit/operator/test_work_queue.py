"""The reconcilers' work queue: dedupe, one worker per key, backoff on an injected clock."""

from __future__ import annotations

import threading

import pytest

from tensorfusion.errors import ConfigError
from tensorfusion.operator.reconcilers.work_queue import Key, WorkQueue

A = Key("GPUNode", "", "a")
B = Key("GPUNode", "", "b")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_key_added_twice_is_handed_out_once() -> None:
    queue = WorkQueue()
    queue.add(A)
    queue.add(B)
    queue.add(A)
    assert len(queue) == 2
    assert [queue.get(), queue.get(), queue.get()] == [A, B, None]


def test_a_key_added_while_processing_waits_for_done() -> None:
    queue = WorkQueue()
    queue.add(A)
    assert queue.get() == A
    queue.add(A)
    queue.add(A)
    assert queue.get() is None  # not handed to a second worker
    queue.done(A)
    assert queue.get() == A
    queue.done(A)
    assert queue.get() is None


def test_failures_back_off_exponentially_and_success_forgets() -> None:
    clock = Clock()
    queue = WorkQueue(clock=clock, base_delay_s=1.0, max_delay_s=3.0)
    assert [queue.add_rate_limited(A) for _ in range(3)] == [1.0, 2.0, 3.0]
    assert queue.failures(A) == 3
    assert queue.get() is None
    clock.now += 0.999
    assert queue.get() is None
    clock.now += 0.001
    assert queue.get() == A
    queue.done(A)
    queue.forget(A)
    assert queue.failures(A) == 0
    assert queue.add_rate_limited(A) == 1.0


def test_add_after_is_ready_only_once_the_delay_passed() -> None:
    clock = Clock()
    queue = WorkQueue(clock=clock)
    queue.add_after(A, 5.0)
    queue.add_after(B, 0.0)
    assert queue.get() == B
    assert queue.get() is None
    clock.now += 5.0
    assert queue.get() == A


@pytest.mark.parametrize(("base", "cap"), [(0.0, 1.0), (-1.0, 1.0), (2.0, 1.0)])
def test_bad_delays_are_refused_by_name(base: float, cap: float) -> None:
    with pytest.raises(ConfigError, match="base_delay_s"):
        WorkQueue(base_delay_s=base, max_delay_s=cap)


def test_workers_never_run_one_key_at_once() -> None:
    queue = WorkQueue()
    running: set[Key] = set()
    overlaps: list[Key] = []
    guard = threading.Lock()
    handled = [0]

    def worker() -> None:
        while (key := queue.get(timeout_s=0.2)) is not None:
            with guard:
                if key in running:
                    overlaps.append(key)
                running.add(key)
                handled[0] += 1
            if handled[0] < 400:
                queue.add(key)  # re-added while it runs
            with guard:
                running.discard(key)
            queue.done(key)

    queue.add(A)
    queue.add(B)
    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert handled[0] >= 400
    assert overlaps == []
