"""How the shim counts the launches its fast path lets through: a thread tallies them and hands
the tally to its slot's counters with its next measured launch or take from the grant, a
synchronisation on it, or its exit. The counters trail a launching thread by at most one chunk
of busy time, and are exact once it synchronised or ended.

The child is test_shim_pacing_charge's. Which path a launch takes depends on how full the bucket
is, so on the clock. The launch counter is exact whichever path each launch took; the busy time
is exact on the fast path (each launch counts its site's estimate) and at most that on the
measured path (a launch is charged no more than its estimate). Only the test that shows the fast
path was taken, and so can ask for the exact busy time, is marked `timing`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from tests.native.test_shim_pacing_charge import Child, paced

LAUNCHES = 5_000
KERNEL = "sleep_us_2"
KERNEL_NS = 2_000
CHUNK_NS = 200_000  # what a thread takes from the grant at once (kChunkNs, cpp/shim/pacer.cpp)


def measured_once(mockcuda: Any, tmp_path: Path) -> tuple[Child, Path]:
    """A child at 90% of the device whose kernel is measured once (a site's first launch is)."""
    child, region = paced(mockcuda, tmp_path, tflops=90.0)
    child.launch(KERNEL)
    child.command("sync")
    return child, region


def ended_thread(child: Child, kernel: str, count: int) -> None:
    """Launches from a thread of the child that has ended once this returns: its thread-local
    destructors included, which run after Python's join() returns, as the OS thread exits."""
    tasks = Path(f"/proc/{child.proc.pid}/task")
    threads = len(os.listdir(tasks))
    child.command(f"thread {kernel} 1 {count}")
    deadline = time.monotonic() + 10.0
    while len(os.listdir(tasks)) > threads:
        assert time.monotonic() < deadline, "the launching thread did not exit"
        time.sleep(0.001)


def test_a_thread_that_ends_has_its_launches_counted(mockcuda: Any, tmp_path: Path) -> None:
    child, region = measured_once(mockcuda, tmp_path)
    ended_thread(child, KERNEL, LAUNCHES)
    launched = child.slot(region)["launches"]  # no synchronisation since the thread's launches
    child.command("sync")
    counters = child.slot(region)
    assert child.close() == ""
    assert launched == LAUNCHES + 1
    assert 0 < counters["busy_ns"] <= (LAUNCHES + 1) * KERNEL_NS


def test_a_synchronisation_counts_the_launches_before_it(mockcuda: Any, tmp_path: Path) -> None:
    child, region = measured_once(mockcuda, tmp_path)
    child.launch(KERNEL, count=LAUNCHES)
    child.command("sync")
    counters = child.slot(region)
    assert child.close() == ""
    assert counters["launches"] == LAUNCHES + 1
    assert 0 < counters["busy_ns"] <= (LAUNCHES + 1) * KERNEL_NS


def test_counters_trail_a_launching_thread_by_at_most_a_chunk(
    mockcuda: Any, tmp_path: Path
) -> None:
    child, region = measured_once(mockcuda, tmp_path)
    child.launch(KERNEL, count=LAUNCHES)
    launched = child.slot(region)["launches"]
    assert child.close() == ""
    assert launched <= LAUNCHES + 1
    assert (LAUNCHES + 1 - launched) * KERNEL_NS <= CHUNK_NS


@pytest.mark.timing  # the bucket fills past its reserve on the clock
@pytest.mark.parametrize("how", ["launch", "thread"])
def test_a_full_bucket_sends_launches_down_the_fast_path(
    mockcuda: Any, tmp_path: Path, how: str
) -> None:
    child, region = measured_once(mockcuda, tmp_path)
    child.command("sleep 0.1")
    before = int(child.command("records"))
    if how == "thread":
        ended_thread(child, KERNEL, LAUNCHES)
    else:
        child.launch(KERNEL, count=LAUNCHES)
    launched = child.slot(region)["launches"]
    child.command("sync")
    records = int(child.command("records")) - before
    counters = child.slot(region)
    assert child.close() == ""
    assert records < LAUNCHES // 10  # a measured launch records two events
    if how == "thread":  # its exit reported its tally
        assert launched == LAUNCHES + 1
    assert counters["launches"] == LAUNCHES + 1
    assert counters["busy_ns"] == (LAUNCHES + 1) * KERNEL_NS
