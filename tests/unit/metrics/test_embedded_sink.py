"""EmbeddedSink: tables and columns from points, type conflicts, retention, SQL, windows."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tensorfusion.errors import ConfigError, QueryError, SinkUnavailable
from tensorfusion.metrics.embedded_sink import EmbeddedSink
from tensorfusion.metrics.point import Point, Unsigned

DAY_NS = 86_400 * 10**9
NOW_NS = 1_700_000_000_000_000_000


class Clock:
    def __init__(self) -> None:
        self.now_ns = NOW_NS

    def __call__(self) -> int:
        return self.now_ns


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sink(tmp_path: Path, clock: Clock) -> EmbeddedSink:
    return EmbeddedSink(tmp_path / "metrics.db", "30d", retention_interval_s=60, clock_ns=clock)


def usage(worker: str, time_ns: int = NOW_NS, **fields: object) -> Point:
    values = fields or {"memory_bytes": 100, "compute_percentage": 12.5}
    return Point("tf_worker_usage", {"worker": worker, "node": "n1"}, values, time_ns)  # type: ignore[arg-type]


def test_rows_come_back_with_their_types_and_ts_in_milliseconds(sink: EmbeddedSink) -> None:
    sink.write(
        [
            usage(
                "w1",
                NOW_NS + 1_999_999,
                memory_bytes=7,
                compute_percentage=1.5,
                throttled=Unsigned(3),
                frozen=True,
                phase="Running",
            )
        ]
    )
    rows = sink.query("SELECT * FROM tf_worker_usage")
    assert rows == [
        {
            "ts": NOW_NS // 1_000_000 + 1,
            "worker": "w1",
            "node": "n1",
            "memory_bytes": 7,
            "compute_percentage": 1.5,
            "throttled": 3,
            "frozen": 1,
            "phase": "Running",
        }
    ]
    assert sink.tables() == ["tf_worker_usage"]


def test_column_types_are_declared_per_kind(sink: EmbeddedSink, tmp_path: Path) -> None:
    sink.write([usage("w1", a=1, b=Unsigned(1), c=1.0, d=False, e="x")])
    sink.close()
    with sqlite3.connect(tmp_path / "metrics.db") as db:
        types = {row[1]: row[2] for row in db.execute("PRAGMA table_info(tf_worker_usage)")}
        indexes = db.execute("PRAGMA index_list(tf_worker_usage)").fetchall()
        mode = db.execute("PRAGMA journal_mode").fetchone()[0]
    assert types == {
        "ts": "INTEGER",
        "worker": "TEXT",
        "node": "TEXT",
        "a": "INTEGER",
        "b": "UNSIGNED BIGINT",
        "c": "REAL",
        "d": "BOOLEAN",
        "e": "TEXT",
    }
    assert len(indexes) == 1
    assert mode == "wal"


def test_new_fields_and_tags_add_columns(sink: EmbeddedSink) -> None:
    sink.write([usage("w1", a=1)])
    sink.write([Point("tf_worker_usage", {"worker": "w2", "pool": "p"}, {"b": 2.0}, NOW_NS)])
    rows = sink.query("SELECT worker, node, pool, a, b FROM tf_worker_usage ORDER BY worker")
    assert rows == [
        {"worker": "w1", "node": "n1", "pool": None, "a": 1, "b": None},
        {"worker": "w2", "node": None, "pool": "p", "a": None, "b": 2.0},
    ]


def test_declared_fields_exist_before_any_point_fills_them(sink: EmbeddedSink) -> None:
    sink.declare("tf_worker_usage", {"temp": float})  # a table that does not exist yet
    assert sink.query("SELECT temp FROM tf_worker_usage") == []
    sink.write([usage("w1", a=1)])
    sink.declare("tf_worker_usage", {"temp": float, "a": int, "label": str})  # some exist
    assert sink.query("SELECT worker, a, temp, label FROM tf_worker_usage") == [
        {"worker": "w1", "a": 1, "temp": None, "label": None}
    ]
    # A declared column has its type: a point of another type is refused as for any column.
    with pytest.raises(ConfigError, match="temp"):
        sink.write([usage("w2", temp="hot")])


@pytest.mark.parametrize(
    ("first", "second"),
    [(1, 1.0), (1.0, 1), (1, True), (1, Unsigned(1)), ("x", 1), (True, "t")],
)
def test_a_type_conflict_refuses_the_point_and_keeps_the_rest(
    sink: EmbeddedSink, first: object, second: object
) -> None:
    sink.write([usage("w1", a=first)])
    with pytest.raises(ConfigError, match=r"tf_worker_usage\.fields\['a'\]") as raised:
        sink.write([usage("w2", a=1.5, b=1), usage("w3", a=second), usage("w4", b=2)])
    assert "point refused" in str(raised.value)
    workers = [row["worker"] for row in sink.query("SELECT worker FROM tf_worker_usage")]
    assert workers == ["w1", "w4"] if isinstance(first, int) else ["w1", "w2", "w4"]


def test_several_refusals_are_counted_in_the_message(sink: EmbeddedSink) -> None:
    sink.write([usage("w1", a=1)])
    with pytest.raises(ConfigError, match="2 more points refused"):
        sink.write([usage(f"w{i}", a="text") for i in range(3)])


def test_conflicts_are_remembered_across_restarts(tmp_path: Path, clock: Clock) -> None:
    EmbeddedSink(tmp_path / "m.db", clock_ns=clock).write([usage("w1", a=1)])
    reopened = EmbeddedSink(tmp_path / "m.db", clock_ns=clock)
    with pytest.raises(ConfigError, match=r"fields\['a'\].*REAL.*INTEGER"):
        reopened.write([usage("w2", a=1.0)])
    assert reopened.tables() == ["tf_worker_usage"]


def test_column_names_match_ignoring_ascii_case_like_sqlite(sink: EmbeddedSink) -> None:
    sink.write([usage("w1", Memory=1)])
    with pytest.raises(ConfigError, match=r"fields\['MEMORY'\]"):
        sink.write([usage("w2", MEMORY="big")])
    sink.write([usage("w3", memory=3)])
    assert sink.query("SELECT sum(memory) AS s FROM tf_worker_usage") == [{"s": 4}]


@pytest.mark.parametrize(
    ("point", "field"),
    [
        (Point("m", {"ts": "x"}, {"v": 1}, NOW_NS), r"m\.tags\['ts'\]"),
        (Point("m", {}, {"TS": 1}, NOW_NS), r"m\.fields\['TS'\]"),
        (Point("m", {"v": "x"}, {"v": 1}, NOW_NS), r"m\.fields\['v'\]"),
        (Point("m", {}, {"u": Unsigned(2**63)}, NOW_NS), r"m\.fields\['u'\]"),
        (Point("sqlite_stat1", {}, {"v": 1}, NOW_NS), "measurement"),
        (Point("ts_index:m", {}, {"v": 1}, NOW_NS), "measurement"),
    ],
)
def test_points_the_schema_cannot_hold_are_refused(
    sink: EmbeddedSink, point: Point, field: str
) -> None:
    with pytest.raises(ConfigError, match=field):
        sink.write([point, Point("ok", {}, {"v": 1}, NOW_NS)])
    assert sink.query("SELECT count(*) AS n FROM ok") == [{"n": 1}]


def test_odd_measurement_and_column_names_are_quoted(sink: EmbeddedSink) -> None:
    sink.write([Point('we"ird table', {"a b": "x"}, {'c"d': 1}, NOW_NS)])
    assert sink.query('SELECT "a b", "c""d" FROM "we""ird table"') == [{"a b": "x", 'c"d': 1}]


def test_retention_deletes_old_rows_from_every_table(sink: EmbeddedSink, clock: Clock) -> None:
    sink.write([usage("old", NOW_NS - 31 * DAY_NS), usage("new", NOW_NS - 29 * DAY_NS)])
    sink.write([Point("tf_gpu_usage", {}, {"v": 1}, NOW_NS - 40 * DAY_NS)])
    # The sweep ran with the first write; the second is within the interval.
    assert sink.query("SELECT count(*) AS n FROM tf_gpu_usage") == [{"n": 1}]
    clock.now_ns += 61 * 10**9
    sink.write([usage("later")])
    assert sink.query("SELECT count(*) AS n FROM tf_gpu_usage") == [{"n": 0}]
    workers = sink.query("SELECT worker FROM tf_worker_usage ORDER BY ts")
    assert [row["worker"] for row in workers] == ["new", "later"]


def test_set_ttl_applies_on_the_next_write(sink: EmbeddedSink) -> None:
    sink.write([usage("a", NOW_NS - 2 * 3600 * 10**9), usage("b", NOW_NS)])
    sink.set_ttl("1h")
    sink.write([usage("c")])
    assert [row["worker"] for row in sink.query("SELECT worker FROM tf_worker_usage")] == [
        "b",
        "c",
    ]


def test_a_zero_ttl_keeps_everything(tmp_path: Path, clock: Clock) -> None:
    sink = EmbeddedSink(tmp_path / "m.db", "0", clock_ns=clock)
    sink.write([usage("ancient", 0)])
    assert sink.query("SELECT count(*) AS n FROM tf_worker_usage") == [{"n": 1}]


@pytest.mark.parametrize("ttl", ["30 days", "", "-1d", "d"])
def test_a_bad_ttl_names_metrics_ttl(sink: EmbeddedSink, tmp_path: Path, ttl: str) -> None:
    with pytest.raises(ConfigError, match="metricsTTL"):
        sink.set_ttl(ttl)
    with pytest.raises(ConfigError, match="metricsTTL"):
        EmbeddedSink(tmp_path / "other.db", ttl)


def test_time_window_is_half_open_on_milliseconds(sink: EmbeddedSink) -> None:
    ms = 1_000_000
    sink.write([usage(f"w{i}", NOW_NS + i * ms) for i in range(5)])
    condition = sink.time_window(NOW_NS + ms, NOW_NS + 3 * ms)
    rows = sink.query(f"SELECT worker FROM tf_worker_usage WHERE {condition} ORDER BY ts")
    assert [row["worker"] for row in rows] == ["w1", "w2"]


@pytest.mark.parametrize(
    ("start", "end", "field"), [(2, 1, "end_ns"), (1.0, 2, "start_ns"), (1, "2", "end_ns")]
)
def test_time_window_rejects_bad_bounds(
    sink: EmbeddedSink, start: object, end: object, field: str
) -> None:
    with pytest.raises(ConfigError, match=field):
        sink.time_window(start, end)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELECT * FROM no_such_table", "no such table"),
        ("SELEC 1", "syntax error"),
        ("SELECT 1; SELECT 2", "one statement"),
    ],
)
def test_sql_errors_are_query_errors(sink: EmbeddedSink, sql: str, message: str) -> None:
    with pytest.raises(QueryError, match=message):
        sink.query(sql)


def test_a_closed_sink_is_unavailable(sink: EmbeddedSink) -> None:
    sink.close()
    sink.close()
    with pytest.raises(SinkUnavailable):
        sink.write([usage("w1")])
    with pytest.raises(SinkUnavailable):
        sink.query("SELECT 1")


def test_an_unopenable_path_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(SinkUnavailable, match="metrics database"):
        EmbeddedSink(tmp_path / "missing-dir" / "m.db")


def test_a_locked_database_is_unavailable_until_released(
    sink: EmbeddedSink, tmp_path: Path, clock: Clock
) -> None:
    sink.write([usage("w1")])
    locker = sqlite3.connect(tmp_path / "metrics.db", timeout=0)
    locker.execute("BEGIN IMMEDIATE")
    blocked = EmbeddedSink(tmp_path / "metrics.db", clock_ns=clock)
    blocked._connection().execute("PRAGMA busy_timeout=0")
    with pytest.raises(SinkUnavailable, match="locked"):
        blocked.write([Point("fresh", {}, {"v": 1}, NOW_NS)])
    locker.rollback()
    locker.close()
    blocked.write([Point("fresh", {}, {"v": 1}, NOW_NS)])
    assert blocked.query("SELECT v FROM fresh") == [{"v": 1}]


@settings(max_examples=25, deadline=None)
@given(count=st.integers(1, 300), fields=st.integers(1, 40), spare=st.integers(0, 2000))
def test_every_row_of_a_batch_is_stored_in_order(
    tmp_path_factory: pytest.TempPathFactory, count: int, fields: int, spare: int
) -> None:
    # Rows go in as INSERTs of many rows, as many as SQLite's variable limit allows, and one
    # for the rest: no count, width or limit may lose or reorder a row.
    with closing(EmbeddedSink(tmp_path_factory.mktemp("db") / "m.db", "0")) as sink:
        width = 2 + fields + 1  # tags, fields, ts
        sink._connection().setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, width + spare)
        names = [f"f{j}" for j in range(fields)]
        sink.write(
            [
                usage(f"w{i}", NOW_NS + i, **{name: i * j for j, name in enumerate(names)})
                for i in range(count)
            ]
        )
        rows = sink.query(f"SELECT worker, {', '.join(names)} FROM tf_worker_usage ORDER BY rowid")
    assert rows == [
        {"worker": f"w{i}", **{name: i * j for j, name in enumerate(names)}} for i in range(count)
    ]


def test_an_unsigned_too_big_refuses_its_point_only(sink: EmbeddedSink) -> None:
    points = [usage(f"w{i}", u=Unsigned(2**63 if i == 1 else i), v=float(i)) for i in range(3)]
    with pytest.raises(ConfigError, match=r"fields\['u'\].*9223372036854775808 does not fit"):
        sink.write(points)
    assert sink.query("SELECT worker, u, v FROM tf_worker_usage ORDER BY worker") == [
        {"worker": "w0", "u": 0, "v": 0.0},
        {"worker": "w2", "u": 2, "v": 2.0},
    ]


def test_a_new_file_gets_large_pages_and_an_old_one_keeps_its_own(tmp_path: Path) -> None:
    with closing(sqlite3.connect(tmp_path / "old.db")) as db:
        db.execute("CREATE TABLE t (x)")
        old_page_bytes = db.execute("PRAGMA page_size").fetchone()[0]
    for name in ("new.db", "old.db"):
        EmbeddedSink(tmp_path / name).close()
    with (
        closing(sqlite3.connect(tmp_path / "new.db")) as new,
        closing(sqlite3.connect(tmp_path / "old.db")) as old,
    ):
        assert new.execute("PRAGMA page_size").fetchone()[0] == 16384
        assert old.execute("PRAGMA page_size").fetchone()[0] == old_page_bytes


# argv: <database>. Writes batches of BATCH points numbered in order, printing each batch's
# number once `write` has returned, until it is killed.
WRITER = """
import itertools, sys
from tensorfusion.metrics.embedded_sink import EmbeddedSink
from tensorfusion.metrics.point import Point

sink = EmbeddedSink(sys.argv[1], "0")
for batch in itertools.count():
    sink.write([Point("m", {"w": "x"}, {"n": batch * BATCH + i}, 1) for i in range(BATCH)])
    print(batch, flush=True)
"""
BATCH = 500


def test_a_killed_process_keeps_every_acknowledged_row(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER.replace("BATCH", str(BATCH)), str(path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout is not None
    acknowledged = [writer.stdout.readline() for _ in range(5)]
    writer.send_signal(signal.SIGKILL)  # mid-write, most likely: it never stops writing
    writer.wait()
    writer.stdout.close()
    assert acknowledged == [f"{batch}\n" for batch in range(5)]
    with closing(EmbeddedSink(path, "0")) as sink:
        stored = sink.query("SELECT count(*) AS rows, max(n) AS last FROM m")[0]
        assert sink.query(f"SELECT count(*) AS rows FROM m WHERE n < {5 * BATCH}") == [
            {"rows": 5 * BATCH}
        ]
    assert stored["rows"] % BATCH == 0  # a batch is stored whole or not at all
    assert stored["last"] == stored["rows"] - 1
