"""The agent's GPU usage rows through NVML, against the mock libnvidia-ml.so.1 (pynvml loads
it by name, so each recording runs in a child process whose library path leads to the mock).
The mock reports memory and utilization, and has no temperature, power or PCIe queries: those
figures must be left out, not fail the GPU."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.mockcuda_build import MockCuda
from tests.unit.scheduler.cluster_builders import GI, gpu

TIMEOUT = 60.0
MOCK_UUID = "GPU-6d6f636b-6375-6461-0000-00000000000{}"
_RECORD = """
import json, logging, sys
from pathlib import Path
from tensorfusion.agent.regions import WorkerRegions
from tensorfusion.metrics.gpu_readings import NvmlReader
from tensorfusion.metrics.point import Unsigned
from tensorfusion.agent.usage_recorder import UsageRecorder

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
reader = NvmlReader()
readings = reader.read()
gpus = json.loads(sys.argv[1])
recorder = UsageRecorder(list, lambda _pods: gpus, WorkerRegions(Path(sys.argv[2])), reader)
rows = [
    {
        "tags": dict(p.tags),
        "fields": {k: v.value if isinstance(v, Unsigned) else v for k, v in p.fields.items()},
    }
    for p in recorder.points(1_700_000_000_000_000_000)
]
reader.close()
print(json.dumps({"readings": sorted(readings), "rows": rows}))
"""


def _record(env: dict[str, str], gpus: list[dict[str, Any]], tmp_path: Path) -> dict[str, Any]:
    """What the child read from NVML and the rows it recorded, with its log as `stderr`."""
    cmd = [sys.executable, "-c", _RECORD, json.dumps(gpus), str(tmp_path / "regions")]
    done = subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    assert done.returncode == 0, done.stderr
    return {**json.loads(done.stdout), "stderr": done.stderr}


def _gpus(count: int) -> list[dict[str, Any]]:
    return [
        gpu(f"box-gpu-{i}", "box", index=i, uuid=MOCK_UUID.format(i), vram="80Gi")
        for i in range(count)
    ]


def test_gpu_rows_take_memory_and_utilization_from_nvml(mockcuda: MockCuda, tmp_path: Path) -> None:
    env = mockcuda.env(tmp_path / "mockcuda.state", devices=2, memory="80Gi")
    # Another process holds 8 GiB of device 0; NVML sees it, no worker region does.
    holder = subprocess.Popen(
        [str(mockcuda.programs["meminfo"]), str(8 * GI), "hold"],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        for line in holder.stdout:
            if line.strip() == "ready=1":
                break
        result = _record(env, _gpus(2), tmp_path)
    finally:
        holder.communicate(timeout=TIMEOUT)
    assert result["readings"] == [MOCK_UUID.format(0), MOCK_UUID.format(1)]
    rows = {row["tags"]["uuid"]: row for row in result["rows"]}
    first = rows[MOCK_UUID.format(0)]
    assert first["tags"] == {"node": "box", "pool": "pool-a", "uuid": MOCK_UUID.format(0)}
    # The first sample has no earlier one to take a rate from: compute is NVML's, and the
    # mock's devices are idle. Temperature, power and PCIe are not in the mock.
    assert first["fields"] == {
        "memory_bytes": 8 * GI,
        "memory_percentage": 10.0,
        "compute_percentage": 0.0,
        "compute_tflops": 0.0,
    }
    assert rows[MOCK_UUID.format(1)]["fields"]["memory_bytes"] == 0


def test_a_gpu_nvml_does_not_know_falls_back_to_regions(mockcuda: MockCuda, tmp_path: Path) -> None:
    env = mockcuda.env(tmp_path / "mockcuda.state", devices=1, memory="80Gi")
    gpus = [*_gpus(1), gpu("declared", "box", index=5, uuid="GPU-declared")]
    rows = {row["tags"]["uuid"]: row for row in _record(env, gpus, tmp_path)["rows"]}
    assert rows["GPU-declared"]["fields"] == {"memory_bytes": 0, "memory_percentage": 0.0}
    assert "compute_percentage" in rows[MOCK_UUID.format(0)]["fields"]


def test_a_driver_that_fails_to_start_reads_as_no_gpu(mockcuda: MockCuda, tmp_path: Path) -> None:
    env = mockcuda.env(tmp_path / "mockcuda.state") | {"MOCKCUDA_DEVICES": "many"}
    result = _record(env, _gpus(1), tmp_path)
    assert result["readings"] == []
    [row] = result["rows"]
    assert row["fields"] == {"memory_bytes": 0, "memory_percentage": 0.0}
    assert "INFO no NVIDIA driver found (NVML: Unknown Error)" in result["stderr"]
