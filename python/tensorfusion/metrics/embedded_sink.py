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
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from itertools import chain, repeat
from operator import attrgetter, floordiv
from typing import Any, Final, NamedTuple

from tensorfusion.errors import ConfigError, QueryError, SinkUnavailable
from tensorfusion.metrics.point import INT64_MAX, Point, Unsigned
from tensorfusion.metrics.point_columns import Columns, by_shape
from tensorfusion.metrics.rows import KIND_TYPES, Rows
from tensorfusion.metrics.sink import (
    NS_PER_MS,
    TIME_COLUMN,
    Lines,
    parse_ttl,
    refused_field,
    window_millis,
)

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

_PAGE_BYTES: Final = 16384
# Checkpointing every 4 MB of WAL (SQLite's default of 1,000 4 KiB pages) costs ingest a third
# of its rate; 40 MB bounds the WAL still.
_WAL_CHECKPOINT_BYTES: Final = 40 * 1024 * 1024
_VALUE: Final = attrgetter("value")
# Rows per INSERT statement (fewer where SQLite allows fewer parameters): a statement of 1,000
# rows costs SQLite a quarter less per row than one of 64.
_ROWS_PER_INSERT: Final = 1000


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _fold(name: str) -> str:
    """SQLite compares identifiers ignoring ASCII case only."""
    return name.translate(_ASCII_LOWER)


class _Batch(NamedTuple):
    """Rows of one shape as the table stores them: `columns` holds the tags', then the
    fields', then the time's column (Unsigned as int, ts in milliseconds)."""

    measurement: str
    tags: Sequence[str]
    fields: Mapping[str, type]
    columns: list[list[Any]]


def _insert(db: sqlite3.Connection, insert: str, columns: list[list[Any]]) -> None:
    """The rows as INSERTs of many rows each (and one a row for the rest): a statement run per
    row costs SQLite and the driver about as much as storing the row."""
    width, count = len(columns), len(columns[0])
    per = max(1, min(_ROWS_PER_INSERT, db.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // width))
    row = f"({', '.join('?' * width)})"
    whole = count - count % per
    if whole:
        db.executemany(
            insert + ", ".join([row] * per),
            # Row after row, flattened: the parameters of one statement.
            (
                [*chain.from_iterable(zip(*[c[s : s + per] for c in columns], strict=True))]
                for s in range(0, whole, per)
            ),
        )
    if whole < count:
        db.executemany(insert + row, zip(*[c[whole:] for c in columns], strict=True))


def _point_batch(group: Columns, refusals: list[ConfigError]) -> _Batch:
    fields = [
        list(map(_VALUE, column)) if kind is Unsigned else column
        for kind, column in zip(group.field_types, group.fields, strict=True)
    ]
    millis = list(map(floordiv, group.time_ns, repeat(NS_PER_MS)))
    names = dict(zip(group.field_names, group.field_types, strict=True))
    measurement = group.first.measurement
    return _fitting(
        _Batch(measurement, group.tag_names, names, [*group.tags, *fields, millis]), refusals
    )


def _rows_batch(run: Rows, refusals: list[ConfigError]) -> _Batch:
    fields = {name: KIND_TYPES[column.kind] for name, column in run.fields.items()}
    values = [column.values for column in run.fields.values()]
    columns = [
        *run.tags.values(),
        *(v if isinstance(v, list) else v.tolist() for v in values),
        (run.times_ns // NS_PER_MS).tolist(),
    ]
    return _fitting(_Batch(run.measurement, tuple(run.tags), fields, columns), refusals)


def _fitting(batch: _Batch, refusals: list[ConfigError]) -> _Batch:
    """The batch less the rows whose Unsigned does not fit an INTEGER, which are refused."""
    too_big: dict[int, tuple[str, int]] = {}  # row -> the first such field
    for i, (name, kind) in enumerate(batch.fields.items()):
        numbers = batch.columns[len(batch.tags) + i]
        if kind is Unsigned and numbers and max(numbers) > INT64_MAX:
            for row, number in enumerate(numbers):
                if number > INT64_MAX:
                    too_big.setdefault(row, (name, number))
    if not too_big:
        return batch
    for _, (name, number) in sorted(too_big.items()):
        problem = f"{number} does not fit a SQLite INTEGER"
        refusals.append(refused_field(batch.measurement, name, problem))
    kept = [j for j in range(len(batch.columns[-1])) if j not in too_big]
    return batch._replace(columns=[[column[j] for j in kept] for column in batch.columns])


def set_connection_pragmas(db: sqlite3.Connection) -> None:
    """The sink's settings that SQLite keeps per connection, not in the file: any connection
    writing to a sink's file the way the sink does needs them."""
    # A commit is in the WAL before `write` returns, so a crash of the process loses nothing
    # acknowledged; only a power loss may cost the last commits.
    db.execute("PRAGMA synchronous=NORMAL")
    page_bytes = db.execute("PRAGMA page_size").fetchone()[0]
    db.execute(f"PRAGMA wal_autocheckpoint={_WAL_CHECKPOINT_BYTES // page_bytes}")


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
            # Takes effect in a new file only: 16 KiB pages cut the CPU an insert costs by
            # about a tenth against the 4 KiB default (fewer page splits and WAL frames).
            self._db.execute(f"PRAGMA page_size={_PAGE_BYTES}")
            self._db.execute("PRAGMA journal_mode=WAL")
            set_connection_pragmas(self._db)
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
        self._store(map(partial(_point_batch, refusals=refusals), by_shape(points)), refusals)

    def write_lines(self, lines: Lines) -> None:
        """The runs' columns stored as they are: no text is formatted or parsed here."""
        refusals: list[ConfigError] = []
        self._store(map(partial(_rows_batch, refusals=refusals), lines.runs), refusals)

    def _store(self, batches: Iterable[_Batch], refusals: list[ConfigError]) -> None:
        """Every batch in one transaction, committed before this returns; then the first of
        the refusals (which the batches may add to while they are read)."""
        with self._lock:
            db = self._connection()
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    for batch in batches:
                        self._insert_batch(db, batch, refusals)
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

    def _insert_batch(
        self, db: sqlite3.Connection, batch: _Batch, refusals: list[ConfigError]
    ) -> None:
        # The schema is checked once per shape: a refusal there refuses all its points.
        if not batch.columns[-1]:
            return
        try:
            insert = self._prepare(db, batch)
        except ConfigError as refusal:
            refusals.extend([refusal] * len(batch.columns[-1]))
            return
        _insert(db, insert, batch.columns)

    def _prepare(self, db: sqlite3.Connection, batch: _Batch) -> str:
        """Check the shape against its table, add the table or columns it needs; the INSERT
        up to its VALUES."""
        table = batch.measurement
        if _fold(table).startswith(_RESERVED_PREFIXES):
            raise ConfigError("measurement", f"{table!r} uses a name SQLite reserves")
        existing = self._columns.get(table, {})
        wanted: dict[str, str] = {}  # folded name -> type, for this shape's columns
        new: list[tuple[str, str]] = []
        columns = [("tags", name, TAG_TYPE) for name in batch.tags] + [
            ("fields", name, COLUMN_TYPES[kind]) for name, kind in batch.fields.items()
        ]
        for part, name, column_type in columns:
            folded = _fold(name)
            if folded == TIME_COLUMN or folded in wanted:
                raise refused_field(table, name, f"the column {name!r} is taken", part)
            have = existing.get(folded)
            if have is None:
                new.append((name, column_type))
            elif have != column_type:
                raise refused_field(
                    table, name, f"value is {column_type}, the column is {have}", part
                )
            wanted[folded] = column_type
        self._add_columns(db, table, new)
        quoted = [_quote(name) for name in (*batch.tags, *batch.fields, TIME_COLUMN)]
        return f"INSERT INTO {_quote(table)} ({', '.join(quoted)}) VALUES "

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
        cutoff_ms = now_ns // NS_PER_MS - self._ttl_ms
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
