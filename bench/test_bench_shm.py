"""The shared region's costs: how much slower a join gets when 200 processes join at once than
when one joins alone, and try_charge + credit per call against an opaque no-op call, both in
C++ loops. Run with `python -m pytest bench/test_bench_shm.py --benchmark-only`; figures are
printed at the end (see conftest.py)."""

from __future__ import annotations

import multiprocessing
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pytest_benchmark.fixture import BenchmarkFixture

from tensorfusion import _native
from tensorfusion._native import ShmRegion

CTX = multiprocessing.get_context("fork")
LOOP = 100_000


def _region(path: Path, slots: int) -> ShmRegion:
    return ShmRegion.create(
        path,
        slots=slots,
        worker="bench",
        vram_limit=2**40,
        tflops_limit=10.0,
        tflops_request=10.0,
        gpu_peak_tflops=312.0,
    )


def _timed_join(region: ShmRegion, start: Any, results: Any) -> None:
    start.wait()
    began = time.perf_counter_ns()
    member = region.join()
    results.put(time.perf_counter_ns() - began)
    region.leave(member)


def _median_join_ns(path: Path, processes: int) -> float:
    region = _region(path, 256)
    start, results = CTX.Barrier(processes), CTX.Queue()
    children = [
        CTX.Process(target=_timed_join, args=(region, start, results)) for _ in range(processes)
    ]
    for child in children:
        child.start()
    durations = [results.get(timeout=120) for _ in children]
    for child in children:
        child.join()
    return statistics.median(durations)


def test_join_200_at_once_vs_alone(
    tmp_path: Path, benchmark: BenchmarkFixture, record_figure: Callable[[str], None]
) -> None:
    alone = statistics.median(_median_join_ns(tmp_path / f"one-{i}", 1) for i in range(20))
    # One round: the figure is the children's own join times, not the fork-heavy wall time.
    crowd = benchmark.pedantic(_median_join_ns, (tmp_path / "crowd", 200), rounds=1)
    record_figure(
        f"shm join: alone {alone / 1e3:.1f} us, 200 at once {crowd / 1e3:.1f} us per process "
        f"(median), ratio {crowd / alone:.1f}x"
    )


def test_charge_credit_loop(
    tmp_path: Path, benchmark: BenchmarkFixture, record_figure: Callable[[str], None]
) -> None:
    region = _region(tmp_path / "region", 8)
    member = region.join()
    benchmark(region.charge_credit_loop, member, LOOP)
    if benchmark.stats is not None:
        per_call = benchmark.stats.stats.median / LOOP
        record_figure(f"shm try_charge + credit: {per_call * 1e9:.1f} ns per pair (C++ loop)")


def test_noop_loop(benchmark: BenchmarkFixture, record_figure: Callable[[str], None]) -> None:
    benchmark(_native.shm_noop_loop, LOOP)
    if benchmark.stats is not None:
        per_call = benchmark.stats.stats.median / LOOP
        record_figure(f"shm baseline: {per_call * 1e9:.2f} ns per opaque no-op call (C++ loop)")
