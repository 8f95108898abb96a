"""TFLOPS pacing in the shim, on the mock driver: every launch path goes through under a limit,
a binding limit throttles (the region's counters say so) and no limit does not, the region's
limits replace the environment's, and bad TFLOPS settings cost one stderr line, never the run.

The busy time the shim counts is the device time its paced launches took, to the nanosecond:
the mock's timeline gives each kernel its exact simulated duration, the counter counts what
launches cost (never the grants the limiter hands out), and a synchronisation collects every
launch it waited for.

Each case runs a child Python under LD_PRELOAD=libtfshim.so that launches kernels on the mock
through ctypes, then holds still (reading stdin) so the region's slot can be read.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tensorfusion._native import ShmRegion
from tests.native.test_shim import child_env, run_child, stderr_lines

LAUNCHES = 300
KERNEL = b"sleep_us_200"  # the mock runs it for 200 us of simulated GPU time per block
KERNEL_NS = 200_000

# argv: <how> <launches> [stream|ctx|event]. Prints the launch results and the stream's state
# after waiting for the work (by default on the stream, then the context; or only the context,
# or only an event recorded after it), then waits for a line on stdin.
LAUNCHER = r"""
import ctypes, json, sys
from ctypes import byref, c_int, c_uint, c_void_p, POINTER

cuda = ctypes.CDLL("libcuda.so.1")


class LaunchConfig(ctypes.Structure):
    _fields_ = [("grid", c_uint * 3), ("block", c_uint * 3), ("shared", c_uint),
                ("stream", c_void_p), ("attrs", c_void_p), ("num_attrs", c_uint)]


class NodeParams(ctypes.Structure):
    _fields_ = [("func", c_void_p), ("grid", c_uint * 3), ("block", c_uint * 3),
                ("shared", c_uint), ("params", c_void_p), ("extra", c_void_p),
                ("kern", c_void_p), ("ctx", c_void_p)]


def check(rc, what):
    if rc != 0:
        raise SystemExit(f"{what} failed: {rc}")


how, launches = sys.argv[1], int(sys.argv[2])
wait = sys.argv[3] if len(sys.argv) > 3 else "stream"
dev, ctx, module, fn, stream = c_int(), c_void_p(), c_void_p(), c_void_p(), c_void_p()
check(cuda.cuInit(0), "cuInit")
check(cuda.cuDeviceGet(byref(dev), 0), "cuDeviceGet")
check(cuda.cuCtxCreate_v2(byref(ctx), 0, dev), "cuCtxCreate")
check(cuda.cuModuleLoadData(byref(module), b"image"), "cuModuleLoadData")
check(cuda.cuModuleGetFunction(byref(fn), module, KERNEL), "cuModuleGetFunction")
check(cuda.cuStreamCreate(byref(stream), 1), "cuStreamCreate")
grid, block = (c_uint * 3)(1, 1, 1), (c_uint * 3)(32, 1, 1)
codes = []
if how == "graph":
    graph, exec_, node = c_void_p(), c_void_p(), c_void_p()
    check(cuda.cuGraphCreate(byref(graph), 0), "cuGraphCreate")
    params = NodeParams(func=fn.value, grid=grid, block=block)
    for _ in range(launches):
        check(cuda.cuGraphAddKernelNode_v2(byref(node), graph, None, 0, byref(params)), "node")
    check(cuda.cuGraphInstantiateWithFlags(byref(exec_), graph, 0), "instantiate")
    codes = [cuda.cuGraphLaunch(exec_, stream) for _ in range(2)]
for _ in range(launches if how != "graph" else 0):
    if how == "plain":
        codes.append(cuda.cuLaunchKernel(fn, 1, 1, 1, 32, 1, 1, 0, stream, None, None))
    elif how == "ptsz":
        codes.append(cuda.cuLaunchKernel_ptsz(fn, 1, 1, 1, 32, 1, 1, 0, None, None, None))
    elif how == "ex":
        config = LaunchConfig(grid=grid, block=block, stream=stream)
        codes.append(cuda.cuLaunchKernelEx(byref(config), fn, None, None))
    elif how == "coop":
        codes.append(cuda.cuLaunchCooperativeKernel(fn, 1, 1, 1, 32, 1, 1, 0, stream, None))
if wait == "event":
    done = c_void_p()
    check(cuda.cuEventCreate(byref(done), 0), "cuEventCreate")
    check(cuda.cuEventRecord(done, stream), "cuEventRecord")
    check(cuda.cuEventSynchronize(done), "cuEventSynchronize")
else:
    if wait == "stream":
        check(cuda.cuStreamSynchronize(stream), "cuStreamSynchronize")
    check(cuda.cuCtxSynchronize(), "cuCtxSynchronize")
print(json.dumps({"codes": codes, "query": cuda.cuStreamQuery(stream)}), flush=True)
sys.stdin.readline()
""".replace("KERNEL", repr(KERNEL))


def make_region(tmp_path: Path, tflops_limit: float, peak: float = 100.0) -> Path:
    path = tmp_path / "region"
    ShmRegion.create(
        path,
        slots=8,
        worker="w",
        vram_limit=1 << 30,
        tflops_limit=tflops_limit,
        tflops_request=tflops_limit / 2,
        gpu_peak_tflops=peak,
    )
    return path


def launch(
    env: dict[str, str], how: str, region: Path | None = None, wait: str = "stream"
) -> dict[str, Any]:
    """Runs the launcher; with a region, adds the child's slot counters as "counters"."""
    proc = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, how, str(LAUNCHES), wait],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    result: dict[str, Any] = json.loads(proc.stdout.readline() or "null") or {}
    if region is not None and result:
        (slot,) = [s for s in ShmRegion.open(region).snapshot()["slots"] if s["pid"] == proc.pid]
        result["counters"] = slot
    _, err = proc.communicate("\n", timeout=120)
    assert proc.returncode == 0, err
    result["stderr"] = err
    return result


def expected_codes(how: str) -> list[int]:
    return [0, 0] if how == "graph" else [0] * LAUNCHES


def work_ns(how: str) -> int:
    """The simulated GPU time of everything the launcher queues (a graph runs twice)."""
    return (2 if how == "graph" else 1) * LAUNCHES * KERNEL_NS


LAUNCH_PATHS = ["plain", "ptsz", "ex", "coop", "graph"]


@pytest.mark.timing
@pytest.mark.parametrize("how", LAUNCH_PATHS)
def test_every_launch_path_completes_under_a_limit(mockcuda: Any, tmp_path: Path, how: str) -> None:
    region = make_region(tmp_path, tflops_limit=30.0)
    result = launch(child_env(mockcuda, tmp_path, TF_SHM_PATH=str(region)), how, region)
    assert result["codes"] == expected_codes(how)
    assert result["query"] == 0  # everything launched has run
    counters = result["counters"]
    assert counters["launches"] == len(expected_codes(how))
    assert counters["busy_ns"] == work_ns(how)
    assert result["stderr"] == ""


@pytest.mark.timing
@pytest.mark.parametrize("how", LAUNCH_PATHS)
def test_binding_limit_throttles(mockcuda: Any, tmp_path: Path, how: str) -> None:
    region = make_region(tmp_path, tflops_limit=5.0)
    result = launch(child_env(mockcuda, tmp_path, TF_SHM_PATH=str(region)), how, region)
    assert result["codes"] == expected_codes(how)
    assert result["counters"]["throttled_launches"] > 0
    # Busy time is the device time the launches took, exactly: never more, and nothing the
    # synchronisation waited for is left uncounted.
    assert result["counters"]["busy_ns"] == work_ns(how)


@pytest.mark.timing
@pytest.mark.parametrize("wait", ["ctx", "event"])
def test_every_synchronisation_collects_what_it_waited_for(
    mockcuda: Any, tmp_path: Path, wait: str
) -> None:
    region = make_region(tmp_path, tflops_limit=5.0)
    env = child_env(mockcuda, tmp_path, TF_SHM_PATH=str(region))
    result = launch(env, "plain", region, wait=wait)
    assert result["query"] == 0
    assert result["counters"]["busy_ns"] == work_ns("plain")


@pytest.mark.parametrize("limit", [100.0, 250.0])
def test_limit_at_or_above_the_peak_never_throttles(
    mockcuda: Any, tmp_path: Path, limit: float
) -> None:
    region = make_region(tmp_path, tflops_limit=limit)
    result = launch(child_env(mockcuda, tmp_path, TF_SHM_PATH=str(region)), "plain", region)
    assert result["counters"]["launches"] == LAUNCHES
    assert result["counters"]["throttled_launches"] == 0
    assert result["counters"]["busy_ns"] == 0  # unpaced launches are not measured


def test_region_limits_replace_the_environment(mockcuda: Any, tmp_path: Path) -> None:
    region = make_region(tmp_path, tflops_limit=100.0)
    env = child_env(
        mockcuda,
        tmp_path,
        TF_SHM_PATH=str(region),
        TF_TFLOPS_LIMIT="1",
        TF_GPU_PEAK_TFLOPS="100",
    )
    assert launch(env, "plain", region)["counters"]["throttled_launches"] == 0


@pytest.mark.timing
def test_region_tightened_while_running_takes_effect(mockcuda: Any, tmp_path: Path) -> None:
    region_path = make_region(tmp_path, tflops_limit=100.0)
    env = child_env(mockcuda, tmp_path, TF_SHM_PATH=str(region_path))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            LAUNCHER.replace("how, launches =", "input()\nhow, launches ="),
            "plain",
            str(LAUNCHES * 3),
        ],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # The child starts launching only after the agent has moved the limit down.
    ShmRegion.open(region_path).set_limits(
        vram_limit=1 << 30, tflops_limit=5.0, tflops_request=1.0, gpu_peak_tflops=100.0
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    proc.stdin.write("\n")
    proc.stdin.flush()
    assert json.loads(proc.stdout.readline())["query"] == 0
    (slot,) = ShmRegion.open(region_path).snapshot()["slots"]
    proc.communicate("\n", timeout=120)
    assert slot["throttled_launches"] > 0


def test_environment_limit_paces_without_a_region(mockcuda: Any, tmp_path: Path) -> None:
    env = child_env(mockcuda, tmp_path, TF_TFLOPS_LIMIT="5", TF_GPU_PEAK_TFLOPS_0="100")
    result = launch(env, "plain")
    assert result["codes"] == expected_codes("plain")
    assert result["stderr"] == ""


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TF_TFLOPS_LIMIT", "lots"),
        ("TF_TFLOPS_LIMIT", "-5"),
        ("TF_TFLOPS_LIMIT", "0"),
        ("TF_TFLOPS_LIMIT", "nan"),
        ("TF_GPU_PEAK_TFLOPS", "inf"),
        ("TF_GPU_PEAK_TFLOPS", "100 TFLOPS"),
        ("TF_TFLOPS_LIMIT_0", "1e999"),
    ],
)
def test_malformed_tflops_is_one_line_and_no_pacing(
    mockcuda: Any, tmp_path: Path, name: str, value: str
) -> None:
    settings = {"TF_TFLOPS_LIMIT": "5", "TF_GPU_PEAK_TFLOPS": "100", name: value}
    result = launch(child_env(mockcuda, tmp_path, **settings), "plain")
    assert result["codes"] == expected_codes("plain")
    (line,) = stderr_lines(result["stderr"])
    assert name in line
    assert "not paced" in line


@pytest.mark.parametrize(
    "lookup",
    [
        ("cuLaunchKernel", 12080, 0, "cuLaunchKernel"),
        ("cuLaunchKernel", 12080, 2, "cuLaunchKernel_ptsz"),
        ("cuLaunchKernelEx", 12080, 0, "cuLaunchKernelEx"),
        ("cuLaunchKernelEx", 12080, 2, "cuLaunchKernelEx_ptsz"),
        ("cuLaunchCooperativeKernel", 11000, 0, "cuLaunchCooperativeKernel"),
        ("cuLaunchCooperativeKernel", 12080, 2, "cuLaunchCooperativeKernel_ptsz"),
        ("cuGraphLaunch", 12080, 0, "cuGraphLaunch"),
        ("cuGraphLaunch", 12080, 2, "cuGraphLaunch_ptsz"),
        ("cuStreamSynchronize", 12080, 0, "cuStreamSynchronize"),
        ("cuStreamSynchronize", 12080, 2, "cuStreamSynchronize_ptsz"),
        ("cuCtxSynchronize", 12080, 0, "cuCtxSynchronize"),
        ("cuEventSynchronize", 12080, 2, "cuEventSynchronize"),
    ],
)
def test_cugetprocaddress_hands_out_the_launch_and_sync_hooks(
    mockcuda: Any, tmp_path: Path, lookup: tuple[str, int, int, str]
) -> None:
    # (name asked for, CUDA version, flags, the shim export it must resolve to)
    results, _ = run_child([["init"], ["proc_is_hook", *lookup]], child_env(mockcuda, tmp_path))
    assert results[1] is True
