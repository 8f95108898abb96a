"""The GPU check's VRAM tiering rows, as far as they run without a GPU: sizing from the GPU's
memory, the shim's limits, turning results into table text, and failures into FAIL lines."""

from __future__ import annotations

import ast
import importlib
import math
import os
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

GPU_CHECK_DIR = Path(__file__).resolve().parents[2] / "bench" / "gpu"
GIB = 1024**3


@pytest.fixture(scope="module")
def scripts() -> Iterator[tuple[ModuleType, ModuleType]]:
    """tiering_check and gpu_check, imported as `python bench/gpu/gpu_check.py` imports them."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(GPU_CHECK_DIR))
        yield importlib.import_module("tiering_check"), importlib.import_module("gpu_check")


@pytest.fixture
def tiering(scripts: tuple[ModuleType, ModuleType]) -> ModuleType:
    return scripts[0]


def test_workload_scripts_are_python(tiering: ModuleType) -> None:
    for script in (tiering.TRAIN, tiering.PAGE_IN):
        ast.parse(script)


@pytest.mark.parametrize(
    ("gpu_gib", "training_gib", "budget_gib"),
    [(80, 6, 4), (16, 2, 2), (8, 1, 1)],
)
def test_sizes_follow_the_gpu_memory(
    tiering: ModuleType, gpu_gib: int, training_gib: int, budget_gib: int
) -> None:
    sizes = tiering.sizes(gpu_gib * GIB)
    assert sizes.page_budget == budget_gib * GIB
    # The training working set lands within one block of its share.
    assert abs(sizes.blocks * tiering.BLOCK_BYTES - training_gib * GIB) <= tiering.BLOCK_BYTES
    assert sizes.train_args[0] == str(sizes.blocks)
    mode, size, _ = sizes.page_args("paged")
    assert mode == "paged"
    assert int(size) == int(budget_gib * GIB * tiering.PAGE_SHARE)


def test_a_tiny_gpu_still_trains_one_block(tiering: ModuleType) -> None:
    assert tiering.sizes(GIB).blocks == 1


def test_tier_env_keeps_the_rest_in_vram(tiering: ModuleType) -> None:
    env = tiering.tier_env(4 * GIB, host=1 * GIB, disk=2 * GIB, spill_dir="/tmp/spill")
    assert env == {
        "TF_VRAM_LIMIT": str(7 * GIB),
        "TF_VRAM_HOST_LIMIT": str(GIB),
        "TF_VRAM_DISK_LIMIT": str(2 * GIB),
        "TF_VRAM_SPILL_DIR": "/tmp/spill",
    }
    assert "TF_VRAM_SPILL_DIR" not in tiering.tier_env(GIB, host=GIB)


def test_training_env_oversubscribes_vram_and_fits_the_working_set(tiering: ModuleType) -> None:
    working_set = 6 * GIB
    env = tiering.training_env(working_set)
    limit, host = int(env["TF_VRAM_LIMIT"]), int(env["TF_VRAM_HOST_LIMIT"])
    resident = limit - host - int(env["TF_VRAM_DISK_LIMIT"])
    assert working_set / resident == pytest.approx(tiering.OVERSUBSCRIPTION, rel=1e-6)
    assert limit > working_set


RUN = {"loss": 0.5, "step_s": 0.1, "working_set": 6 * GIB}


def test_training_passes_on_the_same_loss_and_reports_the_slowdown(tiering: ModuleType) -> None:
    text = tiering.training_text(RUN, {**RUN, "loss": 0.5 * (1 + 1e-6), "step_s": 0.25})
    assert "PASS" in text
    assert "100 -> 250 ms (x2.50)" in text
    assert "6.00 GiB" in text


@pytest.mark.parametrize("paged_loss", [0.5 * (1 + 1e-4), math.nan])
def test_training_fails_on_another_loss(tiering: ModuleType, paged_loss: float) -> None:
    assert "FAIL" in tiering.training_text(RUN, {**RUN, "loss": paged_loss})


PAGED = {"bytes": 2 * 10**9, "paged_s": 0.11, "resident_s": 0.01, "bytes_right": True}


def test_page_in_bandwidth_leaves_out_the_kernel_time(tiering: ModuleType) -> None:
    assert tiering.page_in_bandwidth(PAGED) == pytest.approx(20e9)


def test_host_row_compares_with_the_pinned_copy(tiering: ModuleType) -> None:
    assert tiering.host_text(PAGED, 24e9) == (
        "20.0 GB/s vs pinned copy 24.0 GB/s (x0.83); a.sum() right (1.86 GiB) PASS"
    )
    assert tiering.host_text(PAGED, 30e9).endswith("FAIL")
    wrong = tiering.host_text({**PAGED, "bytes_right": False}, 24e9)
    assert wrong.endswith("a.sum() WRONG (1.86 GiB) FAIL")


def test_disk_row_fails_on_wrong_bytes(tiering: ModuleType) -> None:
    assert tiering.disk_text(PAGED) == "20.0 GB/s; a.sum() right (1.86 GiB) PASS"
    assert tiering.disk_text({**PAGED, "bytes_right": False}).endswith("FAIL")


def test_nothing_paged_is_a_fail_line(tiering: ModuleType) -> None:
    name, measured, _ = tiering.row(
        "page-in", lambda: tiering.disk_text({**PAGED, "paged_s": 0.01}), "bytes right"
    )
    assert name == "page-in"
    assert measured.startswith("FAIL: a paged touch took 10.00 ms, no longer than a resident")


def test_a_failing_child_becomes_a_fail_line_with_its_last_error_line(
    scripts: tuple[ModuleType, ModuleType],
) -> None:
    tiering, gpu_check = scripts
    row = tiering.row(
        "training",
        lambda: gpu_check.run_python("raise MemoryError('out of memory')", dict(os.environ)),
        "same loss",
    )
    assert row == ("training", "FAIL: MemoryError: out of memory", "same loss")


def test_an_error_without_a_message_is_named(tiering: ModuleType) -> None:
    def fail() -> str:
        raise KeyError

    assert tiering.row("x", fail, "t")[1] == "FAIL: KeyError"


@pytest.mark.timing
def test_a_child_that_hangs_becomes_a_fail_line(scripts: tuple[ModuleType, ModuleType]) -> None:
    tiering, gpu_check = scripts
    row = tiering.row(
        "page-in",
        lambda: gpu_check.run_python("import time; time.sleep(60)", dict(os.environ), timeout=1),
        "bytes right",
    )
    assert row[1] == "FAIL: child timed out after 1 s"


# Stand-ins for the workloads that answer from what the check gave them: the paged training
# runs twice as slow only under a limit, and the disk row pages slower only with its spill dir.
FAKE_TRAIN = """
import json, os
paged = "TF_VRAM_HOST_LIMIT" in os.environ
print(json.dumps({"loss": 0.25, "step_s": 0.2 if paged else 0.1, "working_set": 7 * 2**30}))
"""
FAKE_PAGE_IN = """
import json, os, sys
if sys.argv[1] == "pinned":
    print(json.dumps({"bytes_per_s": 1 if "TF_VRAM_LIMIT" in os.environ else 25e9}))
else:
    spill = os.environ.get("TF_VRAM_SPILL_DIR", "")
    print(json.dumps({"bytes": int(sys.argv[2]), "paged_s": 0.2 if os.path.isdir(spill) else 0.1,
                      "resident_s": 0.0, "bytes_right": True}))
"""


def test_tiering_rows_run_each_workload_with_its_limits(
    scripts: tuple[ModuleType, ModuleType], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    tiering, gpu_check = scripts
    monkeypatch.setattr(tiering, "TRAIN", FAKE_TRAIN)
    monkeypatch.setattr(tiering, "PAGE_IN", FAKE_PAGE_IN)
    for name in ("TF_VRAM_LIMIT", "TF_VRAM_HOST_LIMIT", "TF_VRAM_SPILL_DIR"):
        monkeypatch.delenv(name, raising=False)
    training, host, disk = gpu_check.tiering_rows(tmp_path / "libtfshim.so", 80 * GIB, tmp_path)
    assert "PASS" in training[1]
    assert "(x2.00)" in training[1]
    assert host[1] == "25.8 GB/s vs pinned copy 25.0 GB/s (x1.03); a.sum() right (2.40 GiB) PASS"
    assert disk[1] == "12.9 GB/s; a.sum() right (2.40 GiB) PASS"
