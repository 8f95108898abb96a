"""The mock driver's simulated GPU time: kernel durations, events, synchronisation, graphs,
NVML utilization, and one timeline shared by every process on a device. Assertions are on
simulated (event) time, which the mock computes, never on wall-clock thresholds."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.mockcuda_build import MockCuda
from tests.native.mockcuda_run import TIMEOUT, run_program

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
    # Host overhead between the first event and the first launch is the only slack.
    assert 100.0 <= float(out["elapsed_ms"]) < 110.0
    assert out["query_before_sync"] == NOT_READY
    assert out["elapsed_before_sync"] == NOT_READY
    assert out["query_after_sync"] == out["event_query"] == "0"


def test_duration_scales_with_grid_and_registered_cost(mockcuda: MockCuda, state: Path) -> None:
    # 10 launches x 8 blocks x 0.5 ms per block = 40 ms
    out = run_program(
        mockcuda, "launch_loop", "anything", "10", "8", "plain", "500000", env=mockcuda.env(state)
    )
    assert 40.0 <= float(out["elapsed_ms"]) < 50.0


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
