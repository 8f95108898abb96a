"""Runs the mock driver's test programs and reads their key=value output."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.mockcuda_build import SOURCE_DIR, MockCuda

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


def with_program(mockcuda: MockCuda, name: str, source: str, work: Path) -> MockCuda:
    """`mockcuda` with one more program, compiled from C `source` against the mock's header and
    its programs' common.h (skips the test when no C compiler is found)."""
    compiler = os.environ.get("CC") or shutil.which("cc")
    if compiler is None:
        pytest.skip("no C compiler (cc, or $CC) to build the program")
    source_path, binary = work / f"{name}.c", work / name
    source_path.write_text(source)
    command = [compiler, "-O2", "-std=c11", "-Wall", "-Wextra", "-Werror"]
    command += ["-I", str(SOURCE_DIR / "include"), "-I", str(SOURCE_DIR / "programs")]
    command += ["-o", str(binary), str(source_path)]
    command += ["-L", str(mockcuda.lib_dir), "-l:libcuda.so.1"]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return dataclasses.replace(mockcuda, programs={**mockcuda.programs, name: binary})
