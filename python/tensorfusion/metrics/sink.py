"""The one interface every metrics backend offers: write points (or batches of rows in
columns, `Lines`), run SQL, keep a retention.

Writers (recorders, the buffered writer) and readers (the alert evaluator) depend on this
Protocol only, so the embedded SQLite store and GreptimeDB are interchangeable.

Errors a sink raises:
- `SinkUnavailable` when the backend cannot take the batch now (unreachable, busy, disk
  error); nothing of the batch was stored, so the caller keeps it and retries later.
- `ConfigError` when the backend refuses some points for good (a field whose type conflicts
  with its column); the field is named `<measurement>.fields['<name>']`. The embedded sink has
  stored the rest of the batch by then, so retrying it would only repeat the refusal.
- `QueryError` from `query` with the backend's own message.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property
from typing import Any, Protocol

from tensorfusion.api.duration import parse_duration
from tensorfusion.errors import ConfigError
from tensorfusion.metrics.line_protocol import encode_rows
from tensorfusion.metrics.point import Point
from tensorfusion.metrics.rows import Rows

TTL_FIELD = "metricsTTL"
TIME_COLUMN = "ts"
"""Every metrics table's time column (upstream's tables and rules use this name)."""
NS_PER_MS = 1_000_000
"""Nanoseconds per millisecond: points carry nanoseconds, tables keep milliseconds."""


@dataclass(frozen=True)
class TableSchema:
    """Every tag and field (with its value's Python type) one table's rows may carry."""

    measurement: str
    tags: tuple[str, ...]
    fields: Mapping[str, type]


@dataclass(frozen=True)
class Lines:
    """A batch of rows in columns (runs of one table and one set of names each), from a
    producer that computes its rows natively: a remote sink sends it as line protocol, formatted
    natively on first use (`body`, timestamps in nanoseconds), and the embedded sink stores
    the columns as they are."""

    runs: tuple[Rows, ...]
    tables: Sequence[TableSchema]
    """Every table the rows may write to: a sink that must create a table before writing to
    it creates it from these."""

    @property
    def points(self) -> int:
        """How many rows (points, lines) the batch holds."""
        return sum(map(len, self.runs))

    @cached_property
    def body(self) -> bytes:
        """The rows as line protocol, every line ending in a newline."""
        return "".join(map(encode_rows, self.runs)).encode()


def joined(batches: Iterable[Lines]) -> Lines:
    """One batch of all of `batches`' rows, in order."""
    parts = list(batches)
    tables = {table.measurement: table for lines in parts for table in lines.tables}
    return Lines(tuple(run for lines in parts for run in lines.runs), tuple(tables.values()))


class MetricsSink(Protocol):
    def write(self, points: Sequence[Point]) -> None:
        """Store the points; tables and columns are created on first sight."""

    def write_lines(self, lines: Lines) -> None:
        """Store a batch of rows in columns; the same errors as `write`."""

    def query(self, sql: str) -> list[dict[str, Any]]:
        """Run one SQL statement; rows as dicts keyed by column name."""

    def time_window(self, start_ns: int, end_ns: int) -> str:
        """This dialect's SQL predicate for `start_ns <= ts < end_ns` (a rule's Conditions)."""

    def set_ttl(self, ttl: str) -> None:
        """Keep rows of every table for `ttl` (a metricsTTL duration, "0" keeps forever)."""

    def tables(self) -> list[str]:
        """The metrics tables, sorted by name."""

    def close(self) -> None:
        """Release the connection; later calls raise `SinkUnavailable`."""


def parse_ttl(ttl: str) -> timedelta:
    """A metricsTTL value as a duration; zero means no retention limit."""
    try:
        return parse_duration(ttl)
    except (ValueError, TypeError) as error:
        raise ConfigError(TTL_FIELD, str(error)) from None


def window_millis(start_ns: int, end_ns: int) -> tuple[int, int]:
    """Window bounds floored to milliseconds, the precision metrics are stored at.

    Both bounds are floored the same way, so back-to-back windows stay back to back: no
    millisecond is counted twice or skipped.
    """
    for name, value in (("start_ns", start_ns), ("end_ns", end_ns)):
        if type(value) is not int:
            raise ConfigError(name, f"must be an int (nanoseconds), got {type(value).__name__}")
    if start_ns > end_ns:
        raise ConfigError("end_ns", f"window ends ({end_ns}) before it starts ({start_ns})")
    return start_ns // NS_PER_MS, end_ns // NS_PER_MS


def refused_field(measurement: str, name: str, problem: str, part: str = "fields") -> ConfigError:
    """The error for a point whose field (or tag) the backend's schema cannot hold."""
    return ConfigError(f"{measurement}.{part}[{name!r}]", f"{problem}; point refused")
