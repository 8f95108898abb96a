"""Process identity (pid and start time) and the WORKER_PIDS annotation value."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tensorfusion.agent.processes import (
    WorkerProcess,
    format_pids,
    is_alive,
    parse_pids,
    start_token,
)
from tensorfusion.api.annotations import WORKER_PIDS
from tensorfusion.errors import AnnotationError

from .conftest import TIMEOUT, Processes


def _stat_start(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])


def test_a_running_process_has_its_kernel_start_time() -> None:
    assert start_token(os.getpid()) == _stat_start(os.getpid())
    assert is_alive(os.getpid(), _stat_start(os.getpid()))


def test_another_start_time_is_another_process() -> None:
    token = start_token(os.getpid())
    assert token is not None
    assert not is_alive(os.getpid(), token + 1)


def test_an_exited_process_is_gone(processes: Processes) -> None:
    gone = processes.finished()
    assert start_token(gone.pid) is None
    assert not is_alive(gone.pid, gone.token)


def test_a_zombie_is_gone() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        # Not yet collected: the kernel keeps it as a zombie until wait().
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)
        assert Path(f"/proc/{child.pid}/stat").exists()
        assert start_token(child.pid) is None
    finally:
        child.wait(TIMEOUT)


def test_a_command_name_with_parentheses_and_spaces_is_read_past(tmp_path: Path) -> None:
    program = tmp_path / "odd) name ("
    program.symlink_to(sys.executable)
    child = subprocess.Popen(
        [str(program), "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    try:
        assert start_token(child.pid) == _stat_start(child.pid)
    finally:
        child.kill()
        child.wait(TIMEOUT)
        assert child.stdin is not None
        child.stdin.close()


@pytest.mark.parametrize("pid", [0, -1, 2**22 + 12345])
def test_no_such_pid(pid: int) -> None:
    assert start_token(pid) is None


def test_the_annotation_format() -> None:
    processes = [WorkerProcess(4242, 9912345), WorkerProcess(4243, 9912399)]
    assert format_pids(processes) == "4242@9912345,4243@9912399"
    assert format_pids([(7, 8)]) == "7@8"
    assert parse_pids("4242@9912345,4243@9912399") == processes
    assert parse_pids(" 4242@9912345 , 4243@9912399 ") == processes


@given(st.lists(st.tuples(st.integers(1, 2**31), st.integers(0, 2**63))))
def test_formatted_pids_read_back(pairs: list[tuple[int, int]]) -> None:
    assert parse_pids(format_pids(pairs)) == [WorkerProcess(*pair) for pair in pairs]


@pytest.mark.parametrize("value", ["", "  "])
def test_no_process_recorded(value: str) -> None:
    assert parse_pids(value) == []


@pytest.mark.parametrize(
    ("value", "item"),
    [
        ("4242", "'4242'"),
        ("4242@", "'4242@'"),
        ("@99", "'@99'"),
        ("0@99", "'0@99'"),
        ("-4@99", "'-4@99'"),
        ("4242@x", "'4242@x'"),
        ("4242@1@2", "'4242@1@2'"),
        ("4242@99,,4243@1", "''"),
        ("4242@99,", "''"),
        ("\uff14\uff12@99", "'\uff14\uff12@99'"),  # fullwidth digits
        ("4242:99", "'4242:99'"),
    ],
)
def test_malformed_values_name_the_annotation_and_item(value: str, item: str) -> None:
    with pytest.raises(AnnotationError) as caught:
        parse_pids(value)
    assert caught.value.key == WORKER_PIDS
    assert item in caught.value.message
    assert "pid@start" in caught.value.message
