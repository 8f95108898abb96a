"""Metrics and alerts of a control plane: the sink (embedded SQLite in the state dir, or
GreptimeDB), the buffered writer in front of it, the agent's recording loop (every replica)
and the leader's (allocation tables and alert evaluation: only the leader, so alerts are
not sent twice)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tensorfusion.agent.usage_recorder import GPU_USAGE, NVML_ONLY_FIELDS
from tensorfusion.alert.alertmanager import AlertmanagerClient
from tensorfusion.alert.builtin_rules import default_dynamic_config
from tensorfusion.alert.evaluator import Evaluator
from tensorfusion.alert.rule_loader import RuleSource
from tensorfusion.api.dynamic_config import DynamicConfig
from tensorfusion.api.helm_values import GreptimeValues
from tensorfusion.errors import ConfigError, SinkUnavailable
from tensorfusion.metrics.buffered_writer import BufferedWriter
from tensorfusion.metrics.embedded_sink import EmbeddedSink
from tensorfusion.metrics.greptime_sink import GreptimeSink
from tensorfusion.metrics.point import Point
from tensorfusion.metrics.sink import Lines, MetricsSink

log = logging.getLogger(__name__)

PointSource = Callable[[int], Sequence[Point]]
"""What a recorder produces at a time (ns since the epoch)."""
LineSource = Callable[[int], Iterable[Lines]]
"""What a recorder that formats its rows natively produces at a time: batches of lines."""


@dataclass(frozen=True)
class ObservabilityConfig:
    dynamic_config: Path | None = None
    """metricsTTL, metricsFormat and alertRules (`-dynamic-config`); default: the built-in
    rules, 30 days of metrics."""
    alert_manager_addr: str | None = None
    """Where alerts go (`-alert-manager-addr`); alerts are evaluated only when it is set."""
    greptime: GreptimeValues | None = None
    """Write to this GreptimeDB instead of the embedded store."""
    interval_s: float = 5.0
    """How often the recorders sample."""


def checked_format(config: DynamicConfig, source: str) -> DynamicConfig:
    """Metrics are written as influx line protocol, the format GreptimeDB ingests and the
    alert rules query; the other formats upstream names are refused rather than ignored."""
    if config.metrics_format != "influx":
        raise ConfigError(
            f"{source}: metricsFormat",
            f"{config.metrics_format!r} is not supported: metrics are written as influx line "
            "protocol (set metricsFormat: influx, or leave it out)",
        )
    return config


class Observability:
    """Owns the sink; `run_agent` and `run_leader` are the bodies of two threads."""

    def __init__(self, config: ObservabilityConfig, state_root: Path) -> None:
        self.config = config
        if config.interval_s <= 0:
            raise ConfigError("metrics interval", f"must be positive, got {config.interval_s}")
        self.rules = RuleSource(config.dynamic_config) if config.dynamic_config else None
        source = str(config.dynamic_config or "the default dynamic config")
        dynamic = checked_format(
            self.rules.config if self.rules else default_dynamic_config(), source
        )
        # Everything that can refuse the configuration comes before the sink is opened.
        sender = (
            AlertmanagerClient(config.alert_manager_addr) if config.alert_manager_addr else None
        )
        self.sink: MetricsSink = (
            GreptimeSink(config.greptime)
            if config.greptime is not None
            else EmbeddedSink(state_root / "metrics.db")
        )
        try:
            if isinstance(self.sink, EmbeddedSink):
                # The built-in rules read NVML's columns too; on a host without NVML they
                # exist empty, so those rules find nothing rather than fail.
                self.sink.declare(GPU_USAGE, NVML_ONLY_FIELDS)
            self._ttl: str | None = dynamic.metrics_ttl
            self._apply_ttl()
            self.writer = BufferedWriter(
                self.sink, state_root / "metrics-buffer", flush_interval_s=config.interval_s
            )
        except BaseException:
            self.sink.close()
            raise
        self.evaluator: Evaluator | None = None
        if sender is not None:
            self.evaluator = Evaluator(self.sink, sender)
            self.evaluator.set_rules(dynamic.alert_rules)

    def _apply_ttl(self) -> None:
        """Sets metricsTTL on the sink once it can be reached: an outage at start-up (GreptimeDB
        not up yet) delays the setting, as it delays writes, rather than stopping the process."""
        if self._ttl is None:
            return
        try:
            self.sink.set_ttl(self._ttl)
        except SinkUnavailable as exc:
            log.warning(
                "metricsTTL %s not applied yet (retried with the next sample): %s", self._ttl, exc
            )
            return
        self._ttl = None

    def record(self, source: PointSource) -> None:
        """One sample into the writer; a failing recorder is logged, never fatal."""
        self._record(lambda now_ns: self.writer.write(source(now_ns)))

    def record_lines(self, source: LineSource) -> None:
        """`record` for a source of encoded lines: each batch goes to the writer as it comes,
        so the rows are formatted while the writer sends."""

        def write(now_ns: int) -> None:
            for lines in source(now_ns):
                self.writer.write_lines(lines)

        self._record(write)

    def _record(self, write: Callable[[int], None]) -> None:
        self._apply_ttl()
        try:
            write(time.time_ns())
            self.writer.poll()
        except Exception as exc:
            log.warning("metrics not recorded: %r", exc, exc_info=log.isEnabledFor(logging.DEBUG))

    def run_agent(self, stop: threading.Event, source: PointSource) -> None:
        while not stop.wait(self.config.interval_s):
            self.record(source)

    def run_leader(
        self, stop: threading.Event, leading: threading.Event, source: LineSource
    ) -> None:
        """While leading: record the allocation tables and evaluate the rules that are due."""
        next_record = 0.0
        while not stop.is_set():
            if not leading.wait(0.2):
                continue
            now = time.monotonic()
            if now >= next_record:
                self.record_lines(source)
                next_record = now + self.config.interval_s
            self._evaluate()
            stop.wait(min(1.0, self.config.interval_s))

    def _evaluate(self) -> None:
        if self.evaluator is None:
            return
        if self.rules is not None and self.rules.poll():
            try:
                config = checked_format(self.rules.config, str(self.rules.path))
            except ConfigError as exc:
                log.error("new dynamic config ignored, the rules in force stay: %s", exc)
            else:
                self.evaluator.set_rules(config.alert_rules)
        try:
            self.evaluator.tick(time.time_ns())
        except Exception as exc:  # one bad cycle must not end evaluation
            log.warning("alert evaluation failed: %s", exc)

    def close(self) -> None:
        try:
            self.writer.flush()
        except Exception as exc:
            log.warning("metrics kept in the buffer for the next start: %s", exc)
        self.sink.close()
