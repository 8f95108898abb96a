"""Workers' VRAM beyond their device share: the budgets their regions carry from the pool, and
the spill directories for the disk tier, made with the regions and cleaned up after killed
processes and gone workers."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tensorfusion.agent.regions import WorkerRegions
from tensorfusion.api.annotations import VRAM_LIMIT
from tensorfusion.api.gpu_links import POOL_LABEL
from tensorfusion.shm_region import read_region

from .conftest import gpu, worker

GIB = 1 << 30


def pooled_gpu(name: str, index: int, pool: str) -> dict[str, Any]:
    found = gpu(name, index)
    found["metadata"]["labels"][POOL_LABEL] = pool
    return found


def pool(name: str, host: int, disk: int) -> dict[str, Any]:
    over = {"vramExpandToHostMem": host, "vramExpandToHostDisk": disk}
    return {
        "kind": "GPUPool",
        "metadata": {"name": name},
        "spec": {"capacityConfig": {"oversubscription": over}},
    }


@pytest.fixture
def regions(tmp_path: Path) -> WorkerRegions:
    return WorkerRegions(tmp_path / "regions", slots=8, spill_root=tmp_path / "spill")


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_regions_carry_the_pools_share_of_each_tier(regions: WorkerRegions) -> None:
    # A 12 GiB limit on a pool expanding 50% to memory and 50% to disk: 6 + 3 + 3.
    pod = worker("train", annotations={VRAM_LIMIT: "12Gi"})
    gpus = [pooled_gpu("node-0-gpu-0", 0, "pool-a")]
    env = regions.prepare(pod, gpus, {"pool-a": pool("pool-a", 50, 50)})
    region = read_region(env["TF_SHM_PATH_0"])
    assert region.vram_limit == 12 * GIB
    assert (region.host_limit, region.disk_limit) == (3 * GIB, 3 * GIB)
    assert (env["TF_VRAM_HOST_LIMIT_0"], env["TF_VRAM_DISK_LIMIT_0"]) == (str(3 * GIB),) * 2


def test_a_changed_pool_changes_the_regions_budgets(regions: WorkerRegions) -> None:
    pod = worker("train")
    gpus = [pooled_gpu("node-0-gpu-0", 0, "pool-a")]
    path = regions.prepare(pod, gpus, {"pool-a": pool("pool-a", 100, 0)})["TF_SHM_PATH_0"]
    before = read_region(path)
    assert (before.host_limit, before.disk_limit) == (4 * GIB, 0)
    regions.prepare(pod, gpus, {"pool-a": pool("pool-a", 0, 0)})
    after = read_region(path)
    assert (after.host_limit, after.disk_limit) == (0, 0)
    assert after.generation > before.generation


def test_a_gpu_of_an_unknown_pool_pages_nothing(regions: WorkerRegions) -> None:
    env = regions.prepare(worker("train"), [pooled_gpu("node-0-gpu-0", 0, "gone")], {})
    region = read_region(env["TF_SHM_PATH_0"])
    assert (region.host_limit, region.disk_limit) == (0, 0)


def test_each_worker_gets_a_spill_directory_anyone_can_write(regions: WorkerRegions) -> None:
    env = regions.prepare(worker("train"), [gpu("node-0-gpu-0", 0)])
    directory = Path(env["TF_VRAM_SPILL_DIR"])
    assert directory == regions.spill_root / "default" / "train"  # type: ignore[operator]
    assert stat.S_IMODE(directory.stat().st_mode) == 0o1777


def test_without_a_spill_root_no_directory_is_named(tmp_path: Path) -> None:
    env = WorkerRegions(tmp_path).prepare(worker("train"), [gpu("node-0-gpu-0", 0)])
    assert "TF_VRAM_SPILL_DIR" not in env


def test_files_of_dead_processes_are_removed_and_live_ones_kept(regions: WorkerRegions) -> None:
    env = regions.prepare(worker("train"), [gpu("node-0-gpu-0", 0)])
    directory = Path(env["TF_VRAM_SPILL_DIR"])
    dead = directory / f"tf-spill-{dead_pid()}-0-a1B2c3"
    live = directory / f"tf-spill-{os.getpid()}-0-x9Y8z7"
    dead.write_bytes(b"\0" * 4096)
    live.write_bytes(b"\0" * 4096)
    assert regions.remove_dead_spill_files() == [dead]
    assert not dead.exists()
    assert live.exists()


def test_a_gone_workers_spill_directory_goes_with_its_regions(regions: WorkerRegions) -> None:
    pod = worker("train")
    directory = Path(regions.prepare(pod, [gpu("node-0-gpu-0", 0)])["TF_VRAM_SPILL_DIR"])
    (directory / f"tf-spill-{os.getpid()}-0-AbCdEf").write_bytes(b"x")
    regions.remove(pod)
    assert not directory.exists()
    assert not directory.parent.exists()  # its namespace held no other worker


def test_spill_directories_of_vanished_workers_are_removed_and_nothing_else(
    regions: WorkerRegions,
) -> None:
    kept, gone = worker("kept"), worker("gone")
    gpus = [gpu("node-0-gpu-0", 0)]
    kept_dir = Path(regions.prepare(kept, gpus)["TF_VRAM_SPILL_DIR"])
    gone_dir = Path(regions.prepare(gone, gpus)["TF_VRAM_SPILL_DIR"])
    (gone_dir / f"tf-spill-{dead_pid()}-1-q1w2e3").write_bytes(b"x")
    foreign = kept_dir.parent / "notes"
    foreign.mkdir()
    (foreign / "todo.txt").write_text("keep me")
    assert regions.remove_orphans(lambda: [kept]) == ["default/gone"]
    assert kept_dir.is_dir()
    assert not gone_dir.exists()
    assert (foreign / "todo.txt").read_text() == "keep me"
