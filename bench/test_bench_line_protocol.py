"""Line-protocol throughput on a recorder-shaped batch (tf_worker_usage: six tags, seven
fields): the Python encoder, the native columnar encoder (target: 1M points/s on one core) and
the parser. Run with `python -m pytest bench/test_bench_line_protocol.py --benchmark-only`;
points/s are printed at the end (see conftest.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from pytest_benchmark.fixture import BenchmarkFixture

from tensorfusion.metrics.line_protocol import encode, encode_columns, parse
from tensorfusion.metrics.point import Point

ROWS = 100_000
TAGS = ("workload", "worker", "namespace", "pool", "node", "uuid")


def _columns() -> tuple[dict[str, list[str]], dict[str, Any], Any]:
    rng = np.random.default_rng(7)
    workers = [f"worker-{i % 500}" for i in range(ROWS)]
    tags = {
        "workload": [f"wl-{i % 100}" for i in range(ROWS)],
        "worker": workers,
        "namespace": ["default"] * ROWS,
        "pool": ["shared"] * ROWS,
        "node": [f"node-{i % 50}" for i in range(ROWS)],
        "uuid": [f"GPU-{i % 400:08x}" for i in range(ROWS)],
    }
    fields = {
        "compute_tflops": rng.uniform(0, 312, ROWS),
        "compute_percentage": rng.uniform(0, 100, ROWS),
        "memory_bytes": rng.integers(0, 80 * 2**30, ROWS),
        "memory_percentage": rng.uniform(0, 100, ROWS),
        "compute_throttled_cnt": rng.integers(0, 1000, ROWS),
        "vram_freezed_cnt": rng.integers(0, 10, ROWS),
        "vram_resumed_cnt": rng.integers(0, 10, ROWS),
    }
    times = 1_700_000_000_000_000_000 + np.arange(ROWS, dtype=np.int64) * 1_000_000
    return tags, fields, times


def _points() -> list[Point]:
    tags, fields, times = _columns()
    plain = {key: values.tolist() for key, values in fields.items()}
    return [
        Point(
            "tf_worker_usage",
            {key: tags[key][row] for key in TAGS},
            {key: plain[key][row] for key in plain},
            int(times[row]),
        )
        for row in range(ROWS)
    ]


def _rate(benchmark: BenchmarkFixture) -> str:
    if benchmark.stats is None:
        return "n/a (benchmarks disabled)"
    return f"{ROWS / benchmark.stats.stats.median:,.0f} points/s"


def test_encode_python(
    benchmark: BenchmarkFixture,
    record_median: Callable[[str, str, BenchmarkFixture], None],
    record_figure: Callable[[str], None],
) -> None:
    points = _points()
    text = benchmark.pedantic(encode, args=(points,), rounds=3, iterations=1)
    assert text.count("\n") == ROWS
    record_median("line protocol encode 100k points", "reference", benchmark)
    record_figure(f"line protocol encode, Python: {_rate(benchmark)}")


def test_encode_columns_native(
    benchmark: BenchmarkFixture,
    record_median: Callable[[str, str, BenchmarkFixture], None],
    record_figure: Callable[[str], None],
) -> None:
    tags, fields, times = _columns()
    text = benchmark.pedantic(
        encode_columns, args=("tf_worker_usage", tags, fields, times), rounds=10, iterations=1
    )
    assert text == encode(_points())
    record_median("line protocol encode 100k points", "native", benchmark)
    record_figure(f"line protocol encode_columns, native (target 1,000,000): {_rate(benchmark)}")


def test_parse_python(benchmark: BenchmarkFixture, record_figure: Callable[[str], None]) -> None:
    text = encode(_points())
    result = benchmark.pedantic(parse, args=(text,), rounds=3, iterations=1)
    assert result.problems == []
    assert len(result.points) == ROWS
    record_figure(f"line protocol parse, Python: {_rate(benchmark)}")
