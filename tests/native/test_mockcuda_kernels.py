"""The mock driver's built-in kernels really read and write the memory their parameters point
to: through kernelParams and `extra`, on every launch path, in graphs and captured streams;
cuFuncGetParamInfo serves their layouts, and an older driver lacks it."""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest

from tests.mockcuda_build import MockCuda
from tests.native.mockcuda_run import run_program

INVALID_VALUE = "1"
ILLEGAL_STATE = "401"
CAPTURE_UNSUPPORTED = "900"
N = 1000


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "mockcuda.state"


@pytest.fixture
def computed(mockcuda: MockCuda, state: Path) -> dict[str, str]:
    return run_program(mockcuda, "kernels", "compute", env=mockcuda.env(state))


def test_kernels_compute_through_kernel_params_and_extra(computed: dict[str, str]) -> None:
    a = bytes.fromhex(computed["a"])
    b = bytes.fromhex(computed["b"])
    assert a == bytes((i * 7 + 1) % 256 for i in range(N))
    added = bytes((x + y) % 256 for x, y in zip(a, b, strict=True)).hex()
    xored = bytes(x ^ y for x, y in zip(a, b, strict=True)).hex()
    assert computed["fill_params"] == "5a" * N  # the value's low byte
    assert computed["fill_extra"] == "33" * N
    assert computed["add_params"] == computed["add_extra"] == added
    assert computed["xor_params"] == computed["xor_extra"] == xored  # struct of two pointers
    assert int(computed["checksum_params"]) == zlib.crc32(a)
    assert int(computed["checksum_extra"]) == zlib.crc32(b)


def test_missing_or_malformed_parameters_are_refused(computed: dict[str, str]) -> None:
    assert computed["no_params"] == computed["both_params"] == INVALID_VALUE
    assert computed["extra_short"] == computed["null_value"] == INVALID_VALUE
    assert computed["other_kernel"] == "0"


def test_every_launch_path_runs_the_kernel(computed: dict[str, str]) -> None:
    assert computed["path_ptsz"] == "01" * 4
    assert computed["path_ex"] == "02" * 4
    assert computed["path_ex_ptsz_extra"] == "03" * 4
    assert computed["path_coop"] == "04" * 4
    assert computed["path_coop_ptsz"] == "05" * 4


def test_graph_nodes_run_with_the_values_they_were_added_with(computed: dict[str, str]) -> None:
    assert computed["graph_node_without_params"] == INVALID_VALUE
    assert computed["graph_before_launch"] == "05" * 4  # nothing ran at instantiation
    assert computed["graph_fill"] == "44" * N
    assert int(computed["graph_checksum"]) == zlib.crc32(b"\x44" * N)


def test_capture_turns_launches_into_a_graph(computed: dict[str, str]) -> None:
    assert computed["capture_default_stream"] == CAPTURE_UNSUPPORTED
    assert computed["capture_bad_mode"] == INVALID_VALUE
    assert computed["end_not_capturing"] == computed["begin_twice"] == ILLEGAL_STATE
    assert computed["status_capturing"] == "1"
    assert computed["sync_capturing"] == computed["ctx_sync_capturing"] == CAPTURE_UNSUPPORTED
    assert computed["sync_copy_capturing"] == CAPTURE_UNSUPPORTED
    assert computed["async_copy_capturing"] == CAPTURE_UNSUPPORTED
    assert computed["ran_while_capturing"] == "0"
    assert computed["status_after"] == "0"
    assert computed["captured_fill"] == "66" * N
    assert int(computed["captured_checksum"]) == zlib.crc32(b"\x66" * N)


LAYOUTS = {
    "mock_fill": [(0, 8), (8, 8), (16, 4)],
    "mock_checksum": [(0, 8), (8, 8), (16, 8)],
    "mock_add": [(0, 8), (8, 8), (16, 8), (24, 8)],
    "mock_xor_pair": [(0, 16), (16, 8), (24, 8)],
    "plain_kernel": [],
}


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_param_info_serves_the_layouts(computed: dict[str, str], name: str) -> None:
    layout = LAYOUTS[name]
    for index, (offset, size) in enumerate(layout):
        assert computed[f"info_{name}_{index}"] == f"0:{offset}:{size}"
    assert computed[f"info_{name}_{len(layout)}"] == "1:99:99"  # past the last parameter
    assert computed["info_null"] == INVALID_VALUE
    assert computed["procaddr"] == "0:0:1"
    assert computed["version"] == "12080"


def test_an_older_driver_has_no_param_info(mockcuda: MockCuda, state: Path) -> None:
    env = {**mockcuda.env(state), "MOCKCUDA_DRIVER_VERSION": "12030"}
    out = run_program(mockcuda, "kernels", "old_driver", env=env)
    assert out["version"] == "12030"
    assert out["info_mock_fill_0"] == "801:99:99"  # CUDA_ERROR_NOT_SUPPORTED
    assert out["procaddr"] == "500:1:0"  # NOT_FOUND, symbol not found


def test_a_kernel_checks_every_range_before_writing(mockcuda: MockCuda, state: Path) -> None:
    out = run_program(mockcuda, "kernels", "partial", env=mockcuda.env(state))
    assert out == {"add_freed_operand": "700", "dst_untouched": "1", "fault_at_operand": "1"}


@pytest.mark.timing
def test_built_in_kernels_last_their_cost_per_block(mockcuda: MockCuda, state: Path) -> None:
    out = run_program(mockcuda, "kernels", "duration", env=mockcuda.env(state))
    assert out["elapsed_ms"] == "0.012"  # 2 blocks x 1 us, then 2 blocks x 5 us
