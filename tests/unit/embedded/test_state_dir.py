"""The state dir: one `up` at a time, a token kept private, the endpoint announced."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tensorfusion.embedded.state_dir import StateDir, StatePaths, default_state_dir
from tensorfusion.errors import ConfigError


def test_created_locked_and_released(tmp_path: Path) -> None:
    root = tmp_path / "a" / "b"
    state = StateDir.acquire(root)
    assert root.is_dir()
    assert state.paths.lock.read_text().strip() == str(os.getpid())
    state.release()
    state.release()  # idempotent
    StateDir.acquire(root).release()  # free again


def test_second_holder_is_refused_with_the_pid(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, pathlib\n"
            "from tensorfusion.embedded.state_dir import StateDir\n"
            "held = StateDir.acquire(pathlib.Path(sys.argv[1]))\n"
            "print('held', flush=True)\n"
            "sys.stdin.read()\n",
            str(tmp_path),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(ConfigError) as refused:
            StateDir.acquire(tmp_path)
        assert refused.value.field == "--state-dir"
        assert f"pid {holder.pid}" in str(refused.value)
    finally:
        holder.kill()
        holder.wait()
    # A holder killed -9 leaves the lock file behind but not the lock.
    StateDir.acquire(tmp_path).release()


def test_unusable_directory_names_the_flag(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError) as refused:
        StateDir.acquire(blocker / "state")  # a path under a regular file
    assert refused.value.field == "--state-dir"


def test_token_is_generated_once_and_private(tmp_path: Path) -> None:
    state = StateDir.acquire(tmp_path)
    token = state.token()
    assert len(token) >= 32
    assert state.token() == token
    assert stat.S_IMODE(state.paths.token.stat().st_mode) == 0o600
    assert StatePaths(tmp_path).read_token() == token
    state.release()


def test_endpoint_is_published_and_withdrawn(tmp_path: Path) -> None:
    state = StateDir.acquire(tmp_path)
    paths = StatePaths(tmp_path)
    assert paths.read_endpoint() is None
    state.publish_endpoint("http://127.0.0.1:8080")
    assert paths.read_endpoint() == "http://127.0.0.1:8080"
    state.release()
    assert paths.read_endpoint() is None


def test_stale_endpoint_of_a_killed_holder_is_withdrawn(tmp_path: Path) -> None:
    (tmp_path / "endpoint.json").write_text('{"url": "http://127.0.0.1:1", "pid": 1}')
    state = StateDir.acquire(tmp_path)
    assert StatePaths(tmp_path).read_endpoint() is None
    state.release()


def test_garbage_endpoint_file_reads_as_none(tmp_path: Path) -> None:
    (tmp_path / "endpoint.json").write_text("{not json")
    assert StatePaths(tmp_path).read_endpoint() is None
    (tmp_path / "endpoint.json").write_text('{"url": 5}')
    assert StatePaths(tmp_path).read_endpoint() is None


def test_default_honours_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TF_STATE_DIR", str(tmp_path))
    assert default_state_dir() == tmp_path
    monkeypatch.delenv("TF_STATE_DIR")
    assert default_state_dir().name == "tensor-fusion"
