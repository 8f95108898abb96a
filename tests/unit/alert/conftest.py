"""A metrics sink for alert tests: SQLite with `ts` in epoch milliseconds, the embedded
sink's layout, holding exactly the rows a test writes."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from tensorfusion.errors import QueryError

SECOND_NS = 1_000_000_000


class TableSink:
    def __init__(self) -> None:
        self.db = sqlite3.connect(":memory:")
        self.db.row_factory = sqlite3.Row
        self.queries: list[str] = []

    def add(self, table: str, rows: Sequence[dict[str, Any]]) -> None:
        """Rows carry `ts_s` (seconds) plus tag and field columns."""
        columns = sorted({key for row in rows for key in row if key != "ts_s"})
        self.db.execute(f"CREATE TABLE IF NOT EXISTS {table} (ts INTEGER, {', '.join(columns)})")
        for row in rows:
            values = {key: row.get(key) for key in columns}
            names = ", ".join(["ts", *columns])
            marks = ", ".join("?" * (len(columns) + 1))
            self.db.execute(
                f"INSERT INTO {table} ({names}) VALUES ({marks})",
                [int(row["ts_s"] * 1000), *values.values()],
            )

    def query(self, sql: str) -> list[dict[str, Any]]:
        self.queries.append(sql)
        try:
            return [dict(row) for row in self.db.execute(sql)]
        except sqlite3.Error as exc:
            raise QueryError(str(exc)) from None

    def time_window(self, start_ns: int, end_ns: int) -> str:
        return f"ts >= {start_ns // 1_000_000} AND ts < {end_ns // 1_000_000}"


@pytest.fixture
def sink() -> Iterator[TableSink]:
    table_sink = TableSink()
    yield table_sink
    table_sink.db.close()
