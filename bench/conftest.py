"""Bench plumbing: a benchmark records its median under (comparison, implementation), and the
run ends with one line per comparison that has both a native and a reference median, so that
every speed-up is printed next to the baseline measured in the same run."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

Recorder = Callable[[str, str, BenchmarkFixture], None]

MEDIANS = pytest.StashKey[dict[tuple[str, str], float]]()
FIGURES = pytest.StashKey[list[str]]()


@pytest.fixture
def record_median(request: pytest.FixtureRequest) -> Recorder:
    medians = request.config.stash.setdefault(MEDIANS, {})

    def record(comparison: str, implementation: str, benchmark: BenchmarkFixture) -> None:
        if benchmark.stats is not None:  # None when benchmarks are disabled
            medians[comparison, implementation] = benchmark.stats.stats.median

    return record


@pytest.fixture
def record_figure(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Adds a line to the summary printed at the end of the run (a rate or a duration that
    stands against a target rather than against a baseline)."""
    figures = request.config.stash.setdefault(FIGURES, [])
    return figures.append


def _seconds(value: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value / 1e-9:.3g} ns"


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    medians = config.stash.get(MEDIANS, {})
    comparisons = sorted({comparison for comparison, _ in medians})
    lines = []
    for comparison in comparisons:
        native = medians.get((comparison, "native"))
        reference = medians.get((comparison, "reference"))
        if native and reference:
            lines.append(
                f"{comparison}: native {_seconds(native)}, reference {_seconds(reference)} "
                f"(medians): native is {reference / native:.1f}x faster"
            )
    if lines:
        terminalreporter.write_sep("=", "speed-up against the reference")
        for line in lines:
            terminalreporter.write_line(line)
    figures = config.stash.get(FIGURES, [])
    if figures:
        terminalreporter.write_sep("=", "figures against their targets")
        for line in figures:
            terminalreporter.write_line(line)
