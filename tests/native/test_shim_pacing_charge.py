"""What the shim's pacing charges a process for, on the mock driver: a new process gets no
starting burst, time a kernel spent queued behind another process's work is not charged to
it, and the grid sizes of one function are estimated apart.

Each process is a child Python driving the mock through ctypes, one command per stdin line,
so a test can interleave two processes' launches on the mock's shared device timeline. The
charges are read from the paced child's slot in its shared region. busy_ns counts the busy
time charged for a measured launch once its events are collected (by a later measured launch,
or by a synchronisation, which collects everything it waited for), and for a launch on the
fast path (a stall long enough to refill the bucket past its reserve can put one there) its
site's estimate: after a `sync`, every launch is in it.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tensorfusion._native import ShmRegion
from tests.native.test_shim import child_env
from tests.native.test_shim_pacing import make_region

# Bucket refills, stalls and pacing all run on the clock.
pytestmark = pytest.mark.timing

US = 1_000

# Commands, one a line: `launch <kernel> <grid> <count>` queues launches on the child's stream,
# `thread <kernel> <grid> <count>` does so from a new thread and waits for that thread to end,
# `sync` waits for them, `sleep <seconds>` idles, `records` reads how many events the process
# recorded (the shim's timing pairs: the program records none); each answers "ok" and its
# result. Exits at the end of its input.
CHILD = r"""
import ctypes, sys, threading, time
from ctypes import byref, c_int, c_ulonglong, c_void_p

cuda = ctypes.CDLL("libcuda.so.1")


def check(rc, what):
    if rc != 0:
        raise SystemExit(f"{what} failed: {rc}")


dev, ctx, module, stream = c_int(), c_void_p(), c_void_p(), c_void_p()
check(cuda.cuInit(0), "cuInit")
check(cuda.cuDeviceGet(byref(dev), 0), "cuDeviceGet")
check(cuda.cuCtxCreate_v2(byref(ctx), 0, dev), "cuCtxCreate")
check(cuda.cuModuleLoadData(byref(module), b"image"), "cuModuleLoadData")
check(cuda.cuStreamCreate(byref(stream), 1), "cuStreamCreate")
functions = {}


def launch(name, grid, count):
    check(cuda.cuCtxSetCurrent(ctx), "cuCtxSetCurrent")  # a new thread has no context yet
    if name not in functions:
        functions[name] = c_void_p()
        check(cuda.cuModuleGetFunction(byref(functions[name]), module, name), "function")
    for _ in range(count):
        if cuda.cuLaunchKernel(functions[name], grid, 1, 1, 32, 1, 1, 0, stream, None, None):
            return "cuLaunchKernel failed"
    return None


for line in sys.stdin:
    command = line.split()
    if command[0] in ("launch", "thread"):
        args = command[1].encode(), int(command[2]), int(command[3])
        failed = []
        if command[0] == "thread":
            worker = threading.Thread(target=lambda: failed.append(launch(*args)))
            worker.start()
            worker.join()
        else:
            failed.append(launch(*args))
        if failed != [None]:
            raise SystemExit(failed)
    elif command[0] == "sleep":
        time.sleep(float(command[1]))
    elif command[0] == "records":
        records = c_ulonglong()
        check(cuda.mockcudaGetEventRecords(byref(records)), "mockcudaGetEventRecords")
        print("ok", records.value, flush=True)
        continue
    else:
        check(cuda.cuStreamSynchronize(stream), "cuStreamSynchronize")
    print("ok", flush=True)
"""


class Child:
    """One child process on the mock, driven a command at a time."""

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CHILD],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def command(self, line: str) -> str:
        """Runs one command; its result ("" for those that have none)."""
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        assert answer.startswith("ok"), self.close()
        return answer[2:].strip()

    def launch(self, kernel: str, count: int = 1, grid: int = 1) -> None:
        self.command(f"launch {kernel} {grid} {count}")

    def slot(self, region: Path) -> dict[str, Any]:
        (slot,) = [
            s for s in ShmRegion.open(region).snapshot()["slots"] if s["pid"] == self.proc.pid
        ]
        return dict(slot)

    def close(self) -> str:
        _, err = self.proc.communicate("", timeout=120)
        assert self.proc.returncode == 0, err
        return err


def paced(mockcuda: Any, tmp_path: Path, tflops: float) -> tuple[Child, Path]:
    """A child paced at `tflops` of a 100 TFLOPS device, and its region."""
    region = make_region(tmp_path, tflops_limit=tflops)
    return Child(child_env(mockcuda, tmp_path, TF_SHM_PATH=str(region))), region


def test_a_new_process_gets_no_starting_burst(mockcuda: Any, tmp_path: Path) -> None:
    # At 1% each 200 us kernel buys 20 ms of waiting. A bucket that started full would let all
    # ten launches through at once (a window's worth at 1% is 1 ms of busy time, five kernels,
    # and the first estimate is a quarter of the real cost).
    child, region = paced(mockcuda, tmp_path, tflops=1.0)
    child.launch("sleep_us_200", count=10)
    child.command("sync")
    counters = child.slot(region)
    assert child.close() == ""
    assert counters["launches"] == 10
    # Every launch after the first waits; a few could find their debt repaid by a stall.
    assert counters["throttled_launches"] >= 7


def test_queueing_behind_another_process_is_not_charged(mockcuda: Any, tmp_path: Path) -> None:
    child, region = paced(mockcuda, tmp_path, tflops=99.0)
    unpaced = {k: v for k, v in child_env(mockcuda, tmp_path).items() if k != "LD_PRELOAD"}
    neighbour = Child(unpaced)  # the same mock device, no shim
    rounds = 5
    for _ in range(rounds):
        # The neighbour's 20 ms kernel holds the device: the paced 200 us kernel queued behind
        # it takes about 20.2 ms between its events. Then the same kernel on a free device.
        neighbour.launch("sleep_us_20000")
        child.launch("sleep_us_200")
        child.command("sync")
        for _ in range(2):
            time.sleep(0.03)  # the child's bucket refills: its next launch goes at once
            child.launch("sleep_us_200")
            child.command("sync")
    counters = child.slot(region)
    assert child.close() == ""
    assert neighbour.close() == ""
    own = 3 * rounds * 200 * US
    # Charging the time between the events would add 20 ms for every round. Only the first
    # queued launch, before a free one shows the kernel's own time, is charged its queueing
    # (and later ones a slow drift up towards it).
    assert own <= counters["busy_ns"] < own + 2 * 20_000 * US


@pytest.mark.parametrize("grids", [(1, 50), (50, 1)])
def test_grid_sizes_are_estimated_apart(
    mockcuda: Any, tmp_path: Path, grids: tuple[int, int]
) -> None:
    # One function at 200 us and 10 ms a launch, alternately: charging both like the smaller
    # one would leave most of the larger one's time out.
    child, region = paced(mockcuda, tmp_path, tflops=50.0)
    for _ in range(4):
        for grid in grids:
            child.launch("sleep_us_200", grid=grid)
            child.command("sync")
    counters = child.slot(region)
    assert child.close() == ""
    work = [grid * 200 * US for grid in grids] * 4
    # Each size is measured on its own first launch and charged its own time ever after.
    assert counters["busy_ns"] == sum(work)
