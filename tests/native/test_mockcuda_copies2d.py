"""The mock driver's 2D copies, 2D memsets and peer copies: each moves exactly its rows (offsets
and pitches honoured, the gaps between rows untouched), is checked row by row as the 1D copies
are, and occupies the simulated timeline as a 1D copy of its width x height bytes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.mockcuda_build import MockCuda
from tests.native.mockcuda_run import run_program
from tests.native.test_mockcuda_copies import assert_lookups

INVALID_VALUE = "1"
INVALID_CONTEXT = "201"
ILLEGAL_ADDRESS = "700"
NOT_SUPPORTED = "801"
MIB = 1 << 20
GRANULARITY = 2 * MIB

HOST_LINK = ["htod", "htod_async", "dtoh", "dtoh_async", "unified_htod", "unified_dtoh"]
DEVICE_LOCAL = [
    "dtod",
    "dtod_unaligned",
    "dtod_async",
    "unified_dtod",
    "memset8",
    "memset16",
    "memset32",
    "memset8_async",
    "memset16_async",
    "memset32_async",
]


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "mockcuda.state"


def expected_ms(size: int, gbps: float, latency_ns: int) -> float:
    return (latency_ns + size / gbps) / 1e6


@pytest.mark.timing
@pytest.mark.parametrize("flags", ["0", "2"])
@pytest.mark.parametrize(
    "settings", [{}, {"MOCKCUDA_COPY_GBPS": "1.5", "MOCKCUDA_COPY_LATENCY_NS": "50000"}]
)
def test_each_2d_copy_and_memset_moves_its_rows_in_width_times_height_time(
    mockcuda: MockCuda, state: Path, flags: str, settings: dict[str, str]
) -> None:
    width, height = 4096, 256  # rows further apart than their width: the gaps cost nothing
    gbps = float(settings.get("MOCKCUDA_COPY_GBPS", "25"))  # the defaults otherwise
    latency_ns = int(settings.get("MOCKCUDA_COPY_LATENCY_NS", "2000"))
    env = {**mockcuda.env(state), **settings}
    out = run_program(mockcuda, "copies2d", str(width), str(height), flags, env=env)
    for op in HOST_LINK + DEVICE_LOCAL:
        rate = gbps * (10 if op in DEVICE_LOCAL else 1)
        expected = expected_ms(width * height, rate, latency_ns)
        assert float(out[f"elapsed_{op}"]) == pytest.approx(expected, rel=0.01), op
        assert out[f"ok_{op}"] == "1", op


@pytest.mark.timing
@pytest.mark.parametrize("flags", ["0", "2"])
def test_peer_copies_move_between_devices_at_device_speed(
    mockcuda: MockCuda, state: Path, flags: str
) -> None:
    size = 4 * MIB
    out = run_program(
        mockcuda, "copies2d", "peer", str(size), flags, env=mockcuda.env(state, devices=2)
    )
    assert out["owner_of_source"] == "1"  # the first copy reads device 1's memory
    for op in ["peer", "peer_async"]:
        assert float(out[f"elapsed_{op}"]) == pytest.approx(expected_ms(size, 250, 2000), rel=0.01)
        assert out[f"ok_{op}"] == "1", op


def test_bad_2d_and_peer_copies_give_the_driver_error_codes(
    mockcuda: MockCuda, state: Path
) -> None:
    out = run_program(mockcuda, "copies2d", "errors", env=mockcuda.env(state))
    assert out == {
        "copy_ok": "0",
        "copy_src_pitch_below_width": INVALID_VALUE,
        "copy_dst_pitch_below_width": INVALID_VALUE,
        "copy_row_past_end": INVALID_VALUE,
        "copy_unknown_device": INVALID_VALUE,
        "copy_array": NOT_SUPPORTED,
        "copy_bad_memory_type": INVALID_VALUE,
        "copy_null": INVALID_VALUE,
        "copy_no_rows": "0",
        "set_ok": "0",
        "set_pitch_below_width": INVALID_VALUE,
        "set_misaligned_pitch": INVALID_VALUE,
        "set_misaligned": INVALID_VALUE,
        "set_row_past_end": INVALID_VALUE,
        "peer_ok": "0",
        "peer_bogus_context": INVALID_CONTEXT,
        "peer_past_end": INVALID_VALUE,
    }


@pytest.mark.parametrize("how", ["copy", "set"])
def test_a_2d_row_in_unmapped_vmm_space_faults_for_good(
    mockcuda: MockCuda, state: Path, how: str
) -> None:
    out = run_program(mockcuda, "copies2d", "fault", how, env=mockcuda.env(state))
    assert out["over_hole"] == "0"  # rows on either side of the hole touch only mapped memory
    assert out["into_hole"] == ILLEGAL_ADDRESS
    assert out["fault_offset"] == str(GRANULARITY)  # the second row's first byte
    assert out["after_ctx_sync"] == out["after_copy"] == ILLEGAL_ADDRESS


LOOKUPS = [
    ("cuMemcpy2D", 12000, 0, "cuMemcpy2D_v2"),
    ("cuMemcpy2D", 12000, 2, "cuMemcpy2D_v2_ptds"),
    ("cuMemcpy2DUnaligned", 12000, 0, "cuMemcpy2DUnaligned_v2"),
    ("cuMemcpy2DUnaligned", 12000, 2, "cuMemcpy2DUnaligned_v2_ptds"),
    ("cuMemcpy2DAsync", 3020, 0, "cuMemcpy2DAsync_v2"),
    ("cuMemcpy2DAsync", 12000, 2, "cuMemcpy2DAsync_v2_ptsz"),
    ("cuMemsetD2D8", 12000, 0, "cuMemsetD2D8_v2"),
    ("cuMemsetD2D16", 12000, 2, "cuMemsetD2D16_v2_ptds"),
    ("cuMemsetD2D32", 12000, 2, "cuMemsetD2D32_v2_ptds"),
    ("cuMemsetD2D8Async", 12000, 2, "cuMemsetD2D8Async_ptsz"),
    ("cuMemsetD2D16Async", 12000, 0, "cuMemsetD2D16Async"),
    ("cuMemsetD2D32Async", 12000, 2, "cuMemsetD2D32Async_ptsz"),
    ("cuMemcpyPeer", 4000, 0, "cuMemcpyPeer"),
    ("cuMemcpyPeer", 12000, 2, "cuMemcpyPeer_ptds"),
    ("cuMemcpyPeerAsync", 12000, 0, "cuMemcpyPeerAsync"),
    ("cuMemcpyPeerAsync", 12000, 2, "cuMemcpyPeerAsync_ptsz"),
]


def test_get_proc_address_finds_the_2d_and_peer_entry_points(
    mockcuda: MockCuda, state: Path
) -> None:
    assert_lookups(mockcuda, state, LOOKUPS)
