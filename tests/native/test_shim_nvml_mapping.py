"""NVML devices under the shim are matched to CUDA devices by UUID, not by index.

NVML numbers every GPU of the machine while the driver numbers only those in
CUDA_VISIBLE_DEVICES, so with CUDA_VISIBLE_DEVICES=2 CUDA's device 0 is NVML's device 2: the
worker's limits (memory info, utilization) must show there, and NVML's device 0 must read as
it really is. The first cases check that the mock itself behaves so (driver renumbered, NVML
not, one UUID per physical device); the rest run a child under the shim.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.native.test_shim import LIMIT, MiB, child_env, make_region

DEVICES = 4
REAL_MEMORY = 1 << 30  # MOCKCUDA_MEMORY in child_env
NO_DEVICE = 100  # CUDA_ERROR_NO_DEVICE
NVML_INVALID_ARGUMENT = 2
KERNEL = "sleep_us_250000"  # a quarter of NVML's one-second sample period
DEVICE_PERCENT = 25

# Runs the ops in argv[1] (JSON) and prints one JSON result per op.
CHILD = r"""
import ctypes, json, sys, uuid
from ctypes import byref, c_int, c_size_t, c_uint64, c_void_p

cuda = ctypes.CDLL("libcuda.so.1")
nvml = ctypes.CDLL("libnvidia-ml.so.1")


class Mem(ctypes.Structure):
    _fields_ = [("total", c_uint64), ("free", c_uint64), ("used", c_uint64)]


class Mem2(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint), ("total", c_uint64), ("reserved", c_uint64),
                ("free", c_uint64), ("used", c_uint64)]


def nvml_handle(index):
    handle = c_void_p()
    assert nvml.nvmlInit_v2() == 0
    if index is not None:
        assert nvml.nvmlDeviceGetHandleByIndex_v2(index, byref(handle)) == 0
    return handle


def run(op, arg):
    if op == "init":
        return cuda.cuInit(0)
    if op == "count":
        count = c_int()
        assert cuda.cuDeviceGetCount(byref(count)) == 0
        return count.value
    if op == "context":  # a context on ordinal arg, made current
        dev, ctx = c_int(), c_void_p()
        assert cuda.cuDeviceGet(byref(dev), arg) == 0
        return cuda.cuCtxCreate_v2(byref(ctx), 0, dev)
    if op == "alloc":
        ptr = c_uint64()
        return cuda.cuMemAlloc_v2(byref(ptr), c_size_t(arg))
    if op == "busy":  # one launch of kernel arg in the current context, waited for
        module, fn = c_void_p(), c_void_p()
        assert cuda.cuModuleLoadData(byref(module), b"image") == 0
        assert cuda.cuModuleGetFunction(byref(fn), module, arg.encode()) == 0
        assert cuda.cuLaunchKernel(fn, 1, 1, 1, 32, 1, 1, 0, None, None, None) == 0
        return cuda.cuCtxSynchronize()
    if op == "uuids":  # both driver entry points for ordinal arg, as NVML writes a UUID
        texts = []
        for entry in (cuda.cuDeviceGetUuid, cuda.cuDeviceGetUuid_v2):
            raw = (ctypes.c_char * 16)()
            assert entry(raw, arg) == 0
            texts.append("GPU-" + str(uuid.UUID(bytes=raw.raw)))
        return texts
    if op == "nvml_count":
        count = ctypes.c_uint()
        nvml_handle(None)
        assert nvml.nvmlDeviceGetCount_v2(byref(count)) == 0
        return count.value
    if op == "nvml_uuid":
        text = ctypes.create_string_buffer(96)
        assert nvml.nvmlDeviceGetUUID(nvml_handle(arg), text, 96) == 0
        return text.value.decode()
    if op == "memory":  # NVML device arg (None: a handle NVML never gave out), both versions
        handle = nvml_handle(arg)
        mem, mem2 = Mem(), Mem2(version=(ctypes.sizeof(Mem2) | (2 << 24)))
        rc = nvml.nvmlDeviceGetMemoryInfo(handle, byref(mem))
        rc2 = nvml.nvmlDeviceGetMemoryInfo_v2(handle, byref(mem2))
        if rc or rc2:
            return [rc, rc2]
        return [[mem.total, mem.free, mem.used], [mem2.total, mem2.free, mem2.used]]
    if op == "utilization":
        rates = (ctypes.c_uint * 2)()
        assert nvml.nvmlDeviceGetUtilizationRates(nvml_handle(arg), rates) == 0
        return list(rates)
    raise SystemExit(f"unknown op {op}")


for op, arg in json.loads(sys.argv[1]):
    print(json.dumps(run(op, arg)), flush=True)
"""


Op = list[Any]  # [name, argument]


def run_ops(ops: list[Op], env: dict[str, str]) -> list[Any]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(ops)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def shim_env(mockcuda: Any, tmp_path: Path, visible: str | None, **settings: str) -> dict[str, str]:
    """A child under the shim on a 4-GPU mock machine, given `visible` GPUs (None: all)."""
    env = child_env(mockcuda, tmp_path, MOCKCUDA_DEVICES=str(DEVICES), **settings)
    env.pop("CUDA_VISIBLE_DEVICES", None)
    if visible is not None:
        env["CUDA_VISIBLE_DEVICES"] = visible
    return env


def mock_env(mockcuda: Any, tmp_path: Path, visible: str | None) -> dict[str, str]:
    """As shim_env, without the shim: the mock on its own."""
    env = shim_env(mockcuda, tmp_path, visible)
    del env["LD_PRELOAD"]
    return env


def real(used: int = 0) -> list[list[int]]:
    return [[REAL_MEMORY, REAL_MEMORY - used, used]] * 2


def virtual(used: int = 0) -> list[list[int]]:
    return [[LIMIT, LIMIT - used, used]] * 2


# --- the mock: the driver honours CUDA_VISIBLE_DEVICES, NVML does not ----------------------


@pytest.mark.parametrize(
    ("visible", "count"),
    [
        (None, DEVICES),
        ("2", 1),
        ("3,1", 2),
        ("0,1,2,3", 4),
        ("1,7,2", 1),  # the list ends at an index out of range
        ("1,1,2", 1),  # ... at a repeated one
        ("2,gpu,0", 1),  # ... at a malformed one
    ],
)
def test_the_mock_driver_counts_the_visible_devices(
    mockcuda: Any, tmp_path: Path, visible: str | None, count: int
) -> None:
    ops: list[Op] = [["init", None], ["count", None], ["nvml_count", None]]
    assert run_ops(ops, mock_env(mockcuda, tmp_path, visible)) == [0, count, DEVICES]


@pytest.mark.parametrize("visible", ["", "7", "-1", "gpu", ","])
def test_the_mock_driver_has_no_device_when_none_is_visible(
    mockcuda: Any, tmp_path: Path, visible: str
) -> None:
    ops: list[Op] = [["init", None], ["nvml_count", None]]
    assert run_ops(ops, mock_env(mockcuda, tmp_path, visible)) == [NO_DEVICE, DEVICES]


def test_the_mock_reports_one_uuid_per_physical_device(mockcuda: Any, tmp_path: Path) -> None:
    ops: list[Op] = [["init", None], ["uuids", 0], ["uuids", 1]]
    ops += [["nvml_uuid", index] for index in range(DEVICES)]
    results = run_ops(ops, mock_env(mockcuda, tmp_path, "3,1"))
    nvml_uuids = results[3:]
    assert len(set(nvml_uuids)) == DEVICES
    assert results[1] == [nvml_uuids[3]] * 2
    assert results[2] == [nvml_uuids[1]] * 2


def test_the_mock_charges_the_physical_device(mockcuda: Any, tmp_path: Path) -> None:
    ops: list[Op] = [
        ["init", None],
        ["context", 0],
        ["alloc", 10 * MiB],
        ["memory", 2],
        ["memory", 0],
    ]
    results = run_ops(ops, mock_env(mockcuda, tmp_path, "2"))
    assert results[3:] == [real(10 * MiB), real()]


# --- the shim: limits show on the worker's own GPU ------------------------------------------


def limit_settings(how: str, tmp_path: Path) -> dict[str, str]:
    if how == "region":
        return {"TF_SHM_PATH": str(make_region(tmp_path))}
    return {how: str(LIMIT)}


@pytest.mark.parametrize("how", ["TF_VRAM_LIMIT", "TF_VRAM_LIMIT_0", "region"])
def test_memory_info_is_virtual_on_the_visible_gpu_only(
    mockcuda: Any, tmp_path: Path, how: str
) -> None:
    env = shim_env(mockcuda, tmp_path, "2", **limit_settings(how, tmp_path))
    ops: list[Op] = [["init", None], ["context", 0], ["alloc", 10 * MiB]]
    ops += [["memory", index] for index in range(DEVICES)]
    results = run_ops(ops, env)
    assert results[2] == 0
    assert results[3:] == [real(), real(), virtual(10 * MiB), real()]


def test_each_visible_gpu_shows_its_own_limit(mockcuda: Any, tmp_path: Path) -> None:
    # CUDA's device 1 is physical GPU 0 here, and CUDA's device 0 is GPU 3.
    env = shim_env(mockcuda, tmp_path, "3,0", TF_VRAM_LIMIT_1=str(LIMIT))
    ops: list[Op] = [["init", None]] + [["memory", index] for index in range(DEVICES)]
    assert run_ops(ops, env)[1:] == [virtual(), real(), real(), real()]


def test_without_visible_devices_nvml_and_cuda_agree(mockcuda: Any, tmp_path: Path) -> None:
    env = shim_env(mockcuda, tmp_path, None, TF_VRAM_LIMIT_0=str(LIMIT))
    ops: list[Op] = [
        ["init", None],
        ["context", 0],
        ["alloc", 10 * MiB],
        ["memory", 0],
        ["memory", 2],
    ]
    assert run_ops(ops, env)[3:] == [virtual(10 * MiB), real()]


def test_before_the_driver_is_initialised_nvml_reads_real(mockcuda: Any, tmp_path: Path) -> None:
    # The shim never initialises the driver itself; it matches devices once the process has.
    env = shim_env(mockcuda, tmp_path, "2", TF_VRAM_LIMIT=str(LIMIT))
    ops: list[Op] = [["memory", 2], ["init", None], ["memory", 2], ["memory", 0]]
    assert run_ops(ops, env) == [real(), 0, virtual(), real()]


def test_a_handle_nvml_never_gave_out_gets_its_error(mockcuda: Any, tmp_path: Path) -> None:
    env = shim_env(mockcuda, tmp_path, "2", TF_VRAM_LIMIT=str(LIMIT))
    ops: list[Op] = [["init", None], ["memory", None]]
    assert run_ops(ops, env)[1] == [NVML_INVALID_ARGUMENT] * 2


@pytest.mark.timing
def test_utilization_is_scaled_on_the_visible_gpu_only(mockcuda: Any, tmp_path: Path) -> None:
    # CUDA's device 0 (GPU 2) is paced to half the device, device 1 (GPU 0) is not: each runs
    # one kernel busy for a quarter of NVML's sample period.
    env = shim_env(mockcuda, tmp_path, "2,0", TF_TFLOPS_LIMIT_0="50", TF_GPU_PEAK_TFLOPS="100")
    ops: list[Op] = [
        ["init", None],
        ["context", 1],
        ["busy", KERNEL],
        ["context", 0],
        ["busy", KERNEL],
    ]
    ops += [["utilization", index] for index in (2, 0, 1)]
    results = run_ops(ops, env)
    assert results[:5] == [0] * 5
    assert results[5:] == [[50, 50], [DEVICE_PERCENT] * 2, [0, 0]]
