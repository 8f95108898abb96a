"""Workers' shared regions, on real region files: created with the pod's per-GPU limits, the
environment the shim reads, kept across calls, read back, and removed."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

from tensorfusion._native import ShmRegion
from tensorfusion.agent.regions import WorkerRegions
from tensorfusion.api.annotations import (
    COMPUTE_PERCENT_LIMIT,
    COMPUTE_PERCENT_REQUEST,
    GPU_IDS,
    TFLOPS_LIMIT,
    TFLOPS_REQUEST,
    VRAM_LIMIT,
    VRAM_REQUEST,
)
from tensorfusion.errors import AnnotationError, ConfigError, FleetError
from tensorfusion.shim import SHIM_ENV
from tensorfusion.shm_region import read_region

from .conftest import TIMEOUT, Processes, gpu, worker

GIB = 1 << 30
USAGE_KEYS = (
    "vram",
    "processes",
    "launches",
    "throttledLaunches",
    "busyNs",
    "pagesEvicted",
    "pagesResumed",
)
NO_USAGE = dict.fromkeys(USAGE_KEYS, 0) | {"vramTiers": {"device": 0, "host": 0, "disk": 0}}
GPUS = [gpu("node-0-gpu-0", 0), gpu("node-0-gpu-1", 1), gpu("node-0-gpu-2", 2, tflops="121")]


@pytest.fixture
def regions(tmp_path: Path) -> WorkerRegions:
    return WorkerRegions(tmp_path / "regions", slots=8)


def test_regions_carry_the_pods_limits_per_gpu(regions: WorkerRegions) -> None:
    pod = worker("train", gpu_ids="node-0-gpu-2,node-0-gpu-0")
    env = regions.prepare(pod, GPUS)
    directory = regions.root / "default/train"
    assert sorted(p.name for p in directory.iterdir()) == [
        "device-0",
        "device-1",
        "node-0-gpu-0.shm",
        "node-0-gpu-2.shm",
    ]
    first = read_region(directory / "node-0-gpu-2.shm")
    assert (first.worker, first.slot_count, first.members) == ("uid-train", 8, 0)
    assert (first.vram_limit, first.tflops_limit, first.tflops_request) == (8 * GIB, 100.0, 50.0)
    assert first.gpu_peak_tflops == 121.0
    assert read_region(directory / "node-0-gpu-0.shm").gpu_peak_tflops == 989.0
    assert env == {
        "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
        "CUDA_VISIBLE_DEVICES": "2,0",
        "TF_WORKER_NAME": "uid-train",
        "TF_SHM_PATH_0": str(directory / "node-0-gpu-2.shm"),
        "TF_VRAM_LIMIT_0": str(8 * GIB),
        "TF_TFLOPS_LIMIT_0": "100.0",
        "TF_GPU_PEAK_TFLOPS_0": "121.0",
        "TF_VRAM_HOST_LIMIT_0": "0",
        "TF_VRAM_DISK_LIMIT_0": "0",
        "TF_SHM_PATH_1": str(directory / "node-0-gpu-0.shm"),
        "TF_VRAM_LIMIT_1": str(8 * GIB),
        "TF_TFLOPS_LIMIT_1": "100.0",
        "TF_GPU_PEAK_TFLOPS_1": "989.0",
        "TF_VRAM_HOST_LIMIT_1": "0",
        "TF_VRAM_DISK_LIMIT_1": "0",
    }


def test_every_tf_variable_is_one_the_shim_reads(regions: WorkerRegions) -> None:
    env = regions.prepare(worker("train", gpu_ids="node-0-gpu-0,node-0-gpu-1"), GPUS)
    read = {variable.name: variable.per_device for variable in SHIM_ENV}
    for name in env:
        if not name.startswith("TF_"):
            continue
        base = re.sub(r"_\d+$", "", name)
        assert base in read, name
        assert read[base] == (base != name), name


def test_device_links_name_each_gpus_region_by_its_ordinal(regions: WorkerRegions) -> None:
    """The webhook's TF_SHM_PATH_<i> point at these links: the pod's i-th GPU in PCI bus
    order, as CUDA numbers the GPUs a container is given."""
    regions.prepare(worker("train", gpu_ids="node-0-gpu-2,node-0-gpu-0"), GPUS)
    directory = regions.root / "default/train"
    assert os.readlink(directory / "device-0") == "node-0-gpu-0.shm"
    assert os.readlink(directory / "device-1") == "node-0-gpu-2.shm"
    assert read_region(directory / "device-1").gpu_peak_tflops == 121.0
    # A link pointing elsewhere (left by an earlier layout) is set right.
    (directory / "device-0").unlink()
    (directory / "device-0").symlink_to("node-0-gpu-2.shm")
    regions.prepare(worker("train", gpu_ids="node-0-gpu-2,node-0-gpu-0"), GPUS)
    assert os.readlink(directory / "device-0") == "node-0-gpu-0.shm"


def test_percent_limits_are_shares_of_each_gpu(regions: WorkerRegions) -> None:
    pod = worker(
        "share",
        gpu_ids="node-0-gpu-2",
        annotations={COMPUTE_PERCENT_REQUEST: "10", COMPUTE_PERCENT_LIMIT: "50"},
    )
    for key in (TFLOPS_REQUEST, TFLOPS_LIMIT):
        del pod["metadata"]["annotations"][key]
    env = regions.prepare(pod, GPUS)
    region = read_region(env["TF_SHM_PATH_0"])
    assert (region.tflops_limit, region.tflops_request) == (60.5, 12.1)


def test_without_limits_a_worker_may_use_the_whole_gpu(regions: WorkerRegions) -> None:
    pod = worker("whole", gpu_ids="node-0-gpu-0")
    for key in (TFLOPS_REQUEST, TFLOPS_LIMIT, VRAM_REQUEST, VRAM_LIMIT):
        del pod["metadata"]["annotations"][key]
    region = read_region(regions.prepare(pod, GPUS)["TF_SHM_PATH_0"])
    assert (region.vram_limit, region.tflops_limit, region.tflops_request) == (80 * GIB, 989.0, 0.0)


def test_preparing_again_keeps_the_region_and_its_members(regions: WorkerRegions) -> None:
    pod = worker("train")
    path = regions.prepare(pod, GPUS)["TF_SHM_PATH_0"]
    region = ShmRegion.open(path)
    slot = region.join()
    assert region.try_charge(slot, "device", 1000)
    generation = read_region(path).generation
    regions.prepare(pod, GPUS)
    again = read_region(path)
    assert (again.members, again.total_bytes, again.generation) == (1, 1000, generation)
    region.leave(slot)


def test_changed_limits_are_set_on_the_live_region(regions: WorkerRegions) -> None:
    pod = worker("train")
    path = regions.prepare(pod, GPUS)["TF_SHM_PATH_0"]
    region = ShmRegion.open(path)
    slot = region.join()
    before = read_region(path).generation
    pod["metadata"]["annotations"][TFLOPS_LIMIT] = "200"
    regions.prepare(pod, GPUS)
    after = read_region(path)
    assert after.tflops_limit == 200.0
    assert after.generation > before
    assert after.members == 1
    region.leave(slot)


def test_a_corrupt_region_is_replaced(regions: WorkerRegions) -> None:
    path = regions.root / "default/train" / "node-0-gpu-0.shm"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a region" * 100)
    regions.prepare(worker("train"), GPUS)
    assert read_region(path).worker == "uid-train"


def test_a_region_left_by_an_earlier_worker_of_that_name_is_replaced(
    regions: WorkerRegions,
) -> None:
    earlier = worker("train")
    earlier["metadata"]["uid"] = "uid-earlier"
    path = regions.prepare(earlier, GPUS)["TF_SHM_PATH_0"]
    regions.prepare(worker("train"), GPUS)
    assert read_region(path).worker == "uid-train"


@pytest.mark.parametrize(
    ("gpu_ids", "fragment"),
    [
        (None, "not bound"),
        ("node-0-gpu-0,node-0-gpu-9", "'node-0-gpu-9', which is not registered"),
    ],
)
def test_gpus_the_pod_names_must_exist(
    regions: WorkerRegions, gpu_ids: str | None, fragment: str
) -> None:
    with pytest.raises(AnnotationError) as caught:
        regions.prepare(worker("train", gpu_ids=gpu_ids), GPUS)
    assert caught.value.key == GPU_IDS
    assert fragment in caught.value.message
    assert not regions.root.exists()  # not even the GPU that exists got a region


def test_a_malformed_limit_names_its_annotation(regions: WorkerRegions) -> None:
    pod = worker("train", annotations={VRAM_LIMIT: "lots"})
    with pytest.raises(AnnotationError) as caught:
        regions.prepare(pod, GPUS)
    assert caught.value.key == VRAM_LIMIT


@pytest.mark.parametrize(
    ("status", "field"),
    [
        ({"capacity": {"tflops": "0", "vram": "80Gi"}, "index": 0}, "status.capacity.tflops"),
        ({"capacity": {"tflops": "fast", "vram": "80Gi"}, "index": 0}, "status.capacity.tflops"),
        ({"capacity": {"vram": "80Gi"}, "index": 0}, "status.capacity.tflops"),
        ({"capacity": {"tflops": "989", "vram": "-1"}, "index": 0}, "status.capacity.vram"),
        ({"capacity": {"tflops": "989", "vram": "80Gi"}}, "status.index"),
        ({"capacity": {"tflops": "989", "vram": "80Gi"}, "index": True}, "status.index"),
        ({"capacity": {"tflops": "989", "vram": "80Gi"}, "index": -2}, "status.index"),
    ],
)
def test_a_gpu_without_usable_capacity_is_named(
    regions: WorkerRegions, status: dict[str, Any], field: str
) -> None:
    broken = gpu("node-0-gpu-0", 0)
    broken["status"] = status
    with pytest.raises(FleetError) as caught:
        regions.prepare(worker("train"), [broken])
    assert (caught.value.obj, caught.value.field) == ("GPU/node-0-gpu-0", field)


def test_a_name_too_long_for_a_directory_is_refused(regions: WorkerRegions) -> None:
    pod = worker("a" * 256)
    with pytest.raises(ConfigError) as caught:
        regions.prepare(pod, GPUS)
    assert caught.value.field == "metadata.name"


@pytest.mark.parametrize("slots", [0, 4097, True, 2.0])
def test_slot_counts_outside_the_layout_are_refused(tmp_path: Path, slots: Any) -> None:
    with pytest.raises(ConfigError) as caught:
        WorkerRegions(tmp_path, slots=slots)
    assert caught.value.field == "slots"


def test_no_usage_before_the_regions_exist(regions: WorkerRegions) -> None:
    pod = worker("train")
    assert regions.usage(pod) is None
    assert regions.live_members(pod) == set()


def test_usage_sums_the_workers_gpus(regions: WorkerRegions, processes: Processes) -> None:
    pod = worker("train", gpu_ids="node-0-gpu-0,node-0-gpu-1")
    env = regions.prepare(pod, GPUS)
    assert regions.usage(pod) == NO_USAGE
    first = processes.member(Path(env["TF_SHM_PATH_0"]), charge=3000)
    second = processes.member(Path(env["TF_SHM_PATH_1"]), charge=4000)
    # This process uses both GPUs: it counts once among the processes.
    own = [ShmRegion.open(env[f"TF_SHM_PATH_{i}"]) for i in (0, 1)]
    slots = [region.join() for region in own]
    own[1].add(slots[1], "throttled_launches", 2)
    own[1].add(slots[1], "busy_ns", 700)
    own[0].add(slots[0], "pages_evicted", 3)
    own[0].add(slots[0], "pages_resumed", 1)
    own[0].set_gauge(slots[0], "host_bytes", 1000)
    own[1].set_gauge(slots[1], "disk_bytes", 500)
    usage = regions.usage(pod)
    assert usage == {
        "vram": 7000,
        "processes": 3,
        "launches": 10,
        "throttledLaunches": 2,
        "busyNs": 700,
        "pagesEvicted": 3,
        "pagesResumed": 1,
        "vramTiers": {"device": 5500, "host": 1000, "disk": 500},
    }
    assert regions.live_members(pod) == {first.pid, second.pid, os.getpid()}
    for region, slot in zip(own, slots, strict=True):
        region.leave(slot)


def test_dead_members_are_reaped(regions: WorkerRegions, processes: Processes) -> None:
    pod = worker("train")
    path = Path(regions.prepare(pod, GPUS)["TF_SHM_PATH_0"])
    member = processes.member(path, charge=5000)
    assert regions.live_members(pod) == {member.pid}
    member.kill()
    member.wait(TIMEOUT)
    assert regions.live_members(pod) == set()
    usage = regions.usage(pod)
    assert usage is not None
    assert (usage["vram"], usage["processes"]) == (0, 0)


def test_an_unreadable_region_counts_as_empty(regions: WorkerRegions) -> None:
    pod = worker("train")
    path = Path(regions.prepare(pod, GPUS)["TF_SHM_PATH_0"])
    path.write_bytes(b"garbage" * 200)
    assert regions.live_members(pod) == set()
    assert regions.usage(pod) == NO_USAGE


def test_remove_deletes_files_and_directory(regions: WorkerRegions) -> None:
    pod = worker("train", gpu_ids="node-0-gpu-0,node-0-gpu-1")
    regions.prepare(pod, GPUS)
    regions.remove(pod)
    assert not (regions.root / "default/train").exists()
    assert regions.usage(pod) is None
    regions.remove(pod)  # already gone: fine


def test_orphans_are_removed_and_nothing_else(regions: WorkerRegions) -> None:
    kept, gone = worker("kept"), worker("gone")
    regions.prepare(kept, GPUS)
    regions.prepare(gone, GPUS)
    foreign = regions.root / "default/notes"
    foreign.mkdir()
    (foreign / "readme.txt").write_text("not a region")
    (regions.root / "stray.shm").write_bytes(b"")
    assert regions.remove_orphans(lambda: [kept]) == ["default/gone"]
    assert sorted(p.name for p in regions.root.iterdir()) == ["default", "stray.shm"]
    assert sorted(p.name for p in (regions.root / "default").iterdir()) == ["kept", "notes"]
    assert regions.usage(kept) is not None


def test_no_root_no_orphans(tmp_path: Path) -> None:
    assert WorkerRegions(tmp_path / "missing").remove_orphans(list) == []
