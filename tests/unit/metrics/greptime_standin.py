"""A loopback HTTP stand-in for GreptimeDB's influx write and SQL APIs (not GreptimeDB).

It checks every request against the documented API — path, `db` and `precision` params, the
Basic auth header, form-encoded `sql`, a line-protocol body that parses cleanly — and answers
in GreptimeDB's JSON shapes. A request that breaks the API is answered 400 and recorded in
`violations`, so a test can assert there were none.

A SELECT without a canned answer is run by SQLite (`EmbeddedSink`) over the points written so
far, so that a reader's SQL meets real rows; SQL meant for GreptimeDB alone would fail there.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tensorfusion.errors import ConfigError, QueryError
from tensorfusion.metrics import greptime_env
from tensorfusion.metrics.embedded_sink import EmbeddedSink
from tensorfusion.metrics.line_protocol import Precision, parse
from tensorfusion.metrics.point import Point

WRITE_PATH = "/v1/influxdb/api/v2/write"
SQL_PATH = "/v1/sql"
# GreptimeDB's `to_timestamp_millis(n)` (the sink's time window) is n where `ts` holds epoch ms.
_TO_MILLIS = re.compile(r"to_timestamp_millis\((-?\d+)\)")


@dataclass
class StandIn:
    db: str = "public"
    user: str = "greptime_user"
    password: str = "greptime_pwd"
    points: list[Point] = field(default_factory=list)
    statements: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    # SQL text -> (HTTP status, JSON answer); another SELECT is run over `points`, anything
    # else gets {"code": 0, affectedrows}.
    answers: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    write_status: int = 204
    port: int = 0

    def expected_auth(self) -> str:
        return "Basic " + base64.b64encode(f"{self.user}:{self.password}".encode()).decode()

    def environ(self) -> dict[str, str]:
        """The GREPTIME_* variables, as the chart sets them, that point at this stand-in."""
        return {
            greptime_env.HOST: "127.0.0.1",
            greptime_env.PORT: str(self.port),
            greptime_env.USER: self.user,
            greptime_env.PASSWORD: self.password,
            greptime_env.DB: self.db,
        }


def records(names: list[str], rows: list[list[Any]]) -> dict[str, Any]:
    """A successful query answer in GreptimeDB's shape."""
    schema = {"column_schemas": [{"name": n, "data_type": "String"} for n in names]}
    return {"code": 0, "output": [{"records": {"schema": schema, "rows": rows}}]}


def select(points: list[Point], sql: str) -> tuple[int, dict[str, Any]]:
    """The answer to a SELECT over `points`, run by SQLite; a query it refuses (a table no
    point made, say) is answered as GreptimeDB answers a failed query."""
    sink = EmbeddedSink(":memory:", ttl="0")
    try:
        sink.write(points)
        rows = sink.query(_TO_MILLIS.sub(r"\1", sql))
    except (ConfigError, QueryError) as error:
        return 400, {"code": 3000, "error": str(error)}
    finally:
        sink.close()
    return 200, records(list(rows[0]) if rows else [], [list(row.values()) for row in rows])


def _handler(state: StandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _answer(self, status: int, body: dict[str, Any] | None = None) -> None:
            data = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _violation(self, problem: str) -> None:
            state.violations.append(problem)
            self._answer(400, {"code": 1004, "error": problem})

        def do_POST(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            params = dict(urllib.parse.parse_qsl(url.query))
            body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
            if self.headers.get("Authorization") != state.expected_auth():
                self._answer(401, {"code": 7002, "error": "User not found"})
            elif params.get("db") != state.db:
                self._violation(f"db param {params.get('db')!r}, expected {state.db!r}")
            elif url.path == WRITE_PATH:
                self._write(params, body)
            elif url.path == SQL_PATH:
                self._sql(body)
            else:
                self._violation(f"unknown path {url.path}")

        def _write(self, params: dict[str, str], body: str) -> None:
            # Points are posted in ms, encoded lines as they are, in ns.
            precisions: dict[str | None, Precision] = {"ms": "ms", "ns": "ns"}
            precision = precisions.get(params.get("precision"))
            if precision is None:
                self._violation(f"precision {params.get('precision')!r}, expected 'ms' or 'ns'")
                return
            parsed = parse(body, precision)
            if parsed.problems or not parsed.points:
                self._violation(f"line protocol problems: {parsed.problems}")
                return
            if state.write_status != 204:
                self._answer(state.write_status, {"code": 1004, "error": "write refused"})
                return
            state.points.extend(parsed.points)
            self._answer(204)

        def _sql(self, body: str) -> None:
            if self.headers.get("Content-Type") != "application/x-www-form-urlencoded":
                self._violation(f"content type {self.headers.get('Content-Type')!r}")
                return
            form = urllib.parse.parse_qs(body)
            if list(form) != ["sql"] or len(form["sql"]) != 1:
                self._violation(f"form fields {sorted(form)}, expected exactly 'sql'")
                return
            sql = form["sql"][0]
            state.statements.append(sql)
            if sql in state.answers:
                status, answer = state.answers[sql]
            elif sql.lstrip().upper().startswith("SELECT"):
                status, answer = select(list(state.points), sql)
            else:
                status, answer = 200, {"code": 0, "output": [{"affectedrows": 0}]}
            self._answer(status, answer)

    return Handler


class Server:
    """Runs the stand-in on 127.0.0.1 in a thread; use as a context manager."""

    def __init__(self, state: StandIn) -> None:
        self.state = state
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
        state.port = self._server.server_address[1]
        # A short poll interval keeps shutdown (each test's teardown) quick.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    def __enter__(self) -> StandIn:
        self._thread.start()
        return self.state

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
