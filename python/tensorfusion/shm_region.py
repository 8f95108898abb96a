"""The node agent's typed view of a worker's shared region (cpp/include/tf/shm.h).

The region itself is native (`tensorfusion._native.ShmRegion`); this module turns its
lock-free snapshot into dataclasses. Each slot's fields come from one occupant (the native
reader checks the slot's incarnation around the read); the total is the worker-wide figure the
limit is enforced against.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from typing import Any

from tensorfusion._native import SHM_KINDS, ShmRegion


@dataclass(frozen=True)
class SlotUsage:
    index: int
    pid: int
    start_token: int
    bytes_by_kind: dict[str, int]
    launches: int
    throttled_launches: int
    busy_ns: int
    pages_evicted: int
    pages_resumed: int
    # Bytes of this process's VRAM paged out to pinned host memory and to disk.
    host_bytes: int
    disk_bytes: int

    @property
    def total_bytes(self) -> int:
        return sum(self.bytes_by_kind.values())


@dataclass(frozen=True)
class RegionSnapshot:
    layout_version: int
    worker: str
    generation: int
    slot_count: int
    vram_limit: int
    tflops_limit: float
    tflops_request: float
    gpu_peak_tflops: float
    host_limit: int
    disk_limit: int
    total_bytes: int
    members: int
    slots: tuple[SlotUsage, ...]


def _slot(raw: dict[str, Any]) -> SlotUsage:
    counters = {f.name: raw[f.name] for f in fields(SlotUsage) if f.name != "bytes_by_kind"}
    return SlotUsage(**counters, bytes_by_kind={kind: raw["bytes"][kind] for kind in SHM_KINDS})


def snapshot(region: ShmRegion) -> RegionSnapshot:
    raw = region.snapshot()
    header = {f.name: raw[f.name] for f in fields(RegionSnapshot) if f.name != "slots"}
    return RegionSnapshot(**header, slots=tuple(_slot(slot) for slot in raw["slots"]))


def read_region(path: str | os.PathLike[str], *, reap: bool = False) -> RegionSnapshot:
    """Opens the region at `path` and snapshots it, first freeing the slots of dead processes
    if `reap` (only meaningful when the caller shares the members' pid namespace)."""
    region = ShmRegion.open(path)
    if reap:
        region.reap()
    return snapshot(region)
