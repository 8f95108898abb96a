"""What this host offers besides its GPUs: CPUs, memory, and the disk VRAM may spill to."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tensorfusion.errors import ConfigError
from tensorfusion.scheduler.fleet_generator import HostResources

MEMINFO = Path("/proc/meminfo")


def memory_bytes(meminfo: Path = MEMINFO) -> int:
    """Physical memory (MemTotal), in bytes."""
    for line in meminfo.read_text(encoding="ascii").splitlines():
        key, _, value = line.partition(":")
        if key == "MemTotal":
            amount, _, unit = value.strip().partition(" ")
            # The kernel writes "kB" but means KiB.
            return int(amount) * (1024 if unit == "kB" else 1)
    raise ConfigError(str(meminfo), "has no MemTotal line")


def disk_bytes(path: Path) -> int:
    """Size of the filesystem holding `path` (or, before it exists, its nearest parent)."""
    existing = path.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    return shutil.disk_usage(existing).total


def host_resources(state_dir: Path) -> HostResources:
    """This host, all of it allocatable: on one machine there is no kubelet to reserve for."""
    cpus = os.cpu_count() or 1
    memory = memory_bytes()
    return HostResources(
        cpu_cores=cpus,
        allocatable_cpu=cpus,
        memory_bytes=memory,
        allocatable_memory=memory,
        disk_bytes=disk_bytes(state_dir),
    )
