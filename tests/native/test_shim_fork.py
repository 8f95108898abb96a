"""fork() under the shim: a child's allocations are charged to a slot of its own, the parent's
books stay as they were, and once both are gone the region holds nothing.

The parent runs under LD_PRELOAD=libtfshim.so on the mock, allocates, then forks with
os.fork(); the child allocates (and optionally frees) while the parent holds still.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tensorfusion._native import ShmRegion
from tests.native.test_shim import MiB, child_env, make_region
from tests.native.test_shim_pacing import make_region as make_pacing_region

PARENT_BYTES = 8 * MiB
CHILD_BYTES = 4 * MiB

# argv: <child frees its allocation: 0|1>. Prints one JSON line from each process, then both
# wait: the parent for a line on stdin, the child until the parent closes their pipe.
FORKER = r"""
import ctypes, json, os, sys
from ctypes import byref, c_int, c_size_t, c_uint64, c_void_p

cuda = ctypes.CDLL("libcuda.so.1")


def init():
    dev, ctx = c_int(), c_void_p()
    assert cuda.cuInit(0) == 0 and cuda.cuDeviceGet(byref(dev), 0) == 0
    assert cuda.cuCtxCreate_v2(byref(ctx), 0, dev) == 0


init()


def say(line):
    # One write(2) of less than PIPE_BUF bytes: the two processes' lines never interleave
    # (print may hand a line and its newline to the pipe in separate writes).
    os.write(1, (json.dumps(line) + "\n").encode())


def alloc(size):
    ptr = c_uint64()
    return cuda.cuMemAlloc_v2(byref(ptr), c_size_t(size)), ptr.value


rc, held = alloc(PARENT_BYTES)
assert rc == 0
read_end, write_end = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(write_end)
    init()  # as with the real driver, a forked child starts its own CUDA
    rc, ptr = alloc(CHILD_BYTES)
    freed = cuda.cuMemFree_v2(c_uint64(ptr)) if sys.argv[1] == "1" else None
    say({"role": "child", "pid": os.getpid(), "rc": rc, "freed": freed})
    os.read(read_end, 1)
    os._exit(0)
os.close(read_end)
say({"role": "parent", "pid": os.getpid()})
sys.stdin.readline()
os.close(write_end)
os.waitpid(pid, 0)
assert cuda.cuMemFree_v2(c_uint64(held)) == 0
""".replace("PARENT_BYTES", str(PARENT_BYTES)).replace("CHILD_BYTES", str(CHILD_BYTES))


def run_forker(env: dict[str, str], region: Path, child_frees: bool) -> dict[str, Any]:
    """Runs the forker; returns both processes' lines by role and the region while they live."""
    proc = subprocess.Popen(
        [sys.executable, "-c", FORKER, "1" if child_frees else "0"],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    lines = [json.loads(proc.stdout.readline() or "{}") for _ in range(2)]
    seen: dict[str, Any] = {line.get("role", "missing"): line for line in lines}
    seen["live"] = ShmRegion.open(region).snapshot()
    _, err = proc.communicate("\n", timeout=60)
    assert proc.returncode == 0, err
    return seen


def bytes_by_pid(snapshot: dict[str, Any]) -> dict[int, int]:
    return {slot["pid"]: slot["bytes"]["device"] for slot in snapshot["slots"]}


@pytest.fixture
def region(tmp_path: Path) -> Path:
    return make_region(tmp_path)


def test_child_allocations_go_to_a_slot_of_its_own(
    mockcuda: Any, tmp_path: Path, region: Path
) -> None:
    seen = run_forker(child_env(mockcuda, tmp_path, TF_SHM_PATH=str(region)), region, False)
    assert seen["child"]["rc"] == 0
    assert bytes_by_pid(seen["live"]) == {
        seen["parent"]["pid"]: PARENT_BYTES,
        seen["child"]["pid"]: CHILD_BYTES,
    }
    assert seen["live"]["total_bytes"] == PARENT_BYTES + CHILD_BYTES
    after = ShmRegion.open(region)
    after.reap()  # the child exited without freeing: its slot goes with its process
    assert after.snapshot()["total_bytes"] == 0


def test_child_free_credits_its_own_slot_only(mockcuda: Any, tmp_path: Path, region: Path) -> None:
    seen = run_forker(child_env(mockcuda, tmp_path, TF_SHM_PATH=str(region)), region, True)
    assert (seen["child"]["rc"], seen["child"]["freed"]) == (0, 0)
    live = bytes_by_pid(seen["live"])
    assert live[seen["parent"]["pid"]] == PARENT_BYTES
    assert live.get(seen["child"]["pid"], 0) == 0
    # Both freed what they allocated: nothing is left, even before any reaping.
    assert ShmRegion.open(region).snapshot()["total_bytes"] == 0


def test_child_shares_the_worker_limit(mockcuda: Any, tmp_path: Path) -> None:
    # The parent's 8 MiB and the child's 4 MiB do not fit a 10 MiB limit together.
    region = make_region(tmp_path, limit=10 * MiB)
    seen = run_forker(child_env(mockcuda, tmp_path, TF_SHM_PATH=str(region)), region, False)
    assert seen["child"]["rc"] == 2  # CUDA_ERROR_OUT_OF_MEMORY
    live = bytes_by_pid(seen["live"])
    assert live[seen["parent"]["pid"]] == PARENT_BYTES
    assert live.get(seen["child"]["pid"], 0) == 0
    assert ShmRegion.open(region).snapshot()["total_bytes"] == 0


# Prints {"child": pid} once its launches are synchronised, then {"parent": pid} once the child
# has exited and the parent synchronised. The parent's launches after the pause take the fast
# path, which tallies them per thread: the fork copies that tally into the child.
PACED_FORKER = r"""
import ctypes, json, os, time
from ctypes import byref, c_int, c_size_t, c_uint64, c_void_p

cuda = ctypes.CDLL("libcuda.so.1")


def start():
    dev, ctx, module, fn, stream = c_int(), c_void_p(), c_void_p(), c_void_p(), c_void_p()
    assert cuda.cuInit(0) == 0 and cuda.cuDeviceGet(byref(dev), 0) == 0
    assert cuda.cuCtxCreate_v2(byref(ctx), 0, dev) == 0
    assert cuda.cuModuleLoadData(byref(module), b"image") == 0
    assert cuda.cuModuleGetFunction(byref(fn), module, b"sleep_us_2") == 0
    assert cuda.cuStreamCreate(byref(stream), 1) == 0
    return fn, stream


def launch(fn, stream, count):
    for _ in range(count):
        assert cuda.cuLaunchKernel(fn, 1, 1, 1, 32, 1, 1, 0, stream, None, None) == 0


fn, stream = start()
launch(fn, stream, 1)  # the site's first launch is measured
assert cuda.cuStreamSynchronize(stream) == 0
time.sleep(0.1)  # the bucket fills past its reserve
launch(fn, stream, PARENT_LAUNCHES)
pid = os.fork()
if pid == 0:
    fn, stream = start()  # as with the real driver, a forked child starts its own CUDA
    assert cuda.cuMemAlloc_v2(byref(c_uint64()), c_size_t(1 << 20)) == 0  # joins the region
    launch(fn, stream, CHILD_LAUNCHES)
    assert cuda.cuStreamSynchronize(stream) == 0
    os.write(1, (json.dumps({"child": os.getpid()}) + "\n").encode())
    os._exit(0)
os.waitpid(pid, 0)
assert cuda.cuStreamSynchronize(stream) == 0
print(json.dumps({"parent": os.getpid()}), flush=True)
"""
PARENT_LAUNCHES = 50  # fewer than one chunk's worth (200 us of 2 us launches)
CHILD_LAUNCHES = 10


@pytest.mark.timing  # the parent's launches take the fast path once its bucket has filled
def test_child_counts_only_its_own_launches(mockcuda: Any, tmp_path: Path) -> None:
    region = make_pacing_region(tmp_path, tflops_limit=90.0)
    script = PACED_FORKER.replace("PARENT_LAUNCHES", str(PARENT_LAUNCHES)).replace(
        "CHILD_LAUNCHES", str(CHILD_LAUNCHES)
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        check=False,
        env=child_env(mockcuda, tmp_path, TF_SHM_PATH=str(region)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    pids = {
        role: pid for line in proc.stdout.splitlines() for role, pid in json.loads(line).items()
    }
    launches = {s["pid"]: s["launches"] for s in ShmRegion.open(region).snapshot()["slots"]}
    # The parent counts the tally it forked with; the child starts with none of it.
    assert launches[pids["child"]] == CHILD_LAUNCHES
    assert launches[pids["parent"]] == 1 + PARENT_LAUNCHES
