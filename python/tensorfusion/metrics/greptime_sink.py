"""Metrics in GreptimeDB over its HTTP API (standard library only).

- Writes: influx line protocol, `POST /v1/influxdb/api/v2/write?db=<db>&precision=ms` (points
  are encoded in ms; batches of rows in columns are formatted natively, `precision=ns`).
- Queries: `POST /v1/sql?db=<db>` with the form field `sql`; the answer is
  `{"code": 0, "output": [{"records": {"schema": {"column_schemas": [{"name": ...}]},
  "rows": [[...]]}}]}`, or a non-zero `code` with an `error` message.
- Auth: HTTP Basic with `greptime.user`/`greptime.password`; https when `isCloud`.
- Tables: GreptimeDB would name the time index `greptime_timestamp` when line protocol creates
  a table, but rules query `ts`, so each measurement's table is created first by SQL (from its
  first point, or from the schemas batches of rows come with) with a
  `ts TIMESTAMP(3)` time index and its tags as the primary key; later fields and tags are added
  by GreptimeDB itself when line protocol brings them.
- Retention: `ALTER DATABASE <db> SET 'ttl'=...`, which every table without its own TTL follows.

`greptime.port` must be the HTTP port (4000 on a default GreptimeDB; 4001 is gRPC).
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any, Final

from tensorfusion.api.helm_values import GreptimeValues
from tensorfusion.errors import ConfigError, QueryError, SinkUnavailable
from tensorfusion.metrics.line_protocol import encode
from tensorfusion.metrics.point import Point, Unsigned
from tensorfusion.metrics.sink import TIME_COLUMN, Lines, TableSchema, parse_ttl, window_millis

COLUMN_TYPES: Final[Mapping[type, str]] = {
    int: "BIGINT",
    Unsigned: "BIGINT UNSIGNED",
    float: "DOUBLE",
    bool: "BOOLEAN",
    str: "STRING",
}
# Answers that mean "not now" rather than "never": the batch is kept for a retry.
_RETRY_STATUSES: Final = frozenset({401, 403, 408, 429})


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def create_table_sql(point: Point) -> str:
    """The table for `point`'s measurement: tags as primary key, `ts` as time index."""
    fields = {name: type(value) for name, value in point.fields.items()}
    return table_sql(TableSchema(point.measurement, tuple(point.tags), fields))


def table_sql(table: TableSchema) -> str:
    """The table `table` describes: tags as primary key, `ts` as time index."""
    columns = [f"{_quote(tag)} STRING NULL" for tag in table.tags]
    columns += [f"{_quote(k)} {COLUMN_TYPES[kind]} NULL" for k, kind in table.fields.items()]
    columns += [f"{TIME_COLUMN} TIMESTAMP(3) NOT NULL", f"TIME INDEX ({TIME_COLUMN})"]
    if table.tags:
        columns.append(f"PRIMARY KEY ({', '.join(map(_quote, table.tags))})")
    return f"CREATE TABLE IF NOT EXISTS {_quote(table.measurement)} ({', '.join(columns)})"


class GreptimeSink:
    """A `MetricsSink` on GreptimeDB (standalone, cluster or Greptime Cloud)."""

    def __init__(self, values: GreptimeValues, *, timeout_s: float = 10.0) -> None:
        if not values.host:
            raise ConfigError("greptime.host", "required to reach GreptimeDB")
        scheme = "https" if values.is_cloud else "http"
        self._base = f"{scheme}://{values.host}:{values.port}"
        self._db = values.db
        self._timeout_s = timeout_s
        self._headers: dict[str, str] = {}
        if values.user:
            secret = f"{values.user}:{values.password or ''}".encode()
            self._headers["Authorization"] = "Basic " + base64.b64encode(secret).decode()
        self._created: set[str] = set()
        self._closed = False

    def _post(self, path: str, params: Mapping[str, str], body: bytes, content_type: str) -> bytes:
        """The response body; `SinkUnavailable` when GreptimeDB cannot answer now."""
        if self._closed:
            raise SinkUnavailable("GreptimeDB sink is closed")
        url = f"{self._base}{path}?{urllib.parse.urlencode(params)}"
        headers = self._headers | {"Content-Type": content_type}
        request = urllib.request.Request(url, body, headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self._timeout_s) as response:
                answer: bytes = response.read()
                return answer
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")
            if error.code >= 500 or error.code in _RETRY_STATUSES:
                raise SinkUnavailable(f"GreptimeDB {path}: HTTP {error.code}: {detail}") from None
            raise _Rejected(error.code, detail) from None
        except (urllib.error.URLError, OSError) as error:
            raise SinkUnavailable(f"GreptimeDB at {self._base}: {error}") from None

    def _sql(self, sql: str) -> dict[str, Any]:
        body = urllib.parse.urlencode({"sql": sql}).encode()
        try:
            raw = self._post("/v1/sql", {"db": self._db}, body, "application/x-www-form-urlencoded")
        except _Rejected as rejected:
            raise QueryError(f"{_error_message(rejected.body)} (in query {sql!r})") from None
        answer = _json(raw)
        if answer.get("code", 0) != 0:
            raise QueryError(f"{_error_message(raw.decode())} (in query {sql!r})")
        return answer

    def write(self, points: Sequence[Point]) -> None:
        if not points:
            return
        first: dict[str, Point] = {}
        for point in points:
            first.setdefault(point.measurement, point)
        for measurement, point in first.items():
            if measurement not in self._created:
                self._sql_for_write(create_table_sql(point))
                self._created.add(measurement)
        self._post_lines(encode(points, "ms").encode(), "ms")

    def write_lines(self, lines: Lines) -> None:
        if not lines.points:
            return
        for table in lines.tables:
            if table.measurement not in self._created:
                self._sql_for_write(table_sql(table))
                self._created.add(table.measurement)
        self._post_lines(lines.body, "ns")

    def _post_lines(self, body: bytes, precision: str) -> None:
        params = {"db": self._db, "precision": precision}
        try:
            self._post("/v1/influxdb/api/v2/write", params, body, "text/plain")
        except _Rejected as rejected:
            raise ConfigError("points", f"GreptimeDB refused the batch: {rejected.body}") from None

    def _sql_for_write(self, sql: str) -> None:
        try:
            self._sql(sql)
        except QueryError as error:
            raise ConfigError("points", str(error)) from None

    def query(self, sql: str) -> list[dict[str, Any]]:
        for output in self._sql(sql).get("output", []):
            records = output.get("records")
            if records is not None:
                names = [column["name"] for column in records["schema"]["column_schemas"]]
                return [dict(zip(names, row, strict=True)) for row in records["rows"]]
        return []

    def time_window(self, start_ns: int, end_ns: int) -> str:
        start_ms, end_ms = window_millis(start_ns, end_ns)
        return (
            f"{TIME_COLUMN} >= to_timestamp_millis({start_ms}) "
            f"AND {TIME_COLUMN} < to_timestamp_millis({end_ms})"
        )

    def set_ttl(self, ttl: str) -> None:
        seconds = int(parse_ttl(ttl).total_seconds())
        value = f"{seconds}s" if seconds > 0 else "forever"
        self._sql(f"ALTER DATABASE {_quote(self._db)} SET 'ttl'='{value}'")

    def tables(self) -> list[str]:
        return sorted(str(next(iter(row.values()))) for row in self.query("SHOW TABLES"))

    def close(self) -> None:
        self._closed = True


class _Rejected(Exception):
    """GreptimeDB answered with a client error: retrying the same request cannot help."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(status, body)
        self.status = status
        self.body = body


def _json(raw: bytes) -> dict[str, Any]:
    try:
        answer = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise SinkUnavailable(f"GreptimeDB answered something other than JSON: {error}") from None
    if not isinstance(answer, dict):
        raise SinkUnavailable(f"GreptimeDB answered {type(answer).__name__}, not an object")
    return answer


def _error_message(body: str) -> str:
    """GreptimeDB's `error` text when the body is its JSON error, else the body itself."""
    try:
        answer = json.loads(body)
    except json.JSONDecodeError:
        return body
    return str(answer.get("error", body)) if isinstance(answer, dict) else body
