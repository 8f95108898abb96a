"""GPU discovery through NVML, against the mock libnvidia-ml.so.1 (pynvml loads it by name,
so each discovery runs in a child process whose library path leads to the mock)."""

from __future__ import annotations

import ctypes.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tensorfusion.agent.discovery import DEFAULT_POOL, register
from tensorfusion.scheduler.fleet import fleet_problems
from tensorfusion.store.local import LocalStore
from tests.mockcuda_build import MockCuda

TIMEOUT = 60.0
_DISCOVER = """
import json, logging, sys
from pathlib import Path
from tensorfusion.agent.discovery import discover_nvml
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
print(json.dumps(discover_nvml(sys.argv[1], Path(sys.argv[2]))))
"""


def _discover(env: dict[str, str], state_dir: Path) -> tuple[Any, str]:
    done = subprocess.run(
        [sys.executable, "-c", _DISCOVER, "gpu-box", str(state_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), done.stderr


def _env(mockcuda: MockCuda, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = mockcuda.env(tmp_path / "mockcuda.state", devices=4, memory="80Gi")
    return env | extra


def _gpus(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] == "GPU"]


def test_the_mock_hosts_gpus_are_discovered(mockcuda: MockCuda, tmp_path: Path) -> None:
    env = _env(mockcuda, tmp_path, MOCKCUDA_NAME="NVIDIA H100 80GB HBM3", MOCKCUDA_NVLINK="1")
    objects, _ = _discover(env, tmp_path / "state")
    assert fleet_problems(objects) == []
    gpus = _gpus(objects)
    assert [gpu["metadata"]["name"] for gpu in gpus] == [f"gpu-box-gpu-{i}" for i in range(4)]
    assert [gpu["status"]["uuid"] for gpu in gpus] == [
        f"GPU-6d6f636b-6375-6461-0000-00000000000{i}" for i in range(4)
    ]
    assert [gpu["status"]["index"] for gpu in gpus] == [0, 1, 2, 3]
    assert [gpu["status"]["numaNode"] for gpu in gpus] == [0, 0, 1, 1]
    for gpu in gpus:
        assert gpu["status"]["gpuModel"] == "H100"
        assert gpu["status"]["capacity"] == {"tflops": "989", "vram": "80Gi"}
        assert gpu["status"]["phase"] == "Running"
    assert gpus[2]["status"]["nvlinkPeers"] == ["gpu-box-gpu-0", "gpu-box-gpu-1", "gpu-box-gpu-3"]
    node = next(obj for obj in objects if obj["kind"] == "Node")
    assert node["status"]["allocatable"]["nvidia.com/gpu"] == "4"
    assert node["status"]["allocatable"]["cpu"] == str(os.cpu_count())


def test_pcie_cards_have_no_nvlink_peers(mockcuda: MockCuda, tmp_path: Path) -> None:
    objects, _ = _discover(_env(mockcuda, tmp_path, MOCKCUDA_NAME="NVIDIA L4"), tmp_path)
    assert [gpu["status"]["nvlinkPeers"] for gpu in _gpus(objects)] == [[]] * 4
    assert _gpus(objects)[0]["status"]["capacity"]["tflops"] == "121"


def test_a_broken_nvlink_query_leaves_peers_out(mockcuda: MockCuda, tmp_path: Path) -> None:
    env = _env(mockcuda, tmp_path, MOCKCUDA_NAME="NVIDIA L4", MOCKCUDA_NVLINK="yes")
    objects, stderr = _discover(env, tmp_path)
    assert [gpu["status"]["nvlinkPeers"] for gpu in _gpus(objects)] == [[]] * 4
    assert "MOCKCUDA_NVLINK" in stderr


def test_an_unknown_model_is_registered_pending(mockcuda: MockCuda, tmp_path: Path) -> None:
    objects, stderr = _discover(_env(mockcuda, tmp_path), tmp_path)
    gpus = _gpus(objects)
    assert {gpu["status"]["phase"] for gpu in gpus} == {"Pending"}
    assert gpus[0]["status"]["gpuModel"] == "NVIDIA Mock GPU"
    assert "WARNING GPU 0 (NVIDIA Mock GPU) is not in the model table" in stderr


def test_discovered_gpus_register_once(mockcuda: MockCuda, tmp_path: Path) -> None:
    env = _env(mockcuda, tmp_path, MOCKCUDA_NAME="NVIDIA H100 80GB HBM3")
    objects, _ = _discover(env, tmp_path)
    with LocalStore(tmp_path / "state") as store:
        assert register(store, objects).created == 7
        assert register(store, objects).unchanged == 7
        assert store.get("GPUPool", DEFAULT_POOL)["status"]["totalGPUs"] == 4


def test_a_driver_that_fails_to_start_is_no_driver(mockcuda: MockCuda, tmp_path: Path) -> None:
    env = _env(mockcuda, tmp_path, MOCKCUDA_DEVICES="many")
    objects, stderr = _discover(env, tmp_path)
    assert objects is None
    assert "INFO no NVIDIA driver found (NVML: Unknown Error)" in stderr


@pytest.mark.skipif(
    ctypes.util.find_library("nvidia-ml") is not None, reason="this host has a real NVML"
)
def test_no_library_is_no_driver(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if key != "LD_LIBRARY_PATH"}
    objects, stderr = _discover(env, tmp_path)
    assert objects is None
    assert "no NVIDIA driver found (NVML: NVML Shared Library Not Found)" in stderr


def test_no_gpu_is_no_gpus(mockcuda: MockCuda, tmp_path: Path) -> None:
    env = _env(mockcuda, tmp_path, MOCKCUDA_DEVICES="0")
    objects, stderr = _discover(env, tmp_path)
    assert objects is None
    assert "reports no GPU" in stderr
