"""The shared region's file: creation, the checks `open` makes, and argument validation."""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any

import pytest

from tensorfusion import _native
from tensorfusion._native import ShmRegion
from tensorfusion.shm_region import read_region

HEADER_SIZE = 1024
SLOT_SIZE = 128
VERSION_OFFSET = 8
LIMITS: dict[str, Any] = {
    "vram_limit": 1000,
    "tflops_limit": 50.0,
    "tflops_request": 25.0,
    "gpu_peak_tflops": 312.0,
}


def create_region(path: Path, **overrides: Any) -> ShmRegion:
    arguments: dict[str, Any] = {"slots": 8, "worker": "default/llama-0", **LIMITS, **overrides}
    return ShmRegion.create(path, **arguments)


def test_create_then_open_reads_the_same_header(tmp_path: Path) -> None:
    path = tmp_path / "region"
    create_region(path, slots=16)
    snap = read_region(path)
    assert snap.layout_version == _native.SHM_LAYOUT_VERSION
    assert (snap.worker, snap.slot_count, snap.generation) == ("default/llama-0", 16, 0)
    assert (snap.vram_limit, snap.tflops_limit, snap.tflops_request) == (1000, 50.0, 25.0)
    assert snap.gpu_peak_tflops == 312.0
    assert (snap.total_bytes, snap.members, snap.slots) == (0, 0, ())
    assert path.stat().st_size == HEADER_SIZE + 16 * SLOT_SIZE
    assert ShmRegion.open(str(path)).path == str(path)


def test_create_leaves_no_temporary_file(tmp_path: Path) -> None:
    create_region(tmp_path / "region")
    assert [p.name for p in tmp_path.iterdir()] == ["region"]


def test_create_refuses_to_replace_an_existing_region(tmp_path: Path) -> None:
    path = tmp_path / "region"
    region = create_region(path)
    member = region.join()
    with pytest.raises(FileExistsError) as raised:
        create_region(path)
    assert raised.value.filename == str(path)
    assert region.snapshot()["members"] == 1
    region.leave(member)


def test_set_limits_bumps_the_generation(tmp_path: Path) -> None:
    region = create_region(tmp_path / "region")
    assert region.set_limits(**{**LIMITS, "vram_limit": 2000}) == 1
    assert region.set_limits(**LIMITS) == 2
    snap = ShmRegion.open(tmp_path / "region").snapshot()
    assert (snap["generation"], snap["vram_limit"]) == (2, 1000)


def test_bad_limits_leave_the_region_unchanged(tmp_path: Path) -> None:
    region = create_region(tmp_path / "region")
    with pytest.raises(ValueError, match="tflops_request: must not exceed tflops_limit"):
        region.set_limits(**{**LIMITS, "tflops_request": 60.0})
    assert region.snapshot()["generation"] == 0


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("slots", 0, "slots: must be from 1 to 4096, got 0"),
        ("slots", 4097, "slots: must be from 1 to 4096, got 4097"),
        ("slots", -1, "slots: must be from 0 to 2\\*\\*64 - 1"),
        ("worker", "", "worker: must be 1 to 127 bytes, got 0"),
        ("worker", "w" * 128, "worker: must be 1 to 127 bytes, got 128"),
        ("worker", "a\0b", "worker: must not contain NUL"),
        ("vram_limit", -1, "vram_limit: must be from 0"),
        ("vram_limit", 2**64, "vram_limit: must be from 0"),
        ("tflops_limit", float("nan"), "tflops_limit: must be a finite number >= 0"),
        ("tflops_request", -1.0, "tflops_request: must be a finite number >= 0"),
        ("gpu_peak_tflops", float("inf"), "gpu_peak_tflops: must be a finite number"),
        ("gpu_peak_tflops", 0, "gpu_peak_tflops: must be > 0"),
    ],
)
def test_create_rejects_bad_arguments(tmp_path: Path, field: str, value: Any, message: str) -> None:
    path = tmp_path / "region"
    with pytest.raises(ValueError, match=message):
        create_region(path, **{field: value})
    assert not path.exists()


@pytest.mark.parametrize(
    ("field", "value"), [("slots", 8.0), ("vram_limit", True), ("tflops_limit", "1")]
)
def test_create_rejects_wrong_types(tmp_path: Path, field: str, value: Any) -> None:
    with pytest.raises(TypeError, match=field):
        create_region(tmp_path / "region", **{field: value})


def test_create_in_a_missing_directory_is_an_os_error(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "region"
    with pytest.raises(FileNotFoundError) as raised:
        create_region(path)
    assert raised.value.filename == str(path)


def test_open_a_missing_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "absent"
    with pytest.raises(FileNotFoundError) as raised:
        ShmRegion.open(path)
    assert raised.value.filename == str(path)


def test_open_a_directory_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(IsADirectoryError):
        ShmRegion.open(tmp_path)


def test_open_below_a_plain_file_is_an_os_error(tmp_path: Path) -> None:
    path = tmp_path / "region"
    create_region(path)
    with pytest.raises(NotADirectoryError) as raised:
        ShmRegion.open(path / "region")
    assert raised.value.filename == str(path / "region")


def patched(path: Path, offset: int, data: bytes) -> Path:
    raw = bytearray(path.read_bytes())
    raw[offset : offset + len(data)] = data
    path.write_bytes(bytes(raw))
    return path


def test_open_rejects_another_layout_version(tmp_path: Path) -> None:
    path = tmp_path / "region"
    create_region(path)
    patched(path, VERSION_OFFSET, struct.pack("=I", _native.SHM_LAYOUT_VERSION + 1))
    theirs, ours = _native.SHM_LAYOUT_VERSION + 1, _native.SHM_LAYOUT_VERSION
    with pytest.raises(
        ValueError, match=f"layout version {theirs}, this build reads version {ours}"
    ):
        ShmRegion.open(path)


@pytest.mark.parametrize(
    "keep", [0, 100, HEADER_SIZE - 1, HEADER_SIZE, HEADER_SIZE + 8 * SLOT_SIZE - 1]
)
def test_open_rejects_a_truncated_file(tmp_path: Path, keep: int) -> None:
    path = tmp_path / "region"
    create_region(path)
    path.write_bytes(path.read_bytes()[:keep])
    with pytest.raises(ValueError, match="truncated") as raised:
        ShmRegion.open(path)
    assert str(path) in str(raised.value)


def test_open_rejects_an_extended_file(tmp_path: Path) -> None:
    path = tmp_path / "region"
    create_region(path)
    with path.open("ab") as file:
        file.write(b"\0" * SLOT_SIZE)
    with pytest.raises(ValueError, match="truncated or corrupt"):
        ShmRegion.open(path)


@pytest.mark.parametrize("seed", range(5))
def test_open_rejects_garbage(tmp_path: Path, seed: int) -> None:
    path = tmp_path / "garbage"
    path.write_bytes(os.urandom(HEADER_SIZE + seed * 997))
    with pytest.raises(ValueError, match="bad magic"):
        ShmRegion.open(path)


@pytest.mark.parametrize(
    ("offset", "data", "message"),
    [
        (12, struct.pack("=I", 512), "header size 512"),
        (16, struct.pack("=I", 0), "slot count 0"),
        (16, struct.pack("=I", 9), "9 slots need"),
        (108, struct.pack("=I", 8), "free list"),
        (120, b"x" * 128, "worker name is not terminated"),
    ],
)
def test_open_rejects_corrupt_header_fields(
    tmp_path: Path, offset: int, data: bytes, message: str
) -> None:
    path = tmp_path / "region"
    create_region(path)
    with pytest.raises(ValueError, match=message):
        ShmRegion.open(patched(path, offset, data))


def test_layout_constants() -> None:
    assert _native.SHM_KINDS == ("device", "managed", "array", "vmm")
    assert _native.SHM_COUNTERS == (
        "launches",
        "throttled_launches",
        "busy_ns",
        "pages_evicted",
        "pages_resumed",
    )
