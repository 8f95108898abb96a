"""Alert evaluation cost: 30 rules (the built-ins, then renamed copies of them) over 10M rows
in the embedded sink, spread over one day. Run with
`python -m pytest bench/test_bench_alerts.py --benchmark-only`; the figure is seconds per
evaluation cycle (every rule due at once, the worst case)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from itertools import cycle, islice
from pathlib import Path
from typing import Any

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from tensorfusion.alert.builtin_rules import builtin_rules
from tensorfusion.alert.evaluator import Evaluator
from tensorfusion.api.dynamic_config import AlertRule
from tensorfusion.metrics.embedded_sink import EmbeddedSink
from tensorfusion.metrics.point import Point

RULES = 30
NOW_MS = time.time_ns() // 1_000_000
DAY_MS = 86_400_000
# table -> (rows, tags as SQL over the row number i, fields as SQL)
TABLES: dict[str, tuple[int, dict[str, str], dict[str, str]]] = {
    "tf_gpu_usage": (
        4_000_000,
        {"node": "'n' || (i % 1000) / 8", "pool": "'p' || (i % 4)", "uuid": "'GPU-' || (i % 1000)"},
        {
            "memory_percentage": "(i * 7) % 100 * 1.0",
            "compute_percentage": "(i * 13) % 100 * 1.0",
            "temperature": "40.0 + (i % 55)",
        },
    ),
    "tf_worker_usage": (
        4_000_000,
        {
            "workload": "'wl' || (i % 500)",
            "worker": "'w' || (i % 2000)",
            "namespace": "'ns' || (i % 10)",
            "pool": "'p' || (i % 4)",
            "node": "'n' || (i % 125)",
            "uuid": "'GPU-' || (i % 1000)",
        },
        {"compute_throttled_cnt": "i / 2000 / 50", "vram_resumed_cnt": "i / 2000 / 200"},
    ),
    "tf_node_metrics": (
        1_500_000,
        {"node": "'n' || (i % 125)", "pool": "'p' || (i % 4)", "phase": "'Running'"},
        {
            "allocated_tflops": "(i % 125) * 10.0",
            "allocated_tflops_percent": "(i * 3) % 100 * 1.0",
            "allocated_vram_bytes": "(i % 125) * 1000000",
            "allocated_vram_percent": "(i * 11) % 100 * 1.0",
            "gpu_count": "8",
        },
    ),
    "tf_system_metrics": (500_000, {}, {"total_allocation_fail_cnt": "i / 10000"}),
}


def _fill(path: Path) -> None:
    sink = EmbeddedSink(path, ttl="0")  # creates the tables, columns and ts indexes
    sink.write(
        [
            Point(table, dict.fromkeys(tags, "x"), dict.fromkeys(fields, 1.0), NOW_MS * 1_000_000)
            for table, (_, tags, fields) in TABLES.items()
        ]
    )
    sink.close()
    db = sqlite3.connect(path)
    for table, (rows, tags, fields) in TABLES.items():
        columns = {"ts": f"{NOW_MS} - i * {DAY_MS} / {rows}", **tags, **fields}
        numbers = f"SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i < {rows - 1}"
        db.execute(
            f"WITH RECURSIVE c(i) AS ({numbers}) INSERT INTO {table} ({', '.join(columns)}) "
            f"SELECT {', '.join(columns.values())} FROM c"
        )
    db.commit()
    db.close()


@pytest.fixture(scope="module")
def sink(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedSink]:
    path = tmp_path_factory.mktemp("alerts") / "metrics.db"
    _fill(path)
    embedded = EmbeddedSink(path, ttl="0")
    yield embedded
    embedded.close()


def _rules() -> list[AlertRule]:
    base = builtin_rules()
    return [
        rule if index < len(base) else rule.model_copy(update={"name": f"{rule.name}-{index}"})
        for index, rule in enumerate(islice(cycle(base), RULES))
    ]


def test_evaluation_cycle_30_rules_10m_rows(
    sink: EmbeddedSink, benchmark: BenchmarkFixture, record_figure: Callable[[str], None]
) -> None:
    rules = _rules()
    rows = sum(
        row["n"] for table in TABLES for row in sink.query(f"SELECT COUNT(*) AS n FROM {table}")
    )
    assert rows > 10_000_000

    def fresh() -> tuple[tuple[Any, ...], dict[str, Any]]:
        evaluator = Evaluator(sink)
        evaluator.set_rules(rules)  # a new evaluator: every rule is due
        return (evaluator,), {}

    def cycle_once(evaluator: Evaluator) -> None:
        evaluator.tick(NOW_MS * 1_000_000)
        assert all(health.healthy for health in evaluator.health().values())

    benchmark.pedantic(cycle_once, setup=fresh, rounds=5)
    if benchmark.stats is not None:
        record_figure(
            f"alerts: {benchmark.stats.stats.median:.3f} s per evaluation cycle "
            f"({RULES} rules, {rows / 1e6:.1f}M rows, embedded sink)"
        )
