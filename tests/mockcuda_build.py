"""Builds the mock CUDA driver and NVML (tests/mockcuda) with CMake, once per tree state.

CMake's own dependency tracking makes a rebuild of unchanged sources a no-op; a file lock
keeps concurrent test processes from building into the same directory at once.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

SOURCE_DIR = Path(__file__).resolve().parent / "mockcuda"
DEFAULT_BUILD_DIR = SOURCE_DIR.parents[1] / "build" / "mockcuda"


@dataclass(frozen=True)
class MockCuda:
    """Where the built mock lives. Put `lib_dir` on LD_LIBRARY_PATH (see `env`) and a
    program linked against libcuda.so.1 / libnvidia-ml.so.1 loads the mock."""

    lib_dir: Path
    libcuda: Path
    libnvml: Path
    programs: dict[str, Path]

    def env(
        self,
        state: Path,
        *,
        devices: int = 1,
        memory: str = "16Gi",
        base: dict[str, str] | None = None,
    ) -> dict[str, str]:
        """An environment running against the mock: `state` is the shared state file (one
        per simulated machine: processes given the same file share devices)."""
        result = dict(os.environ if base is None else base)
        # The mock honours CUDA_VISIBLE_DEVICES as a driver does; tests choose it themselves.
        result.pop("CUDA_VISIBLE_DEVICES", None)
        inherited = result.get("LD_LIBRARY_PATH")
        result["LD_LIBRARY_PATH"] = (
            f"{self.lib_dir}:{inherited}" if inherited else str(self.lib_dir)
        )
        result["MOCKCUDA_STATE"] = str(state)
        result["MOCKCUDA_DEVICES"] = str(devices)
        result["MOCKCUDA_MEMORY"] = memory
        return result


def build_mockcuda(build_dir: Path = DEFAULT_BUILD_DIR) -> MockCuda:
    """Configures (first time) and builds the mock and its programs into `build_dir`."""
    build_dir.mkdir(parents=True, exist_ok=True)
    with (build_dir / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (build_dir / "CMakeCache.txt").exists():
            _run(["cmake", "-S", str(SOURCE_DIR), "-B", str(build_dir)])
        _run(["cmake", "--build", str(build_dir), "--parallel", str(os.cpu_count() or 2)])
    lib_dir = build_dir / "lib"
    programs = {
        source.stem: build_dir / "bin" / source.stem
        for source in sorted((SOURCE_DIR / "programs").glob("*.c"))
    }
    return MockCuda(
        lib_dir=lib_dir,
        libcuda=lib_dir / "libcuda.so.1",
        libnvml=lib_dir / "libnvidia-ml.so.1",
        programs=programs,
    )


def _run(command: list[str]) -> None:
    # Output is kept for the failure message only: a broken build must say why.
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")
