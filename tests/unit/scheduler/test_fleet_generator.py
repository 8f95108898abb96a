"""Generated fleets: consistent, deterministic, realistic, and obeying the capacity rule
(checked here from the objects alone, not from the generator's own bookkeeping)."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tensorfusion.api.annotations import read_workload_request
from tensorfusion.api.quantity import Quantity
from tensorfusion.errors import ConfigError
from tensorfusion.scheduler.fleet import Fleet, fleet_problems, load_fleet
from tensorfusion.scheduler.fleet_generator import generate_fleet
from tensorfusion.scheduler.gpu_models import GIB, MODELS

PREFIX = "tensor-fusion.ai/"


def _q(text: str) -> Quantity:
    return Quantity.parse(text)


def capacity_violations(fleet: Fleet) -> list[str]:
    """Every breach of the capacity rule: per GPU, requests within the physical capacity and
    limits within the virtual one (TFLOPS x ratio; VRAM expanded by the pool's percentages,
    each capped by the GPU's share of its node's RAM and disk); per node, the containers'
    CPU and memory within the allocatable amounts."""
    (pool,) = fleet.pools
    over = pool["spec"]["capacityConfig"]["oversubscription"]
    node_info = {n["metadata"]["name"]: n["status"]["nodeInfo"] for n in fleet.gpu_nodes}
    allocatable = {n["metadata"]["name"]: n["status"]["allocatable"] for n in fleet.nodes}
    gpus = {g["metadata"]["name"]: g for g in fleet.gpus}
    per_node = Counter(g["metadata"]["labels"][f"{PREFIX}owner"] for g in fleet.gpus)
    sums: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    node_use: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for pod in fleet.pods:
        notes = pod["metadata"]["annotations"]
        amounts = (
            _q(notes[f"{PREFIX}tflops-request"]).milli_value(),
            _q(notes[f"{PREFIX}vram-request"]).value(),
            _q(notes[f"{PREFIX}tflops-limit"]).milli_value(),
            _q(notes[f"{PREFIX}vram-limit"]).value(),
        )
        for gpu in notes[f"{PREFIX}gpu-ids"].split(","):
            sums[gpu] = [total + amount for total, amount in zip(sums[gpu], amounts, strict=True)]
        requests = pod["spec"]["containers"][0]["resources"]["requests"]
        use = node_use[pod["spec"]["nodeName"]]
        use[0] += _q(requests["cpu"]).milli_value()
        use[1] += _q(requests["memory"]).value()
        use[2] += 1
    problems = []
    for name, (tflops_req, vram_req, tflops_lim, vram_lim) in sums.items():
        gpu = gpus[name]
        node = gpu["metadata"]["labels"][f"{PREFIX}owner"]
        tflops = _q(gpu["status"]["capacity"]["tflops"]).milli_value()
        vram = _q(gpu["status"]["capacity"]["vram"]).value()
        ram = _q(node_info[node]["ramSize"]).value() // per_node[node]
        disk = _q(node_info[node]["dataDiskSize"]).value() // per_node[node]
        virtual_vram = (
            vram
            + min(vram * over["vramExpandToHostMem"] // 100, ram)
            + min(vram * over["vramExpandToHostDisk"] // 100, disk)
        )
        if tflops_req > tflops:
            problems.append(f"{name}: TFLOPS requests {tflops_req} > {tflops}")
        if vram_req > vram:
            problems.append(f"{name}: VRAM requests {vram_req} > {vram}")
        if tflops_lim > tflops * over["tflopsOversellRatio"] // 100:
            problems.append(f"{name}: TFLOPS limits {tflops_lim} beyond virtual capacity")
        if vram_lim > virtual_vram:
            problems.append(f"{name}: VRAM limits {vram_lim} > {virtual_vram}")
    for node, (cpu, memory, pods) in node_use.items():
        if cpu > _q(allocatable[node]["cpu"]).milli_value():
            problems.append(f"{node}: CPU requests exceed allocatable")
        if memory > _q(allocatable[node]["memory"]).value():
            problems.append(f"{node}: memory requests exceed allocatable")
        if pods > int(allocatable[node]["pods"]):
            problems.append(f"{node}: more pods than allowed")
    return problems


def _requested_vram(fleet: Fleet) -> int:
    total = 0
    for pod in fleet.pods:
        notes = pod["metadata"]["annotations"]
        count = len(notes[f"{PREFIX}gpu-ids"].split(","))
        total += _q(notes[f"{PREFIX}vram-request"]).value() * count
    return total


# --- the capacity rule -------------------------------------------------------------------


@pytest.mark.parametrize("model", [model.name for model in MODELS])
@pytest.mark.parametrize("fill", [0.3, 1.0])
def test_every_model_obeys_the_capacity_rule(model: str, fill: float) -> None:
    fleet = generate_fleet(6, 8, model, fill, seed=3)
    assert capacity_violations(fleet) == []
    assert fleet_problems(list(fleet.documents())) == []


@settings(max_examples=40, deadline=None)
@given(
    nodes=st.integers(1, 6),
    gpus=st.integers(1, 16),
    model=st.sampled_from([model.name for model in MODELS]),
    fill=st.floats(0, 1),
    seed=st.integers(0, 2**32),
)
def test_any_fleet_obeys_the_capacity_rule(
    nodes: int, gpus: int, model: str, fill: float, seed: int
) -> None:
    fleet = generate_fleet(nodes, gpus, model, fill, seed=seed)
    assert capacity_violations(fleet) == []
    vram = fleet.gpus[0]["status"]["capacity"]["vram"]
    total = nodes * gpus * _q(vram).value()
    # Requests are in eighths of a GPU, so the fill is met to within one eighth.
    assert abs(_requested_vram(fleet) - fill * total) <= _q(vram).value() / 8 + 1


def test_the_check_catches_a_breach() -> None:
    fleet = generate_fleet(2, 2, "L4", 1.0, seed=1)
    assert capacity_violations(fleet) == []
    notes = fleet.pods[0]["metadata"]["annotations"]
    notes[f"{PREFIX}vram-limit"] = "500Gi"
    notes[f"{PREFIX}tflops-request"] = "1000"
    gpu = notes[f"{PREFIX}gpu-ids"].split(",")[0]
    found = capacity_violations(fleet)
    assert any(line.startswith(f"{gpu}: VRAM limits") for line in found)
    assert any(line.startswith(f"{gpu}: TFLOPS requests") for line in found)


def test_a_full_fleet_requests_every_gpu_entirely() -> None:
    fleet = generate_fleet(4, 8, "H100", 1.0, seed=9)
    assert _requested_vram(fleet) == 4 * 8 * 80 * GIB
    for gpu in fleet.gpus:
        assert gpu["status"]["available"]["vram"] == "0"


def test_an_empty_fleet_has_no_pods() -> None:
    fleet = generate_fleet(3, 4, "L40S")
    assert fleet.pods == []
    assert all(g["status"]["available"] == g["status"]["capacity"] for g in fleet.gpus)


# --- consistency and determinism ---------------------------------------------------------


def test_same_arguments_same_fleet() -> None:
    first = generate_fleet(5, 4, "A100-80", 0.7, seed=11)
    assert generate_fleet(5, 4, "A100-80", 0.7, seed=11).to_yaml() == first.to_yaml()
    other = generate_fleet(5, 4, "A100-80", 0.7, seed=12)
    assert other.pods != first.pods
    assert other.gpus[0]["status"]["uuid"] != first.gpus[0]["status"]["uuid"]


def test_the_yaml_loads_back_unchanged() -> None:
    fleet = generate_fleet(3, 8, "H200", 0.5, seed=2, pool="training")
    assert load_fleet("generated.yaml", fleet.to_yaml()) == fleet


# --- the objects -------------------------------------------------------------------------


def test_pool_is_the_default_with_default_oversubscription() -> None:
    fleet = generate_fleet(2, 4, "H100", pool="inference")
    (pool,) = fleet.pools
    assert pool["metadata"]["name"] == "inference"
    assert pool["metadata"]["annotations"] == {f"{PREFIX}is-default-pool": "true"}
    assert pool["spec"]["capacityConfig"]["oversubscription"] == {
        "tflopsOversellRatio": 500,
        "vramExpandToHostMem": 50,
        "vramExpandToHostDisk": 70,
    }
    assert pool["status"]["totalGPUs"] == 8
    assert pool["status"]["totalNodes"] == 2
    assert _q(pool["status"]["totalTFlops"]) == _q("7912")
    assert _q(pool["status"]["totalVRAM"]).value() == 640 * GIB


def test_nodes_look_like_cloud_gpu_nodes() -> None:
    fleet = generate_fleet(6, 4, "H100")
    names = [node["metadata"]["name"] for node in fleet.nodes]
    assert names == [f"node-0000{i}" for i in range(6)]
    zones = Counter(n["metadata"]["labels"]["topology.kubernetes.io/zone"] for n in fleet.nodes)
    assert len(zones) == 3
    assert set(zones.values()) == {2}
    node = fleet.nodes[0]
    labels = node["metadata"]["labels"]
    assert labels["kubernetes.io/hostname"] == "node-00000"
    assert labels["node.kubernetes.io/instance-type"] == "p5.48xlarge"
    assert labels["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3"
    # Half of an 8-GPU p5.48xlarge: 96 of 192 CPUs, 1 TiB of 2 TiB.
    assert node["status"]["capacity"]["cpu"] == "96"
    assert _q(node["status"]["capacity"]["memory"]).value() == 1024 * GIB
    allocatable = node["status"]["allocatable"]
    assert allocatable["nvidia.com/gpu"] == "4"
    assert 0 < _q(allocatable["cpu"]).value() < 96
    assert 0 < _q(allocatable["memory"]).value() < 1024 * GIB
    assert int(allocatable["pods"]) >= 110


def test_gpu_nodes_report_host_and_totals() -> None:
    fleet = generate_fleet(2, 8, "L4", 0.5, seed=4, pool="edge")
    for gpu_node, node in zip(fleet.gpu_nodes, fleet.nodes, strict=True):
        name = node["metadata"]["name"]
        assert gpu_node["metadata"] == {"name": name, "labels": {f"{PREFIX}owner": "edge"}}
        status = gpu_node["status"]
        assert status["totalGPUs"] == 8
        assert _q(status["nodeInfo"]["ramSize"]) == _q(node["status"]["capacity"]["memory"])
        assert _q(status["nodeInfo"]["dataDiskSize"]).value() == 8 * 7520 * 10**9
        gpus = [g for g in fleet.gpus if g["metadata"]["labels"][f"{PREFIX}owner"] == name]
        available = sum(_q(g["status"]["available"]["vram"]).value() for g in gpus)
        assert _q(status["availableVRAM"]).value() == available
        assert _q(status["totalTFlops"]) == _q("968")


def test_gpus_carry_node_pool_numa_and_nvlink() -> None:
    fleet = generate_fleet(2, 4, "H100", pool="p")
    names = [g["metadata"]["name"] for g in fleet.gpus]
    assert names[:4] == [f"node-00000-gpu-{i}" for i in range(4)]
    gpu = fleet.gpus[5]
    assert gpu["metadata"]["labels"] == {
        f"{PREFIX}owner": "node-00001",
        f"{PREFIX}gpupool": "p",
    }
    status = gpu["status"]
    assert status["phase"] == "Running"
    assert status["gpuModel"] == "H100"
    assert status["capacity"] == {"tflops": "989", "vram": "80Gi"}
    assert status["index"] == 1
    assert status["nodeSelector"] == {"kubernetes.io/hostname": "node-00001"}
    assert status["usedBy"] == "tensor-fusion"
    assert status["nvlinkPeers"] == ["node-00001-gpu-0", "node-00001-gpu-2", "node-00001-gpu-3"]
    assert [g["status"]["numaNode"] for g in fleet.gpus[:4]] == [0, 0, 1, 1]
    uuids = [g["status"]["uuid"] for g in fleet.gpus]
    assert len(set(uuids)) == len(uuids)
    assert all(u.startswith("GPU-") and len(u) == 40 for u in uuids)


def test_pcie_gpus_have_no_nvlink() -> None:
    fleet = generate_fleet(1, 8, "RTX 4090")
    assert all(g["status"]["nvlinkPeers"] == [] for g in fleet.gpus)


def test_a_single_gpu_node() -> None:
    fleet = generate_fleet(2, 1, "H100", 1.0)
    assert [g["status"]["numaNode"] for g in fleet.gpus] == [0, 0]
    assert all(g["status"]["nvlinkPeers"] == [] for g in fleet.gpus)
    assert all(
        len(p["metadata"]["annotations"][f"{PREFIX}gpu-ids"].split(",")) == 1 for p in fleet.pods
    )


def test_pods_are_running_tensor_fusion_workers() -> None:
    fleet = generate_fleet(20, 8, "H100", 0.8, seed=5, pool="train")
    gpu_node = {
        g["metadata"]["name"]: g["metadata"]["labels"][f"{PREFIX}owner"] for g in fleet.gpus
    }
    assert [p["metadata"]["name"] for p in fleet.pods[:3]] == ["worker-0", "worker-1", "worker-2"]
    uids = {p["metadata"]["uid"] for p in fleet.pods}
    assert len(uids) == len(fleet.pods)
    for pod in fleet.pods:
        metadata, spec = pod["metadata"], pod["spec"]
        assert metadata["namespace"] == "default"
        assert metadata["labels"] == {f"{PREFIX}enabled": "true"}
        assert spec["schedulerName"] == "tensor-fusion-scheduler"
        assert len(spec["containers"]) == 1
        assert pod["status"] == {"phase": "Running"}
        request, problems = read_workload_request(
            metadata["labels"], metadata["annotations"], [c["name"] for c in spec["containers"]]
        )
        assert problems == []
        assert request is not None
        assert request.pool == "train"
        assert len(request.gpu_ids) == request.gpu_count
        assert {gpu_node[gpu] for gpu in request.gpu_ids} == {spec["nodeName"]}
    counts = Counter(
        len(p["metadata"]["annotations"][f"{PREFIX}gpu-ids"].split(",")) for p in fleet.pods
    )
    assert counts[2] > 0
    assert set(counts) == {1, 2}


def test_pod_sizes_are_realistic_and_some_burst() -> None:
    fleet = generate_fleet(20, 8, "H100", 0.8, seed=5)
    sizes: Counter[int] = Counter()
    bursting = 0
    for pod in fleet.pods:
        notes = pod["metadata"]["annotations"]
        vram_request = _q(notes[f"{PREFIX}vram-request"]).value()
        sizes[vram_request * 8 // (80 * GIB)] += 1
        tflops_request = _q(notes[f"{PREFIX}tflops-request"]).exact
        # TFLOPS in proportion to VRAM, to the milli-TFLOPS
        assert abs(tflops_request - 989 * vram_request / (80 * GIB)) < 1
        bursting += notes[f"{PREFIX}tflops-limit"] != notes[f"{PREFIX}tflops-request"]
    assert {1, 2, 4, 8} <= set(sizes)  # eighths: 1/8, 1/4, 1/2 and whole GPUs
    assert 0.1 < bursting / len(fleet.pods) < 0.5


# --- bad arguments -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "flag", "fragment"),
    [
        ({"nodes": 0}, "--nodes", "at least 1, got 0"),
        ({"nodes": -3}, "--nodes", "at least 1"),
        ({"nodes": 2.5}, "--nodes", "whole number"),
        ({"nodes": True}, "--nodes", "whole number"),
        ({"gpus_per_node": 0}, "--gpus-per-node", "from 1 to 16, got 0"),
        ({"gpus_per_node": 17}, "--gpus-per-node", "from 1 to 16, got 17"),
        ({"gpus_per_node": "8"}, "--gpus-per-node", "whole number"),
        ({"fill": -0.1}, "--fill", "from 0 to 1"),
        ({"fill": 1.01}, "--fill", "from 0 to 1"),
        ({"fill": float("nan")}, "--fill", "nan"),
        ({"fill": "0.5"}, "--fill", "'0.5'"),
        ({"model": "H300"}, "--model", "unknown GPU model 'H300'"),
        ({"model": ""}, "--model", "known: A100-40"),
        ({"seed": "s"}, "--seed", "whole number"),
        ({"pool": "Pool_A"}, "--pool", "lower case"),
        ({"pool": ""}, "--pool", "lower case"),
        ({"pool": "p" * 64}, "--pool", "at most 63"),
    ],
)
def test_bad_arguments_name_their_flag(kwargs: dict[str, Any], flag: str, fragment: str) -> None:
    arguments: dict[str, Any] = {"nodes": 1, "gpus_per_node": 8, "model": "H100"} | kwargs
    with pytest.raises(ConfigError) as caught:
        generate_fleet(**arguments)
    assert caught.value.field == flag
    assert fragment in caught.value.message
