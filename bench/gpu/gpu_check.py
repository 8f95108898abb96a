"""The GPU check behind bench/gpu/run.sh: every measurement runs in a child process started
with and without `LD_PRELOAD=libtfshim.so`, and one table is printed at the end.

Rows:
- VRAM, CUDA C++ (when nvcc exists) and PyTorch: bytes allocated before OUT_OF_MEMORY under a
  limit, against the limit (target: within 1%); the total reported by cudaMemGetInfo /
  torch.cuda.mem_get_info and by NVML in the same process (target: both equal the limit).
- TFLOPS: a matmul loop's throughput under limits of 10..90% of the GPU's measured peak, as a
  share of its unlimited throughput (target: within 2 points); two processes at 30/70 at
  once (target: within 3 points each).
- Overhead with no binding limit: a launch-bound loop and a matmul loop, with the shim
  against without (target: <= 50 ns per launch).
- VRAM tiering (tiering_check.py): a training run paged to host memory against an unlimited
  one (target: the same loss), and page-in bandwidth from host memory (target: >= 0.8 of a
  pinned copy's) and from disk (target: the bytes come back right)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tiering_check as tiering

import tensorfusion

GIB = 1024**3
SECONDS = 4.0
LIMITS = (10, 30, 50, 70, 90)

TORCH_VRAM = """
import json, torch
torch.cuda.init()
chunks, total = [], 0
try:
    while True:
        chunks.append(torch.empty(64 * 1024**2, dtype=torch.uint8, device="cuda"))
        total += 64 * 1024**2
except torch.cuda.OutOfMemoryError:
    pass
free, whole = torch.cuda.mem_get_info()
nvml_total = None
try:
    import pynvml
    pynvml.nvmlInit()
    nvml_total = pynvml.nvmlDeviceGetMemoryInfo(pynvml.nvmlDeviceGetHandleByIndex(0)).total
except Exception:
    pass
print(json.dumps({"allocated": total, "total": whole, "nvml_total": nvml_total}))
"""

TORCH_LOOP = """
import json, sys, time, torch
kind, seconds = sys.argv[1], float(sys.argv[2])
if kind == "matmul":
    a = torch.randn(4096, 4096, device="cuda", dtype=torch.float16)
    step = lambda: a @ a
else:
    a = torch.zeros(16, device="cuda")
    step = lambda: a.add_(1)
for _ in range(20):
    step()
torch.cuda.synchronize()
count, start = 0, time.perf_counter()
while time.perf_counter() - start < seconds:
    for _ in range(50):
        step()
    count += 50
torch.cuda.synchronize()
elapsed = time.perf_counter() - start
print(json.dumps({"per_s": count / elapsed, "ns_per_call": elapsed / count * 1e9}))
"""

CUDA_VRAM = r"""
#include <cstdio>
#include <cuda.h>
#include <cuda_runtime.h>
int main() {
  size_t chunk = 64ull << 20, total = 0;
  void* p = nullptr;
  while (cudaMalloc(&p, chunk) == cudaSuccess) total += chunk;
  size_t free_b = 0, whole = 0;
  cudaMemGetInfo(&free_b, &whole);
  CUdevice dev; cuDeviceGet(&dev, 0);
  size_t driver_total = 0; cuDeviceTotalMem(&driver_total, dev);
  std::printf("{\"allocated\": %zu, \"total\": %zu, \"driver_total\": %zu}\n",
              total, whole, driver_total);
  return 0;
}
"""


def run_python(
    code: str, env: dict[str, str], *args: str, timeout: float | None = None
) -> dict[str, Any]:
    try:
        done = subprocess.run(
            [sys.executable, "-c", code, *args],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"child timed out after {timeout:.0f} s") from None
    if done.returncode != 0:
        raise RuntimeError(f"child failed ({done.returncode}): {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def shim_env(shim: Path, **limits: str) -> dict[str, str]:
    env = dict(os.environ)
    env["LD_PRELOAD"] = str(shim)
    env.update(limits)
    return env


def vram_rows(shim: Path, limit: int, workdir: Path) -> list[tuple[str, str, str]]:
    rows = []
    env = shim_env(shim, TF_VRAM_LIMIT=str(limit))
    torch_result = run_python(TORCH_VRAM, env)
    rows.append(
        (
            "VRAM limit, PyTorch: allocated before OOM",
            f"{torch_result['allocated'] / GIB:.3f} GiB of {limit / GIB:.3f} GiB "
            f"({(torch_result['allocated'] - limit) / limit * 100:+.2f}%)",
            "within 1%",
        )
    )
    rows.append(
        (
            "VRAM limit, PyTorch: mem_get_info total / NVML total",
            f"{torch_result['total'] / GIB:.3f} / "
            + (
                f"{torch_result['nvml_total'] / GIB:.3f} GiB"
                if torch_result["nvml_total"] is not None
                else "NVML not available"
            ),
            "both = limit",
        )
    )
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        rows.append(("VRAM limit, CUDA C++", "nvcc not found: not run", "within 1%"))
        return rows
    source = workdir / "vram_probe.cu"
    source.write_text(CUDA_VRAM)
    binary = workdir / "vram_probe"
    subprocess.run([nvcc, "-O2", "-o", str(binary), str(source), "-lcuda"], check=True)
    done = subprocess.run([str(binary)], env=env, capture_output=True, text=True, check=True)
    cuda = json.loads(done.stdout)
    rows.append(
        (
            "VRAM limit, CUDA C++: allocated / cudaMemGetInfo / cuDeviceTotalMem",
            f"{cuda['allocated'] / GIB:.3f} / {cuda['total'] / GIB:.3f} / "
            f"{cuda['driver_total'] / GIB:.3f} GiB (limit {limit / GIB:.3f})",
            "within 1% / = limit / = limit",
        )
    )
    return rows


def tflops_rows(shim: Path) -> list[tuple[str, str, str]]:
    plain = run_python(TORCH_LOOP, dict(os.environ), "matmul", str(SECONDS))["per_s"]
    # The peak is what this GPU achieves on the loop: limits are shares of it.
    peak = "100"
    rows = []
    for percent in LIMITS:
        env = shim_env(shim, TF_TFLOPS_LIMIT=str(percent), TF_GPU_PEAK_TFLOPS=peak)
        got = run_python(TORCH_LOOP, env, "matmul", str(SECONDS))["per_s"] / plain * 100
        rows.append((f"TFLOPS limit {percent}%", f"{got:.1f}% ({got - percent:+.1f} pt)", "+-2 pt"))
    pair = []
    for percent in (30, 70):
        env = shim_env(shim, TF_TFLOPS_LIMIT=str(percent), TF_GPU_PEAK_TFLOPS=peak)
        pair.append(
            subprocess.Popen(
                [sys.executable, "-c", TORCH_LOOP, "matmul", str(SECONDS * 2)],
                env=env,
                stdout=subprocess.PIPE,
                text=True,
            )
        )
    shares = [json.loads(p.communicate()[0].strip().splitlines()[-1])["per_s"] for p in pair]
    achieved = [s / plain * 100 for s in shares]
    rows.append(
        (
            "TFLOPS two processes 30/70",
            f"{achieved[0]:.1f}% / {achieved[1]:.1f}% "
            f"({achieved[0] - 30:+.1f} / {achieved[1] - 70:+.1f} pt)",
            "+-3 pt each",
        )
    )
    return rows


def overhead_rows(shim: Path) -> list[tuple[str, str, str]]:
    rows = []
    for kind in ("launch", "matmul"):
        without = run_python(TORCH_LOOP, dict(os.environ), kind, str(SECONDS))
        with_shim = run_python(TORCH_LOOP, shim_env(shim), kind, str(SECONDS))
        added = with_shim["ns_per_call"] - without["ns_per_call"]
        rows.append(
            (
                f"overhead, {kind} loop, no binding limit",
                f"{without['ns_per_call']:.0f} -> {with_shim['ns_per_call']:.0f} ns/iteration "
                f"({added:+.0f} ns, x{with_shim['ns_per_call'] / without['ns_per_call']:.3f})",
                "<= 50 ns per launch",
            )
        )
    return rows


def tiering_rows(shim: Path, gpu_bytes: int, workdir: Path) -> list[tuple[str, str, str]]:
    sizes = tiering.sizes(gpu_bytes)
    plain = dict(os.environ)

    def child(script: str, env: dict[str, str], args: list[str]) -> dict[str, Any]:
        return run_python(script, env, *args, timeout=tiering.TIMEOUT_S)

    def training() -> str:
        unlimited = child(tiering.TRAIN, plain, sizes.train_args)
        env = shim_env(shim, **tiering.training_env(unlimited["working_set"]))
        return tiering.training_text(unlimited, child(tiering.TRAIN, env, sizes.train_args))

    def from_host() -> str:
        pinned = child(tiering.PAGE_IN, plain, sizes.page_args("pinned"))["bytes_per_s"]
        env = shim_env(shim, **tiering.tier_env(sizes.page_budget, host=sizes.page_budget))
        return tiering.host_text(child(tiering.PAGE_IN, env, sizes.page_args("paged")), pinned)

    def from_disk() -> str:
        spill = workdir / "spill"
        spill.mkdir()
        limits = tiering.tier_env(sizes.page_budget, disk=sizes.page_budget, spill_dir=str(spill))
        return tiering.disk_text(
            child(tiering.PAGE_IN, shim_env(shim, **limits), sizes.page_args("paged"))
        )

    return [
        tiering.row(
            f"VRAM tiering, training, working set {tiering.OVERSUBSCRIPTION}x VRAM (host tier)",
            training,
            f"same loss (rel {tiering.LOSS_RTOL:g})",
        ),
        tiering.row(
            "VRAM tiering, page-in from host",
            from_host,
            f">= {tiering.PAGE_IN_TARGET} of pinned copy, bytes right",
        ),
        tiering.row("VRAM tiering, page-in from disk", from_disk, "bytes right"),
    ]


def gpu_memory_bytes() -> int:
    mib = subprocess.run(
        ["nvidia-smi", "-i", "0", "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return int(mib.strip()) * 1024**2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vram-limit-gib", type=float, default=4.0)
    args = parser.parse_args()
    shim = tensorfusion.shim_path()
    info = subprocess.run(
        ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory() as scratch:
        sections: list[Callable[[], list[tuple[str, str, str]]]] = [
            lambda: vram_rows(shim, int(args.vram_limit_gib * GIB), Path(scratch)),
            lambda: tflops_rows(shim),
            lambda: overhead_rows(shim),
            lambda: tiering_rows(shim, gpu_memory_bytes(), Path(scratch)),
        ]
        for section in sections:
            try:
                rows.extend(section())
            except Exception as exc:  # one failing section must not hide the others
                rows.append(("(section failed)", str(exc)[:200], ""))
    width = max(len(r[0]) for r in rows)
    print(f"GPU: {info}; shim: {shim}")
    print(f"{'check':<{width}} | measured | target")
    for name, measured, target in rows:
        print(f"{name:<{width}} | {measured} | {target}")
    print(
        textwrap.dedent("""
        TFLOPS limits are shares of the matmul loop's own unlimited throughput (peak set to
        100 and the limit to the percentage). Page-in bandwidth is bytes(a) over a paged touch's
        time less a resident one's; the paged touch also evicts b.""")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
