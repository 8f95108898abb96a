"""The leader's tables reach each sink as runs of rows in columns (`allocation_batches` through
the buffered writer): GreptimeDB gets them as natively formatted text, the embedded sink stores
the columns without any text; both read back as the reference's points do."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tensorfusion.errors import ConfigError
from tensorfusion.metrics import line_protocol
from tensorfusion.metrics import sink as sink_module
from tensorfusion.metrics.buffered_writer import BufferedWriter
from tensorfusion.metrics.embedded_sink import EmbeddedSink
from tensorfusion.metrics.greptime_sink import GreptimeSink, table_sql
from tensorfusion.metrics.point import Point
from tensorfusion.metrics.rows import Rows
from tensorfusion.metrics.sink import Lines, MetricsSink
from tensorfusion.scheduler import allocation_lines
from tensorfusion.scheduler.allocation_recorder import TABLES, AllocationRecorder
from tensorfusion.scheduler.cluster_state import ClusterState
from tensorfusion.scheduler.loop import LoopStats
from tests.unit.metrics.greptime_standin import Server, StandIn
from tests.unit.metrics.test_greptime_sink import values
from tests.unit.scheduler.test_allocation_recorder import NOW, Source, cluster
from tests.unit.scheduler.test_allocation_recorder_lines import clusters


def recorded() -> tuple[list[Lines], list[Point]]:
    """The known cluster's tables as the leader hands them on, in runs of 2 rows (so they
    arrive as many batches), and the reference's points."""
    recorder = AllocationRecorder(Source(cluster(), LoopStats(scheduled=7, unschedulable=3)))
    figures = recorder.figures()
    with mock.patch.object(allocation_lines, "RUN", 2):
        batches = list(allocation_lines.allocation_batches(recorder, figures, NOW))
    return batches, recorder.points(NOW, figures)


def through_writer(sink: MetricsSink, tmp_path: Path, batches: list[Lines]) -> None:
    writer = BufferedWriter(sink, tmp_path / "buffer", batch_size=7)
    for lines in batches:
        writer.write_lines(lines)
    writer.flush()
    assert writer.backlog_points == 0


def read_back(sink: MetricsSink) -> dict[str, list[dict[str, object]]]:
    """Every table's rows, in an order that does not depend on the columns' order."""
    return {
        table: sorted(
            sink.query(f'SELECT * FROM "{table}"'), key=lambda row: repr(sorted(row.items()))
        )
        for table in sink.tables()
    }


@pytest.fixture
def standins() -> Iterator[tuple[StandIn, StandIn]]:
    with Server(StandIn(db="tf_metrics")) as text, Server(StandIn(db="tf_metrics")) as reference:
        yield text, reference


def test_batches_count_their_lines_and_name_every_table() -> None:
    batches, points = recorded()
    assert len(batches) > len(TABLES)
    assert sum(lines.points for lines in batches) == len(points)
    assert all(lines.body.count(b"\n") == lines.points for lines in batches)
    assert {p.measurement for p in points} == {t.measurement for t in TABLES}


def test_the_schemas_hold_every_reference_row() -> None:
    schemas = {table.measurement: table for table in TABLES}
    for point in recorded()[1]:
        schema = schemas[point.measurement]
        assert set(point.tags) <= set(schema.tags), point
        assert {k: type(v) for k, v in point.fields.items()} == dict(schema.fields), point


def test_the_embedded_sink_stores_the_reference_rows(tmp_path: Path) -> None:
    batches, points = recorded()
    text, reference = (EmbeddedSink(tmp_path / f"{n}.db", ttl="0") for n in ("text", "ref"))
    try:
        through_writer(text, tmp_path, batches)
        reference.write(points)
        stored = read_back(text)
        assert stored == read_back(reference)
        assert sum(map(len, stored.values())) == len(points)
    finally:
        text.close()
        reference.close()


def test_greptime_gets_the_text_and_tables_from_the_schemas(
    tmp_path: Path, standins: tuple[StandIn, StandIn]
) -> None:
    batches, points = recorded()
    text_db, reference_db = standins
    text = GreptimeSink(values(text_db), timeout_s=5)
    reference = GreptimeSink(values(reference_db), timeout_s=5)
    through_writer(text, tmp_path, batches)
    reference.write(points)
    assert text_db.violations == reference_db.violations == []
    assert text_db.statements == [table_sql(table) for table in TABLES]  # each once, first
    assert read_back(text) == read_back(reference)
    assert len(text_db.points) == len(points)


def test_an_empty_batch_posts_nothing(standins: tuple[StandIn, StandIn]) -> None:
    standin = standins[0]
    GreptimeSink(values(standin), timeout_s=5).write_lines(Lines((), TABLES))
    assert standin.statements == []
    assert standin.points == []


@settings(max_examples=25, deadline=None)
@given(state=clusters(), run=st.integers(1, 4))
def test_the_embedded_sink_stores_the_same_rows_from_columns_as_from_text(
    tmp_path_factory: pytest.TempPathFactory, state: ClusterState, run: int
) -> None:
    """The columns stored as they are, with no text formatted or parsed on the way, and the
    same batches' text parsed back into points: the same tables, columns, types and rows."""
    recorder = AllocationRecorder(Source(state, LoopStats(scheduled=5, unschedulable=2)))
    figures = recorder.figures()
    with mock.patch.object(allocation_lines, "RUN", run):
        batches = list(allocation_lines.allocation_batches(recorder, figures, NOW))
    text = b"".join(lines.body for lines in batches).decode()
    root = tmp_path_factory.mktemp("sinks")
    columns, parsed = (EmbeddedSink(root / f"{n}.db", ttl="0") for n in ("columns", "parsed"))
    try:
        unformatted = [Lines(lines.runs, lines.tables) for lines in batches]  # no body yet
        with (
            mock.patch.object(sink_module, "encode_rows", side_effect=AssertionError("text")),
            mock.patch.object(line_protocol, "parse", side_effect=AssertionError("parse")),
        ):
            for lines in unformatted:
                columns.write_lines(lines)
        parsed.write(line_protocol.parse(text).points)
        assert columns.tables() == parsed.tables()
        stored = read_back(columns)
        assert stored == read_back(parsed)
        assert sum(map(len, stored.values())) == text.count("\n")
    finally:
        columns.close()
        parsed.close()


def test_a_conflicting_run_is_refused_and_the_rest_stored(tmp_path: Path) -> None:
    sink = EmbeddedSink(tmp_path / "metrics.db", ttl="0")
    try:
        sink.write([Point("m", {}, {"v": 1}, 0)])  # v is INTEGER from here on
        conflicting = Rows.of("m", {}, {"v": [1.5, 2.5]}, [1_000_000, 2_000_000])
        fitting = Rows.of("m", {"t": ["a"]}, {"v": [3]}, [3_000_000])
        with pytest.raises(ConfigError, match=r"m\.fields\['v'\].*\(and 1 more points refused\)"):
            sink.write_lines(Lines((conflicting, fitting), ()))
        assert sink.query("SELECT t, v, ts FROM m ORDER BY ts") == [
            {"t": None, "v": 1, "ts": 0},
            {"t": "a", "v": 3, "ts": 3},
        ]
    finally:
        sink.close()


def test_an_unsigned_too_big_for_sqlite_refuses_its_row_only(tmp_path: Path) -> None:
    sink = EmbeddedSink(tmp_path / "metrics.db", ttl="0")
    try:
        big = np.array([1, 2**63, 3], dtype=np.uint64)
        with pytest.raises(ConfigError, match=r"m\.fields\['u'\]: 9223372036854775808 does not"):
            sink.write_lines(Lines((Rows.of("m", {}, {"u": big}, [0, 1, 2_000_000]),), ()))
        assert sink.query("SELECT u, ts FROM m ORDER BY ts") == [
            {"u": 1, "ts": 0},
            {"u": 3, "ts": 2},
        ]
    finally:
        sink.close()
