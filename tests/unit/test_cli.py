"""The `tensor-fusion` command as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import tensorfusion

ROOT = Path(__file__).parent.parent.parent


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tensorfusion.cli", *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **(env or {})},
    )


def test_version_prints_package_and_native_build() -> None:
    run = _run("version")
    assert run.returncode == 0
    first, second = run.stdout.splitlines()
    assert first == f"tensor-fusion {tensorfusion.__version__}"
    assert second.startswith(f"native core {tensorfusion.__version__} (")
    assert "C++17" in second


def test_unknown_log_level_is_an_error_listing_valid_ones() -> None:
    run = _run("version", env={"TF_LOG_LEVEL": "verbose"})
    assert run.returncode == 2
    assert "TF_LOG_LEVEL" in run.stderr
    assert "'verbose'" in run.stderr
    assert "trace, debug, info, warn, error" in run.stderr
    assert run.stdout == ""


def test_examples_validate() -> None:
    run = _run("validate", *map(str, sorted((ROOT / "examples").glob("*.yaml"))))
    assert run.returncode == 0, run.stdout
    assert run.stdout.count(": OK") == 3


def test_validate_reads_stdin() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "tensorfusion.cli", "validate", "-"],
        input="apiVersion: tensor-fusion.ai/v1\nkind: GPUPool\nmetadata: {name: p}\n",
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0
    assert run.stdout == "<stdin>:1: GPUPool/p: OK\n"


def test_quiet_hides_warnings(tmp_path: Path) -> None:
    path = tmp_path / "pool.yaml"
    path.write_text("apiVersion: tensor-fusion.ai/v1\nkind: GPUPool\nmetadata: {name: p}\nx: 1\n")
    assert "warning: x: unknown field" in _run("validate", str(path)).stdout
    assert "  warning:" not in _run("validate", "-q", str(path)).stdout
