"""Batches points for a sink and rides out its outages on disk.

Points collect in memory until `batch_size` of them are waiting or `flush_interval_s` has
passed since the last flush; so do batches of rows in columns (`Lines`), which are joined into
batches of at least `batch_size` rows and handed on as they are. A batch the sink cannot take
(`SinkUnavailable`) is written to `buffer_dir` as one line-protocol file (columns formatted
natively) named by sequence number, and so is every later batch while older ones
wait, so delivery order is arrival order. Waiting batches are retried with
exponential backoff; `flush()` retries at once. The directory is read back on start, so a
restart in the middle of an outage loses nothing. Only when the files would exceed
`max_bytes` are the oldest batches deleted; their points are counted in `dropped_points`.

Nothing here starts a thread: the owner calls `poll()` from its loop (and `flush()` before
stopping); the clock is injectable so tests never sleep.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from tensorfusion.errors import ConfigError, SinkUnavailable, TensorFusionError
from tensorfusion.metrics.line_protocol import encode, parse
from tensorfusion.metrics.point import Point
from tensorfusion.metrics.sink import Lines, MetricsSink, joined

LOG = logging.getLogger("tensorfusion.metrics.buffer")
SUFFIX = ".lp"


@dataclass(frozen=True, slots=True)
class _Spilled:
    """A batch waiting on disk; the name carries order and size: `<seq>-<points>.lp`."""

    path: Path
    seq: int
    points: int
    size: int

    @staticmethod
    def name(seq: int, points: int) -> str:
        return f"{seq:012d}-{points}{SUFFIX}"


def _read_dir(buffer_dir: Path) -> list[_Spilled]:
    spilled = []
    for path in buffer_dir.glob(f"*{SUFFIX}"):
        seq, _, points = path.stem.partition("-")
        if not (seq.isdigit() and points.isdigit()):
            LOG.warning("ignoring %s: not a metrics buffer file", path)
            continue
        spilled.append(_Spilled(path, int(seq), int(points), path.stat().st_size))
    return sorted(spilled, key=lambda batch: batch.seq)


def _positive(name: str, value: float) -> None:
    if not value > 0:
        raise ConfigError(name, f"must be positive, got {value}")


class BufferedWriter:
    def __init__(
        self,
        sink: MetricsSink,
        buffer_dir: str | os.PathLike[str],
        max_bytes: int = 256 * 1024 * 1024,
        batch_size: int = 5000,
        flush_interval_s: float = 5.0,
        *,
        backoff_initial_s: float = 1.0,
        backoff_max_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        for name, value in (
            ("max_bytes", max_bytes),
            ("batch_size", batch_size),
            ("flush_interval_s", flush_interval_s),
            ("backoff_initial_s", backoff_initial_s),
            ("backoff_max_s", backoff_max_s),
        ):
            _positive(name, value)
        self._sink = sink
        self._dir = Path(buffer_dir)
        self._max_bytes = max_bytes
        self._batch_size = batch_size
        self._flush_interval_s = flush_interval_s
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._clock = clock
        self._lock = threading.Lock()
        self._pending: list[Point] = []
        self._pending_lines: list[Lines] = []
        self._pending_line_count = 0
        self._last_flush = clock()
        self._backoff_s = 0.0
        self._retry_at = clock()  # a backlog read back on start is retried at once
        self.dropped_points = 0
        try:
            self._dir.mkdir(parents=True, exist_ok=True)
            self._spilled = _read_dir(self._dir)
        except OSError as error:
            raise ConfigError("buffer_dir", f"{self._dir}: {error.strerror}") from None
        self._backlog_bytes = sum(batch.size for batch in self._spilled)
        self._next_seq = self._spilled[-1].seq + 1 if self._spilled else 0

    @property
    def backlog_points(self) -> int:
        """Points waiting on disk for the sink."""
        return sum(batch.points for batch in self._spilled)

    @property
    def backlog_bytes(self) -> int:
        return self._backlog_bytes

    def write(self, points: Iterable[Point]) -> None:
        """Queue points; full batches go to the sink (or the disk buffer) right away."""
        with self._lock:
            self._pending.extend(points)
            while len(self._pending) >= self._batch_size:
                batch = self._pending[: self._batch_size]
                del self._pending[: self._batch_size]
                self._deliver(batch)

    def write_lines(self, lines: Lines) -> None:
        """Queue rows in columns; once `batch_size` rows wait, they go to the sink (or the
        disk buffer) as one batch."""
        with self._lock:
            self._pending_lines.append(lines)
            self._pending_line_count += lines.points
            if self._pending_line_count >= self._batch_size:
                self._deliver_lines()

    def poll(self) -> None:
        """Flush a partial batch whose interval is up and retry the backlog when due."""
        with self._lock:
            now = self._clock()
            waiting = self._pending or self._pending_lines
            if waiting and now - self._last_flush >= self._flush_interval_s:
                self._flush_pending()
            if self._spilled and now >= self._retry_at:
                self._drain()

    def flush(self) -> None:
        """Send everything now, backlog first, ignoring the backoff; what the sink cannot take
        stays on disk."""
        with self._lock:
            self._drain()
            self._flush_pending()

    # --- internals (called with the lock held) ---------------------------------------------

    def _flush_pending(self) -> None:
        self._last_flush = self._clock()
        if self._pending:
            batch, self._pending = self._pending, []
            self._deliver(batch)
        if self._pending_lines:
            self._deliver_lines()

    def _deliver(self, batch: list[Point]) -> None:
        if not self._spilled and self._send(lambda: self._sink.write(batch)):
            return
        self._spill(encode(batch).encode(), len(batch))

    def _deliver_lines(self) -> None:
        """Every waiting batch of lines, as one."""
        lines = joined(self._pending_lines)
        self._pending_lines, self._pending_line_count = [], 0
        if not self._spilled and self._send(lambda: self._sink.write_lines(lines)):
            return
        self._spill(lines.body, lines.points)

    def _send(self, write: Callable[[], None]) -> bool:
        """True when the sink is done with what `write` writes (stored, or refused for good)."""
        try:
            write()
        except SinkUnavailable as error:
            self._backoff_s = min(
                self._backoff_max_s, max(self._backoff_initial_s, 2 * self._backoff_s)
            )
            self._retry_at = self._clock() + self._backoff_s
            LOG.warning("metrics sink unavailable, retrying in %.0f s: %s", self._backoff_s, error)
            return False
        except TensorFusionError as error:
            # A refusal would repeat on every retry; the sink kept what it could store.
            LOG.error("metrics sink refused points: %s", error)
        self._backoff_s = 0.0
        return True

    def _drain(self) -> None:
        while self._spilled:
            oldest = self._spilled[0]
            try:
                text = oldest.path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as error:
                self._drop_oldest(f"{oldest.path.name} is unreadable ({error})")
                continue
            parsed = parse(text)
            if parsed.problems:
                line, problem = parsed.problems[0]
                LOG.error("metrics buffer %s line %d: %s", oldest.path.name, line, problem)
            # Read back as points, whether spilled as points or as lines: a backlog is what an
            # outage leaves, rare enough that parsing it costs nothing that matters.
            if not self._send(partial(self._sink.write, parsed.points)):
                return
            self._remove_oldest()

    def _spill(self, data: bytes, points: int) -> None:
        """A batch of `points` points, encoded as `data`, onto the disk buffer."""
        if len(data) > self._max_bytes:
            self.dropped_points += points
            LOG.error(
                "metrics batch of %d points (%d bytes) exceeds the buffer (%d bytes): dropped",
                points,
                len(data),
                self._max_bytes,
            )
            return
        while self._spilled and self._backlog_bytes + len(data) > self._max_bytes:
            self._drop_oldest("the buffer is full")
        path = self._dir / _Spilled.name(self._next_seq, points)
        temporary = path.with_suffix(".tmp")
        try:
            temporary.write_bytes(data)
            temporary.replace(path)  # a crash never leaves a half-written batch behind
        except OSError as error:
            self.dropped_points += points
            LOG.error("metrics buffer %s: %s; %d points dropped", path, error, points)
            return
        self._spilled.append(_Spilled(path, self._next_seq, points, len(data)))
        self._backlog_bytes += len(data)
        self._next_seq += 1

    def _drop_oldest(self, reason: str) -> None:
        points = self._spilled[0].points
        self.dropped_points += points
        LOG.error("metrics buffer: %s, dropping the %d oldest points", reason, points)
        self._remove_oldest()

    def _remove_oldest(self) -> None:
        oldest = self._spilled.pop(0)
        self._backlog_bytes -= oldest.size
        oldest.path.unlink(missing_ok=True)
