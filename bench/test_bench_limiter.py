"""The TFLOPS limiter: accuracy on the simulated GPU timeline (achieved busy share against the
target, printed as a table at the end of the run) and the cost of one admit call, through the
binding next to a no-op native call, and in a tight C++ loop. Run with
`python -m pytest bench/test_bench_limiter.py --benchmark-only`."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from tensorfusion import _native
from tensorfusion.limiter_sim import WorkerResult, WorkerSpec, simulate

S = 1_000_000_000
MS = 1_000_000
RUN_NS = 20 * S
WARMUP_NS = 2 * S
MIXED = (20_000, 2 * MS)
Figure = Callable[[str], None]  # the record_figure fixture

# name -> (workers, tolerance in share points)
SCENARIOS: dict[str, tuple[list[WorkerSpec], float]] = {
    **{f"one worker at {s:.1f}": ([WorkerSpec(s)], 0.02) for s in (0.1, 0.3, 0.5, 0.7, 0.9)},
    "two workers 0.3/0.7": ([WorkerSpec(0.3), WorkerSpec(0.7)], 0.03),
    "one worker at 0.5, kernels 20 us + 2 ms": ([WorkerSpec(0.5, kernels_ns=MIXED)], 0.02),
    "two workers 0.3/0.7, kernels 20 us + 2 ms": (
        [WorkerSpec(0.3, kernels_ns=MIXED), WorkerSpec(0.7, kernels_ns=MIXED)],
        0.03,
    ),
    "one worker at 0.5, busy 2x the estimate": ([WorkerSpec(0.5, estimate_ratio=0.5)], 0.02),
    "two workers 0.3/0.7, busy 2x the estimate": (
        [WorkerSpec(0.3, estimate_ratio=0.5), WorkerSpec(0.7, estimate_ratio=0.5)],
        0.03,
    ),
}


@pytest.mark.benchmark(group="limiter accuracy (simulated 20 s)")
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_accuracy(benchmark: BenchmarkFixture, record_figure: Figure, scenario: str) -> None:
    workers, tolerance = SCENARIOS[scenario]

    def run() -> list[WorkerResult]:
        return simulate(workers, RUN_NS, WARMUP_NS)

    results = benchmark.pedantic(run, rounds=1, iterations=1)
    cells = [
        f"target {spec.share:.2f} got {got.share:.4f} ({(got.share - spec.share) * 100:+.2f} pt)"
        for spec, got in zip(workers, results, strict=True)
    ]
    record_figure(
        f"limiter accuracy, {scenario}: {'; '.join(cells)} [limit +-{tolerance * 100:.0f} pt]"
    )
    for spec, result in zip(workers, results, strict=True):
        assert result.share == pytest.approx(spec.share, abs=tolerance)


CALLS = 1_000
STEP_NS = 1_000  # a launch per us: about half are admitted at share 0.5
COST_NS = 1_000


def fresh_limiter() -> _native.Limiter:
    # Each round starts its clock at 0 again, so each needs a limiter of its own.
    return _native.Limiter(0.5, max_in_flight_ns=S)


def call_loop(method: str) -> _native.Limiter:
    limiter = fresh_limiter()
    call: Callable[[int, int], int] = getattr(limiter, method)
    for now in range(0, CALLS * STEP_NS, STEP_NS):
        call(now, COST_NS)
    return limiter


def per_call_ns(benchmark: BenchmarkFixture, calls: int) -> float:
    assert benchmark.stats is not None
    return float(benchmark.stats.stats.median) / calls * 1e9


@pytest.mark.benchmark(group="limiter admit, per call")
@pytest.mark.parametrize("method", ["admit", "noop"])
def test_binding_call(benchmark: BenchmarkFixture, record_figure: Figure, method: str) -> None:
    limiter = benchmark(call_loop, method)
    label = "Limiter.admit" if method == "admit" else "Limiter.noop (no-op baseline)"
    record_figure(
        f"{label} through the binding, in a Python loop: "
        f"{per_call_ns(benchmark, CALLS):.1f} ns per call"
    )
    # Only admit touches the limiter.
    assert (limiter.counters()["launches"] > 0) == (method == "admit")


@pytest.mark.benchmark(group="limiter admit, per call")
def test_native_loop(benchmark: BenchmarkFixture, record_figure: Figure) -> None:
    calls = 1_000_000

    def run() -> int:
        return _native.limiter_admit_loop(fresh_limiter(), calls, 0, STEP_NS, COST_NS)

    admitted = benchmark(run)
    record_figure(
        f"Limiter::admit in a C++ loop of {calls:,} calls (+ complete when admitted): "
        f"{per_call_ns(benchmark, calls):.2f} ns per call"
    )
    assert 0 < admitted < calls
