"""The objects that describe a host (from its NVML devices) or a fleet file, and their
registration in the store: idempotent, never touching pods or allocation fields."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tensorfusion.agent.discovery import (
    DEFAULT_POOL,
    RegisterReport,
    discover_nvml,
    fleet_objects,
    host_objects,
    register,
)
from tensorfusion.agent.nvml import NvmlDevice
from tensorfusion.api import annotations as keys
from tensorfusion.api.gpu_links import (
    DEFAULT_POOL_ANNOTATION,
    HOSTNAME_LABEL,
    OWNER_LABEL,
    POOL_LABEL,
)
from tensorfusion.errors import ConfigError, FleetError
from tensorfusion.scheduler.fleet import fleet_problems
from tensorfusion.scheduler.fleet_generator import HostResources, generate_fleet
from tensorfusion.scheduler.loop import SchedulingLoop
from tensorfusion.scheduler.simulate import profile_for, simulate
from tensorfusion.store.local import LocalStore

GIB = 1 << 30
HOST = HostResources(
    cpu_cores=32,
    allocatable_cpu=32,
    memory_bytes=256 * GIB,
    allocatable_memory=256 * GIB,
    disk_bytes=2000 * GIB,
)
H100 = "NVIDIA H100 80GB HBM3"


def _devices(*names: str, nvlink: bool = False) -> list[NvmlDevice]:
    count = len(names)
    return [
        NvmlDevice(
            index=i,
            uuid=f"GPU-{i:04d}",
            name=name,
            memory_bytes=81559 * (1 << 20),
            numa_node=i * 2 // count,
            nvlink_peers=tuple(j for j in range(count) if j != i) if nvlink else (),
        )
        for i, name in enumerate(names)
    ]


def _by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] == kind]


@pytest.fixture
def store() -> Iterator[LocalStore]:
    with LocalStore(":memory:") as opened:
        yield opened


def test_a_host_is_a_pool_node_gpu_node_and_its_gpus() -> None:
    objects = host_objects("box", _devices(H100, H100, nvlink=True), HOST)
    assert [obj["kind"] for obj in objects] == ["GPUPool", "Node", "GPUNode", "GPU", "GPU"]
    assert fleet_problems(objects) == []
    pool, node, gpu_node, first, second = objects
    assert pool["metadata"] == {
        "name": DEFAULT_POOL,
        "annotations": {DEFAULT_POOL_ANNOTATION: "true"},
    }
    assert node["metadata"]["labels"] == {HOSTNAME_LABEL: "box"}
    assert node["status"]["allocatable"] == {
        "cpu": "32",
        "memory": "256Gi",
        "nvidia.com/gpu": "2",
        "pods": "110",
        "ephemeral-storage": "2000Gi",
    }
    assert gpu_node["metadata"]["labels"] == {OWNER_LABEL: DEFAULT_POOL}
    assert gpu_node["status"]["nodeInfo"] == {
        "hostname": "box",
        "gpuModel": "H100",
        "gpuCount": 2,
        "ramSize": "256Gi",
        "dataDiskSize": "2000Gi",
    }
    assert gpu_node["status"]["totalTFlops"] == "1978"
    assert gpu_node["status"]["totalVRAM"] == f"{2 * 81559}Mi"
    assert first["metadata"] == {
        "name": "box-gpu-0",
        "labels": {OWNER_LABEL: "box", POOL_LABEL: DEFAULT_POOL},
    }
    assert first["status"] == {
        "phase": "Running",
        "vendor": "NVIDIA",
        "gpuModel": "H100",
        "capacity": {"tflops": "989", "vram": "81559Mi"},
        "uuid": "GPU-0000",
        "index": 0,
        "numaNode": 0,
        "nodeSelector": {HOSTNAME_LABEL: "box"},
        "nvlinkPeers": ["box-gpu-1"],
        "usedBy": "tensor-fusion",
    }
    assert (second["status"]["numaNode"], second["status"]["nvlinkPeers"]) == (1, ["box-gpu-0"])


def test_virtual_capacity_follows_the_default_oversubscription() -> None:
    pool, *_ = host_objects("box", _devices("NVIDIA L4"), HOST)
    # tflopsOversellRatio 500; VRAM +50% to host memory, +70% to disk (both within the host).
    assert pool["status"]["virtualTFlops"] == "605"
    vram = 81559 << 20
    assert pool["status"]["virtualVRAM"] == str(vram + vram * 50 // 100 + vram * 70 // 100)


def test_a_gpu_without_numa_information_has_no_numa_node() -> None:
    gpu = host_objects("box", [NvmlDevice(0, "GPU-1", "NVIDIA L4", GIB, None, ())], HOST)[-1]
    assert "numaNode" not in gpu["status"]
    assert fleet_problems([*host_objects("box", _devices("NVIDIA L4"), HOST)[:-1], gpu]) == []


def test_an_unknown_model_is_registered_but_not_schedulable(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level("WARNING", logger="tensorfusion.agent.discovery"):
        objects = host_objects("box", _devices(H100, "NVIDIA Mock GPU"), HOST)
    assert "GPU 1 (NVIDIA Mock GPU) is not in the model table" in caplog.text
    assert fleet_problems(objects) == []
    unknown = objects[-1]["status"]
    assert unknown["gpuModel"] == "NVIDIA Mock GPU"
    assert unknown["capacity"]["tflops"] == "0"
    assert unknown["phase"] == "Pending"
    assert "fleet file" in unknown["message"]
    assert _by_kind(objects, "GPUNode")[0]["status"]["nodeInfo"]["gpuModel"] == (
        "H100, NVIDIA Mock GPU"
    )


def test_the_scheduler_places_work_on_known_gpus_only(store: LocalStore) -> None:
    register(store, host_objects("box", _devices("NVIDIA Mock GPU", H100), HOST))
    loop = SchedulingLoop(store)
    loop.start()

    def pod(gpus: int) -> dict[str, Any]:
        annotations = {
            keys.TFLOPS_REQUEST: "10",
            keys.TFLOPS_LIMIT: "10",
            keys.VRAM_REQUEST: "1Gi",
            keys.VRAM_LIMIT: "1Gi",
        }
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"w{gpus}",
                "labels": {keys.ENABLED_LABEL: "true"},
                "annotations": annotations | {keys.GPU_COUNT: str(gpus)},
            },
            "spec": {"containers": [{"name": "main", "image": "x"}]},
        }

    one = simulate(profile_for(loop.profiles, pod(1)), loop.cluster, pod(1))
    assert (one["schedulable"], one["gpus"]) == (True, ["box-gpu-1"])
    two = simulate(profile_for(loop.profiles, pod(2)), loop.cluster, pod(2))
    assert two["schedulable"] is False


def test_a_node_name_must_be_a_dns_subdomain(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        discover_nvml("Big_Box", tmp_path)
    assert caught.value.field == "node name"


def test_a_fleet_files_objects_come_referred_first(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    fleet = generate_fleet(2, 2, "L4", 0.5)
    path.write_text(fleet.to_yaml())
    objects = fleet_objects(path)
    assert objects == list(fleet.documents())
    kinds = [obj["kind"] for obj in objects]
    assert kinds.index("GPUPool") < kinds.index("Node") < kinds.index("GPU") < kinds.index("Pod")


@pytest.mark.parametrize(
    ("text", "obj", "field"),
    [
        ("kind: Node\nmetadata: [\n", "line 3", ""),
        ("kind: Gadget\nmetadata: {name: x}\n", "document 1", "kind"),
        (
            "apiVersion: tensor-fusion.ai/v1\nkind: GPU\nmetadata:\n  name: g\n"
            "  labels: {tensor-fusion.ai/owner: nowhere}\n"
            "status: {capacity: {tflops: '10', vram: 1Gi}}\n",
            "GPU/g",
            f"metadata.labels[{OWNER_LABEL!r}]",
        ),
        (
            "apiVersion: tensor-fusion.ai/v1\nkind: GPUPool\nmetadata: {name: p}\n"
            "spec: {capacityConfig: {oversubscription: {tflopsOversellRatio: 5}}}\n",
            "GPUPool/p",
            "spec.capacityConfig.oversubscription.tflopsOversellRatio",
        ),
    ],
)
def test_a_bad_fleet_file_names_object_and_field(
    tmp_path: Path, text: str, obj: str, field: str
) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(text)
    with pytest.raises(FleetError) as caught:
        fleet_objects(path)
    assert (caught.value.obj, caught.value.field) == (obj, field)


def test_a_missing_fleet_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    with pytest.raises(FleetError) as caught:
        fleet_objects(path)
    assert caught.value.obj == str(path)
    assert "cannot read" in caught.value.message


def _outcomes(report: RegisterReport) -> tuple[int, int, int]:
    """How many objects were created, updated and left unchanged."""
    return report.created, report.updated, report.unchanged


def test_registering_twice_changes_nothing(store: LocalStore) -> None:
    objects = list(generate_fleet(2, 2, "H100", 0.5).documents())
    pods = sum(obj["kind"] == "Pod" for obj in objects)
    first = register(store, objects)
    assert first == RegisterReport(nodes=2, gpus=4, pools=1, pods=pods, created=len(objects))
    assert str(first) == f"registered 2 nodes, 4 GPUs, 1 pool, {pods} pods: {len(objects)} created"
    stored = {obj["metadata"]["uid"]: obj for obj in store.list("GPU") + store.list("Pod")}
    version = store.list_with_version("GPU")[1]
    again = register(store, objects)
    assert _outcomes(again) == (0, 0, len(objects))
    assert str(again).endswith(f": {len(objects)} unchanged")
    assert store.list_with_version("GPU")[1] == version
    assert store.events_since(version) == []
    assert {obj["metadata"]["uid"]: obj for obj in store.list("GPU") + store.list("Pod")} == stored


def test_changed_hardware_is_updated_and_allocations_kept(store: LocalStore) -> None:
    objects = list(generate_fleet(1, 2, "H100", 0.5).documents())
    register(store, objects)
    gpu_name = _by_kind(objects, "GPU")[0]["metadata"]["name"]
    store.patch("GPU", gpu_name, {"status": {"available": {"tflops": "1", "vram": "1Gi"}}})
    changed = copy.deepcopy(objects)
    gpu = _by_kind(changed, "GPU")[0]
    gpu["status"]["capacity"]["tflops"] = "900"
    gpu["status"]["available"] = {"tflops": "900", "vram": "80Gi"}
    gpu["metadata"]["labels"]["team"] = "vision"
    report = register(store, changed)
    assert _outcomes(report) == (0, 1, len(objects) - 1)
    stored = store.get("GPU", gpu_name)
    assert stored["status"]["capacity"]["tflops"] == "900"
    assert stored["status"]["available"] == {"tflops": "1", "vram": "1Gi"}
    assert stored["metadata"]["labels"]["team"] == "vision"


def test_removed_labels_and_spec_are_removed(store: LocalStore) -> None:
    objects = host_objects("box", _devices(H100), HOST)
    register(store, objects)
    changed = copy.deepcopy(objects)
    del changed[0]["metadata"]["annotations"]
    del changed[2]["spec"]
    assert _outcomes(register(store, changed)) == (0, 2, len(objects) - 2)
    assert "annotations" not in store.get("GPUPool", DEFAULT_POOL)["metadata"]
    assert "spec" not in store.get("GPUNode", "box")


def test_stored_pods_are_left_alone(store: LocalStore) -> None:
    objects = list(generate_fleet(1, 2, "H100", 1.0).documents())
    register(store, objects)
    pod = _by_kind(objects, "Pod")[0]
    name = pod["metadata"]["name"]
    store.patch("Pod", name, {"status": {"phase": "Succeeded"}})
    changed = copy.deepcopy(objects)
    _by_kind(changed, "Pod")[0]["metadata"]["annotations"][keys.TFLOPS_LIMIT] = "1"
    assert _outcomes(register(store, changed)) == (0, 0, len(objects))
    stored = store.get("Pod", name)
    assert stored["status"]["phase"] == "Succeeded"
    assert stored["metadata"]["annotations"] == pod["metadata"]["annotations"]


@pytest.mark.parametrize(
    ("obj", "field"),
    [
        ({"kind": "Gadget", "metadata": {"name": "x"}}, "kind"),
        ({"metadata": {"name": "x"}}, "kind"),
        ({"apiVersion": "v1", "kind": "Node", "metadata": {}}, "metadata.name"),
    ],
)
def test_objects_that_cannot_be_registered_are_named(
    store: LocalStore, obj: dict[str, Any], field: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        register(store, [obj])
    assert caught.value.field == field


def test_yaml_of_discovered_objects_loads_as_a_fleet(tmp_path: Path) -> None:
    path = tmp_path / "host.yaml"
    path.write_text(yaml.safe_dump_all(host_objects("box", _devices(H100, H100), HOST)))
    assert len(fleet_objects(path)) == 5
