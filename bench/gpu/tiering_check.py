"""The VRAM tiering rows of the GPU check: their PyTorch workloads (run by gpu_check.py as child
processes, with and without the shim), how they are sized from the GPU's memory, and how their
results become table rows. Nothing here imports torch, so it can be tested on any machine.

- Training to the same loss: a deterministic MLP whose working set is OVERSUBSCRIPTION times the
  VRAM it may keep resident, unlimited against under the shim with the rest on the host tier.
- Page-in bandwidth: tensors a and b of 0.6 budget each; touching b evicts a, so the next touch
  of a pages it in (evicting b); bandwidth = bytes(a) / (paged touch - resident touch), against
  a pinned host->device copy of the same size. Once from the host tier, once from disk."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, NamedTuple

GIB = 1024**3
MIB = 1024**2
Row = tuple[str, str, str]

# Training's working set over the VRAM it may keep resident: the rest is paged every step.
OVERSUBSCRIPTION = 1.4
LOSS_RTOL = 1e-5
STEPS = 12
# The MLP: each block holds four WIDTH^2 fp32 tensors (weight, grad, Adam's two moments) and
# keeps two BATCH x WIDTH activations for backward.
WIDTH, BATCH = 4096, 2048
BLOCK_BYTES = 4 * (4 * WIDTH * WIDTH + 2 * BATCH * WIDTH)
# Large enough that transfers dominate the timings, small enough that a row takes a minute.
TRAINING_MAX = 6 * GIB
PAGE_BUDGET_MAX = 4 * GIB
PAGE_SHARE = 0.6  # of the budget, for each of a and b: the two never fit together
PAGE_CYCLES = 3
PAGE_IN_TARGET = 0.8  # share of a pinned host->device copy's bandwidth
TIMEOUT_S = 300.0

TRAIN = """
import json, os, statistics, sys, time
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS needs it
import torch
blocks, steps, width, batch = map(int, sys.argv[1:5])
torch.manual_seed(0)
torch.use_deterministic_algorithms(True)
torch.backends.cuda.matmul.allow_tf32 = False
layers = [torch.nn.Linear(width, width, device="cuda") for _ in range(blocks)]
# One update per tensor: a fused update launches over every tensor at once, which cannot be
# resident within a budget smaller than the working set.
optimizer = torch.optim.Adam(
    [p for layer in layers for p in layer.parameters()], lr=1e-4, foreach=False
)
x = torch.randn(batch, width, device="cuda")
y = torch.randn(batch, width, device="cuda")
times = []
for _ in range(steps):
    torch.cuda.synchronize()
    start = time.perf_counter()
    h = x
    for layer in layers:
        h = h + torch.tanh(layer(h))  # residual, so that every block shapes the loss
    loss = torch.nn.functional.mse_loss(h, y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    torch.cuda.synchronize()
    times.append(time.perf_counter() - start)
print(json.dumps({"loss": loss.item(), "step_s": statistics.median(times[2:]),
                  "working_set": torch.cuda.max_memory_reserved()}))
"""

PAGE_IN = """
import json, statistics, sys, time, torch
mode, size, cycles = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

def timed(step):
    torch.cuda.synchronize()
    start = time.perf_counter()
    step()
    torch.cuda.synchronize()
    return time.perf_counter() - start

def pinned():
    host = torch.empty(size, dtype=torch.uint8, pin_memory=True)
    copy = lambda: host.to("cuda", non_blocking=True)
    copy()
    return {"bytes_per_s": size / statistics.median(timed(copy) for _ in range(cycles))}

def paged():
    n = size // 8
    # Distinct values, so that a chunk paged back to the wrong place changes the sum.
    a = torch.arange(n, dtype=torch.int64, device="cuda")
    b = torch.zeros(n, dtype=torch.int64, device="cuda")
    a.add_(1)
    paged_s, resident_s = [], []
    for _ in range(cycles):
        b.add_(1)  # evicts a
        paged_s.append(timed(lambda: a.add_(1)))  # pages a in (evicting b)
        resident_s.append(timed(lambda: a.add_(1)))
    expected = n * (n - 1) // 2 + n * (1 + 2 * cycles)
    return {"bytes": n * 8, "paged_s": statistics.median(paged_s),
            "resident_s": statistics.median(resident_s), "bytes_right": int(a.sum()) == expected}

print(json.dumps(pinned() if mode == "pinned" else paged()))
"""


class Sizes(NamedTuple):
    blocks: int  # of the training MLP
    page_budget: int  # bytes of VRAM the page-in rows may keep resident

    @property
    def train_args(self) -> list[str]:
        return [str(v) for v in (self.blocks, STEPS, WIDTH, BATCH)]

    def page_args(self, mode: str) -> list[str]:
        return [mode, str(int(self.page_budget * PAGE_SHARE)), str(PAGE_CYCLES)]


def sizes(gpu_bytes: int) -> Sizes:
    """Workloads of at most an eighth of the GPU, so that whatever else runs on it has room."""
    share = gpu_bytes // 8
    return Sizes(
        blocks=max(1, round(min(TRAINING_MAX, share) / BLOCK_BYTES)),
        page_budget=min(PAGE_BUDGET_MAX, share),
    )


def tier_env(resident: int, host: int = 0, disk: int = 0, spill_dir: str = "") -> dict[str, str]:
    """The shim's limits for `resident` bytes in VRAM plus `host` bytes in pinned host memory and
    `disk` bytes in files under `spill_dir`."""
    env = {
        "TF_VRAM_LIMIT": str(resident + host + disk),
        "TF_VRAM_HOST_LIMIT": str(host),
        "TF_VRAM_DISK_LIMIT": str(disk),
    }
    if spill_dir:
        env["TF_VRAM_SPILL_DIR"] = spill_dir
    return env


def training_env(working_set: int) -> dict[str, str]:
    """Limits under which the training's measured working set is OVERSUBSCRIPTION times VRAM."""
    resident = int(working_set / OVERSUBSCRIPTION)
    # Headroom on the host tier: under a limit the caching allocator's segments need not add up
    # to the unlimited run's peak byte for byte.
    host = working_set - resident + max(working_set // 4, 512 * MIB)
    return tier_env(resident, host=host)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def training_text(plain: dict[str, Any], paged: dict[str, Any]) -> str:
    """Both runs' final loss (equal within LOSS_RTOL) and median step time."""
    a, b = plain["loss"], paged["loss"]
    rel = abs(b - a) / max(abs(a), abs(b), sys.float_info.min)
    return (
        f"loss {a:.7g} / {b:.7g} (rel {rel:.1e}) {verdict(rel <= LOSS_RTOL)}; "
        f"median step {plain['step_s'] * 1e3:.0f} -> {paged['step_s'] * 1e3:.0f} ms "
        f"(x{paged['step_s'] / plain['step_s']:.2f}); "
        f"working set {plain['working_set'] / GIB:.2f} GiB"
    )


def page_in_bandwidth(result: dict[str, Any]) -> float:
    extra = result["paged_s"] - result["resident_s"]
    if extra <= 0:
        raise ValueError(
            f"a paged touch took {result['paged_s'] * 1e3:.2f} ms, no longer than a resident one "
            f"({result['resident_s'] * 1e3:.2f} ms): nothing was paged"
        )
    return float(result["bytes"] / extra)


def host_text(paged: dict[str, Any], pinned_bytes_per_s: float) -> str:
    """Page-in bandwidth against a pinned copy's (at least PAGE_IN_TARGET of it), bytes right."""
    bandwidth = page_in_bandwidth(paged)
    ratio = bandwidth / pinned_bytes_per_s
    return (
        f"{bandwidth / 1e9:.1f} GB/s vs pinned copy {pinned_bytes_per_s / 1e9:.1f} GB/s "
        f"(x{ratio:.2f}); {_bytes_text(paged)} "
        f"{verdict(ratio >= PAGE_IN_TARGET and paged['bytes_right'])}"
    )


def disk_text(paged: dict[str, Any]) -> str:
    """Page-in bandwidth from disk, bytes right."""
    return (
        f"{page_in_bandwidth(paged) / 1e9:.1f} GB/s; {_bytes_text(paged)} "
        f"{verdict(paged['bytes_right'])}"
    )


def _bytes_text(paged: dict[str, Any]) -> str:
    right = "right" if paged["bytes_right"] else "WRONG"
    return f"a.sum() {right} ({paged['bytes'] / GIB:.2f} GiB)"


def row(name: str, measure: Callable[[], str], target: str) -> Row:
    """One table row; a failing measurement becomes a FAIL line with its error's last line, so
    one row cannot hide the others."""
    try:
        return (name, measure(), target)
    except Exception as exc:
        return (name, f"FAIL: {last_line(exc)}", target)


def last_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1][:200] if lines else type(exc).__name__
