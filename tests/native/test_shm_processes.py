"""The region across real processes: mass joins, SIGKILLed members, charge races, fork, and
the agent's snapshot while members write. Children are forked (the region object travels by
inheritance, as it does for the shim) and report through queues."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Iterator
from multiprocessing.context import ForkContext, ForkProcess
from pathlib import Path
from typing import Any

import pytest

from tensorfusion._native import ShmRegion
from tensorfusion.shm_region import snapshot
from tests.native.test_shm_layout import LIMITS, create_region

pytestmark = pytest.mark.timing

CTX: ForkContext = multiprocessing.get_context("fork")
CHUNK = 4096
WAIT = 60.0  # generous bound on any child's report, so a broken child fails rather than hangs


@pytest.fixture
def spawn() -> Iterator[Callable[..., ForkProcess]]:
    started: list[ForkProcess] = []

    def start(target: Callable[..., None], *args: Any) -> ForkProcess:
        process = CTX.Process(target=target, args=args, daemon=True)
        process.start()
        started.append(process)
        return process

    yield start
    for process in started:
        if process.is_alive():
            process.kill()
        process.join()


def _join_charge_wait(region: ShmRegion, nbytes: int, ready: Any, done: Any, leave: bool) -> None:
    member = region.join()
    assert region.try_charge(member, "device", nbytes)
    ready.put((member.index, os.getpid()))
    done.wait()
    if leave:
        region.leave(member)


def test_200_processes_join_at_once(tmp_path: Path, spawn: Callable[..., ForkProcess]) -> None:
    region = create_region(tmp_path / "region", slots=256, vram_limit=200 * CHUNK)
    ready, done, start = CTX.Queue(), CTX.Event(), CTX.Barrier(200)

    def child() -> None:
        start.wait()
        _join_charge_wait(region, CHUNK, ready, done, leave=True)

    children = [spawn(child) for _ in range(200)]
    reports = [ready.get(timeout=WAIT) for _ in children]
    assert len({index for index, _ in reports}) == 200
    assert {pid for _, pid in reports} == {c.pid for c in children}
    snap = snapshot(region)
    assert (snap.members, snap.total_bytes) == (200, 200 * CHUNK)
    assert {(s.index, s.pid) for s in snap.slots} == set(reports)
    done.set()
    for c in children:
        c.join()
    assert [c.exitcode for c in children] == [0] * 200
    after = region.snapshot()
    assert (after["members"], after["total_bytes"]) == (0, 0)


def _killed_holder(region: ShmRegion, spawn: Callable[..., ForkProcess], nbytes: int) -> int:
    """Starts a child that joins and charges `nbytes`, SIGKILLs it and returns its slot."""
    ready, done = CTX.Queue(), CTX.Event()
    child = spawn(_join_charge_wait, region, nbytes, ready, done, False)
    index, _ = ready.get(timeout=WAIT)
    os.kill(child.pid or 0, signal.SIGKILL)
    child.join()
    assert child.exitcode == -signal.SIGKILL
    return int(index)


def test_sigkilled_member_is_reaped_and_the_total_is_exact(
    tmp_path: Path, spawn: Callable[..., ForkProcess]
) -> None:
    region = create_region(tmp_path / "region", vram_limit=10 * CHUNK)
    mine = region.join()
    region.try_charge(mine, "managed", CHUNK)
    index = _killed_holder(region, spawn, 3 * CHUNK)
    before = region.snapshot()
    assert before["total_bytes"] == 4 * CHUNK  # dead until reaped
    assert index in {s["index"] for s in before["slots"]}
    assert region.reap() == 1
    assert region.reap() == 0
    after = snapshot(region)
    assert (after.total_bytes, after.members) == (CHUNK, 1)
    assert [s.index for s in after.slots] == [mine.index]
    region.leave(mine)
    assert region.snapshot()["total_bytes"] == 0


def test_a_joiner_reaps_when_the_region_is_full(
    tmp_path: Path, spawn: Callable[..., ForkProcess]
) -> None:
    region = create_region(tmp_path / "region", slots=1, vram_limit=CHUNK)
    index = _killed_holder(region, spawn, CHUNK)
    member = region.join()
    assert member.index == index
    assert region.try_charge(member, "device", CHUNK)


def test_a_refused_charge_reaps_dead_members_first(
    tmp_path: Path, spawn: Callable[..., ForkProcess]
) -> None:
    region = create_region(tmp_path / "region", vram_limit=4 * CHUNK)
    mine = region.join()
    _killed_holder(region, spawn, 4 * CHUNK)
    assert region.try_charge(mine, "device", 4 * CHUNK)
    assert region.snapshot()["members"] == 1


def _charge_credit_forever(region: ShmRegion, ready: Any) -> None:
    member = region.join()
    ready.put(member.index)
    region.charge_credit_loop(member, 2**62)


@pytest.mark.parametrize("round_", range(10))
def test_kill_inside_the_charge_loop_keeps_the_books_exact(
    tmp_path: Path, spawn: Callable[..., ForkProcess], round_: int
) -> None:
    # The loop holds the mutex for most of its time, so kills land inside it often; the next
    # locker must replay the dead holder's intent. Rounds differ only in scheduling.
    region = create_region(tmp_path / "region", vram_limit=CHUNK)
    ready = CTX.Queue()
    children = [spawn(_charge_credit_forever, region, ready) for _ in range(3)]
    for _ in children:
        ready.get(timeout=WAIT)
    for child in children[round_ % 3 :] + children[: round_ % 3]:
        os.kill(child.pid or 0, signal.SIGKILL)
    for child in children:
        child.join()
    assert region.reap() == 3
    assert region.snapshot()["total_bytes"] == 0
    mine = region.join()
    assert region.try_charge(mine, "device", CHUNK)
    assert not region.try_charge(mine, "device", 1)


def _charge_until_refused(
    region: ShmRegion, start: Any, results: Any, done: Any, nbytes: int
) -> None:
    member = region.join()
    start.wait()
    charged = 0
    while region.try_charge(member, "device", nbytes):
        charged += 1
    results.put((member.index, charged))
    done.wait()  # an exited member would be reaped and its bytes charged again by the others


def test_racing_charges_fill_the_limit_and_never_pass_it(
    tmp_path: Path, spawn: Callable[..., ForkProcess]
) -> None:
    processes = 8
    region = create_region(tmp_path / "region", vram_limit=2000 * CHUNK + CHUNK - 1)
    start, results, done = CTX.Barrier(processes), CTX.Queue(), CTX.Event()
    for _ in range(processes):
        spawn(_charge_until_refused, region, start, results, done, CHUNK)
    counts = dict(results.get(timeout=WAIT) for _ in range(processes))
    assert sum(counts.values()) == 2000
    snap = snapshot(region)
    assert snap.total_bytes == 2000 * CHUNK
    assert {s.index: s.bytes_by_kind["device"] // CHUNK for s in snap.slots} == counts
    done.set()


def _churn(region: ShmRegion, start: Any, stop: Any, refusals: Any) -> None:
    member = region.join()
    start.wait()
    held: list[int] = []
    refused = 0
    step = 0
    while not stop.is_set():
        step += 1
        nbytes = CHUNK * (1 + step % 7)
        if region.try_charge(member, "device", nbytes):
            held.append(nbytes)
        else:
            refused += 1
        if len(held) > 3:
            region.credit(member, "device", held.pop(0))
        region.add(member, "launches", 1)
    for nbytes in held:
        region.credit(member, "device", nbytes)
    refusals.put(refused)


def test_snapshot_while_members_write(tmp_path: Path, spawn: Callable[..., ForkProcess]) -> None:
    limit = 40 * CHUNK
    region = create_region(tmp_path / "region", vram_limit=limit)
    writers = 4
    start, stop, refusals = CTX.Barrier(writers + 1), CTX.Event(), CTX.Queue()
    children = [spawn(_churn, region, start, stop, refusals) for _ in range(writers)]
    start.wait()
    pids = {c.pid for c in children}
    launches: dict[int, int] = {}
    seen_bytes = False
    # At least 2000 snapshots, and on until every writer has been running for a while (on a
    # loaded machine a writer may not have been scheduled yet when the 2000 are done).
    deadline = time.monotonic() + WAIT
    taken = 0
    while taken < 2000 or min(launches.values(), default=0) < 1000 or len(launches) < writers:
        assert time.monotonic() < deadline, f"writers made too little progress: {launches}"
        taken += 1
        snap = snapshot(region)
        assert snap.total_bytes <= limit
        assert snap.members == writers
        for slot in snap.slots:
            assert slot.pid in pids
            assert 0 <= slot.bytes_by_kind["device"] <= limit
            assert slot.bytes_by_kind["device"] % CHUNK == 0
            assert slot.launches >= launches.get(slot.index, 0)
            launches[slot.index] = slot.launches
            seen_bytes = seen_bytes or slot.total_bytes > 0
    stop.set()
    refused = [refusals.get(timeout=WAIT) for _ in children]
    for child in children:
        child.join()
    assert seen_bytes
    assert sum(refused) > 0  # four writers holding up to 28 chunks each must hit 40
    assert region.snapshot()["total_bytes"] == 0


def _flip_limits(region: ShmRegion, stop: Any) -> None:
    low: dict[str, Any] = {**LIMITS, "vram_limit": 1, "tflops_limit": 1.0, "tflops_request": 1.0}
    while not stop.is_set():
        region.set_limits(**low)
        region.set_limits(**LIMITS)


def test_limits_are_read_whole_while_they_change(
    tmp_path: Path, spawn: Callable[..., ForkProcess]
) -> None:
    region = create_region(tmp_path / "region")
    stop = CTX.Event()
    spawn(_flip_limits, region, stop)
    seen = set()
    generations = []
    for _ in range(5000):
        snap = region.snapshot()
        seen.add((snap["vram_limit"], snap["tflops_limit"], snap["tflops_request"]))
        # the generation is read with the limits: odd after the low set, even after the other
        expected_vram = 1 if snap["generation"] % 2 == 1 else LIMITS["vram_limit"]
        assert snap["vram_limit"] == expected_vram
        generations.append(snap["generation"])
    stop.set()
    assert seen <= {(1, 1.0, 1.0), (1000, 50.0, 25.0)}
    assert generations == sorted(generations)


def _forked_child(region: ShmRegion, inherited: Any, results: Any) -> None:
    try:
        region.try_charge(inherited, "device", 1)
        results.put("inherited slot accepted")
        return
    except ValueError as error:
        results.put(str(error))
    own = region.rejoin_after_fork(inherited)
    assert region.try_charge(own, "device", 5 * CHUNK)
    results.put((own.index, own.pid))


def test_a_forked_child_rejoins_with_a_slot_of_its_own(
    tmp_path: Path, spawn: Callable[..., ForkProcess]
) -> None:
    region = create_region(tmp_path / "region", vram_limit=100 * CHUNK)
    parent = region.join()
    region.try_charge(parent, "device", 10 * CHUNK)
    results = CTX.Queue()
    child = spawn(_forked_child, region, parent, results)
    refusal = results.get(timeout=WAIT)
    assert "call rejoin_after_fork in a forked child" in refusal
    index, pid = results.get(timeout=WAIT)
    child.join()
    assert (pid, child.exitcode) == (child.pid, 0)
    assert index != parent.index
    during = {s["index"]: s["bytes"]["device"] for s in region.snapshot()["slots"]}
    assert during == {parent.index: 10 * CHUNK, index: 5 * CHUNK}
    assert region.reap() == 1
    snap = snapshot(region)
    assert [(s.index, s.pid, s.total_bytes) for s in snap.slots] == [
        (parent.index, os.getpid(), 10 * CHUNK)
    ]
    assert snap.total_bytes == 10 * CHUNK
    assert region.rejoin_after_fork(parent).index == parent.index  # no-op in the joiner
