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
