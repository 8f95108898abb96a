"""The mock driver's VMM rules and sticky faults: a mapping is inaccessible until
cuMemSetAccess, unmapping works on whole mappings, and touching memory the device may not
touch fails that call and every later one with CUDA_ERROR_ILLEGAL_ADDRESS, as on a GPU."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.mockcuda_build import MockCuda
from tests.native.mockcuda_run import run_program

INVALID_VALUE = "1"
OOM = "2"
INVALID_DEVICE = "101"
ILLEGAL_ADDRESS = "700"
MIB = 1 << 20


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "mockcuda.state"


def test_access_unmap_and_host_memory_follow_the_driver_rules(
    mockcuda: MockCuda, state: Path
) -> None:
    out = run_program(mockcuda, "vmm", "rules", env=mockcuda.env(state))
    assert out["access_partial"] == INVALID_VALUE  # cuts a mapping
    assert out["access_bad_flags"] == INVALID_VALUE
    assert out["access_bad_device"] == INVALID_DEVICE
    assert out["access_host"] == out["access_read_only"] == "0"
    assert out["copy_across_chunks"] == "0"  # two back-to-back mappings act as one range
    assert out["unmap_half"] == out["unmap_cutting_second"] == INVALID_VALUE
    assert out["unmap_past_last"] == INVALID_VALUE
    assert out["intact_after_refusals"] == "1"  # a refused unmap changes nothing
    assert out["kernel_across_chunks"] == "0"
    assert out["kernel_wrote"] == "1"
    assert out["unmap_both"] == "0"
    assert out["remap_keeps_bytes"] == "1"
    assert out["host_granularity"] == str(2 * MIB)
    assert out["host_charged"] == "0"
    assert out["host_roundtrip"] == "1"
    assert out["last_fault_code"] == "0"
    assert out["last_fault_address"] == "0"  # no fault happened


def test_ipc_handles_exist_only_for_linear_allocation_bases(
    mockcuda: MockCuda, state: Path
) -> None:
    out = run_program(mockcuda, "vmm", "rules", env=mockcuda.env(state))
    assert out["ipc_linear"] == "0"
    assert out["ipc_vmm"] == out["ipc_interior"] == out["ipc_unknown"] == INVALID_VALUE


@pytest.mark.parametrize(
    "how",
    ["before_access", "copy_before_access", "remap", "revoked", "unmapped", "freed"],
)
def test_touching_inaccessible_memory_faults_for_good(
    mockcuda: MockCuda, state: Path, how: str
) -> None:
    out = run_program(mockcuda, "vmm", "fault", how, env=mockcuda.env(state))
    assert out["before"] == "0"
    assert out["first"] == ILLEGAL_ADDRESS
    assert out["last_fault"] == f"0:{out['expected']}"  # the first byte it could not touch
    later = {key: value for key, value in out.items() if key.startswith("after_")}
    assert len(later) == 10
    assert set(later.values()) == {ILLEGAL_ADDRESS}


@pytest.mark.parametrize(
    ("after", "expected"), [("2", ["0", "0", OOM, OOM, OOM]), (None, ["0"] * 5)]
)
def test_memcreate_fails_after_the_configured_count(
    mockcuda: MockCuda, state: Path, after: str | None, expected: list[str]
) -> None:
    env = mockcuda.env(state)
    env.pop("MOCKCUDA_FAIL_MEMCREATE_AFTER", None)
    if after is not None:
        env["MOCKCUDA_FAIL_MEMCREATE_AFTER"] = after
    out = run_program(mockcuda, "vmm", "failcreate", env=env)
    assert [out[f"create_{i}"] for i in range(5)] == expected
