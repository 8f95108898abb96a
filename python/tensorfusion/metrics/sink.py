"""The one interface every metrics backend offers: write points (or lines already encoded as
line protocol), run SQL, keep a retention.

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
from typing import Any, Protocol

from tensorfusion.api.duration import parse_duration
from tensorfusion.errors import ConfigError
from tensorfusion.metrics.point import Point

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
    """A batch already encoded as line protocol, timestamps in nanoseconds (what `encode`
    writes by default): a producer that formats its rows natively hands them on as text."""

    body: bytes
    points: int
    """How many lines (points) `body` holds."""
    tables: Sequence[TableSchema]
    """Every table the lines may write to: a sink that must create a table before writing to
    it creates it from these, since it does not read the text."""


def joined(batches: Iterable[Lines]) -> Lines:
    """One batch of all of `batches`' lines, in order."""
    parts = list(batches)
    tables = {table.measurement: table for lines in parts for table in lines.tables}
    return Lines(
        b"".join(lines.body for lines in parts),
        sum(lines.points for lines in parts),
        tuple(tables.values()),
    )


class MetricsSink(Protocol):
    def write(self, points: Sequence[Point]) -> None:
        """Store the points; tables and columns are created on first sight."""

    def write_lines(self, lines: Lines) -> None:
        """Store a batch of encoded lines; the same errors as `write`."""

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


def refused_field(point: Point, name: str, problem: str, part: str = "fields") -> ConfigError:
    """The error for a point whose field (or tag) the backend's schema cannot hold."""
    return ConfigError(f"{point.measurement}.{part}[{name!r}]", f"{problem}; point refused")
