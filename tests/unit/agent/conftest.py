"""Workers for the agent's tests: pods and GPUs as the store holds them, and real processes
(alive, finished, or holding a slot of a shared region) to stand for a worker's programs."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tensorfusion.agent.processes import WorkerProcess, format_pids, start_token
from tensorfusion.api.annotations import (
    ENABLED_LABEL,
    GPU_IDS,
    TFLOPS_LIMIT,
    TFLOPS_REQUEST,
    VRAM_LIMIT,
    VRAM_REQUEST,
    WORKER_LABEL,
    WORKER_PIDS,
)
from tensorfusion.api.gpu_links import OWNER_LABEL

TIMEOUT = 30.0
_MEMBER = textwrap.dedent(
    """
    import sys
    from tensorfusion._native import ShmRegion
    region = ShmRegion.open(sys.argv[1])
    slot = region.join()
    assert region.try_charge(slot, "device", int(sys.argv[2]))
    region.add(slot, "launches", 5)
    print("joined", flush=True)
    sys.stdin.read()
    """
)


def gpu(name: str, index: int, *, tflops: object = "989", vram: object = "80Gi") -> dict[str, Any]:
    return {
        "apiVersion": "tensor-fusion.ai/v1",
        "kind": "GPU",
        "metadata": {"name": name, "labels": {OWNER_LABEL: "node-0"}},
        "status": {
            "phase": "Running",
            "capacity": {"tflops": tflops, "vram": vram},
            "index": index,
        },
    }


def worker(
    name: str,
    *,
    pids: str | None = None,
    gpu_ids: str | None = "node-0-gpu-0",
    node: str | None = "node-0",
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A worker pod: TFLOPS 50..100, VRAM 4..8 GiB per GPU unless `annotations` say otherwise."""
    values = {
        TFLOPS_REQUEST: "50",
        TFLOPS_LIMIT: "100",
        VRAM_REQUEST: "4Gi",
        VRAM_LIMIT: "8Gi",
        **(annotations or {}),
    }
    if pids is not None:
        values[WORKER_PIDS] = pids
    if gpu_ids is not None:
        values[GPU_IDS] = gpu_ids
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "default",
            "uid": f"uid-{name}",
            "labels": {ENABLED_LABEL: "true", WORKER_LABEL: "true"},
            "annotations": values,
        },
        "spec": {"containers": [{"name": "main", "image": "local"}]},
    }
    if node is not None:
        pod["spec"]["nodeName"] = node
    return pod


class Processes:
    """Starts real processes and ends every one still running at teardown."""

    def __init__(self) -> None:
        self._started: list[subprocess.Popen[str]] = []

    def alive(self) -> subprocess.Popen[str]:
        """A process that runs until its stdin closes."""
        return self._start([sys.executable, "-c", "import sys; sys.stdin.read()"])

    def finished(self) -> WorkerProcess:
        """The pid and start token of a process that has exited and been collected."""
        process = self.alive()
        token = start_token(process.pid)
        assert token is not None
        process.kill()
        process.wait(TIMEOUT)
        return WorkerProcess(process.pid, token)

    def member(self, region: Path, charge: int = 1 << 20) -> subprocess.Popen[str]:
        """A process that joined `region`, charged `charge` bytes and counted 5 launches, and
        holds its slot until stdin closes (or it is killed)."""
        process = self._start([sys.executable, "-c", _MEMBER, str(region), str(charge)])
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "joined"
        return process

    def _start(self, command: list[str]) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self._started.append(process)
        return process

    def stop_all(self) -> None:
        for process in self._started:
            if process.poll() is None:
                process.kill()
            process.wait(TIMEOUT)
            for stream in (process.stdin, process.stdout):
                if stream is not None:
                    stream.close()


@pytest.fixture
def processes() -> Iterator[Processes]:
    started = Processes()
    yield started
    started.stop_all()


def pids_of(*processes: subprocess.Popen[str] | WorkerProcess) -> str:
    """The WORKER_PIDS value for running processes (token read now) or finished ones."""
    pairs = []
    for process in processes:
        if isinstance(process, WorkerProcess):
            pairs.append(process)
            continue
        token = start_token(process.pid)
        assert token is not None
        pairs.append(WorkerProcess(process.pid, token))
    return format_pids(pairs)
