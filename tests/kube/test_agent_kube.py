"""The node agent against the API-server emulator (no kube-apiserver can run here), with a
stand-in for the node's NVML (4 H100s) and regions in a temporary directory: GPUs and the
GPUNode's hardware facts registered, the regions of the pods bound to the node made and
removed, the device plugin's GPUs flipped through a checkpoint file in the kubelet's format,
the probes and metrics served, and a node without NVML not ready, never crashing."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tensorfusion.agent.kube_agent import KubeAgent, KubeAgentConfig
from tensorfusion.agent.regions import WorkerRegions
from tensorfusion.api.annotations import GPU_IDS, VRAM_LIMIT, VRAM_REQUEST
from tensorfusion.api.gpu_links import OWNER_LABEL, POOL_LABEL
from tensorfusion.cli_agent import agent_app
from tensorfusion.errors import NotFoundError
from tensorfusion.metrics.point import Point
from tensorfusion.server.runner import start_in_thread
from tensorfusion.store.kube import KubeStore
from tests.controller.cluster import apply_crds, wait_for
from tests.kube.node_agents import (
    FakeNvml,
    agent_config,
    gpu_uuid,
    running_agent,
    write_checkpoint,
)
from tests.kube.runner import KubeApi
from tests.unit.agent.conftest import worker

NODE = "node-a"


@pytest.fixture
def store(kube_api: KubeApi) -> Iterator[KubeStore]:
    apply_crds(kube_api.kubeconfig)
    with KubeStore(kube_api.kubeconfig) as opened:
        yield opened


def gpu_node(pool: str = "pool-a") -> dict[str, Any]:
    """The GPUNode the controller makes for a node its pool selects."""
    return {
        "apiVersion": "tensor-fusion.ai/v1",
        "kind": "GPUNode",
        "metadata": {"name": NODE, "labels": {OWNER_LABEL: pool}},
        "spec": {"manageMode": "AutoSelect"},
    }


def checkpoint_holding(config: KubeAgentConfig, *held: str) -> None:
    registered = [gpu_uuid(NODE, i) for i in range(4)]
    write_checkpoint(config.checkpoint, registered, held=held)


def used_by(store: KubeStore) -> list[str]:
    return [
        gpu["status"]["usedBy"] for gpu in store.list("GPU", label_selector={OWNER_LABEL: NODE})
    ]


def test_gpus_and_the_gpu_nodes_facts_are_registered(store: KubeStore, tmp_path: Path) -> None:
    store.create(gpu_node())
    points: list[Point] = []
    agent = KubeAgent(store, agent_config(NODE, tmp_path), FakeNvml(NODE), record=points.extend)
    tick = agent.tick()
    assert tick.problems == []
    assert tick.registered is not None
    assert tick.registered.created == 4
    gpus = store.list("GPU", label_selector={OWNER_LABEL: NODE})
    assert [gpu["status"]["uuid"] for gpu in gpus] == [gpu_uuid(NODE, i) for i in range(4)]
    for gpu in gpus:
        assert gpu["status"]["capacity"] == {"tflops": "989", "vram": "81559Mi"}
        assert (gpu["status"]["phase"], gpu["status"]["usedBy"]) == ("Running", "tensor-fusion")
        assert POOL_LABEL not in gpu["metadata"]["labels"]  # the GPUNode's pool, whichever
    node = store.get("GPUNode", NODE)
    assert node["status"]["nodeInfo"]["gpuCount"] == 4
    assert node["metadata"]["labels"] == {OWNER_LABEL: "pool-a"}  # the controller's, kept
    assert agent.readiness() == (True, "ready")
    # Usage rows carry the pool through the GPUNode.
    assert {p.tags["pool"] for p in points if p.measurement == "tf_gpu_usage"} == {"pool-a"}
    assert agent.tick().registered is None  # registered again only when due


def test_without_a_gpu_node_the_gpus_are_registered_and_none_is_made(
    store: KubeStore, tmp_path: Path
) -> None:
    agent = KubeAgent(store, agent_config(NODE, tmp_path), FakeNvml(NODE))
    assert agent.tick().problems == []
    assert len(store.list("GPU")) == 4
    with pytest.raises(NotFoundError):
        store.get("GPUNode", NODE)


def test_the_device_plugins_gpus_flip_used_by_and_back(store: KubeStore, tmp_path: Path) -> None:
    config = agent_config(NODE, tmp_path)
    config.checkpoint.parent.mkdir(parents=True)
    checkpoint_holding(config, gpu_uuid(NODE, 1))
    agent = KubeAgent(store, config, FakeNvml(NODE))
    agent.tick()
    assert used_by(store) == ["tensor-fusion", "nvidia-device-plugin"] + ["tensor-fusion"] * 2
    # A malformed file keeps the last good reading.
    config.checkpoint.write_text('{"Data": {"PodDeviceEntries": [{"ResourceName": 1}]}}')
    assert agent.tick().registered is None
    assert used_by(store)[1] == "nvidia-device-plugin"
    assert agent.checkpoint.problem is not None
    assert "Data.PodDeviceEntries[0].ResourceName" in agent.checkpoint.problem
    checkpoint_holding(config)  # released
    assert agent.tick().registered is not None
    assert used_by(store) == ["tensor-fusion"] * 4


@pytest.mark.timing  # the agent's thread acts on the watch's events
def test_a_bound_pods_regions_come_and_go_with_it(kube_api: KubeApi, tmp_path: Path) -> None:
    apply_crds(kube_api.kubeconfig)
    config = agent_config(NODE, tmp_path)
    regions = WorkerRegions(config.regions_root)
    with KubeStore(kube_api.kubeconfig) as store, running_agent(kube_api.kubeconfig, config):
        wait_for("the GPUs", lambda: len(store.list("GPU")) == 4)
        pod = worker(
            "train",
            node=NODE,
            gpu_ids=f"{NODE}-gpu-2,{NODE}-gpu-0",
            annotations={VRAM_REQUEST: "128Mi", VRAM_LIMIT: "256Mi"},
        )
        del pod["metadata"]["uid"]
        store.create(pod)
        directory = regions.directory(pod)
        wait_for("the regions", (directory / "device-1").exists)
        assert sorted(os.listdir(directory)) == [
            "device-0",
            "device-1",
            f"{NODE}-gpu-0.shm",
            f"{NODE}-gpu-2.shm",
        ]
        assert regions.usage(store.get("Pod", "train")) is not None
        elsewhere = worker("elsewhere", node="node-b", gpu_ids="node-b-gpu-0")
        del elsewhere["metadata"]["uid"]
        store.create(elsewhere)
        store.delete("Pod", "train")
        wait_for("the regions to go", lambda: not directory.exists())
        assert not regions.directory(elsewhere).exists()  # another node's agent keeps those


@pytest.mark.timing  # the agent's feed hears of a change in its own time
def test_pods_of_other_nodes_never_reach_the_agent(store: KubeStore, tmp_path: Path) -> None:
    """The agent lists and watches with `fieldSelector=spec.nodeName=node-a`, which the
    emulator applies: a worker of node-b, whose GPUs this agent does not have, would
    otherwise be a problem here."""

    def create(name: str, node: str, gpu: int) -> None:
        made = worker(name, node=node, gpu_ids=f"{node}-gpu-{gpu}")
        del made["metadata"]["uid"]
        store.create(made)

    agent = KubeAgent(store, agent_config(NODE, tmp_path), FakeNvml(NODE))
    create("theirs", "node-b", 0)
    create("mine", NODE, 0)
    first = agent.tick()
    assert (first.problems, first.prepared, first.workers) == ([], ["default/mine"], 1)
    create("also-theirs", "node-b", 1)
    store.patch("Pod", "theirs", {"status": {"phase": "Running"}})
    create("later", NODE, 1)  # after node-b's changes on the same stream, were they sent
    wait_for("the agent to hear of a change", lambda: agent.pods.wait(0.1))
    tick = agent.tick()
    assert (tick.problems, tick.prepared, tick.workers) == ([], ["default/later"], 2)
    assert sorted(p["metadata"]["name"] for p in agent.pods.pods()) == ["later", "mine"]


def test_regions_of_pods_deleted_while_it_was_down_are_removed(
    store: KubeStore, tmp_path: Path
) -> None:
    config = agent_config(NODE, tmp_path)
    agent = KubeAgent(store, config, FakeNvml(NODE))
    agent.tick()
    gone = worker("gone", node=NODE, gpu_ids=f"{NODE}-gpu-0")
    agent.regions.prepare(gone, store.list("GPU"))
    kept = worker("kept", node=NODE, gpu_ids=f"{NODE}-gpu-1")
    del kept["metadata"]["uid"]
    store.create(kept)
    restarted = KubeAgent(store, config, FakeNvml(NODE))
    tick = restarted.tick()
    assert len(tick.removed) == 1
    assert "gone" in tick.removed[0]
    assert tick.prepared == ["default/kept"]
    assert not agent.regions.directory(gone).exists()


def test_a_pod_whose_regions_cannot_be_made_is_retried(store: KubeStore, tmp_path: Path) -> None:
    agent = KubeAgent(store, agent_config(NODE, tmp_path), FakeNvml(NODE))
    bad = worker("bad", node=NODE, gpu_ids=f"{NODE}-gpu-9")
    del bad["metadata"]["uid"]
    store.create(bad)
    first = agent.tick()
    assert first.problems == [
        f"default/bad: {GPU_IDS}: names GPU '{NODE}-gpu-9', which is not registered"
    ]
    assert agent.tick().problems == first.problems  # still tried, nothing else stopped
    assert agent.metrics.worker_problems._value.get() == 1


def test_probes_and_metrics_are_served(store: KubeStore, tmp_path: Path) -> None:
    agent = KubeAgent(store, agent_config(NODE, tmp_path), FakeNvml(NODE))
    with start_in_thread(agent_app(agent)) as server:
        assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}
        before = httpx.get(f"{server.url}/readyz")
        assert before.status_code == 503
        assert "the first pass has not run yet" in before.json()["message"]
        agent.tick()
        assert httpx.get(f"{server.url}/readyz").status_code == 200
        metrics = httpx.get(f"{server.url}/metrics").text
        assert "tf_agent_gpus 4.0" in metrics
        assert "tf_agent_ready 1.0" in metrics
        assert "tf_agent_ticks_total 1.0" in metrics


def test_a_node_without_nvml_is_not_ready_and_keeps_running(
    store: KubeStore, tmp_path: Path
) -> None:
    nvml = FakeNvml(NODE, missing="no NVIDIA driver: libnvidia-ml.so.1 is missing")
    agent = KubeAgent(store, agent_config(NODE, tmp_path), nvml)
    with start_in_thread(agent_app(agent)) as server:
        for _ in range(2):
            tick = agent.tick()
            assert tick.problems == ["NVML: no NVIDIA driver: libnvidia-ml.so.1 is missing"]
            answer = httpx.get(f"{server.url}/readyz")
            assert answer.status_code == 503
            assert "libnvidia-ml.so.1 is missing" in answer.json()["message"]
        assert store.list("GPU") == []
        nvml.missing = None  # the driver came (the GPU operator installed it)
        assert agent.tick().gpus == 4
        assert httpx.get(f"{server.url}/readyz").status_code == 200
