"""NVML utilization under the shim, on the mock driver: a paced worker reads the device's busy
share in units of its own slice (divided by its share of busy time, capped at 100); an unpaced
one reads the device's figure unchanged.

The mock reports the device's busy share of the last second. Each case runs one 250 ms kernel
on a fresh mock device and reads utilization right after it: the device's figure is 25%.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tensorfusion._native import ShmRegion
from tests.native.test_shim import child_env, read_results, run_child, start
from tests.native.test_shim_pacing import make_region

pytestmark = pytest.mark.timing

KERNEL = "sleep_us_250000"
DEVICE_PERCENT = 25
BUSY = [["init"], ["busy", KERNEL]]


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({}, DEVICE_PERCENT),
        ({"TF_TFLOPS_LIMIT": "50", "TF_GPU_PEAK_TFLOPS": "100"}, 50),
        ({"TF_TFLOPS_LIMIT": "30", "TF_GPU_PEAK_TFLOPS": "100"}, 83),  # 83.3, rounded
        ({"TF_TFLOPS_LIMIT": "10", "TF_GPU_PEAK_TFLOPS": "100"}, 100),  # 250, capped
        ({"TF_TFLOPS_LIMIT": "100", "TF_GPU_PEAK_TFLOPS": "100"}, DEVICE_PERCENT),  # not paced
        ({"TF_TFLOPS_LIMIT": "50", "TF_GPU_PEAK_TFLOPS": "lots"}, DEVICE_PERCENT),  # malformed
        ({"TF_TFLOPS_LIMIT_1": "50", "TF_GPU_PEAK_TFLOPS": "100"}, DEVICE_PERCENT),  # device 1
    ],
)
def test_utilization_is_a_share_of_the_slice(
    mockcuda: Any, tmp_path: Path, settings: dict[str, str], expected: int
) -> None:
    results, _ = run_child([*BUSY, ["utilization", 0]], child_env(mockcuda, tmp_path, **settings))
    assert results[1] == 0
    assert results[2] == [expected, expected]


def test_a_region_share_replaces_the_environment(mockcuda: Any, tmp_path: Path) -> None:
    region = make_region(tmp_path, tflops_limit=50.0)
    env = child_env(
        mockcuda, tmp_path, TF_SHM_PATH=str(region), TF_TFLOPS_LIMIT="10", TF_GPU_PEAK_TFLOPS="100"
    )
    results, _ = run_child([*BUSY, ["utilization", 0]], env)
    assert results[2] == [50, 50]


def test_a_share_changed_by_the_agent_applies_at_once(mockcuda: Any, tmp_path: Path) -> None:
    region_path = make_region(tmp_path, tflops_limit=50.0)
    proc = start(
        [*BUSY, ["wait"], ["utilization", 0]],
        child_env(mockcuda, tmp_path, TF_SHM_PATH=str(region_path)),
    )
    assert read_results(proc, 2) == [0, 0]
    ShmRegion.open(region_path).set_limits(
        vram_limit=1 << 30, tflops_limit=25.0, tflops_request=10.0, gpu_peak_tflops=100.0
    )
    out, err = proc.communicate("\n", timeout=60)
    assert proc.returncode == 0, err
    assert [json.loads(line) for line in out.splitlines()] == [0, [100, 100]]


def test_an_idle_device_reads_zero_whatever_the_share(mockcuda: Any, tmp_path: Path) -> None:
    env = child_env(mockcuda, tmp_path, TF_TFLOPS_LIMIT="10", TF_GPU_PEAK_TFLOPS="100")
    results, _ = run_child([["init"], ["utilization", 0]], env)
    assert results[1] == [0, 0]
