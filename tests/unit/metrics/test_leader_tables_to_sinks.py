"""The leader's tables reach each sink as natively formatted text (`allocation_batches`
through the buffered writer) and read back as the reference's points do."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import pytest

from tensorfusion.errors import ConfigError
from tensorfusion.metrics.buffered_writer import BufferedWriter
from tensorfusion.metrics.embedded_sink import EmbeddedSink
from tensorfusion.metrics.greptime_sink import GreptimeSink, table_sql
from tensorfusion.metrics.point import Point
from tensorfusion.metrics.sink import Lines, MetricsSink
from tensorfusion.scheduler import allocation_lines
from tensorfusion.scheduler.allocation_recorder import TABLES, AllocationRecorder
from tensorfusion.scheduler.loop import LoopStats
from tests.unit.metrics.greptime_standin import Server, StandIn
from tests.unit.metrics.test_greptime_sink import values
from tests.unit.scheduler.test_allocation_recorder import NOW, Source, cluster


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
        table.measurement: sorted(
            sink.query(f'SELECT * FROM "{table.measurement}"'),
            key=lambda row: repr(sorted(row.items())),
        )
        for table in TABLES
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
    GreptimeSink(values(standin), timeout_s=5).write_lines(Lines(b"", 0, TABLES))
    assert standin.statements == []
    assert standin.points == []


def test_a_bad_line_is_refused_by_number_and_the_rest_stored(tmp_path: Path) -> None:
    sink = EmbeddedSink(tmp_path / "metrics.db", ttl="0")
    try:
        with pytest.raises(ConfigError, match=r"lines: line 2: .*line refused"):
            sink.write_lines(Lines(b"m v=1i 1000000\nm v=\nm v=3i 3000000\n", 3, ()))
        assert sink.query("SELECT v FROM m ORDER BY ts") == [{"v": 1}, {"v": 3}]
        with pytest.raises(ConfigError, match="lines: not UTF-8 text"):
            sink.write_lines(Lines(b"m v=1i \xff\n", 1, ()))
    finally:
        sink.close()
