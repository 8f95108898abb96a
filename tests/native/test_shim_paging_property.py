"""Random workloads three times the VRAM budget, through the shim on the mock driver: random
allocations filled with patterns, random kernels, copies and frees, every checksum checked
against a model of the bytes, the driver's mapped device memory never above the budget, and
nothing left on the disk at exit."""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tensorfusion._native import ShmRegion
from tests.native.paging_workload import (
    MiB,
    Tiers,
    Workload,
    make_tiered_region,
    mapped_device_bytes,
)

TIERS = Tiers(device=8 * MiB, host=8 * MiB, disk=16 * MiB)
# Sizes in the slab range and past it; allocations go on while the worker's charged total stays
# within three VRAM budgets.
# At most two chunks each: a kernel touching two of them, or one and the checksum's output, fits
# the VRAM budget.
SIZES = st.one_of(st.integers(256, 400 * 1024), st.integers(MiB, 4 * MiB))
BUDGET = 3 * TIERS.device

Op = tuple[str, int, int, int]
OPS = st.lists(
    st.tuples(
        st.sampled_from(["alloc", "free", "fill", "set", "upload", "add", "xor", "copy", "sum"]),
        st.integers(0, 11),
        st.integers(0, 11),
        st.integers(0, 255),
    ),
    min_size=10,
    max_size=40,
)


def charged(size: int) -> int:
    """What an allocation can cost at most: whole chunks, or a new slab chunk."""
    return -(-size // (2 * MiB)) * 2 * MiB


def run(mockcuda: Any, tmp: Path, ops: list[Op], sizes: list[int]) -> None:
    path = make_tiered_region(tmp / "region", TIERS)
    region = ShmRegion.open(path)
    work = Workload(mockcuda, tmp, path, tmp / "spill")
    model: dict[int, bytearray] = {}
    size_at = iter(sizes)
    ops = [("alloc", i, 0, 0) for i in range(len(sizes))] + ops  # start past the VRAM budget
    peak = 0

    def sized(*ids: int) -> bool:
        return all(i in model for i in ids) and all(
            len(model[i]) <= len(model[other]) for i in ids[:1] for other in ids[1:]
        )

    try:
        for op, a, b, value in ops:
            if op == "alloc" and a not in model:
                size = next(size_at, 4096)
                if region.snapshot()["total_bytes"] + charged(size) > BUDGET:
                    continue
                work.ok(f"alloc {a} {size}")
                work.ok(f"fill {a} 0")  # the model starts from known bytes
                model[a] = bytearray(size)
            elif op == "free" and a in model:
                work.ok(f"free {a}")
                del model[a]
            elif op in ("fill", "set", "upload") and a in model:
                work.ok(f"{op} {a} {value}")
                model[a][:] = bytes([value]) * len(model[a])
            elif op == "add" and sized(a, b):
                work.ok(f"add {a} {a} {b}")
                model[a][:] = bytes(
                    (x + y) & 0xFF for x, y in zip(model[a], model[b], strict=False)
                )
            elif op == "xor" and sized(a, b):
                work.ok(f"xor {a} {a} {b}")
                model[a][:] = bytes(x ^ y for x, y in zip(model[a], model[b], strict=False))
            elif op == "copy" and sized(a, b):
                work.ok(f"copy {a} {b}")
                model[a][:] = model[b][: len(model[a])]
            elif op == "sum" and a in model:
                assert work.ok(f"sum {a}") == str(zlib.crc32(model[a]))
            else:
                continue
            assert mapped_device_bytes(mockcuda, tmp) <= TIERS.device
            peak = max(peak, region.snapshot()["total_bytes"])
        if peak > TIERS.device:  # the VRAM budget was passed: something went out and came back
            [held] = region.snapshot()["slots"]
            assert held["pages_evicted"] > 0
        for i, data in model.items():  # every one of them, wherever it is now
            assert work.ok(f"download {i}") == str(zlib.crc32(data))
        err = work.finish()
    finally:
        if work.process.poll() is None:
            work.process.kill()  # a failed example leaves no process behind
    assert err == ""
    assert list((tmp / "spill").iterdir()) == []


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=OPS, sizes=st.lists(SIZES, min_size=16, max_size=16))
def test_random_workloads_three_times_the_budget_stay_correct(
    mockcuda: Any, tmp_path_factory: Any, ops: list[Op], sizes: list[int]
) -> None:
    run(mockcuda, tmp_path_factory.mktemp("paging"), ops, sizes)
