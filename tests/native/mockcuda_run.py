"""Runs the mock driver's test programs and reads their key=value output."""

from __future__ import annotations

import subprocess

from tests.mockcuda_build import MockCuda

TIMEOUT = 60.0  # generous: a hung program fails the test instead of stalling the suite


def run_program(mockcuda: MockCuda, name: str, *args: str, env: dict[str, str]) -> dict[str, str]:
    done = subprocess.run(
        [str(mockcuda.programs[name]), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
