"""Drives tests/mockcuda/programs/paging.c under the shim, one command at a time, against a
worker region whose limits name host and disk tiers; and reads the device memory the mock
driver really has mapped (its own cuMemGetInfo, in a process without the shim)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tensorfusion._native import ShmRegion
from tests.native.mockcuda_run import run_program
from tests.native.test_shim import child_env

MiB = 1 << 20
CHUNK = 2 * MiB  # the mock's allocation granularity


@dataclass(frozen=True)
class Tiers:
    device: int
    host: int
    disk: int

    @property
    def limit(self) -> int:
        return self.device + self.host + self.disk


def make_tiered_region(path: Path, tiers: Tiers, worker: str = "w") -> Path:
    ShmRegion.create(
        path,
        slots=8,
        worker=worker,
        vram_limit=tiers.limit,
        tflops_limit=1.0,
        tflops_request=1.0,
        gpu_peak_tflops=1.0,
        host_limit=tiers.host,
        disk_limit=tiers.disk,
    )
    return path


class Workload:
    """One paging.c process; `do(line)` sends a command and returns its answer."""

    def __init__(
        self,
        mockcuda: Any,
        tmp_path: Path,
        region: Path,
        spill: Path,
        **env: str,
    ):
        spill.mkdir(exist_ok=True)
        self.env = child_env(
            mockcuda,
            tmp_path,
            TF_SHM_PATH=str(region),
            TF_VRAM_SPILL_DIR=str(spill),
            MOCKCUDA_MEMORY=str(256 * MiB),
            **env,
        )
        self.process = subprocess.Popen(
            [str(mockcuda.programs["paging"])],
            env=self.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.read() == "ready", self.finish()

    def read(self) -> str:
        assert self.process.stdout is not None
        return self.process.stdout.readline().strip()

    def do(self, line: str) -> str:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        answer = self.read()
        assert answer, f"{line!r}: no answer; stderr: {self.finish()}"
        return answer

    def ok(self, line: str) -> str:
        answer = self.do(line)
        assert answer.startswith("ok"), f"{line!r} -> {answer!r}"
        return answer[3:]

    def finish(self) -> str:
        """Closes stdin, waits for the exit, returns stderr."""
        _, err = self.process.communicate("", timeout=60)
        return err


def mapped_device_bytes(mockcuda: Any, state_dir: Path) -> int:
    """Device memory every process on the simulated GPU holds now, as the driver counts it."""
    env = child_env(mockcuda, state_dir)
    del env["LD_PRELOAD"]
    out = run_program(mockcuda, "meminfo", env=env)
    return int(out["cu_total"]) - int(out["cu_free"])
