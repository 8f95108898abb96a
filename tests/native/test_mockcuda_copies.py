"""The mock driver's copies and memsets: every variant (and its per-thread twin, reached through
cuGetProcAddress) moves the right bytes and occupies the simulated timeline for
latency + bytes / bandwidth, as measured with events."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.mockcuda_build import MockCuda
from tests.native.mockcuda_run import TIMEOUT, run_program

INVALID_VALUE = "1"
NOT_READY = "600"
MIB = 1 << 20

HOST_LINK = ["htod", "dtoh", "memcpy_dtoh", "htod_async", "dtoh_async"]
DEVICE_LOCAL = [
    "dtod",
    "memcpy_dtod",
    "memset8",
    "memset16",
    "memset32",
    "dtod_async",
    "memcpy_async_dtod",
    "memset8_async",
    "memset16_async",
    "memset32_async",
]


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "mockcuda.state"


@pytest.mark.timing
@pytest.mark.parametrize("flags", ["0", "2"])
@pytest.mark.parametrize(
    "settings", [{}, {"MOCKCUDA_COPY_GBPS": "1.5", "MOCKCUDA_COPY_LATENCY_NS": "50000"}]
)
def test_each_copy_and_memset_takes_latency_plus_bytes_over_bandwidth(
    mockcuda: MockCuda, state: Path, flags: str, settings: dict[str, str]
) -> None:
    size = 4 * MIB
    gbps = float(settings.get("MOCKCUDA_COPY_GBPS", "25"))  # the defaults otherwise
    latency_ns = int(settings.get("MOCKCUDA_COPY_LATENCY_NS", "2000"))
    env = {**mockcuda.env(state), **settings}
    out = run_program(mockcuda, "copies", str(size), flags, env=env)
    for op in HOST_LINK + DEVICE_LOCAL:
        rate = gbps * (10 if op in DEVICE_LOCAL else 1)
        expected_ms = (latency_ns + size / rate) / 1e6
        assert float(out[f"elapsed_{op}"]) == pytest.approx(expected_ms, rel=0.01), op
        assert out[f"ok_{op}"] == "1", op


@pytest.mark.timing
def test_async_copies_return_before_their_work_completes(mockcuda: MockCuda, state: Path) -> None:
    # 1 MiB at 2 MB/s: half a second of simulated work
    env = {**mockcuda.env(state), "MOCKCUDA_COPY_GBPS": "0.002"}
    out = run_program(mockcuda, "copies", "query", str(MIB), env=env)
    assert out["async_query"] == NOT_READY
    assert out["async_query_after_sync"] == "0"
    assert out["sync_query"] == "0"  # a synchronous copy returns once complete


def test_bad_copies_give_the_driver_error_codes(mockcuda: MockCuda, state: Path) -> None:
    out = run_program(mockcuda, "copies", "errors", env=mockcuda.env(state))
    assert out == {
        "memset16_misaligned": INVALID_VALUE,
        "memset32_misaligned": INVALID_VALUE,
        "memset32_past_end": INVALID_VALUE,
        "htod_null_host": INVALID_VALUE,
        "dtod_unknown": INVALID_VALUE,
        "dtoh_async_past_end": INVALID_VALUE,
        "async_bogus_stream": "400",
        "host_alloc_bad_flags": INVALID_VALUE,
        "host_alloc_zero": INVALID_VALUE,
        "host_free": "0",
        "zero_bytes": "0",
    }


# Resolves names through cuGetProcAddress_v2 and says which exported symbol each one is.
PROC_ADDRESS = r"""
import ctypes, json, sys
from ctypes import byref, c_int, c_uint64, c_void_p

cuda = ctypes.CDLL(sys.argv[1])
out = {}
for name, version, flags, symbol in json.loads(sys.argv[2]):
    pfn, status = c_void_p(), c_int(-1)
    r = cuda.cuGetProcAddress_v2(name.encode(), byref(pfn), version, c_uint64(flags), byref(status))
    want = ctypes.cast(getattr(cuda, symbol), c_void_p).value
    out[f"{name}:{flags}"] = [r, status.value, pfn.value == want]
print(json.dumps(out))
"""

LOOKUPS = [
    ("cuMemcpyDtoD", 12000, 0, "cuMemcpyDtoD_v2"),
    ("cuMemcpyDtoD", 12000, 2, "cuMemcpyDtoD_v2_ptds"),
    ("cuMemcpyHtoDAsync", 12000, 0, "cuMemcpyHtoDAsync_v2"),
    ("cuMemcpyHtoDAsync", 12000, 2, "cuMemcpyHtoDAsync_v2_ptsz"),
    ("cuMemcpyDtoHAsync", 12000, 2, "cuMemcpyDtoHAsync_v2_ptsz"),
    ("cuMemcpyDtoDAsync", 12000, 2, "cuMemcpyDtoDAsync_v2_ptsz"),
    ("cuMemcpyAsync", 12000, 0, "cuMemcpyAsync"),
    ("cuMemcpyAsync", 12000, 2, "cuMemcpyAsync_ptsz"),
    ("cuMemcpy", 12000, 2, "cuMemcpy_ptds"),
    ("cuMemsetD16", 12000, 0, "cuMemsetD16_v2"),
    ("cuMemsetD32", 12000, 2, "cuMemsetD32_v2_ptds"),
    ("cuMemsetD8Async", 12000, 0, "cuMemsetD8Async"),
    ("cuMemsetD16Async", 12000, 2, "cuMemsetD16Async_ptsz"),
    ("cuMemsetD32Async", 12000, 2, "cuMemsetD32Async_ptsz"),
    ("cuMemHostAlloc", 12000, 0, "cuMemHostAlloc"),
    ("cuIpcGetMemHandle", 12000, 0, "cuIpcGetMemHandle"),
    ("cuStreamBeginCapture", 12000, 0, "cuStreamBeginCapture_v2"),
    ("cuStreamBeginCapture", 12000, 2, "cuStreamBeginCapture_v2_ptsz"),
    ("cuStreamEndCapture", 12000, 2, "cuStreamEndCapture_ptsz"),
    ("cuStreamIsCapturing", 12000, 2, "cuStreamIsCapturing_ptsz"),
    ("cuFuncGetParamInfo", 12080, 0, "cuFuncGetParamInfo"),
]


def assert_lookups(
    mockcuda: MockCuda, state: Path, lookups: list[tuple[str, int, int, str]]
) -> None:
    """Each (name, version, flags, exported name) resolves through cuGetProcAddress to the
    exported function of that name."""
    done = subprocess.run(
        ["python3", "-c", PROC_ADDRESS, str(mockcuda.libcuda), json.dumps(lookups)],
        env=mockcuda.env(state),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=True,
    )
    out = json.loads(done.stdout)
    assert out == {f"{name}:{flags}": [0, 0, True] for name, _, flags, _ in lookups}


def test_get_proc_address_finds_the_new_entry_points(mockcuda: MockCuda, state: Path) -> None:
    assert_lookups(mockcuda, state, LOOKUPS)
