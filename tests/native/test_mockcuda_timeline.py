"""The mock driver's simulated GPU time: kernel durations, events, synchronisation, graphs,
NVML utilization, and one timeline shared by every process on a device. Assertions are on
simulated (event) time, which the mock computes, never on wall-clock thresholds."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.mockcuda_build import MockCuda
from tests.native.mockcuda_run import TIMEOUT, run_program

pytestmark = pytest.mark.timing

NOT_READY = "600"


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "mockcuda.state"


@pytest.mark.parametrize("how", ["plain", "ex", "coop", "graph"])
def test_hundred_1ms_launches_take_100ms_of_device_time(
    mockcuda: MockCuda, state: Path, how: str
) -> None:
    out = run_program(
        mockcuda, "launch_loop", "sleep_us_1000", "100", "1", how, env=mockcuda.env(state)
    )
    # Simulated busy time, exactly: the host's time between the calls is no device time.
    assert out["elapsed_ms"] == "100.000"
    assert out["query_before_sync"] == NOT_READY
    assert out["elapsed_before_sync"] == NOT_READY
    assert out["query_after_sync"] == out["event_query"] == "0"


def test_duration_scales_with_grid_and_registered_cost(mockcuda: MockCuda, state: Path) -> None:
    # 10 launches x 8 blocks x 0.5 ms per block = 40 ms
    out = run_program(
        mockcuda, "launch_loop", "anything", "10", "8", "plain", "500000", env=mockcuda.env(state)
    )
    assert out["elapsed_ms"] == "40.000"


def test_utilization_is_busy_fraction_of_the_last_second(mockcuda: MockCuda, state: Path) -> None:
    out = run_program(
        mockcuda, "launch_loop", "sleep_us_1000", "300", "1", "plain", env=mockcuda.env(state)
    )
    assert 29 <= int(out["utilization"]) <= 31


def test_two_processes_share_one_timeline(mockcuda: MockCuda, state: Path) -> None:
    env = {**mockcuda.env(state), "LAUNCH_LOOP_GATE": "1"}
    command = [str(mockcuda.programs["launch_loop"]), "sleep_us_1000", "100", "1", "plain"]
    procs = [
        subprocess.Popen(command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    # Both are set up before either starts, so their work is queued on the device together
    # however slowly the machine starts processes.
    for p in procs:
        assert p.stdout is not None
        assert p.stdout.readline() == "ready\n"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    outputs = [p.communicate(timeout=TIMEOUT)[0] for p in procs]
    elapsed = sorted(
        float(line.split("=")[1])
        for out in outputs
        for line in out.splitlines()
        if line.startswith("elapsed_ms=")
    )
    # Both 100 ms streams of work run on one device: whichever queued behind the other (wholly
    # or interleaved) sees its span stretched, and the two together cannot overlap in time.
    assert len(elapsed) == 2
    assert elapsed[1] >= 150.0
    assert sum(elapsed) >= 200.0


def test_separate_state_files_are_separate_gpus(mockcuda: MockCuda, tmp_path: Path) -> None:
    command = [str(mockcuda.programs["launch_loop"]), "sleep_us_1000", "100", "1", "plain"]
    procs = [
        subprocess.Popen(
            command, env=mockcuda.env(tmp_path / f"{i}.state"), stdout=subprocess.PIPE, text=True
        )
        for i in range(2)
    ]
    for p in procs:
        out = p.communicate(timeout=TIMEOUT)[0]
        elapsed = next(
            float(x.split("=")[1]) for x in out.splitlines() if x.startswith("elapsed_ms=")
        )
        assert elapsed < 110.0


# Records events around one kernel with host pauses in between, on an idle stream and behind
# another stream's work, and prints the elapsed times (ms) as JSON.
EVENTS = r"""
import ctypes, json, time
from ctypes import byref, c_float, c_int, c_void_p

cuda = ctypes.CDLL("libcuda.so.1")


def check(rc, what):
    if rc != 0:
        raise SystemExit(f"{what} failed: {rc}")


def elapsed(a, b):
    ms = c_float()
    check(cuda.cuEventElapsedTime(byref(ms), a, b), "cuEventElapsedTime")
    return round(ms.value, 6)


dev, ctx, module, fn, long = c_int(), c_void_p(), c_void_p(), c_void_p(), c_void_p()
check(cuda.cuInit(0), "cuInit")
check(cuda.cuDeviceGet(byref(dev), 0), "cuDeviceGet")
check(cuda.cuCtxCreate_v2(byref(ctx), 0, dev), "cuCtxCreate")
check(cuda.cuModuleLoadData(byref(module), b"image"), "cuModuleLoadData")
check(cuda.cuModuleGetFunction(byref(fn), module, b"sleep_us_2000"), "cuModuleGetFunction")
check(cuda.cuModuleGetFunction(byref(long), module, b"sleep_us_200000"), "cuModuleGetFunction")
streams = [c_void_p(), c_void_p()]
events = [c_void_p() for _ in range(6)]
for stream in streams:
    check(cuda.cuStreamCreate(byref(stream), 1), "cuStreamCreate")
for event in events:
    check(cuda.cuEventCreate(byref(event), 0), "cuEventCreate")
one, other = streams


def kernel(stream, function=fn):
    check(cuda.cuLaunchKernel(function, 1, 1, 1, 32, 1, 1, 0, stream, None, None), "launch")


# An idle stream: the host pauses after the start event and after the kernel has finished.
check(cuda.cuEventRecord(events[0], one), "record")
time.sleep(0.02)
kernel(one)
time.sleep(0.02)
check(cuda.cuEventRecord(events[1], one), "record")
# Behind another stream's kernel on the same device: the wait is part of the stream's time.
kernel(other, long)
check(cuda.cuEventRecord(events[2], one), "record")
kernel(one)
check(cuda.cuEventRecord(events[3], one), "record")
# Events of two streams: the simulated time between their completions.
check(cuda.cuEventRecord(events[4], other), "record")
check(cuda.cuCtxSynchronize(), "cuCtxSynchronize")
check(cuda.cuEventRecord(events[5], other), "record")
time.sleep(0.01)
kernel(other)
check(cuda.cuCtxSynchronize(), "cuCtxSynchronize")
print(json.dumps({
    "idle": elapsed(events[0], events[1]),
    "queued": elapsed(events[2], events[3]),
    "across": elapsed(events[4], events[3]),
    "empty": elapsed(events[5], events[5]),
}))
"""


def test_elapsed_time_on_one_stream_is_its_simulated_time(mockcuda: MockCuda, state: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", EVENTS],
        env=mockcuda.env(state),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=True,
    )
    out = json.loads(done.stdout)
    assert out["idle"] == 2.0  # the kernel alone: none of the host's 40 ms of pauses
    # Waiting for what was left of the other stream's 200 ms kernel, then its own 2 ms.
    assert 2.0 < out["queued"] <= 202.0
    # The other stream's kernel completed 2 ms before this stream's second kernel did.
    assert out["across"] == 2.0
    assert out["empty"] == 0.0
