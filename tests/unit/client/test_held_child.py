"""A held child: its pid exists before its command runs, and it is started as Popen starts
one (exit status, signals, descriptors, exec failures)."""

from __future__ import annotations

import os
import signal
import sys
from contextlib import closing
from pathlib import Path

import pytest

from tensorfusion.agent.processes import start_token
from tensorfusion.client.held_child import HeldChild

ENV = dict(os.environ)


def _touching(marker: Path, status: int = 0) -> list[str]:
    """A command that leaves `marker` behind and ends at once with `status`."""
    return ["sh", "-c", f"touch '{marker}'; exit {status}"]


def test_the_command_runs_only_once_released(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    with closing(HeldChild(_touching(marker, 7), ENV)) as child:
        assert start_token(child.pid) is not None  # a live process, as the agent requires
        assert not marker.exists()
        child.release()
        assert child.wait() == 7
    assert marker.exists()


def test_a_child_never_released_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    with closing(HeldChild(_touching(marker), ENV)) as child:
        pid = child.pid
    assert child.returncode is not None
    assert start_token(pid) is None
    assert not marker.exists()


@pytest.mark.parametrize("named", ["absent", "/nowhere/absent"])
def test_a_missing_command_fails_at_release(tmp_path: Path, named: str) -> None:
    child = HeldChild([named], {**ENV, "PATH": str(tmp_path)})
    with closing(child), pytest.raises(FileNotFoundError):
        child.release()
    assert child.returncode is not None  # reaped


def test_a_file_that_cannot_be_executed_fails_at_release(tmp_path: Path) -> None:
    script = tmp_path / "script"
    script.write_text("echo hi\n")
    child = HeldChild([str(script)], ENV)
    with closing(child), pytest.raises(PermissionError):
        child.release()
    assert child.returncode is not None  # reaped


def test_the_command_is_looked_up_on_the_given_path(tmp_path: Path) -> None:
    tool = tmp_path / "my-tool"
    tool.write_text(f"#!/bin/sh\ntouch '{tmp_path / 'ran'}'\n")
    tool.chmod(0o755)
    path = f"{tmp_path}{os.pathsep}{ENV['PATH']}"
    with closing(HeldChild(["my-tool"], {**ENV, "PATH": path})) as child:
        child.release()
        assert child.wait() == 0
    assert (tmp_path / "ran").exists()


def test_a_death_by_signal_is_minus_the_signal() -> None:
    with closing(HeldChild(["sh", "-c", "kill -TERM $$"], ENV)) as child:
        child.release()
        assert child.wait() == -signal.SIGTERM


def test_signals_to_the_parent_reach_the_command() -> None:
    before = signal.getsignal(signal.SIGUSR1)
    waiting = [sys.executable, "-c", "import sys; sys.stdin.read()"]
    with closing(HeldChild(waiting, ENV, [signal.SIGUSR1])) as child:
        child.release()
        os.kill(os.getpid(), signal.SIGUSR1)  # handled here, so forwarded at once
        assert child.wait() == -signal.SIGUSR1
    assert signal.getsignal(signal.SIGUSR1) == before


def test_a_signal_while_held_ends_the_child_as_it_would_the_command(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    with closing(HeldChild(_touching(marker), ENV, [signal.SIGUSR2])) as child:
        os.kill(os.getpid(), signal.SIGUSR2)
        child.release()  # it is gone: nothing to let go, no failure to report
        assert child.wait() == -signal.SIGUSR2
    assert not marker.exists()


def test_the_command_gets_the_signal_defaults_and_descriptors_popen_gives(
    tmp_path: Path,
) -> None:
    inheritable = os.open(os.devnull, os.O_RDONLY)
    os.set_inheritable(inheritable, True)
    try:
        command = [
            "sh",
            "-c",
            f"grep SigIgn /proc/self/status > '{tmp_path / 'ignored'}'; "
            f"ls /proc/self/fd > '{tmp_path / 'fds'}'",
        ]
        with closing(HeldChild(command, ENV)) as child:
            child.release()
            assert child.wait() == 0
    finally:
        os.close(inheritable)
    # Python ignores SIGPIPE for itself; the command gets its default action back.
    ignored = int((tmp_path / "ignored").read_text().split()[1], 16)
    assert not ignored & (1 << (signal.SIGPIPE - 1))
    assert str(inheritable) not in (tmp_path / "fds").read_text().split()


def test_an_empty_command_is_refused() -> None:
    with pytest.raises(ValueError, match="command"):
        HeldChild([], ENV)
