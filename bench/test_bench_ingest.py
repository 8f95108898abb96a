"""Metrics ingest into the embedded SQLite sink (target: at least 300,000 points/s), in
batches of 10,000 `tf_worker_usage` points shaped like the recorder's, into a fresh file each
round; and the same through the buffered writer. Figures are printed at the end of the run."""

from __future__ import annotations

from collections.abc import Callable
from itertools import count
from pathlib import Path

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from tensorfusion.metrics.buffered_writer import BufferedWriter
from tensorfusion.metrics.embedded_sink import EmbeddedSink
from tensorfusion.metrics.point import Point, Unsigned

POINTS = 200_000
BATCH = 10_000
NOW_NS = 1_700_000_000_000_000_000


@pytest.fixture(scope="module")
def points() -> list[Point]:
    return [
        Point(
            "tf_worker_usage",
            {
                "workload": f"job-{i % 50}",
                "worker": f"job-{i % 50}-{i % 400}",
                "namespace": "default",
                "pool": "pool-a",
                "node": f"node-{i % 100}",
                "uuid": f"GPU-{i % 800:04d}",
            },
            {
                "compute_tflops": 12.5,
                "compute_percentage": float(i % 100),
                "memory_bytes": i * 4096,
                "memory_percentage": 31.25,
                "compute_throttled_cnt": Unsigned(i % 7),
                "vram_freezed_cnt": Unsigned(0),
                "vram_resumed_cnt": Unsigned(0),
            },
            NOW_NS + i * 1_000_000,
        )
        for i in range(POINTS)
    ]


def _rate(benchmark: BenchmarkFixture, ingest: Callable[[EmbeddedSink], None], tmp: Path) -> float:
    files = count()

    def setup() -> tuple[tuple[EmbeddedSink], dict[str, object]]:
        sink = EmbeddedSink(tmp / f"{next(files)}.db", "0", clock_ns=lambda: NOW_NS)
        return (sink,), {}

    benchmark.pedantic(ingest, setup=setup, rounds=5, iterations=1)
    median: float = benchmark.stats.stats.median
    return POINTS / median


def _direct(sink: EmbeddedSink, points: list[Point], buffer_dir: Path) -> None:
    """embedded sink ingest (target >= 300,000)"""
    for start in range(0, POINTS, BATCH):
        sink.write(points[start : start + BATCH])


def _buffered(sink: EmbeddedSink, points: list[Point], buffer_dir: Path) -> None:
    """buffered writer into the embedded sink"""
    writer = BufferedWriter(sink, buffer_dir, batch_size=BATCH)
    for start in range(0, POINTS, 1000):  # recorders hand over small slices
        writer.write(points[start : start + 1000])
    writer.flush()
    assert writer.backlog_points == 0


@pytest.mark.benchmark(group="metrics-ingest")
@pytest.mark.parametrize("ingest", [_direct, _buffered], ids=["direct", "buffered"])
def test_ingest(
    benchmark: BenchmarkFixture,
    points: list[Point],
    tmp_path: Path,
    record_figure: Callable[[str], None],
    ingest: Callable[[EmbeddedSink, list[Point], Path], None],
) -> None:
    def run(sink: EmbeddedSink) -> None:
        ingest(sink, points, tmp_path / "buffer")
        assert sink.query("SELECT count(*) AS n FROM tf_worker_usage") == [{"n": POINTS}]

    rate = _rate(benchmark, run, tmp_path)
    record_figure(f"{ingest.__doc__}: {rate:,.0f} points/s")
