"""The README's flow as a user runs it: `tensor-fusion up` with the shipped fleet, the R9 curl,
`tensor-fusion run` of a small program, `status`; and the faults: a `run` whose command does
not exist, no control plane, a second `up`, and `up` killed -9 while a worker runs."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tensorfusion.api.annotations import WORKER_PIDS
from tensorfusion.store.local import LocalStore

pytestmark = pytest.mark.timing

ROOT = Path(__file__).resolve().parents[2]
FLEET = ROOT / "examples" / "fleets" / "h100.yaml"
R9_POD = ROOT / "tests" / "fixtures" / "guide" / "r09-simulate-pod.yaml"
WAIT_S = 30.0


def _eventually(check: Callable[[], Any]) -> Any:
    deadline = time.monotonic() + WAIT_S
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.1)


class Up:
    """A `tensor-fusion up` process on a state dir, on a free port."""

    def __init__(self, state: Path, *extra: str) -> None:
        self.state = state
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tensorfusion.cli",
                "up",
                "--state-dir",
                str(state),
                "--port",
                "0",
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def wait_serving(self) -> str:
        endpoint = self.state / "endpoint.json"

        def announced() -> bool:
            assert self.proc.poll() is None, self.proc.communicate()[1]
            try:
                return bool(json.loads(endpoint.read_text())["pid"] == self.proc.pid)
            except (OSError, ValueError):
                return False

        _eventually(announced)
        url = json.loads(endpoint.read_text())["url"]
        assert isinstance(url, str)
        return url

    @property
    def token(self) -> str:
        return (self.state / "token").read_text().strip()

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        _, err = self.proc.communicate(timeout=WAIT_S)
        return self.proc.returncode, err


def _cli(state: Path, *args: str, timeout: float = WAIT_S) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tensorfusion.cli", *args],
        env={**os.environ, "TF_STATE_DIR": str(state)},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def up(tmp_path: Path) -> Iterator[tuple[Up, str]]:
    server = Up(tmp_path / "state", "--fleet", str(FLEET))
    url = server.wait_serving()
    yield server, url
    server.stop(signal.SIGKILL)


def test_readme_flow(up: tuple[Up, str], tmp_path: Path) -> None:
    server, url = up
    # The R9 curl, byte for byte (port aside).
    placed = httpx.post(
        f"{url}/api/simulate-schedule",
        content=R9_POD.read_bytes(),
        headers={"Content-Type": "application/yaml"},
    )
    assert placed.status_code == 200, placed.text
    assert placed.json()["schedulable"] is True
    assert placed.json()["gpus"]

    # A small program in a slice: it reports its environment, then waits to be told to end.
    marker = tmp_path / "seen"
    program = (
        "import json, os, sys, pathlib\n"
        "env = {k: v for k, v in os.environ.items() if k.startswith(('TF_', 'CUDA_', 'LD_'))}\n"
        f"pathlib.Path({str(marker)!r}).write_text(json.dumps(env))\n"
        "sys.stdin.readline()\n"
        "sys.exit(7)\n"
    )
    run = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tensorfusion.cli",
            "run",
            "--tflops-request",
            "50",
            "--tflops-limit",
            "100",
            "--vram-limit",
            "4Gi",
            "--",
            sys.executable,
            "-c",
            program,
        ],
        env={**os.environ, "TF_STATE_DIR": str(server.state)},
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _eventually(marker.exists)
    env = json.loads(marker.read_text())
    assert env["CUDA_VISIBLE_DEVICES"]
    assert env["LD_PRELOAD"].split(":")[0].endswith("libtfshim.so")
    assert env["TF_VRAM_LIMIT_0"] == str(4 << 30)
    workers = httpx.get(f"{url}/api/workers").json()["workers"]
    assert len(workers) == 1
    assert workers[0]["pids"][0] == run.pid
    assert workers[0]["limit"]["tflops"] == 100.0
    dashboard = httpx.get(f"{url}/")
    assert dashboard.status_code == 200
    assert "text/html" in dashboard.headers["content-type"]
    status = _cli(server.state, "status")
    assert status.returncode == 0, status.stderr
    assert workers[0]["name"] in status.stdout

    assert run.stdin is not None
    run.stdin.write("done\n")
    run.stdin.flush()
    assert run.wait(timeout=WAIT_S) == 7  # the command's own status
    assert httpx.get(f"{url}/api/workers").json()["workers"] == []
    assert httpx.get(f"{url}/api/allocation").json()["allocations"] == {}

    code, err = server.stop(signal.SIGTERM)
    assert code == 0, err
    assert not (server.state / "endpoint.json").exists()


def _run_small(state: Path, *command: str) -> subprocess.CompletedProcess[str]:
    """`tensor-fusion run` of `command` in a small slice."""
    return _cli(state, "run", "--tflops-request", "1", "--vram-limit", "1Gi", "--", *command)


def test_run_of_a_missing_command_releases_its_slice(up: tuple[Up, str]) -> None:
    server, url = up
    done = _run_small(server.state, "/nonexistent/program")
    assert done.returncode == 127
    assert "command not found" in done.stderr
    assert httpx.get(f"{url}/api/workers").json()["workers"] == []


def test_run_that_cannot_be_placed(up: tuple[Up, str]) -> None:
    server, _ = up
    done = _cli(server.state, "run", "--tflops-request", "1", "--vram-limit", "100Ti", "--", "true")
    assert done.returncode == 125
    assert "no GPU slice" in done.stderr
    assert "VRAM" in done.stderr or "vram" in done.stderr


def test_run_with_a_bad_flag_value_names_it(up: tuple[Up, str]) -> None:
    server, _ = up
    done = _cli(
        server.state, "run", "--tflops-request", "lots", "--vram-limit", "1Gi", "--", "true"
    )
    assert done.returncode == 125
    assert "tflopsRequest" in done.stderr


def test_without_control_plane_run_says_how_to_start_one(tmp_path: Path) -> None:
    done = _cli(tmp_path, "run", "--tflops-request", "1", "--vram-limit", "1Gi", "--", "true")
    assert done.returncode == 125
    assert "tensor-fusion up" in done.stderr
    status = _cli(tmp_path, "status")
    assert status.returncode == 1
    assert "tensor-fusion up" in status.stderr


def test_second_up_is_refused_with_the_holder_pid(up: tuple[Up, str]) -> None:
    server, _ = up
    second = _cli(
        server.state.parent / "state", "up", "--state-dir", str(server.state), "--port", "0"
    )
    assert second.returncode == 2
    assert f"pid {server.proc.pid}" in second.stderr


def test_up_without_gpus_or_fleet_says_how(tmp_path: Path) -> None:
    done = _cli(tmp_path, "up", "--state-dir", str(tmp_path / "s"), "--port", "0")
    assert done.returncode == 2
    assert "--fleet" in done.stderr


def test_killed_control_plane_resumes_live_workers(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = Up(state, "--fleet", str(FLEET))
    url = first.wait_serving()
    token = {"Authorization": f"Bearer {first.token}"}
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    doomed = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        for name, proc in (("alive", alive), ("doomed", doomed)):
            created = httpx.post(
                f"{url}/api/workers",
                json={"name": name, "tflopsRequest": "10", "vramRequest": "2Gi", "pid": proc.pid},
                headers=token,
            )
            assert created.status_code == 201, created.text
        before = httpx.get(f"{url}/api/allocation").json()["allocations"]
        first.stop(signal.SIGKILL)
        doomed.kill()
        doomed.wait()

        second = Up(state)  # the store already holds the fleet
        url = second.wait_serving()
        try:
            workers = httpx.get(f"{url}/api/workers").json()["workers"]
            assert [w["name"] for w in workers] == ["alive"]
            after = httpx.get(f"{url}/api/allocation").json()["allocations"]
            assert after == {uid: a for uid, a in before.items() if a["name"] == "alive"}
        finally:
            second.stop(signal.SIGKILL)
    finally:
        alive.kill()
        alive.wait()


def test_metrics_listener_and_alerting_flags(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = Up(
        tmp_path / "state",
        "--fleet",
        str(FLEET),
        "--metrics-bind-address",
        f"127.0.0.1:{port}",
    )
    server.wait_serving()
    try:
        scraped = httpx.get(f"http://127.0.0.1:{port}/metrics")
        assert scraped.status_code == 200
        assert "tf_" in scraped.text
        assert httpx.get(f"http://127.0.0.1:{port}/api/workers").status_code == 404
    finally:
        code, err = server.stop(signal.SIGTERM)
    assert code == 0, err


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--metrics-bind-address", "nowhere"], "--metrics-bind-address"),
        (["--enable-alert"], "--alert-manager-addr"),
        (["--alert-manager-addr", "ftp://x"], "alert-manager-addr"),
    ],
)
def test_bad_observability_flags_are_named(tmp_path: Path, flags: list[str], named: str) -> None:
    done = _cli(
        tmp_path,
        "up",
        "--state-dir",
        str(tmp_path / "s"),
        "--fleet",
        str(FLEET),
        "--port",
        "0",
        *flags,
    )
    assert done.returncode == 2, done.stderr
    assert named in done.stderr


def test_up_says_what_it_registered_and_gives_the_lease_up_on_ctrl_c(tmp_path: Path) -> None:
    state = tmp_path / "state"
    for outcome in ("13 created", "13 unchanged"):
        server = Up(state, "--fleet", str(FLEET))
        server.wait_serving()
        code, err = server.stop(signal.SIGINT)
        assert code == 0, err
        assert f"registered 2 nodes, 8 GPUs, 1 pool: {outcome}" in err
        assert "released the lease" in err
        assert "lost the lease" not in err


def test_run_records_the_pid_of_a_command_that_ends_at_once(up: tuple[Up, str]) -> None:
    server, _ = up
    done = _run_small(server.state, sys.executable, "-c", "import os; print(os.getpid())")
    assert done.returncode == 0, done.stderr
    assert "could not record" not in done.stderr
    pid = int(done.stdout)
    with LocalStore(server.state / "store.db") as store:
        recorded = [
            event.object["metadata"]["annotations"].get(WORKER_PIDS, "")
            for event in store.events_since(0, ["Pod"])
        ]
    assert any(f",{pid}@" in f",{pids}" for pids in recorded), recorded
