"""The worker's shared region through the shim, on the mock driver: 200 processes joining one
region at once all get a slot and their bytes are booked exactly, back to zero once they are
gone; and a region path that cannot be opened for writing costs one stderr line, after which
TF_VRAM_LIMIT is enforced within the process.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from tensorfusion._native import ShmRegion
from tests.native.test_shim import LIMIT, MiB, child_env, make_region, run_child, stderr_lines

PROCESSES = 200


def holding(mockcuda: Any, env: dict[str, str]) -> subprocess.Popen[str]:
    """The mock's meminfo program: allocates 1 MiB (its first hooked call, which joins the
    region) and holds it until its stdin closes."""
    return subprocess.Popen(
        [str(mockcuda.programs["meminfo"]), str(MiB), "hold"],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.timing
def test_200_processes_join_one_region_at_once(mockcuda: Any, tmp_path: Path) -> None:
    path = make_region(tmp_path, limit=PROCESSES * MiB, slots=PROCESSES)
    # Each waits at the gate (MEMINFO_GATE) before its first CUDA call.
    env = child_env(mockcuda, tmp_path, TF_SHM_PATH=str(path), MEMINFO_GATE="1")
    children = [holding(mockcuda, env) for _ in range(PROCESSES)]
    try:
        for child in children:
            assert child.stdout is not None
            assert child.stdout.readline() == "ready\n"
        for child in children:  # one signal, as close together as the parent can send it
            assert child.stdin is not None
            child.stdin.write("\n")
            child.stdin.flush()
        for child in children:
            assert child.stdout is not None
            assert "ready=1\n" in iter(child.stdout.readline, ""), child.communicate()[1]
        snap = ShmRegion.open(path).snapshot()
    finally:
        outputs = [child.communicate("", timeout=120) for child in children]
    assert all(child.returncode == 0 for child in children), outputs
    assert [err for _, err in outputs if err] == []  # nobody fell back to a private limit
    assert snap["members"] == PROCESSES
    assert sorted(slot["pid"] for slot in snap["slots"]) == sorted(c.pid for c in children)
    assert all(slot["bytes"]["device"] == MiB for slot in snap["slots"])
    assert snap["total_bytes"] == PROCESSES * MiB  # exactly the limit: every charge fit

    # They exited holding their memory: the dead are reaped and the books return to zero.
    region = ShmRegion.open(path)
    assert region.reap() == PROCESSES
    after = region.snapshot()
    assert (after["members"], after["total_bytes"], after["slots"]) == (0, 0, [])


def test_one_more_process_than_slots_falls_back(mockcuda: Any, tmp_path: Path) -> None:
    path = make_region(tmp_path, slots=1)
    env = child_env(mockcuda, tmp_path, TF_SHM_PATH=str(path), TF_VRAM_LIMIT=str(LIMIT))
    holder = holding(mockcuda, env)
    try:
        assert holder.stdout is not None
        assert "ready=1\n" in iter(holder.stdout.readline, "")
        results, err = run_child([["init"], ["alloc", LIMIT], ["alloc", 1]], env)
    finally:
        holder.communicate("", timeout=60)
    assert results[1:] == [0, 2]  # its own TF_VRAM_LIMIT, not the region's (1 MiB held)
    (line,) = stderr_lines(err)
    assert "cannot join (full)" in line


def test_an_unwritable_region_is_one_line_and_the_env_limit_holds(
    mockcuda: Any, tmp_path: Path
) -> None:
    """The region path names a directory: opening it for writing fails with EISDIR even for
    root (the tests run as root, whom permission bits do not stop)."""
    unwritable = tmp_path / "region"
    unwritable.mkdir()
    env = child_env(mockcuda, tmp_path, TF_SHM_PATH=str(unwritable), TF_VRAM_LIMIT=str(LIMIT))
    results, err = run_child(
        [["init"], ["alloc", LIMIT], ["alloc", 1], ["free_all"], ["alloc", LIMIT], ["info"]], env
    )
    assert results[1:3] == [0, 2]
    assert results[4] == 0
    assert results[5]["cu_total"] == LIMIT
    (line,) = stderr_lines(err)
    assert str(unwritable) in line
    assert "enforcing TF_VRAM_LIMIT within this process" in line


def test_an_unwritable_region_without_an_env_limit_runs_unlimited(
    mockcuda: Any, tmp_path: Path
) -> None:
    unwritable = tmp_path / "region"
    unwritable.mkdir()
    results, err = run_child(
        [["init"], ["alloc", 256 * MiB]],
        child_env(mockcuda, tmp_path, TF_SHM_PATH=str(unwritable)),
    )
    assert results[1] == 0
    (line,) = stderr_lines(err)
    assert "no VRAM limit enforced" in line
