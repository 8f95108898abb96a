"""VRAM paging through the shim, on the mock driver, whose kernels really read and write their
pointer arguments and whose unmapped or inaccessible memory is a sticky illegal address: a
page-in the shim missed fails these tests as it would fail a workload on a GPU.

Every workload runs in a worker region whose limits name the tiers (device, host, disk), as
the node agent writes them.
"""

from __future__ import annotations

import os
import signal
import zlib
from pathlib import Path
from typing import Any

import pytest

from tensorfusion._native import ShmRegion
from tests.native.paging_workload import (
    CHUNK,
    MiB,
    Tiers,
    Workload,
    make_tiered_region,
    mapped_device_bytes,
)

SIZE = 6 * MiB  # three chunks


def crc(value: int, size: int = SIZE) -> str:
    return str(zlib.crc32(bytes([value]) * size))


def workload(
    mockcuda: Any,
    tmp_path: Path,
    tiers: Tiers,
    name: str = "w",
    **env: str,
) -> Workload:
    """A paging workload in its own worker region. Each one also holds a small allocation (the
    checksum kernels' output) in a slab chunk of its own: 2 MiB of its budgets."""
    region = make_tiered_region(tmp_path / f"region-{name}", tiers, worker=name)
    return Workload(mockcuda, tmp_path, region, tmp_path / f"spill-{name}", **env)


def slot(region: Path) -> dict[str, Any]:
    only: dict[str, Any]
    [only] = ShmRegion.open(region).snapshot()["slots"]
    return only


def test_allocations_past_the_vram_budget_go_to_host_then_disk_and_come_back_intact(
    mockcuda: Any, tmp_path: Path
) -> None:
    tiers = Tiers(device=8 * MiB, host=8 * MiB, disk=16 * MiB)
    work = workload(mockcuda, tmp_path, tiers)
    for i in range(1, 5):  # 24 MiB of data for 8 MiB of VRAM
        assert work.do(f"alloc {i} {SIZE}") == "ok"
        work.ok(f"fill {i} {i}")
        assert mapped_device_bytes(mockcuda, tmp_path) <= tiers.device
    held = slot(tmp_path / "region-w")
    assert held["host_bytes"] > 0
    assert held["disk_bytes"] > 0
    assert held["pages_evicted"] > 0
    for i in range(1, 5):  # each comes back whole, its pointer unchanged
        assert work.ok(f"sum {i}") == crc(i)
        assert work.ok(f"download {i}") == crc(i)
        assert mapped_device_bytes(mockcuda, tmp_path) <= tiers.device
    assert slot(tmp_path / "region-w")["pages_resumed"] > 0
    assert work.finish() == ""
    assert list((tmp_path / "spill-w").iterdir()) == []  # nothing outlives the process


@pytest.mark.parametrize("fill", ["fill", "fillx", "fillex", "set", "upload", "upasync", "set32"])
def test_every_write_path_pages_its_allocation_in(mockcuda: Any, tmp_path: Path, fill: str) -> None:
    work = workload(mockcuda, tmp_path, Tiers(device=12 * MiB, host=16 * MiB, disk=0))
    for i in range(1, 4):
        work.ok(f"alloc {i} {SIZE}")
        work.ok(f"fill {i} {i}")
    work.ok(f"{fill} 1 9")  # 1 was evicted by 2 and 3
    assert work.ok("download 1") == crc(9)
    work.ok("copy 3 1")  # device to device: both in at once
    assert work.ok("sum 3") == crc(9)
    assert work.finish() == ""


@pytest.mark.parametrize("copy", ["copy2d 3 1 3", "peer 3 1"])
def test_2d_and_peer_copies_page_in_both_sides(mockcuda: Any, tmp_path: Path, copy: str) -> None:
    work = workload(mockcuda, tmp_path, Tiers(device=12 * MiB, host=16 * MiB, disk=0))
    for i in range(1, 4):
        work.ok(f"alloc {i} {SIZE}")
        work.ok(f"fill {i} {i}")
    work.ok("set2d 1 9 3")  # 1 was evicted by 2 and 3: its rows come back whole
    assert work.ok("download 1") == crc(9)
    work.ok("fill 2 2")  # 2 back in, pushing others out
    work.ok(copy)
    assert work.ok("sum 3") == crc(9)
    assert work.finish() == ""


def test_a_struct_of_pointers_parameter_pages_in_both(mockcuda: Any, tmp_path: Path) -> None:
    work = workload(mockcuda, tmp_path, Tiers(device=14 * MiB, host=16 * MiB, disk=0))
    for i, value in enumerate([0x0F, 0xF0, 0, 0], start=1):
        work.ok(f"alloc {i} {4 * MiB}")
        work.ok(f"fill {i} {value}")
    work.ok("add 4 1 2")  # 1 and 2 were evicted; the sum is 0xFF
    work.ok("xor 3 1 2")
    assert work.ok("sum 3") == crc(0xFF, 4 * MiB)
    assert work.ok("sum 4") == crc(0xFF, 4 * MiB)
    assert work.finish() == ""


def test_small_allocations_share_chunks_and_page_together(mockcuda: Any, tmp_path: Path) -> None:
    work = workload(mockcuda, tmp_path, Tiers(device=4 * MiB, host=32 * MiB, disk=0))
    for i in range(1, 41):  # 40 x 300 KiB: 6 slab chunks, 3 x the VRAM budget
        work.ok(f"alloc {i} {300 * 1024}")
        work.ok(f"fill {i} {i}")
    for i in range(1, 41):
        assert work.ok(f"sum {i}") == crc(i, 300 * 1024)
    assert mapped_device_bytes(mockcuda, tmp_path) <= 4 * MiB
    assert work.finish() == ""


def test_pitched_allocations_are_paged(mockcuda: Any, tmp_path: Path) -> None:
    work = workload(mockcuda, tmp_path, Tiers(device=4 * MiB, host=8 * MiB, disk=0))
    assert work.do("pitch 1 1000 1500") == "ok 1024"
    assert work.do("pitch 2 1000 1500") == "ok 1024"
    work.ok("fill 1 5")
    work.ok("fill 2 6")
    assert work.ok("sum 1") == crc(5, 1024 * 1500)
    assert work.finish() == ""


def test_the_total_limit_still_refuses_past_every_tier(mockcuda: Any, tmp_path: Path) -> None:
    work = workload(mockcuda, tmp_path, Tiers(device=8 * MiB, host=4 * MiB, disk=0))
    work.ok(f"alloc 1 {SIZE}")
    assert work.do(f"alloc 2 {SIZE}") == "err 2"  # 2 + 6 + 6 MiB > 12 MiB in all
    assert work.finish() == ""


def test_without_tiers_nothing_is_paged(mockcuda: Any, tmp_path: Path) -> None:
    work = workload(mockcuda, tmp_path, Tiers(device=8 * MiB, host=0, disk=0))
    work.ok(f"alloc 1 {SIZE}")
    assert work.do(f"alloc 2 {SIZE}") == "err 2"
    # The driver's own allocations, charged as before (with the 8-byte output buffer).
    assert slot(tmp_path / "region-w")["bytes"]["device"] == SIZE + 8
    assert work.finish() == ""


def test_a_launch_that_cannot_fit_fails_with_one_line(mockcuda: Any, tmp_path: Path) -> None:
    work = workload(mockcuda, tmp_path, Tiers(device=6 * MiB, host=8 * MiB, disk=0))
    work.ok(f"alloc 1 {4 * MiB}")
    work.ok(f"alloc 2 {4 * MiB}")
    work.ok("fill 1 1")
    work.ok("fill 2 2")
    assert work.do("add 1 1 2") == "err 2"  # both at once: 8 MiB for 6
    assert work.ok("sum 1") == crc(1, 4 * MiB)  # nothing lost, nothing stuck
    err = work.finish()
    assert len(err.splitlines()) == 1
    assert "kernel launch on device 0 refused" in err


@pytest.mark.parametrize("launch", ["graph", "capture"])
def test_graphs_make_the_whole_worker_resident(mockcuda: Any, tmp_path: Path, launch: str) -> None:
    work = workload(mockcuda, tmp_path, Tiers(device=10 * MiB, host=8 * MiB, disk=0))
    for i in range(1, 4):
        work.ok(f"alloc {i} {4 * MiB}")
        work.ok(f"fill {i} {i}")
    assert work.do(f"{launch} 1 7") == "err 2"  # 14 MiB of allocations for 10 of VRAM
    work.ok("free 3")
    work.ok(f"{launch} 1 7")  # 1 was out: the graph's kernel finds it in
    assert work.ok("sum 1") == crc(7, 4 * MiB)
    assert "graph launch on device 0 refused" in work.finish()


def test_an_old_driver_without_parameter_info_takes_the_fallback(
    mockcuda: Any, tmp_path: Path
) -> None:
    tiers = Tiers(device=10 * MiB, host=8 * MiB, disk=0)
    work = workload(mockcuda, tmp_path, tiers, MOCKCUDA_DRIVER_VERSION="12030")
    for i in range(1, 4):
        work.ok(f"alloc {i} {4 * MiB}")
        work.ok(f"fillx {i} {i}")  # `extra` carries its own layout: paged by allocation
    assert work.do("fill 1 5") == "err 2"  # kernelParams without a layout: all, 14 for 10
    work.ok("free 3")
    work.ok("fill 1 5")
    assert work.ok("sum 1") == crc(5, 4 * MiB)
    assert "refused" in work.finish()


def test_exported_memory_is_never_paged(mockcuda: Any, tmp_path: Path) -> None:
    work = workload(mockcuda, tmp_path, Tiers(device=6 * MiB, host=8 * MiB, disk=0))
    work.ok(f"alloc 1 {4 * MiB}")
    work.do("ipc 1")  # VMM-backed memory cannot be exported by the legacy API; pinned anyway
    assert work.do(f"alloc 2 {4 * MiB}") == "err 2"  # 1 cannot be evicted to make room
    assert work.finish() == ""


def test_a_full_disk_is_a_clean_oom_and_loses_nothing(mockcuda: Any, tmp_path: Path) -> None:
    # A disk tier larger than any disk: reserving its file fails as on a full one (ENOSPC).
    tiers = Tiers(device=6 * MiB, host=8 * MiB, disk=1 << 50)
    work = workload(mockcuda, tmp_path, tiers)
    for i in (1, 2):
        work.ok(f"alloc {i} {4 * MiB}")
        work.ok(f"fill {i} {i}")
    assert work.do(f"alloc 3 {4 * MiB}") == "err 2"  # VRAM and host full, the disk refuses
    assert work.ok("download 2") == crc(2, 4 * MiB)  # still in VRAM
    work.ok("free 2")
    assert work.ok("download 1") == crc(1, 4 * MiB)  # still on the host, and back
    assert work.ok("sum 1") == crc(1, 4 * MiB)
    assert "disk tier: cannot reserve" in work.finish()
    assert list((tmp_path / "spill-w").iterdir()) == []


def test_device_memory_refused_during_a_page_in_is_a_clean_error(
    mockcuda: Any, tmp_path: Path
) -> None:
    # Three physical chunks are made (the output's slab, then allocation 1's two); allocation 2
    # reuses the handles evicted to make room for it, and then no more can be made.
    tiers = Tiers(device=6 * MiB, host=8 * MiB, disk=0)
    work = workload(mockcuda, tmp_path, tiers, MOCKCUDA_FAIL_MEMCREATE_AFTER="3")
    for i in (1, 2):
        work.ok(f"alloc {i} {4 * MiB}")
        work.ok(f"fill {i} {i}")
    work.ok("free 2")
    assert work.do("fill 1 9") == "err 2"  # 1 is on the host and cannot come back
    assert work.do("sync") == "ok"  # the context is fine: the launch never ran
    held = slot(tmp_path / "region-w")
    assert held["host_bytes"] == sum(held["bytes"].values())  # every byte kept on the host
    assert "refused" in work.finish()


def test_a_killed_worker_leaves_no_files_and_its_slot_goes(mockcuda: Any, tmp_path: Path) -> None:
    work = workload(mockcuda, tmp_path, Tiers(device=4 * MiB, host=0, disk=16 * MiB))
    for i in range(1, 4):
        work.ok(f"alloc {i} {4 * MiB}")
        work.ok(f"fill {i} {i}")
    assert slot(tmp_path / "region-w")["disk_bytes"] > 0
    os.kill(work.process.pid, signal.SIGKILL)
    work.process.wait(timeout=60)
    work.finish()
    assert list((tmp_path / "spill-w").iterdir()) == []
    region = ShmRegion.open(tmp_path / "region-w")
    assert region.reap() == 1
    assert region.snapshot()["slots"] == []


def test_two_workers_on_one_gpu_each_twice_oversubscribed(mockcuda: Any, tmp_path: Path) -> None:
    tiers = Tiers(device=8 * MiB, host=12 * MiB, disk=0)
    first = workload(mockcuda, tmp_path, tiers, name="a")
    second = workload(mockcuda, tmp_path, tiers, name="b")
    for i in range(1, 5):  # 16 MiB each for 8 MiB of VRAM each
        for work, base in ((first, 10), (second, 20)):
            work.ok(f"alloc {i} {4 * MiB}")
            work.ok(f"fill {i} {base + i}")
        assert mapped_device_bytes(mockcuda, tmp_path) <= 2 * tiers.device
    for name in ("a", "b"):
        held = slot(tmp_path / f"region-{name}")
        in_vram = sum(held["bytes"].values()) - held["host_bytes"] - held["disk_bytes"]
        assert in_vram <= tiers.device
    for i in range(1, 5):
        assert first.ok(f"sum {i}") == crc(10 + i, 4 * MiB)
        assert second.ok(f"sum {i}") == crc(20 + i, 4 * MiB)
    assert first.finish() == ""
    assert second.finish() == ""


def test_threads_never_see_their_memory_evicted_between_page_in_and_launch(
    mockcuda: Any, tmp_path: Path
) -> None:
    # Eight threads, each with its own chunk and stream, for a VRAM budget that holds five of
    # them (and their outputs' slab): every launch pages in while others evict.
    work = workload(mockcuda, tmp_path, Tiers(device=12 * MiB, host=16 * MiB, disk=0))
    work.ok(f"threads 8 20 {3 * MiB // 2}")
    held = slot(tmp_path / "region-w")
    assert held["pages_evicted"] > 0
    assert held["pages_resumed"] > 0
    assert work.finish() == ""


def test_chunks_are_the_granularity(mockcuda: Any, tmp_path: Path) -> None:
    work = workload(mockcuda, tmp_path, Tiers(device=8 * MiB, host=8 * MiB, disk=0))
    work.ok(f"alloc 1 {CHUNK + 1}")  # two chunks, charged whole
    assert slot(tmp_path / "region-w")["bytes"]["device"] == 2 * CHUNK + CHUNK  # + the slab
    assert work.finish() == ""
