"""The mock driver's devices, memory paths, cuGetProcAddress and error codes, driven by the
C programs in tests/mockcuda/programs (linked against the mock as against the driver)."""

from __future__ import annotations

import ctypes
import json
import subprocess
from pathlib import Path

import pytest

from tests.mockcuda_build import MockCuda
from tests.native.mockcuda_run import TIMEOUT, run_program

OOM = "2"
INVALID_VALUE = "1"
MIB = 1 << 20


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "mockcuda.state"


def test_libraries_carry_the_driver_sonames(mockcuda: MockCuda) -> None:
    out = subprocess.run(
        ["readelf", "-d", str(mockcuda.libcuda), str(mockcuda.libnvml)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "[libcuda.so.1]" in out
    assert "[libnvidia-ml.so.1]" in out


def test_only_api_symbols_are_exported(mockcuda: MockCuda) -> None:
    out = subprocess.run(
        ["nm", "-D", "--defined-only", str(mockcuda.libcuda)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    names = [line.split()[-1] for line in out.splitlines()]
    assert "cuMemAlloc_v2" in names
    assert "cuGetProcAddress_v2" in names
    assert [n for n in names if not n.startswith(("cu", "mockcuda"))] == []


@pytest.mark.parametrize(
    ("path", "chunk", "expected_count"),
    [
        ("plain", 64 * MIB, 16),
        ("managed", 64 * MIB, 16),
        ("async", 64 * MIB, 16),
        ("pitch", 1000, (1 << 30) // 1024),  # charged at the 512-byte-rounded pitch
        ("pool", 64 * MIB, 16),
        ("array", MIB, 1024),
        ("array3d", MIB, 1024),
        ("vmm", 2 * MIB, 512),
    ],
)
def test_each_allocation_path_runs_out_at_the_configured_size(
    mockcuda: MockCuda, state: Path, path: str, chunk: int, expected_count: int
) -> None:
    out = run_program(
        mockcuda, "alloc_oom", path, str(chunk), env=mockcuda.env(state, memory="1Gi")
    )
    assert out["error"] == OOM
    assert int(out["count"]) == expected_count
    assert int(out["total"]) == 1 << 30


def test_oom_leaves_the_remainder_free(mockcuda: MockCuda, state: Path) -> None:
    out = run_program(
        mockcuda, "alloc_oom", "plain", str(300 * MIB), env=mockcuda.env(state, memory="1Gi")
    )
    assert int(out["count"]) == 3
    assert int(out["free"]) == (1 << 30) - 900 * MIB


def test_three_memory_queries_agree(mockcuda: MockCuda, state: Path) -> None:
    out = run_program(mockcuda, "meminfo", str(5 * MIB), env=mockcuda.env(state, memory="2Gi"))
    total = 2 << 30
    assert int(out["cu_total"]) == int(out["device_total"]) == total
    assert int(out["nvml_total"]) == int(out["nvml2_total"]) == total
    assert int(out["cu_free"]) == int(out["nvml_free"]) == int(out["nvml2_free"]) == total - 5 * MIB
    assert int(out["nvml_used"]) == int(out["nvml2_used"]) == 5 * MIB


def start_holder(mockcuda: MockCuda, env: dict[str, str], nbytes: int) -> subprocess.Popen[str]:
    """A process holding `nbytes` of device memory until its stdin closes, once allocated."""
    holder = subprocess.Popen(
        [str(mockcuda.programs["meminfo"]), str(nbytes), "hold"],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    if "ready=1\n" not in iter(holder.stdout.readline, ""):  # reads until it has allocated
        holder.kill()
        holder.wait(timeout=TIMEOUT)
        pytest.fail("the holding process exited before allocating")
    return holder


def test_memory_is_shared_by_processes_on_one_state_file(mockcuda: MockCuda, state: Path) -> None:
    env = mockcuda.env(state, memory="1Gi")
    holder = start_holder(mockcuda, env, 600 * MIB)
    try:
        out = run_program(mockcuda, "meminfo", env=env)
        assert int(out["cu_free"]) == int(out["nvml_free"]) == (1 << 30) - 600 * MIB
        denied = run_program(mockcuda, "alloc_oom", "plain", str(500 * MIB), env=env)
        assert denied["count"] == "0"
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=TIMEOUT)
    after = run_program(mockcuda, "meminfo", env=env)
    assert int(after["cu_free"]) == 1 << 30  # an exited process's memory is returned


def test_a_killed_process_does_not_leak_memory(mockcuda: MockCuda, state: Path) -> None:
    env = mockcuda.env(state, memory="1Gi")
    holder = start_holder(mockcuda, env, 700 * MIB)
    holder.kill()
    holder.wait(timeout=TIMEOUT)
    out = run_program(mockcuda, "meminfo", env=env)
    assert int(out["cu_free"]) == 1 << 30


def test_pitch_vmm_arrays_and_host_memory(mockcuda: MockCuda, state: Path) -> None:
    out = run_program(mockcuda, "probe", env=mockcuda.env(state))
    assert out["pitch"] == "1024"
    assert out["pitch_charged"] == str(1024 * 3)
    assert out["array_charged"] == str(100 * 10 * 4 * 4)
    assert out["host_charged"] == "0"
    assert out["granularity"] == str(2 * MIB)
    assert out["vmm_unaligned"] == INVALID_VALUE
    assert out["vmm_charged"] == out["vmm_charged_while_mapped"] == str(4 * MIB)
    assert out["vmm_charged_after_unmap"] == "0"
    assert out["vmm_double_map"] == "208"  # CUDA_ERROR_ALREADY_MAPPED
    assert out["vmm_alias"] == "1"
    assert out["vmm_ordinal"] == out["ordinal"] == "0"
    assert out["memset_ok"] == "1"


def test_get_proc_address_maps_names_and_versions(mockcuda: MockCuda, state: Path) -> None:
    out = run_program(mockcuda, "procaddr", env=mockcuda.env(state))
    assert out["cuMemAlloc_12000_0"] == "0:0:cuMemAlloc_v2"
    assert out["cuMemGetInfo_3020_0"] == "0:0:cuMemGetInfo_v2"
    assert out["cuMemAlloc_2000_0"] == "500:2:null"  # NOT_FOUND, version not sufficient
    assert out["cuNoSuchThing_12000_0"] == "500:1:null"  # NOT_FOUND, symbol not found
    assert out["cuStreamSynchronize_12000_0"] == "0:0:cuStreamSynchronize"
    assert out["cuStreamSynchronize_12000_2"] == "0:0:cuStreamSynchronize_ptsz"
    assert out["cuMemcpyHtoD_12000_2"] == "0:0:cuMemcpyHtoD_v2_ptds"
    assert out["cuGetProcAddress_12000_0"] == "0:0:cuGetProcAddress_v2"
    assert out["cuEventElapsedTime_12080_0"] == "0:0:cuEventElapsedTime_v2"
    assert out["null_symbol"] == out["bad_flags"] == INVALID_VALUE
    assert out["used_after_alloc"] == "4096"
    assert out["used_after_free"] == "0"


EXPECTED_ERRORS = {
    "alloc_before_init": "3",
    "count_before_init": "3",
    "nvml_before_init": "1",  # NVML_ERROR_UNINITIALIZED
    "init_bad_flags": "1",
    "alloc_without_context": "201",
    "meminfo_without_context": "201",
    "device_get_null": "1",
    "device_get_bad_ordinal": "101",
    "device_get_negative": "101",
    "total_mem_bad_device": "101",
    "ctx_create_bad_device": "101",
    "set_current_bogus": "201",
    "alloc_null": "1",
    "alloc_zero": "1",
    "alloc_huge": "2",
    "meminfo_null": "1",
    "pitch_bad_element": "1",
    "free_unknown": "1",
    "free_zero": "1",
    "free_host_unknown": "1",
    "memcpy_unknown": "1",
    "memcpy_past_end": "1",
    "pointer_attribute_unknown": "1",
    "attribute_bad": "1",
    "stream_sync_bogus": "400",
    "event_record_bogus": "400",
    "launch_bogus_function": "400",
    "launch_zero_grid": "1",
    "launch_big_block": "1",
    "set_cost_negative": "1",
    "elapsed_unrecorded": "400",
    "elapsed_disabled_timing": "400",
    "elapsed_null": "1",
    "vmm_bad_device": "101",
    "granularity_null_prop": "1",
    "release_unknown": "1",
    "error_name_unknown": "1",
    "error_name_oom": "CUDA_ERROR_OUT_OF_MEMORY",
    "ctx_destroy_null": "1",
    "alloc_after_destroy": "201",
}


def test_bad_arguments_give_the_driver_error_codes(mockcuda: MockCuda, state: Path) -> None:
    out = run_program(mockcuda, "errors", env=mockcuda.env(state))
    assert out == EXPECTED_ERRORS


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MOCKCUDA_MEMORY", "lots"),
        ("MOCKCUDA_MEMORY", "0"),
        ("MOCKCUDA_DEVICES", "99"),
        ("MOCKCUDA_COPY_GBPS", "fast"),
        ("MOCKCUDA_COPY_GBPS", "0"),
        ("MOCKCUDA_COPY_LATENCY_NS", "-1"),
        ("MOCKCUDA_COPY_LATENCY_NS", "2us"),
        ("MOCKCUDA_DRIVER_VERSION", "12.8"),
        ("MOCKCUDA_FAIL_MEMCREATE_AFTER", "some"),
    ],
)
def test_bad_configuration_fails_cuinit_naming_the_variable(
    mockcuda: MockCuda, state: Path, variable: str, value: str
) -> None:
    env = mockcuda.env(state)
    env[variable] = value
    done = subprocess.run(
        [str(mockcuda.programs["meminfo"])],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 1
    assert variable in done.stderr
    assert "cuInit(0) failed: 1" in done.stderr


def test_devices_and_attributes_through_ctypes(mockcuda: MockCuda, state: Path) -> None:
    code = (
        "import ctypes, sys\n"
        f"cuda = ctypes.CDLL({str(mockcuda.libcuda)!r})\n"
        "n = ctypes.c_int(); v = ctypes.c_int(); name = ctypes.create_string_buffer(64)\n"
        "assert cuda.cuInit(0) == 0\n"
        "assert cuda.cuDeviceGetCount(ctypes.byref(n)) == 0\n"
        "assert cuda.cuDeviceGetAttribute(ctypes.byref(v), 75, 2) == 0\n"
        "assert cuda.cuDeviceGetName(name, 64, 2) == 0\n"
        "print(n.value, v.value, name.value.decode(), cuda.cuDeviceGetName(name, 64, 3))\n"
    )
    done = subprocess.run(
        ["python3", "-c", code],
        env=mockcuda.env(state, devices=3),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=True,
    )
    assert done.stdout.split() == ["3", "8", "NVIDIA", "Mock", "GPU", "101"]
    assert ctypes.sizeof(ctypes.c_int) == 4  # the ABI the snippet assumes


# Runs against the mock alone (no shim): pools, 3D arrays and the event record count.
POOLS = r"""
import ctypes, json, sys
from ctypes import byref, c_int, c_size_t, c_uint64, c_ulonglong, c_void_p

cuda = ctypes.CDLL(sys.argv[1])


class PoolProps(ctypes.Structure):
    _fields_ = [("allocType", c_int), ("handleTypes", c_int), ("loc_type", c_int),
                ("loc_id", c_int), ("win32", c_void_p), ("maxSize", c_size_t),
                ("usage", ctypes.c_ushort), ("reserved", ctypes.c_ubyte * 54)]


def ordinal(ptr):
    device = c_int(-1)
    assert cuda.cuPointerGetAttribute(byref(device), 9, c_uint64(ptr)) == 0
    return device.value


dev, ctx, ptr = c_int(), c_void_p(), c_uint64()
created, default, again = c_void_p(), c_void_p(), c_void_p()
out = {}
assert cuda.cuInit(0) == 0
assert cuda.cuDeviceGet(byref(dev), 0) == 0
assert cuda.cuCtxCreate_v2(byref(ctx), 0, dev) == 0
out["create"] = cuda.cuMemPoolCreate(byref(created), byref(PoolProps(1, 0, 1, 1)))
out["alloc"] = cuda.cuMemAllocFromPoolAsync(byref(ptr), c_size_t(1 << 20), created, None)
out["ordinal"] = ordinal(ptr.value)
out["free"] = cuda.cuMemFreeAsync(c_uint64(ptr.value), None)
out["default"] = cuda.cuDeviceGetDefaultMemPool(byref(default), 1)
out["current_is_default"] = (cuda.cuDeviceGetMemPool(byref(again), 1), again.value == default.value)
out["ptsz"] = cuda.cuMemAllocFromPoolAsync_ptsz(byref(ptr), c_size_t(1 << 20), default, None)
out["ptsz_ordinal"] = ordinal(ptr.value)
out["destroy_default"] = cuda.cuMemPoolDestroy(default)
out["destroy"] = cuda.cuMemPoolDestroy(created)
out["destroy_again"] = cuda.cuMemPoolDestroy(created)
out["alloc_destroyed"] = cuda.cuMemAllocFromPoolAsync(byref(ptr), c_size_t(1), created, None)
out["host_pool"] = cuda.cuMemPoolCreate(byref(created), byref(PoolProps(1, 0, 2, 0)))
out["bad_device_pool"] = cuda.cuMemPoolCreate(byref(created), byref(PoolProps(1, 0, 1, 7)))
out["null_props"] = cuda.cuMemPoolCreate(byref(created), None)
out["default_bad_device"] = cuda.cuDeviceGetDefaultMemPool(byref(default), 7)
records = c_ulonglong()
assert cuda.mockcudaGetEventRecords(byref(records)) == 0
out["records_before"] = records.value
event = c_void_p()
assert cuda.cuEventCreate(byref(event), 0) == 0
assert cuda.cuEventRecord(event, None) == 0
assert cuda.cuEventRecord_ptsz(event, None) == 0
assert cuda.mockcudaGetEventRecords(byref(records)) == 0
out["records_after"] = records.value
out["records_null"] = cuda.mockcudaGetEventRecords(None)
print(json.dumps(out))
"""


def test_pools_land_on_their_device_and_refuse_bad_input(mockcuda: MockCuda, state: Path) -> None:
    done = subprocess.run(
        ["python3", "-c", POOLS, str(mockcuda.libcuda)],
        env=mockcuda.env(state, devices=2),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=True,
    )
    out = json.loads(done.stdout)
    assert out == {
        "create": 0,
        "alloc": 0,
        "ordinal": 1,  # the pool's device, not the current context's
        "free": 0,
        "default": 0,
        "current_is_default": [0, True],
        "ptsz": 0,
        "ptsz_ordinal": 1,
        "destroy_default": 1,  # INVALID_VALUE: a default pool cannot be destroyed
        "destroy": 0,
        "destroy_again": 1,
        "alloc_destroyed": 1,
        "host_pool": 1,  # only device pools are simulated
        "bad_device_pool": 101,  # INVALID_DEVICE
        "null_props": 1,
        "default_bad_device": 101,
        "records_before": 0,
        "records_after": 2,
        "records_null": 1,
    }


ARRAYS_3D = r"""
import ctypes, sys
from ctypes import byref, c_size_t, c_uint, c_void_p


class Desc(ctypes.Structure):
    _fields_ = [("w", c_size_t), ("h", c_size_t), ("d", c_size_t), ("f", ctypes.c_int),
                ("c", c_uint), ("flags", c_uint)]


def used():
    assert cuda.cuMemGetInfo_v2(byref(free), byref(total)) == 0
    return total.value - free.value


def create(*shape):
    return cuda.cuArray3DCreate_v2(byref(arr), byref(Desc(*shape)) if shape else None)


cuda = ctypes.CDLL(sys.argv[1])
dev, ctx, arr, free, total = ctypes.c_int(), c_void_p(), c_void_p(), c_size_t(), c_size_t()
assert cuda.cuInit(0) == 0 and cuda.cuDeviceGet(byref(dev), 0) == 0
assert cuda.cuCtxCreate_v2(byref(ctx), 0, dev) == 0
codes = [create(64, 32, 8, 0x20, 2, 0), used(), cuda.cuArrayDestroy(arr), used()]
codes += [create(64, 32, 8, 0x20, 3, 0), create(), create(2**40, 2**20, 2**20, 0x20, 4, 0)]
print(*codes)
"""


def test_3d_arrays_are_charged_and_destroyed(mockcuda: MockCuda, state: Path) -> None:
    done = subprocess.run(
        ["python3", "-c", ARRAYS_3D, str(mockcuda.libcuda)],
        env=mockcuda.env(state),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=True,
    )
    # 64 x 32 x 8 two-channel floats, then nothing once destroyed; three channels and no
    # descriptor refused (INVALID_VALUE); an overflowing size out of memory.
    charged = 64 * 32 * 8 * 2 * 4
    assert done.stdout.split() == ["0", str(charged), "0", "0", "1", "1", "2"]
