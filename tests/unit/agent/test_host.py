"""The host's memory and disk as the agent reports them."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tensorfusion.agent.host import disk_bytes, host_resources, memory_bytes
from tensorfusion.errors import ConfigError


def test_memory_is_memtotal_in_bytes(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemFree:  100 kB\nMemTotal:       16384 kB\nMemAvailable: 9 kB\n")
    assert memory_bytes(meminfo) == 16384 * 1024


def test_this_hosts_memory_is_read() -> None:
    total = memory_bytes()
    pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    # /proc/meminfo's MemTotal leaves out what the kernel reserved at boot.
    assert pages // 2 < total <= pages


def test_meminfo_without_memtotal_is_named(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemFree: 100 kB\n")
    with pytest.raises(ConfigError) as caught:
        memory_bytes(meminfo)
    assert caught.value.field == str(meminfo)


def test_disk_of_a_state_dir_not_created_yet(tmp_path: Path) -> None:
    assert disk_bytes(tmp_path / "state" / "deeper") == shutil.disk_usage(tmp_path).total


def test_the_whole_host_is_allocatable(tmp_path: Path) -> None:
    host = host_resources(tmp_path)
    assert host.cpu_cores == host.allocatable_cpu == os.cpu_count()
    assert host.memory_bytes == host.allocatable_memory == memory_bytes()
    assert host.disk_bytes == shutil.disk_usage(tmp_path).total
