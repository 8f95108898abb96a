"""`tensor-fusion run` against a stand-in control plane: the command's pid is recorded while
the command cannot have ended, and the exit statuses, warnings and release of the slice."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tensorfusion.agent.processes import start_token
from tensorfusion.client.api_client import ApiError, NoControlPlane
from tensorfusion.client.run_command import run
from tensorfusion.server.worker_requests import WorkerCreate

REQUEST = WorkerCreate(tflops_request="10", vram_request="1Gi")
WORKER = "run-sh-1"
WARNING = "could not record the command's pid"


class _ControlPlane:
    """Answers `run`'s requests as the API does; `record` handles the PATCH of pids."""

    def __init__(self, record: Callable[[list[int]], None]) -> None:
        self.record = record
        self.calls: list[tuple[str, str]] = []
        self.recorded: list[int] = []

    def request(self, method: str, path: str, body: Any = None) -> Any:
        self.calls.append((method, path))
        if method == "POST":
            return {"name": WORKER, "node": "n1", "gpus": ["n1-gpu-0"], "env": {}}
        if method == "PATCH":
            self.record(body["pids"])
            self.recorded += body["pids"]
        return {}

    @property
    def released(self) -> bool:
        return ("DELETE", f"/api/workers/{WORKER}") in self.calls


def _live_only(pids: list[int]) -> None:
    """The API's check: a pid must be a running process of this host."""
    for pid in pids:
        if start_token(pid) is None:
            raise ApiError(400, {"field": "pids", "message": f"{pid} is not a running process"})


def _run(plane: _ControlPlane, command: list[str]) -> int:
    client: Any = plane
    return run(client, REQUEST, command)


@pytest.mark.timing
def test_a_command_that_ends_at_once_is_recorded_before_it_runs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    marker = tmp_path / "ran"

    def record(pids: list[int]) -> None:
        # A command started at once would have left its marker by now; a held one cannot.
        time.sleep(0.2)
        assert not marker.exists()
        _live_only(pids)

    plane = _ControlPlane(record)
    assert _run(plane, ["sh", "-c", f"touch '{marker}'"]) == 0
    assert marker.exists()
    assert len(plane.recorded) == 1
    assert [method for method, _ in plane.calls] == ["POST", "PATCH", "DELETE"]
    assert WARNING not in caplog.text


@pytest.mark.parametrize(
    "failure",
    [
        ApiError(400, {"field": "pids", "message": "refused"}),
        NoControlPlane("no control plane answers"),
    ],
)
def test_the_command_runs_when_its_pid_cannot_be_recorded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, failure: Exception
) -> None:
    def record(pids: list[int]) -> None:
        raise failure

    plane = _ControlPlane(record)
    with caplog.at_level(logging.WARNING, logger="tensorfusion.client.run_command"):
        status = _run(plane, ["sh", "-c", f"touch '{tmp_path / 'ran'}'; exit 3"])
    assert status == 3
    assert (tmp_path / "ran").exists()
    assert f"{WARNING}: {failure}" in caplog.text
    assert plane.released


@pytest.mark.parametrize(
    ("command", "status", "said"),
    [
        (["/nonexistent/program"], 127, "/nonexistent/program: command not found"),
        (["no-such-program-on-the-path"], 127, "command not found"),
        (["/dev/null"], 126, "/dev/null: Permission denied"),
    ],
)
def test_a_command_that_cannot_run_releases_its_slice(
    capsys: pytest.CaptureFixture[str], command: list[str], status: int, said: str
) -> None:
    plane = _ControlPlane(_live_only)
    assert _run(plane, command) == status
    assert said in capsys.readouterr().err
    assert plane.released


def test_a_command_killed_by_a_signal_exits_with_128_plus_it() -> None:
    plane = _ControlPlane(_live_only)
    assert _run(plane, ["sh", "-c", "kill -KILL $$"]) == 128 + 9
    assert plane.released
