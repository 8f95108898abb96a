"""Metrics in a local SQLite file, for embedded mode and tests: no GreptimeDB to run.

Layout: one table per measurement, created on first write. Tags are TEXT columns; fields are
typed by their first value (int INTEGER, Unsigned UNSIGNED BIGINT, float REAL, bool BOOLEAN
stored as 0/1, str TEXT); `ts` is INTEGER epoch *milliseconds* (the precision GreptimeDB keeps
too) with an index. Later points may bring new tags and fields, which become new columns; a
value whose type differs from its column's is refused. Column names are the tag and field
names as written, so a rule's SQL runs here unchanged apart from `{{ .Conditions }}`.

Retention: rows older than the TTL are deleted from every table during a write, at most once
per `retention_interval_s`.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from tensorfusion.errors import ConfigError, QueryError, SinkUnavailable
from tensorfusion.metrics.point import INT64_MAX, Point, Unsigned
from tensorfusion.metrics.sink import TIME_COLUMN, parse_ttl, refused_field, window_millis

COLUMN_TYPES: Final[Mapping[type, str]] = {
    int: "INTEGER",
    Unsigned: "UNSIGNED BIGINT",
    float: "REAL",
    bool: "BOOLEAN",
    str: "TEXT",
}
TAG_TYPE: Final = "TEXT"
# Index names share the table namespace; measurements may not start with this prefix.
_INDEX_PREFIX: Final = "ts_index:"
_RESERVED_PREFIXES: Final = ("sqlite_", _INDEX_PREFIX)
_ASCII_LOWER: Final = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")

# measurement, tag names, field names, field value types
GroupKey = tuple[str, tuple[str, ...], tuple[str, ...], tuple[type, ...]]


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _fold(name: str) -> str:
    """SQLite compares identifiers ignoring ASCII case only."""
    return name.translate(_ASCII_LOWER)


@dataclass(slots=True)
class _Batch:
    """Rows of points sharing a measurement, tag and field names and field types: one
    executemany."""

    sql: str
    unsigned: tuple[int, ...]  # positions of Unsigned fields, converted to int per row
    rows: list[tuple[Any, ...]] = field(default_factory=list)


class EmbeddedSink:
    """A `MetricsSink` on SQLite (WAL mode); safe to share between threads."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        ttl: str = "30d",
        *,
        retention_interval_s: float = 60.0,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self._ttl_ms = int(parse_ttl(ttl).total_seconds() * 1000)
        self._retention_interval_ns = int(retention_interval_s * 1e9)
        self._clock_ns = clock_ns
        self._last_expiry_ns: int | None = None
        self._lock = threading.Lock()
        try:
            self._db: sqlite3.Connection | None = sqlite3.connect(
                path, isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            # Checkpointing every 1,000 pages (the default) costs ingest a third of its rate;
            # 10,000 pages bounds the WAL at about 40 MB.
            self._db.execute("PRAGMA wal_autocheckpoint=10000")
            self._columns = self._read_schema(self._db)
        except sqlite3.Error as error:
            raise SinkUnavailable(f"metrics database {os.fspath(path)!r}: {error}") from None

    @staticmethod
    def _read_schema(db: sqlite3.Connection) -> dict[str, dict[str, str]]:
        """Folded column name -> declared type, per table, as the file holds them."""
        names = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {
            name: {
                _fold(col[1]): col[2].upper()
                for col in db.execute(f"PRAGMA table_info({_quote(name)})")
            }
            for name in names
        }

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            raise SinkUnavailable("metrics database is closed")
        return self._db

    # --- writing -------------------------------------------------------------------------

    def write(self, points: Sequence[Point]) -> None:
        refusals: list[ConfigError] = []
        with self._lock:
            db = self._connection()
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    batches = self._rows(db, points, refusals)
                    for batch in batches:
                        db.executemany(batch.sql, batch.rows)
                    self._expire_if_due(db)
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    # The schema cache may name tables and columns the rollback removed.
                    self._columns = self._read_schema(db)
                    raise
            except sqlite3.Error as error:
                raise SinkUnavailable(f"metrics database write failed: {error}") from None
        if refusals:
            first = refusals[0]
            more = f" (and {len(refusals) - 1} more points refused)" if len(refusals) > 1 else ""
            raise ConfigError(first.field, f"{first.message}{more}")

    def _rows(
        self, db: sqlite3.Connection, points: Sequence[Point], refusals: list[ConfigError]
    ) -> list[_Batch]:
        # A key's schema check is done once per batch, a refusal remembered like a success.
        batches: dict[GroupKey, _Batch | ConfigError] = {}
        for point in points:
            tags, fields = point.tags, point.fields
            values = tuple(fields.values())
            key = (point.measurement, tuple(tags), tuple(fields), tuple(map(type, values)))
            batch = batches.get(key)
            if batch is None:
                batch = batches[key] = self._prepare_or_refusal(db, point)
            if isinstance(batch, ConfigError):
                refusals.append(batch)
                continue
            if batch.unsigned:
                try:
                    values = self._unsigned_to_int(point, values, batch.unsigned)
                except ConfigError as refusal:
                    refusals.append(refusal)
                    continue
            batch.rows.append((*tags.values(), *values, point.time_ns // 1_000_000))
        return [batch for batch in batches.values() if isinstance(batch, _Batch)]

    def _prepare_or_refusal(self, db: sqlite3.Connection, point: Point) -> _Batch | ConfigError:
        try:
            return self._prepare(db, point)
        except ConfigError as refusal:
            return refusal

    @staticmethod
    def _unsigned_to_int(
        point: Point, values: tuple[Any, ...], positions: tuple[int, ...]
    ) -> tuple[Any, ...]:
        converted = list(values)
        for i in positions:
            number: int = values[i].value
            if number > INT64_MAX:
                name = list(point.fields)[i]
                raise refused_field(point, name, f"{number} does not fit a SQLite INTEGER")
            converted[i] = number
        return tuple(converted)

    def _prepare(self, db: sqlite3.Connection, point: Point) -> _Batch:
        """Check the point against its table, add the table or columns it needs."""
        table = point.measurement
        if _fold(table).startswith(_RESERVED_PREFIXES):
            raise ConfigError("measurement", f"{table!r} uses a name SQLite reserves")
        existing = self._columns.get(table, {})
        wanted: dict[str, str] = {}  # folded name -> type, for this point's columns
        new: list[tuple[str, str]] = []
        columns = [("tags", name, TAG_TYPE) for name in point.tags] + [
            ("fields", name, COLUMN_TYPES[type(value)]) for name, value in point.fields.items()
        ]
        for part, name, column_type in columns:
            folded = _fold(name)
            if folded == TIME_COLUMN or folded in wanted:
                raise refused_field(point, name, f"the column {name!r} is taken", part)
            have = existing.get(folded)
            if have is None:
                new.append((name, column_type))
            elif have != column_type:
                raise refused_field(
                    point, name, f"value is {column_type}, the column is {have}", part
                )
            wanted[folded] = column_type
        self._add_columns(db, table, new)
        quoted = [_quote(name) for name in (*point.tags, *point.fields, TIME_COLUMN)]
        return _Batch(
            sql=f"INSERT INTO {_quote(table)} ({', '.join(quoted)}) "
            f"VALUES ({', '.join('?' * len(quoted))})",
            unsigned=tuple(
                i for i, value in enumerate(point.fields.values()) if type(value) is Unsigned
            ),
        )

    def _add_columns(self, db: sqlite3.Connection, table: str, new: list[tuple[str, str]]) -> None:
        columns = self._columns.get(table)
        if columns is None:
            defs = "".join(f", {_quote(name)} {kind}" for name, kind in new)
            db.execute(f"CREATE TABLE {_quote(table)} ({TIME_COLUMN} INTEGER NOT NULL{defs})")
            db.execute(
                f"CREATE INDEX {_quote(_INDEX_PREFIX + table)} ON {_quote(table)} ({TIME_COLUMN})"
            )
            columns = self._columns[table] = {TIME_COLUMN: "INTEGER"}
        else:
            for name, kind in new:
                db.execute(f"ALTER TABLE {_quote(table)} ADD COLUMN {_quote(name)} {kind}")
        columns.update((_fold(name), kind) for name, kind in new)

    def declare(self, measurement: str, fields: Mapping[str, type]) -> None:
        """Make sure the table has these field columns (their values' Python types), so that
        a query naming a field some writers never fill finds NULLs instead of failing."""
        kinds = [(name, COLUMN_TYPES[kind]) for name, kind in fields.items()]
        with self._lock:
            db = self._connection()
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    existing = self._columns.get(measurement, {})
                    new = [(name, kind) for name, kind in kinds if _fold(name) not in existing]
                    if new:
                        self._add_columns(db, measurement, new)
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    self._columns = self._read_schema(db)
                    raise
            except sqlite3.Error as error:
                raise SinkUnavailable(f"metrics database write failed: {error}") from None

    # --- retention -----------------------------------------------------------------------

    def set_ttl(self, ttl: str) -> None:
        ttl_ms = int(parse_ttl(ttl).total_seconds() * 1000)
        with self._lock:
            self._ttl_ms = ttl_ms
            self._last_expiry_ns = None  # a shorter TTL takes effect on the next write

    def _expire_if_due(self, db: sqlite3.Connection) -> None:
        now_ns = self._clock_ns()
        last = self._last_expiry_ns
        if last is not None and now_ns - last < self._retention_interval_ns:
            return
        self._last_expiry_ns = now_ns
        if self._ttl_ms <= 0:
            return
        cutoff_ms = now_ns // 1_000_000 - self._ttl_ms
        for table in self._columns:
            db.execute(f"DELETE FROM {_quote(table)} WHERE {TIME_COLUMN} < ?", (cutoff_ms,))

    # --- reading -------------------------------------------------------------------------

    def query(self, sql: str) -> list[dict[str, Any]]:
        with self._lock:
            db = self._connection()
            try:
                cursor = db.execute(sql)
                rows = cursor.fetchall()
            except (sqlite3.Error, ValueError) as error:
                raise QueryError(f"{error} (in query {sql!r})") from None
        names = [column[0] for column in cursor.description or ()]
        return [dict(zip(names, row, strict=True)) for row in rows]

    def time_window(self, start_ns: int, end_ns: int) -> str:
        start_ms, end_ms = window_millis(start_ns, end_ns)
        return f"{TIME_COLUMN} >= {start_ms} AND {TIME_COLUMN} < {end_ms}"

    def tables(self) -> list[str]:
        with self._lock:
            self._connection()
            return sorted(self._columns)

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
