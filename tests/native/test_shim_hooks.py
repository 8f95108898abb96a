"""The shim's newer allocation paths on the mock driver: 3D arrays charged by their size and
credited on cuArrayDestroy, memory pools charged to the pool's own device (not the current
context's), and every hooked function that has a per-thread default-stream form reached through
that form by symbol, dlsym and cuGetProcAddress.

Each case runs test_shim's child (ctypes under LD_PRELOAD=libtfshim.so), so dlsym on the
driver's handle is the entry path unless a case says otherwise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.native.test_shim import LIMIT, MiB, child_env, run_child

OOM = 2
INVALID_VALUE = 1
FLOAT4 = 16  # bytes of one element of a four-channel float array

# The hooked functions the driver's header (cuda.h, 13.0) gives a per-thread default-stream
# form; all of them are stream-ordered, so the form is "_ptsz" ("_ptds" belongs to synchronous
# copies and sets, none of which is hooked).
PER_THREAD = [
    "cuMemAllocAsync",
    "cuMemFreeAsync",
    "cuMemAllocFromPoolAsync",
    "cuLaunchKernel",
    "cuLaunchKernelEx",
    "cuLaunchCooperativeKernel",
    "cuGraphLaunch",
]


@pytest.fixture
def env(mockcuda: Any, tmp_path: Path) -> dict[str, str]:
    return child_env(mockcuda, tmp_path, TF_VRAM_LIMIT=str(LIMIT))


# --- 3D arrays --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape",
    [
        (256, 256, 64),  # a volume
        (4096, 0, 1024),  # a layered 1D array: height 0, one layer per depth step
        (512, 8192, 0),  # depth 0: a 2D array made through the 3D entry point
    ],
)
def test_a_3d_array_is_charged_width_times_height_times_depth(
    env: dict[str, str], shape: tuple[int, int, int]
) -> None:
    width, height, depth = shape
    size = width * max(height, 1) * max(depth, 1) * FLOAT4
    assert size == LIMIT  # every shape fills the limit exactly
    results, _ = run_child(
        [["init"], ["array3d", *shape, 4], ["alloc", 1], ["free_all"], ["alloc", LIMIT]], env
    )
    assert results[1:3] == [0, OOM]
    assert results[3] == [0]  # cuArrayDestroy
    assert results[4] == 0  # ... gave every byte back


def test_a_3d_array_past_the_limit_is_refused_and_charges_nothing(env: dict[str, str]) -> None:
    results, _ = run_child(
        [["init"], ["array3d", 256, 256, 65, 4], ["array3d", 256, 256, 64, 4]], env
    )
    assert results[1:] == [OOM, 0]


def test_a_3d_array_the_driver_refuses_charges_nothing(env: dict[str, str]) -> None:
    # Three channels is not a valid array format: the driver's own error, nothing charged.
    results, _ = run_child([["init"], ["array3d", 1024, 1024, 4, 3], ["alloc", LIMIT]], env)
    assert results[1:] == [INVALID_VALUE, 0]


def test_a_3d_array_of_overflowing_size_is_out_of_memory(env: dict[str, str]) -> None:
    results, _ = run_child([["init"], ["array3d", 2**40, 2**20, 2**20, 4], ["alloc", LIMIT]], env)
    assert results[1:] == [OOM, 0]


# --- memory pools -----------------------------------------------------------------------------


def pool_env(mockcuda: Any, tmp_path: Path) -> dict[str, str]:
    """Two devices: device 0 (the current one) limited to LIMIT, device 1 to half of it."""
    return child_env(
        mockcuda,
        tmp_path,
        MOCKCUDA_DEVICES="2",
        TF_VRAM_LIMIT_0=str(LIMIT),
        TF_VRAM_LIMIT_1=str(LIMIT // 2),
    )


@pytest.mark.parametrize("make", ["pool", "default_pool"])
@pytest.mark.parametrize("per_thread", [0, 1])
def test_pool_allocations_are_charged_to_the_pool_device(
    mockcuda: Any, tmp_path: Path, make: str, per_thread: int
) -> None:
    half = LIMIT // 2
    results, _ = run_child(
        [
            ["init"],  # the current context is on device 0
            [make, 1],
            ["pool_alloc", half, per_thread],
            ["pool_alloc", 1, per_thread],  # device 1's limit is reached
            ["alloc", LIMIT],  # device 0's budget is untouched
            ["free_all"],
            ["pool_alloc", half, per_thread],  # the free credited device 1
        ],
        pool_env(mockcuda, tmp_path),
    )
    assert results[1:5] == [0, 0, OOM, 0]
    assert results[5] == [0, 0]
    assert results[6] == 0


def test_a_pool_on_the_current_device_shares_its_budget(mockcuda: Any, tmp_path: Path) -> None:
    results, _ = run_child(
        [["init"], ["pool", 0], ["pool_alloc", LIMIT - MiB, 0], ["alloc", MiB + 1]],
        pool_env(mockcuda, tmp_path),
    )
    assert results[1:] == [0, 0, OOM]


def test_allocations_outlive_their_destroyed_pool(mockcuda: Any, tmp_path: Path) -> None:
    half = LIMIT // 2
    results, _ = run_child(
        [
            ["init"],
            ["pool", 1],
            ["pool_alloc", half, 0],
            ["pool_destroy"],
            ["default_pool", 1],
            ["pool_alloc", 1, 0],  # still charged to device 1 after the destroy
            ["free_all"],
            ["pool_alloc", half, 0],
        ],
        pool_env(mockcuda, tmp_path),
    )
    assert results[1:6] == [0, 0, 0, 0, OOM]
    assert results[6] == [0]
    assert results[7] == 0


@pytest.mark.parametrize(("device", "error"), [(5, 101), (None, INVALID_VALUE)])
def test_a_pool_the_driver_refuses_gets_its_error(
    mockcuda: Any, tmp_path: Path, device: int | None, error: int
) -> None:
    # Device 5 does not exist (CUDA_ERROR_INVALID_DEVICE); no properties is the caller's error.
    results, err = run_child(
        [["init"], ["pool", device], ["default_pool", 0], ["pool_alloc", LIMIT, 0], ["alloc", 1]],
        pool_env(mockcuda, tmp_path),
    )
    assert results[1:] == [error, 0, 0, OOM]
    assert err == ""


# --- entry paths ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PER_THREAD)
def test_per_thread_forms_are_hooked_by_symbol_and_dlsym(env: dict[str, str], name: str) -> None:
    results, _ = run_child([["dlsym_is_hook", f"{name}_ptsz"], ["dlsym_is_hook", name]], env)
    assert results == [True, True]


@pytest.mark.parametrize("name", PER_THREAD)
def test_per_thread_forms_are_hooked_through_cugetprocaddress(
    env: dict[str, str], name: str
) -> None:
    per_thread_flag = 2  # CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM
    results, _ = run_child(
        [
            ["init"],
            ["proc_is_hook", name, 12080, per_thread_flag, f"{name}_ptsz"],
            ["proc_is_hook", name, 12080, 0, name],
        ],
        env,
    )
    assert results[1:] == [True, True]


@pytest.mark.parametrize(
    ("name", "version", "export"),
    [
        ("cuArray3DCreate", 12080, "cuArray3DCreate_v2"),
        ("cuArray3DCreate", 3020, "cuArray3DCreate_v2"),
        ("cuMemPoolCreate", 12080, "cuMemPoolCreate"),
        ("cuMemPoolDestroy", 12080, "cuMemPoolDestroy"),
        ("cuDeviceGetDefaultMemPool", 12080, "cuDeviceGetDefaultMemPool"),
        ("cuDeviceGetMemPool", 12080, "cuDeviceGetMemPool"),
    ],
)
def test_new_hooks_through_cugetprocaddress(
    env: dict[str, str], name: str, version: int, export: str
) -> None:
    results, _ = run_child([["init"], ["proc_is_hook", name, version, 0, export]], env)
    assert results[1] is True


@pytest.mark.parametrize(
    "name",
    ["cuArray3DCreate_v2", "cuMemPoolCreate", "cuMemPoolDestroy", "cuDeviceGetDefaultMemPool"],
)
def test_new_hooks_through_dlsym(env: dict[str, str], name: str) -> None:
    results, _ = run_child([["dlsym_is_hook", name]], env)
    assert results == [True]
