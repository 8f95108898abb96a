"""BufferedWriter: batching, outages ridden out on disk in order, bounded backlog, restarts."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from tensorfusion.errors import ConfigError, SinkUnavailable
from tensorfusion.metrics.buffered_writer import BufferedWriter
from tensorfusion.metrics.line_protocol import encode, parse
from tensorfusion.metrics.point import Point, Unsigned
from tensorfusion.metrics.rows import rows_of
from tensorfusion.metrics.sink import Lines, TableSchema


class FakeSink:
    """Records what it stores; `down` makes it unreachable, `refuse` refuses every batch."""

    def __init__(self) -> None:
        self.batches: list[list[Point]] = []
        self.texts: list[Lines] = []
        self.down = False
        self.refuse = False
        self.attempts = 0

    def write(self, points: Sequence[Point]) -> None:
        self.attempts += 1
        if self.down:
            raise SinkUnavailable("connection refused")
        if self.refuse:
            raise ConfigError("m.fields['v']", "value is REAL, the column is INTEGER")
        self.batches.append(list(points))

    def write_lines(self, lines: Lines) -> None:
        """Kept as the batch came, so a test sees what the writer joined; stored as its text
        reads back."""
        self.write(parse(lines.body.decode()).points)
        self.texts.append(lines)

    @property
    def points(self) -> list[Point]:
        return [point for batch in self.batches for point in batch]

    def query(self, sql: str) -> list[dict[str, Any]]:
        return []

    def time_window(self, start_ns: int, end_ns: int) -> str:
        return ""

    def set_ttl(self, ttl: str) -> None:
        pass

    def tables(self) -> list[str]:
        return []

    def close(self) -> None:
        pass


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def points(start: int, count: int) -> list[Point]:
    return [
        Point("m", {"n": f"node-{i % 3}"}, {"v": i, "u": Unsigned(i), "s": "a b"}, i * 10**6)
        for i in range(start, start + count)
    ]


@pytest.fixture
def sink() -> FakeSink:
    return FakeSink()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def out(sink: FakeSink, clock: Clock, tmp_path: Path) -> BufferedWriter:
    """A writer with the default test settings on `tmp_path`."""
    return writer(sink, tmp_path, clock)


def writer(sink: FakeSink, path: Path, clock: Clock, **options: Any) -> BufferedWriter:
    settings: dict[str, Any] = {
        "max_bytes": 1 << 20,
        "batch_size": 10,
        "flush_interval_s": 5.0,
        "backoff_initial_s": 1.0,
        "backoff_max_s": 8.0,
    }
    return BufferedWriter(sink, path, clock=clock, **(settings | options))


def test_full_batches_go_out_at_once_and_the_rest_on_the_interval(
    sink: FakeSink, clock: Clock, out: BufferedWriter
) -> None:
    out.write(points(0, 25))
    assert [len(batch) for batch in sink.batches] == [10, 10]
    out.poll()
    assert len(sink.batches) == 2
    clock.now += 5
    out.poll()
    assert [len(batch) for batch in sink.batches] == [10, 10, 5]
    assert sink.points == points(0, 25)


def test_sink_down_then_up_loses_nothing_and_keeps_order(
    sink: FakeSink, clock: Clock, tmp_path: Path, out: BufferedWriter
) -> None:
    out.write(points(0, 10))
    sink.down = True
    out.write(points(10, 30))
    assert out.backlog_points == 30
    assert len(list(tmp_path.glob("*.lp"))) == 3
    sink.down = False
    out.write(points(40, 10))  # newer than the backlog: must wait behind it
    assert sink.points == points(0, 10)
    clock.now += 1
    out.poll()
    assert sink.points == points(0, 50)
    assert out.backlog_points == 0
    assert out.dropped_points == 0
    assert list(tmp_path.iterdir()) == []


def test_retries_back_off_exponentially_up_to_the_limit(
    sink: FakeSink, clock: Clock, out: BufferedWriter
) -> None:
    sink.down = True
    out.write(points(0, 10))
    retry_times = []
    for _ in range(60):
        clock.now += 0.5
        before = sink.attempts
        out.poll()
        if sink.attempts > before:
            retry_times.append(clock.now - 1000)
    gaps = [b - a for a, b in zip([0.0, *retry_times], retry_times, strict=False)]
    assert gaps[:5] == [1.0, 2.0, 4.0, 8.0, 8.0]


def test_flush_retries_now_and_sends_the_partial_batch(sink: FakeSink, out: BufferedWriter) -> None:
    sink.down = True
    out.write(points(0, 10))
    out.write(points(10, 3))
    sink.down = False
    out.flush()
    assert sink.points == points(0, 13)


def test_flush_while_down_spills_the_partial_batch_after_the_backlog(
    sink: FakeSink, out: BufferedWriter
) -> None:
    sink.down = True
    out.write(points(0, 12))
    out.flush()
    assert out.backlog_points == 12
    sink.down = False
    out.flush()
    assert sink.points == points(0, 12)


def test_a_full_buffer_drops_the_oldest_batches_and_counts_them(
    sink: FakeSink, clock: Clock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    batch_bytes = len(b"".join(p.read_bytes() for p in _spill_one(tmp_path / "probe")))
    out = writer(sink, tmp_path / "buf", clock, max_bytes=3 * batch_bytes + batch_bytes // 2)
    sink.down = True
    with caplog.at_level(logging.ERROR, "tensorfusion.metrics.buffer"):
        out.write(points(0, 50))
    assert out.dropped_points == 20
    assert out.backlog_points == 30
    assert out.backlog_bytes <= 3 * batch_bytes + batch_bytes // 2
    assert "buffer is full" in caplog.text
    sink.down = False
    out.flush()
    assert sink.points == points(20, 30)


def _spill_one(path: Path) -> list[Path]:
    sink = FakeSink()
    sink.down = True
    writer(sink, path, Clock()).write(points(0, 10))
    return list(path.glob("*.lp"))


def test_a_batch_larger_than_the_buffer_is_dropped(
    sink: FakeSink, clock: Clock, tmp_path: Path
) -> None:
    out = writer(sink, tmp_path, clock, max_bytes=100)
    sink.down = True
    out.write(points(0, 10))
    assert out.dropped_points == 10
    assert out.backlog_points == 0


def test_a_restart_mid_outage_delivers_the_backlog_after(
    sink: FakeSink, clock: Clock, tmp_path: Path
) -> None:
    first = writer(sink, tmp_path, clock)
    sink.down = True
    first.write(points(0, 20))
    first.write(points(20, 5))
    first.flush()  # stopping: the partial batch goes to disk too
    del first
    second = writer(sink, tmp_path, clock)
    assert second.backlog_points == 25
    second.write(points(25, 10))  # queued behind the backlog
    sink.down = False
    second.poll()
    assert sink.points == points(0, 35)


def test_a_refused_batch_is_not_retried(
    sink: FakeSink, out: BufferedWriter, caplog: pytest.LogCaptureFixture
) -> None:
    sink.refuse = True
    with caplog.at_level(logging.ERROR, "tensorfusion.metrics.buffer"):
        out.write(points(0, 10))
    assert "refused" in caplog.text
    sink.refuse = False
    out.write(points(10, 10))
    assert sink.points == points(10, 10)
    assert out.backlog_points == 0


def test_unreadable_or_foreign_files_in_the_buffer_do_not_stop_delivery(
    sink: FakeSink, clock: Clock, tmp_path: Path
) -> None:
    (tmp_path / "notes.lp").write_text("not mine")
    (tmp_path / "000000000000-2.lp").write_bytes(b"\xff\xfe")
    (tmp_path / "000000000001-2.lp").write_text("m v=1i 1\nbroken line\nm v=2i 2\n")
    out = writer(sink, tmp_path, clock)
    out.flush()
    assert out.dropped_points == 2
    assert [p.fields["v"] for p in sink.points] == [1, 2]


@pytest.mark.parametrize(
    "option",
    ["max_bytes", "batch_size", "flush_interval_s", "backoff_initial_s", "backoff_max_s"],
)
def test_non_positive_settings_are_refused(
    sink: FakeSink, clock: Clock, tmp_path: Path, option: str
) -> None:
    with pytest.raises(ConfigError, match=option):
        writer(sink, tmp_path, clock, **{option: 0})


def test_a_buffer_dir_that_is_a_file_is_refused(
    sink: FakeSink, clock: Clock, tmp_path: Path
) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="buffer_dir"):
        writer(sink, tmp_path / "file", clock)


TABLE = TableSchema("m", ("n",), {"v": int, "u": Unsigned, "s": str})


def lines(start: int, count: int) -> Lines:
    return Lines(tuple(rows_of(points(start, count))), (TABLE,))


def test_lines_are_joined_into_batches_and_the_rest_sent_on_the_interval(
    sink: FakeSink, clock: Clock, out: BufferedWriter
) -> None:
    for start in range(0, 24, 4):
        out.write_lines(lines(start, 4))
    assert [text.points for text in sink.texts] == [12, 12]
    assert sink.texts[0].body == encode(points(0, 12)).encode()
    assert sink.texts[0].tables == (TABLE,)
    out.write_lines(lines(24, 3))
    out.poll()
    assert len(sink.texts) == 2
    clock.now += 5
    out.poll()
    assert [text.points for text in sink.texts] == [12, 12, 3]
    assert sink.points == points(0, 27)


def test_lines_spilled_in_an_outage_survive_a_restart_in_order(
    sink: FakeSink, clock: Clock, tmp_path: Path
) -> None:
    first = writer(sink, tmp_path, clock)
    sink.down = True
    first.write(points(0, 10))
    for start in range(10, 22, 4):
        first.write_lines(lines(start, 4))
    first.flush()  # stopping: the partial batch of lines goes to disk too
    assert first.backlog_points == 22
    spilled = sorted(tmp_path.glob("*.lp"))
    assert spilled[1].read_bytes() == encode(points(10, 12)).encode()
    del first
    second = writer(sink, tmp_path, clock)
    assert second.backlog_points == 22
    second.write_lines(lines(22, 10))  # queued behind the backlog
    sink.down = False
    second.poll()
    assert sink.points == points(0, 32)
    assert second.dropped_points == 0
    assert list(tmp_path.iterdir()) == []
