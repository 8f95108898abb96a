"""Node agents for tests against the API-server emulator: each `KubeAgent` runs in a thread
of the test process with a stand-in for its node's NVML (devices whose UUIDs name the node,
so that agents of several nodes never share one) and its own regions root, and serves its
probes and metrics on a free port of 127.0.0.1."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from tensorfusion.agent.kube_agent import KubeAgent, KubeAgentConfig, NvmlUnavailable
from tensorfusion.agent.nvml import NvmlDevice
from tensorfusion.cli_agent import agent_app
from tensorfusion.metrics.gpu_readings import GpuReading
from tensorfusion.server.runner import start_in_thread
from tensorfusion.store.kube import KubeStore

H100 = "NVIDIA H100 80GB HBM3"
H100_BYTES = 81559 * (1 << 20)
STOP_TIMEOUT_S = 30.0


def gpu_uuid(node: str, index: int) -> str:
    return f"GPU-{node}-{index:04d}"


@dataclass
class FakeNvml:
    """A node's NVML as a table: `gpus` devices of `model`, or, with `missing` set, no
    driver (that text is the reason). Readings are whatever the test puts in `readings`."""

    node: str
    gpus: int = 4
    model: str = H100
    missing: str | None = None
    readings: Mapping[str, GpuReading] | None = None

    def devices(self) -> list[NvmlDevice]:
        if self.missing is not None:
            raise NvmlUnavailable(self.missing)
        return [
            NvmlDevice(
                index=i,
                uuid=gpu_uuid(self.node, i),
                name=self.model,
                memory_bytes=H100_BYTES,
                numa_node=i * 2 // self.gpus,
                nvlink_peers=(),
            )
            for i in range(self.gpus)
        ]

    def read(self) -> Mapping[str, GpuReading]:
        return self.readings or {}


@dataclass(frozen=True)
class RunningAgent:
    agent: KubeAgent
    url: str
    """Base URL of its /healthz, /readyz and /metrics."""


def agent_config(node: str, root: Path, *, interval_s: float = 0.2) -> KubeAgentConfig:
    """`node`'s agent with everything it writes under `root/node`."""
    home = root / node
    return KubeAgentConfig(
        node=node,
        regions_root=home / "shm",
        spill_root=home / "spill",
        state_dir=home / "state",
        checkpoint=home / "kubelet_internal_checkpoint",
        interval_s=interval_s,
    )


@contextmanager
def running_agent(
    kubeconfig: Path, config: KubeAgentConfig, nvml: FakeNvml | None = None
) -> Iterator[RunningAgent]:
    """The agent of `config.node` running (`KubeAgent.run` on a thread) until the end."""
    config.state_dir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        store = stack.enter_context(KubeStore(kubeconfig))
        agent = KubeAgent(store, config, nvml or FakeNvml(config.node))
        server = stack.enter_context(start_in_thread(agent_app(agent)))
        stop = threading.Event()
        thread = threading.Thread(target=agent.run, args=(stop,), name=f"agent-{config.node}")
        thread.start()
        try:
            yield RunningAgent(agent, server.url)
        finally:
            stop.set()
            thread.join(STOP_TIMEOUT_S)
            agent.pods.close()


def write_checkpoint(path: Path, registered: Sequence[str], *, held: Sequence[str]) -> None:
    """The kubelet's device-plugin checkpoint (`kubelet_internal_checkpoint`, the JSON of
    kubelet >= 1.21) with the NVIDIA device plugin's `registered` devices, `held` by pods."""
    entries = [
        {
            "PodUID": f"uid-{i}",
            "ContainerName": "cuda",
            "ResourceName": "nvidia.com/gpu",
            "DeviceIDs": {"0": [device]},
            "AllocResp": "",
        }
        for i, device in enumerate(held)
    ]
    document = {
        "Data": {
            "PodDeviceEntries": entries or None,
            "RegisteredDevices": {"nvidia.com/gpu": list(registered)},
        },
        "Checksum": 1234567,
    }
    path.write_text(json.dumps(document))
