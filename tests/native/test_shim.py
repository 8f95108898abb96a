"""The shim on the mock driver: VRAM limits on every allocation path and every entry path
(link-time symbol, dlsym, cuGetProcAddress), the virtual device in all three memory queries,
one limit shared by a worker's processes, and a workload that always runs.

Each case runs a child Python under LD_PRELOAD=libtfshim.so that drives libcuda.so.1 and
libnvidia-ml.so.1 (the mock) through ctypes, so ctypes' dlopen + dlsym is the entry path
unless a case says otherwise.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tensorfusion import shim_path
from tensorfusion._native import ShmRegion

MiB = 1 << 20
LIMIT = 64 * MiB

# Runs the ops in argv[1] (JSON) and prints one JSON result per op. "wait" blocks on stdin,
# so a parent can hold the process alive with its allocations, or SIGKILL it there.
CHILD = r"""
import ctypes, json, sys
from ctypes import byref, c_int, c_size_t, c_uint64, c_void_p, POINTER, CFUNCTYPE

cuda = ctypes.CDLL("libcuda.so.1")
nvml = ctypes.CDLL("libnvidia-ml.so.1")
ALLOC = CFUNCTYPE(c_int, POINTER(c_uint64), c_size_t)


class Desc(ctypes.Structure):
    _fields_ = [("Width", c_size_t), ("Height", c_size_t), ("Format", c_int),
                ("NumChannels", ctypes.c_uint)]


class Prop(ctypes.Structure):
    _fields_ = [("type", c_int), ("handleTypes", c_int), ("loc_type", c_int), ("loc_id", c_int),
                ("meta", c_void_p), ("flags", ctypes.c_ubyte * 8)]


class Desc3D(ctypes.Structure):
    _fields_ = [("Width", c_size_t), ("Height", c_size_t), ("Depth", c_size_t), ("Format", c_int),
                ("NumChannels", ctypes.c_uint), ("Flags", ctypes.c_uint)]


class PoolProps(ctypes.Structure):
    _fields_ = [("allocType", c_int), ("handleTypes", c_int), ("loc_type", c_int),
                ("loc_id", c_int), ("win32", c_void_p), ("maxSize", c_size_t),
                ("usage", ctypes.c_ushort), ("reserved", ctypes.c_ubyte * 54)]


class Mem(ctypes.Structure):
    _fields_ = [("total", c_uint64), ("free", c_uint64), ("used", c_uint64)]


class Mem2(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint), ("total", c_uint64), ("reserved", c_uint64),
                ("free", c_uint64), ("used", c_uint64)]


def alloc(entry, size):
    ptr = c_uint64()
    return entry(byref(ptr), c_size_t(size)), ptr.value


def proc_address(name, version, flags=0):
    fn, status = c_void_p(), c_int()
    rc = cuda.cuGetProcAddress_v2(name.encode(), byref(fn), version, c_uint64(flags),
                                  byref(status))
    assert rc == 0 and fn.value, (name, rc)
    return fn.value


def address(library, name):
    return ctypes.cast(getattr(library, name), c_void_p).value


def run(op, args, held):
    if op == "init":
        dev, ctx = c_int(), c_void_p()
        assert cuda.cuInit(0) == 0
        assert cuda.cuDeviceGet(byref(dev), 0) == 0
        assert cuda.cuCtxCreate_v2(byref(ctx), 0, dev) == 0
        return 0
    if op == "alloc":
        rc, ptr = alloc(cuda.cuMemAlloc_v2, args[0])
    elif op == "alloc_linked":  # the symbol a program linked against libcuda binds to
        rc, ptr = alloc(ctypes.CDLL(None).cuMemAlloc_v2, args[0])
    elif op == "alloc_proc":  # through cuGetProcAddress_v2 (name, version)
        rc, ptr = alloc(ALLOC(proc_address("cuMemAlloc", args[1])), args[0])
    elif op == "managed":
        ptr = c_uint64()
        rc, ptr = cuda.cuMemAllocManaged(byref(ptr), c_size_t(args[0]), 1), ptr.value
    elif op == "async":
        ptr = c_uint64()
        rc, ptr = cuda.cuMemAllocAsync(byref(ptr), c_size_t(args[0]), None), ptr.value
    elif op == "pitch":
        ptr, pitch = c_uint64(), c_size_t()
        rc = cuda.cuMemAllocPitch_v2(byref(ptr), byref(pitch), c_size_t(args[0]),
                                     c_size_t(args[1]), 4)
        held.append(("ptr", ptr.value))
        return [rc, pitch.value]
    elif op == "array":
        arr = c_void_p()
        rc = cuda.cuArrayCreate_v2(byref(arr), byref(Desc(args[0], args[1], 0x20, args[2])))
        held.append(("array", arr.value))
        return rc
    elif op == "array3d":  # width, height, depth, channels of float
        arr = c_void_p()
        desc = Desc3D(args[0], args[1], args[2], 0x20, args[3], 0)
        rc = cuda.cuArray3DCreate_v2(byref(arr), byref(desc))
        held.append(("array", arr.value))
        return rc
    elif op in ("pool", "default_pool"):  # on device args[0]; later pool ops use the last one
        pool = c_void_p()
        if op == "pool":  # device None: no properties at all
            props = None if args[0] is None else byref(PoolProps(1, 0, 1, args[0]))
            rc = cuda.cuMemPoolCreate(byref(pool), props)
        else:
            rc = cuda.cuDeviceGetDefaultMemPool(byref(pool), args[0])
        pools.append(pool)
        return rc
    elif op == "pool_alloc":  # size, and 1 for the per-thread entry point
        entry = cuda.cuMemAllocFromPoolAsync_ptsz if args[1] else cuda.cuMemAllocFromPoolAsync
        ptr = c_uint64()
        rc, ptr = entry(byref(ptr), c_size_t(args[0]), pools[-1], None), ptr.value
    elif op == "pool_destroy":
        return cuda.cuMemPoolDestroy(pools.pop())
    elif op == "vmm":
        handle = c_uint64()
        rc = cuda.cuMemCreate(byref(handle), c_size_t(args[0]), byref(Prop(0x1, 0, 1, 0)),
                              c_uint64(0))
        held.append(("vmm", handle.value))
        return rc
    elif op == "free_all":
        free = {"ptr": cuda.cuMemFree_v2, "array": cuda.cuArrayDestroy,
                "vmm": cuda.cuMemRelease}
        codes = [free[kind](c_uint64(h) if kind != "array" else c_void_p(h))
                 for kind, h in held]
        held.clear()
        return codes
    elif op == "free_async_last":
        kind, h = held.pop()
        return cuda.cuMemFreeAsync(c_uint64(h), None)
    elif op == "info":
        free, total, dev_total = c_size_t(), c_size_t(), c_size_t()
        assert cuda.cuMemGetInfo_v2(byref(free), byref(total)) == 0
        assert cuda.cuDeviceTotalMem_v2(byref(dev_total), 0) == 0
        handle, mem, mem2 = c_void_p(), Mem(), Mem2(version=(ctypes.sizeof(Mem2) | (2 << 24)))
        assert nvml.nvmlInit_v2() == 0
        assert nvml.nvmlDeviceGetHandleByIndex_v2(0, byref(handle)) == 0
        assert nvml.nvmlDeviceGetMemoryInfo(handle, byref(mem)) == 0
        assert nvml.nvmlDeviceGetMemoryInfo_v2(handle, byref(mem2)) == 0
        return {"cu": [free.value, total.value], "cu_total": dev_total.value,
                "nvml": [mem.total, mem.free, mem.used], "nvml2": [mem2.total, mem2.free,
                                                                   mem2.used]}
    elif op == "dlsym_is_hook":  # does dlsym on the driver's handle give the shim's export?
        return address(cuda, args[0]) == address(ctypes.CDLL(None), args[0])
    elif op == "busy":  # one launch of kernel args[0] on the default stream, waited for
        module, fn = c_void_p(), c_void_p()
        assert cuda.cuModuleLoadData(byref(module), b"image") == 0
        assert cuda.cuModuleGetFunction(byref(fn), module, args[0].encode()) == 0
        assert cuda.cuLaunchKernel(fn, 1, 1, 1, 32, 1, 1, 0, None, None, None) == 0
        return cuda.cuCtxSynchronize()
    elif op == "utilization":
        handle, rates = c_void_p(), (ctypes.c_uint * 2)()
        assert nvml.nvmlInit_v2() == 0
        assert nvml.nvmlDeviceGetHandleByIndex_v2(args[0], byref(handle)) == 0
        assert nvml.nvmlDeviceGetUtilizationRates(handle, rates) == 0
        return list(rates)
    elif op == "proc_is_hook":  # does cuGetProcAddress(name, version, flags) give the export?
        return proc_address(args[0], args[1], args[2]) == address(ctypes.CDLL(None), args[3])
    elif op == "wait":
        sys.stdin.readline()
        return 0
    else:
        raise SystemExit(f"unknown op {op}")
    if rc == 0:
        held.append(("ptr", ptr))
    return rc


held, pools = [], []
for op, *args in json.loads(sys.argv[1]):
    print(json.dumps(run(op, args, held)), flush=True)
"""


def child_env(mockcuda: Any, tmp_path: Path, **env: str) -> dict[str, str]:
    # The mock honours CUDA_VISIBLE_DEVICES as a driver does: one set around the tests (a GPU
    # runner) must not hide the mock's devices from them.
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TF_", "MOCKCUDA_")) and k != "CUDA_VISIBLE_DEVICES"
    }
    base.update(
        LD_PRELOAD=str(shim_path()),
        LD_LIBRARY_PATH=str(mockcuda.lib_dir),
        MOCKCUDA_STATE=str(tmp_path / "mock-state"),
        MOCKCUDA_MEMORY=str(1 << 30),
    )
    base.update(env)
    return base


def start(ops: list[list[Any]], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, json.dumps(ops)],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def read_results(proc: subprocess.Popen[str], count: int) -> list[Any]:
    assert proc.stdout is not None
    return [json.loads(proc.stdout.readline()) for _ in range(count)]


def run_child(ops: list[list[Any]], env: dict[str, str]) -> tuple[list[Any], str]:
    proc = start(ops, env)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return [json.loads(line) for line in out.splitlines()], err


@pytest.fixture
def env(mockcuda: Any, tmp_path: Path) -> dict[str, str]:
    return child_env(mockcuda, tmp_path, TF_VRAM_LIMIT=str(LIMIT))


def make_region(tmp_path: Path, limit: int = LIMIT, slots: int = 8) -> Path:
    path = tmp_path / "region"
    ShmRegion.create(
        path,
        slots=slots,
        worker="w",
        vram_limit=limit,
        tflops_limit=10.0,
        tflops_request=5.0,
        gpu_peak_tflops=100.0,
    )
    return path


# --- limits at the byte ---------------------------------------------------------------------


@pytest.mark.parametrize("op", ["alloc", "alloc_linked", "managed", "async"])
def test_allocation_fits_exactly_at_the_limit_and_not_one_byte_past(
    env: dict[str, str], op: str
) -> None:
    results, _ = run_child(
        [["init"], [op, LIMIT + 1], [op, LIMIT], [op, 1], ["free_all"], [op, 1]], env
    )
    assert results[1:4] == [2, 0, 2]  # OUT_OF_MEMORY, fits, OUT_OF_MEMORY
    assert results[4] == [0]
    assert results[5] == 0  # the free gave every byte back


@pytest.mark.parametrize("version", [3020, 12080])
def test_cugetprocaddress_hands_out_the_charging_allocator(
    env: dict[str, str], version: int
) -> None:
    results, _ = run_child(
        [["init"], ["alloc_proc", LIMIT - MiB, version], ["alloc_proc", MiB + 1, version]], env
    )
    assert results[1:] == [0, 2]


@pytest.mark.parametrize(
    ("name", "version", "flags", "export"),
    [
        ("cuMemAlloc", 12080, 0, "cuMemAlloc_v2"),
        ("cuMemFree", 3020, 0, "cuMemFree_v2"),
        ("cuMemGetInfo", 12080, 0, "cuMemGetInfo_v2"),
        ("cuMemAllocAsync", 12080, 0, "cuMemAllocAsync"),
        ("cuMemAllocAsync", 12080, 2, "cuMemAllocAsync_ptsz"),
        ("cuGetProcAddress", 12080, 0, "cuGetProcAddress_v2"),
    ],
)
def test_cugetprocaddress_maps_name_version_and_flags_to_the_hook(
    env: dict[str, str], name: str, version: int, flags: int, export: str
) -> None:
    results, _ = run_child([["init"], ["proc_is_hook", name, version, flags, export]], env)
    assert results[1] is True


def test_pitch_is_charged_as_pitch_times_height(env: dict[str, str]) -> None:
    # 1000-byte rows come back padded; LIMIT / 1000 rows fit unpadded but not padded.
    rows = LIMIT // 1000
    results, _ = run_child([["init"], ["pitch", 1000, rows]], env)
    rc, pitch = results[1]
    assert pitch > 1000
    assert rc == 2
    fitting_rows = LIMIT // pitch - 1  # leaves room for one plain allocation
    results, _ = run_child(
        [
            ["init"],
            ["pitch", 1000, fitting_rows],
            ["alloc", LIMIT - pitch * fitting_rows],
            ["alloc", 1],
        ],
        env,
    )
    assert results[1][0] == 0
    assert results[2:] == [0, 2]


def test_arrays_and_vmm_are_charged_by_their_size(env: dict[str, str]) -> None:
    array_bytes = 1024 * 1024 * 4 * 4  # 1024 x 1024 float4 = 16 MiB
    vmm = 2 * MiB * 16  # 32 MiB, a multiple of the 2 MiB granularity
    rest = LIMIT - array_bytes - vmm
    results, _ = run_child(
        [
            ["init"],
            ["array", 1024, 1024, 4],
            ["vmm", vmm],
            ["alloc", rest],
            ["alloc", 1],
            ["free_all"],
            ["alloc", LIMIT],
        ],
        env,
    )
    assert results[1:5] == [0, 0, 0, 2]
    assert results[5] == [0, 0, 0]
    assert results[6] == 0


def test_async_free_credits(env: dict[str, str]) -> None:
    results, _ = run_child([["init"], ["async", LIMIT], ["free_async_last"], ["async", LIMIT]], env)
    assert results[1:] == [0, 0, 0]


# --- the virtual device -----------------------------------------------------------------------


def test_all_memory_queries_report_the_virtual_device(env: dict[str, str]) -> None:
    results, _ = run_child([["init"], ["alloc", 10 * MiB], ["info"]], env)
    info = results[2]
    assert info["cu"] == [LIMIT - 10 * MiB, LIMIT]
    assert info["cu_total"] == LIMIT
    assert info["nvml"] == [LIMIT, LIMIT - 10 * MiB, 10 * MiB]
    assert info["nvml2"] == [LIMIT, LIMIT - 10 * MiB, 10 * MiB]


def test_per_device_suffix_overrides_the_default(mockcuda: Any, tmp_path: Path) -> None:
    env = child_env(mockcuda, tmp_path, TF_VRAM_LIMIT=str(LIMIT), TF_VRAM_LIMIT_0="32Mi")
    results, _ = run_child([["init"], ["alloc", 32 * MiB], ["alloc", 1], ["info"]], env)
    assert results[1:3] == [0, 2]
    assert results[3]["cu_total"] == 32 * MiB


def test_without_a_limit_the_real_device_shows_through(mockcuda: Any, tmp_path: Path) -> None:
    results, err = run_child(
        [["init"], ["alloc", 256 * MiB], ["info"]], child_env(mockcuda, tmp_path)
    )
    assert results[1] == 0
    assert results[2]["cu_total"] == 1 << 30
    assert err == ""


# --- a worker's processes share one limit ----------------------------------------------------


def test_two_processes_share_one_region_limit(mockcuda: Any, tmp_path: Path) -> None:
    env = child_env(mockcuda, tmp_path, TF_SHM_PATH=str(make_region(tmp_path)))
    first = start([["init"], ["alloc", 40 * MiB], ["wait"]], env)
    try:
        assert read_results(first, 2) == [0, 0]
        results, _ = run_child(
            [["init"], ["alloc", 24 * MiB + 1], ["alloc", 24 * MiB], ["info"]], env
        )
        assert results[1:3] == [2, 0]
        assert results[3]["cu"] == [0, LIMIT]  # the whole worker's usage
    finally:
        first.communicate("\n", timeout=60)


def test_region_books_bytes_by_kind(mockcuda: Any, tmp_path: Path) -> None:
    path = make_region(tmp_path)
    env = child_env(mockcuda, tmp_path, TF_SHM_PATH=str(path))
    proc = start(
        [
            ["init"],
            ["alloc", MiB],
            ["managed", 2 * MiB],
            ["array", 256, 256, 4],
            ["vmm", 2 * MiB],
            ["wait"],
        ],
        env,
    )
    try:
        assert read_results(proc, 5) == [0] * 5
        snap = ShmRegion.open(path).snapshot()
        (slot,) = snap["slots"]
        assert slot["pid"] == proc.pid
        assert slot["bytes"] == {"device": MiB, "managed": 2 * MiB, "array": MiB, "vmm": 2 * MiB}
    finally:
        proc.communicate("\n", timeout=60)


def test_sigkilled_process_bytes_are_reclaimed(mockcuda: Any, tmp_path: Path) -> None:
    env = child_env(mockcuda, tmp_path, TF_SHM_PATH=str(make_region(tmp_path)))
    victim = start([["init"], ["alloc", LIMIT], ["wait"]], env)
    assert read_results(victim, 2) == [0, 0]
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=60)
    results, _ = run_child([["init"], ["alloc", LIMIT]], env)
    assert results[1] == 0


def test_region_limit_replaces_the_env_limit(mockcuda: Any, tmp_path: Path) -> None:
    env = child_env(
        mockcuda,
        tmp_path,
        TF_VRAM_LIMIT=str(LIMIT),
        TF_SHM_PATH=str(make_region(tmp_path, limit=8 * MiB)),
    )
    results, _ = run_child([["init"], ["alloc", 8 * MiB], ["alloc", 1], ["info"]], env)
    assert results[1:3] == [0, 2]
    assert results[3]["cu_total"] == 8 * MiB


# --- bad configuration: one line, the workload runs ----------------------------------------------


def stderr_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("tensor-fusion shim:")]


@pytest.mark.parametrize("value", ["lots", "-5", "1.5", "10Qi", "99999999999999999999Ei"])
def test_malformed_limit_is_one_line_and_no_limit(
    mockcuda: Any, tmp_path: Path, value: str
) -> None:
    results, err = run_child(
        [["init"], ["alloc", 256 * MiB]], child_env(mockcuda, tmp_path, TF_VRAM_LIMIT=value)
    )
    assert results[1] == 0
    (line,) = stderr_lines(err)
    assert "TF_VRAM_LIMIT" in line
    assert "no VRAM limit" in line


def test_malformed_device_limit_falls_back_to_the_default(mockcuda: Any, tmp_path: Path) -> None:
    env = child_env(mockcuda, tmp_path, TF_VRAM_LIMIT=str(LIMIT), TF_VRAM_LIMIT_0="8 GiB")
    results, err = run_child([["init"], ["alloc", LIMIT], ["alloc", 1]], env)
    assert results[1:] == [0, 2]
    (line,) = stderr_lines(err)
    assert "TF_VRAM_LIMIT_0" in line


@pytest.mark.parametrize("limit", ["64Mi", "67108864", "0.0625Gi", "67.108864M", "67108864e0"])
def test_quantity_spellings_are_bytes(mockcuda: Any, tmp_path: Path, limit: str) -> None:
    results, err = run_child(
        [["init"], ["alloc", LIMIT], ["alloc", 1]],
        child_env(mockcuda, tmp_path, TF_VRAM_LIMIT=limit),
    )
    assert results[1:] == [0, 2]
    assert err == ""


def test_missing_region_is_one_line_and_the_env_limit_holds(mockcuda: Any, tmp_path: Path) -> None:
    env = child_env(
        mockcuda, tmp_path, TF_VRAM_LIMIT=str(LIMIT), TF_SHM_PATH=str(tmp_path / "absent")
    )
    results, err = run_child([["init"], ["alloc", LIMIT], ["alloc", 1]], env)
    assert results[1:] == [0, 2]
    (line,) = stderr_lines(err)
    assert "absent" in line
    assert "enforcing TF_VRAM_LIMIT" in line


def test_corrupt_region_is_one_line_and_no_limit(mockcuda: Any, tmp_path: Path) -> None:
    bogus = tmp_path / "bogus"
    bogus.write_bytes(b"not a region" * 100)
    results, err = run_child(
        [["init"], ["alloc", 256 * MiB]], child_env(mockcuda, tmp_path, TF_SHM_PATH=str(bogus))
    )
    assert results[1] == 0
    (line,) = stderr_lines(err)
    assert "no VRAM limit enforced" in line


def test_region_of_another_worker_is_not_joined(mockcuda: Any, tmp_path: Path) -> None:
    env = child_env(
        mockcuda,
        tmp_path,
        TF_SHM_PATH=str(make_region(tmp_path)),
        TF_WORKER_NAME="someone-else",
        TF_VRAM_LIMIT=str(2 * LIMIT),
    )
    results, err = run_child([["init"], ["alloc", 2 * LIMIT], ["alloc", 1]], env)
    assert results[1:] == [0, 2]
    (line,) = stderr_lines(err)
    assert "TF_WORKER_NAME=someone-else" in line


def test_unloadable_real_driver_is_one_line(mockcuda: Any, tmp_path: Path) -> None:
    env = child_env(mockcuda, tmp_path, TF_REAL_LIBCUDA=str(tmp_path / "nope.so"))
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import ctypes; print(ctypes.CDLL(None).cuMemGetInfo_v2(None, None))",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert proc.stdout.strip() == "500"  # CUDA_ERROR_NOT_FOUND, not a crash
    (line,) = stderr_lines(proc.stderr)
    assert "TF_REAL_LIBCUDA" in line
