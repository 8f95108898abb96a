"""Metrics ingest into the embedded SQLite sink (target: at least 300,000 points/s, quiet and
beside one busy process), in batches of 10,000 `tf_worker_usage` points shaped like the
recorder's, into a fresh file each round; and the same through the buffered writer.

Each case runs twice: on a quiet machine, and beside a process that spins one core for the
whole measurement (started and stopped here). The same-run baseline is the single-row
executemany reference: the same rows, already built, inserted by SQLite one statement run per
row into a file the sink laid out, on a connection with the sink's per-connection settings.
Every timed round includes opening and closing its connections, and so the checkpoint a close
runs. Figures are printed at the end of the run (a run that selects no baseline case says so
instead of giving ratios)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager, nullcontext
from itertools import count
from pathlib import Path
from typing import Any

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from tensorfusion.metrics.buffered_writer import BufferedWriter
from tensorfusion.metrics.embedded_sink import EmbeddedSink, set_connection_pragmas
from tensorfusion.metrics.point import Point, Unsigned

POINTS = 200_000
BATCH = 10_000
NOW_NS = 1_700_000_000_000_000_000
TABLE = "tf_worker_usage"

Ingest = Callable[[Path, list[Point], Path], None]
RATES: dict[tuple[str, str], float] = {}  # (ingest, condition) -> points/s, this run


@pytest.fixture(scope="module")
def points() -> list[Point]:
    return [
        Point(
            TABLE,
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


def _sink(path: Path) -> EmbeddedSink:
    return EmbeddedSink(path, "0", clock_ns=lambda: NOW_NS)


def _direct(path: Path, points: list[Point], buffer_dir: Path) -> None:
    with closing(_sink(path)) as sink:
        for start in range(0, POINTS, BATCH):
            sink.write(points[start : start + BATCH])


def _buffered(path: Path, points: list[Point], buffer_dir: Path) -> None:
    with closing(_sink(path)) as sink:
        writer = BufferedWriter(sink, buffer_dir, batch_size=BATCH)
        for start in range(0, POINTS, 1000):  # recorders hand over small slices
            writer.write(points[start : start + 1000])
        writer.flush()
        assert writer.backlog_points == 0


def _stored_row(point: Point) -> tuple[Any, ...]:
    """The row the sink stores for a point, restated here independently of the sink on
    purpose: the reference must not share the code it is measured against."""
    fields = (v.value if isinstance(v, Unsigned) else v for v in point.fields.values())
    return (*point.tags.values(), *fields, point.time_ns // 1_000_000)


def _baseline(points: list[Point]) -> Ingest:
    """The single-row executemany reference: the rows built beforehand, inserted by SQLite
    alone in the same batches and transactions, into a table the sink laid out with the first
    point (so the same columns, index and page size), on a connection with the sink's
    per-connection settings."""
    rows = [_stored_row(point) for point in points]
    first = points[0]
    names = ", ".join([*first.tags, *first.fields, "ts"])
    sql = f"INSERT INTO {TABLE} ({names}) VALUES ({', '.join('?' * len(rows[0]))})"

    def insert(path: Path, points: list[Point], buffer_dir: Path) -> None:
        with closing(_sink(path)) as sink:
            sink.write(points[:1])
        with closing(sqlite3.connect(path, isolation_level=None)) as db:
            set_connection_pragmas(db)
            for start in range(1, POINTS, BATCH):
                db.execute("BEGIN IMMEDIATE")
                db.executemany(sql, rows[start : start + BATCH])
                db.execute("COMMIT")

    return insert


@contextmanager
def _busy_neighbour() -> Iterator[None]:
    """A process spinning one core until the measurement ends."""
    spinner = subprocess.Popen(
        [sys.executable, "-c", "print(flush=True)\nwhile True: pass"],
        stdout=subprocess.PIPE,
    )
    try:
        assert spinner.stdout is not None
        spinner.stdout.readline()  # it is up and about to spin
        yield
    finally:
        spinner.kill()
        spinner.wait()


NAMES = {
    "baseline": "single-row executemany reference (baseline)",
    "direct": "embedded sink ingest (target >= 300,000)",
    "buffered": "buffered writer into the embedded sink",
}
CONDITIONS = {"quiet": "quiet", "busy": "beside one busy process"}


def _figure(kind: str, condition: str, rate: float) -> str:
    line = f"{NAMES[kind]}, {CONDITIONS[condition]}: {rate:,.0f} points/s"
    base = RATES.get(("baseline", condition))
    if kind != "baseline":
        line += (
            f" = {rate / base:.0%} of the baseline's rate" if base else "; no baseline in this run"
        )
    quiet = RATES.get((kind, "quiet"))
    if condition == "busy" and quiet:
        line += f"; {rate / quiet:.0%} of its quiet rate"
    return line


@pytest.mark.benchmark(group="metrics-ingest")
@pytest.mark.parametrize("condition", ["quiet", "busy"])
@pytest.mark.parametrize("kind", ["baseline", "direct", "buffered"])
def test_ingest(
    benchmark: BenchmarkFixture,
    points: list[Point],
    tmp_path: Path,
    record_figure: Callable[[str], None],
    *,
    kind: str,
    condition: str,
) -> None:
    ingest = {"baseline": _baseline(points), "direct": _direct, "buffered": _buffered}[kind]
    files = count()

    def setup() -> tuple[tuple[Path, list[Point], Path], dict[str, object]]:
        return (tmp_path / f"{next(files)}.db", points, tmp_path / "buffer"), {}

    with _busy_neighbour() if condition == "busy" else nullcontext():
        benchmark.pedantic(ingest, setup=setup, rounds=5, iterations=1)
    with closing(sqlite3.connect(tmp_path / "0.db")) as db:
        assert db.execute(f"SELECT count(*) FROM {TABLE}").fetchone() == (POINTS,)
    if benchmark.stats is None:  # benchmarks disabled
        return
    rate = POINTS / benchmark.stats.stats.median
    RATES[kind, condition] = rate
    record_figure(_figure(kind, condition, rate))
