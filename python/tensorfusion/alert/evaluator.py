"""The alert rule evaluator: runs each rule on its interval against the metrics sink,
counts consecutive hits per instance and hands firing and resolved alerts to a sender.

Time is passed in (`tick(now_ns)`), never read, so schedules are testable and a clock that
jumps is handled in one place: each rule's windows are contiguous and never overlap. After
a long gap the next window spans the whole gap (nothing unseen); when the clock steps back,
the rule waits until time passes its last evaluation again (nothing seen twice).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from tensorfusion.alert.model import Alert
from tensorfusion.alert.template import Template, compile_template
from tensorfusion.alert.tracker import RuleTracker
from tensorfusion.api.duration import parse_duration
from tensorfusion.api.dynamic_config import AlertRule
from tensorfusion.errors import TensorFusionError

# A firing alert stays valid in Alertmanager for this many intervals without a re-send, so
# alerts of a dead evaluator resolve on their own (Prometheus uses the same margin).
_VALID_INTERVALS: Final = 4
_MIN_VALID_NS: Final = 60 * 1_000_000_000

log = logging.getLogger(__name__)


class QuerySink(Protocol):
    """The part of a metrics sink the evaluator uses."""

    def query(self, sql: str) -> list[dict[str, Any]]: ...

    def time_window(self, start_ns: int, end_ns: int) -> str: ...


class AlertSender(Protocol):
    """Takes alerts for delivery; called every tick (with no alerts too) so it can retry."""

    def send(self, alerts: Sequence[Alert]) -> bool: ...


@dataclass(frozen=True)
class RuleHealth:
    healthy: bool
    error: str = ""
    last_evaluation_ns: int | None = None


@dataclass(frozen=True)
class RuleTemplates:
    """A rule's four templates, compiled (a malformed one raises ConfigError naming it)."""

    query: Template
    summary: Template
    description: Template
    instance: Template

    @classmethod
    def of(cls, rule: AlertRule) -> RuleTemplates:
        where = f"alertRules[{rule.name!r}]"
        return cls(
            compile_template(rule.query, f"{where}.query"),
            compile_template(rule.summary, f"{where}.summary"),
            compile_template(rule.description, f"{where}.description"),
            compile_template(rule.alert_target_instance, f"{where}.alertTargetInstance"),
        )


@dataclass
class _RuleRun:
    rule: AlertRule
    interval_ns: int
    templates: RuleTemplates | None
    tracker: RuleTracker
    health: RuleHealth
    last_attempt_ns: int | None = None
    window_end_ns: int | None = None

    def due(self, now_ns: int) -> bool:
        return self.last_attempt_ns is None or now_ns - self.last_attempt_ns >= self.interval_ns


@dataclass
class Evaluator:
    sink: QuerySink
    sender: AlertSender | None = None
    generator_url: str = ""
    _runs: dict[str, _RuleRun] = field(default_factory=dict)
    _retired: list[RuleTracker] = field(default_factory=list)

    def set_rules(self, rules: Sequence[AlertRule]) -> None:
        """Install a rule set. An unchanged rule keeps its state; a changed or removed one
        has its firing alerts resolved at the next tick (a changed rule starts counting
        again but continues its window, so no data is skipped or seen twice)."""
        runs: dict[str, _RuleRun] = {}
        for rule in rules:
            old = self._runs.pop(rule.name, None)
            if old is not None and old.rule == rule:
                runs[rule.name] = old
                continue
            run = self._new_run(rule)
            if old is not None:
                self._retired.append(old.tracker)
                run.last_attempt_ns, run.window_end_ns = old.last_attempt_ns, old.window_end_ns
            runs[rule.name] = run
        self._retired += [run.tracker for run in self._runs.values()]
        self._runs = runs

    def health(self) -> dict[str, RuleHealth]:
        return {name: run.health for name, run in self._runs.items()}

    def next_due_ns(self) -> int | None:
        """When the earliest rule is due (None without evaluable rules): a driver's sleep."""
        times = [
            0 if run.last_attempt_ns is None else run.last_attempt_ns + run.interval_ns
            for run in self._runs.values()
            if run.templates is not None
        ]
        return min(times, default=None)

    def tick(self, now_ns: int) -> list[Alert]:
        """Evaluate the rules due at `now_ns`; returns (and sends) the alerts produced."""
        alerts = [alert for tracker in self._retired for alert in tracker.resolve(now_ns)]
        self._retired.clear()
        for run in self._runs.values():
            if run.templates is not None and run.due(now_ns):
                alerts += self._evaluate(run, run.templates, now_ns)
        if self.sender is not None:
            self.sender.send(alerts)
        return alerts

    def _new_run(self, rule: AlertRule) -> _RuleRun:
        tracker = RuleTracker(rule.name, rule.severity, rule.consecutive_count, self.generator_url)
        interval_ns = int(parse_duration(rule.evaluation_interval).total_seconds() * 1e9)
        try:
            templates: RuleTemplates | None = RuleTemplates.of(rule)
            health = RuleHealth(healthy=True)
        except TensorFusionError as exc:
            log.error("alert rule %r disabled: %s", rule.name, exc)
            templates, health = None, RuleHealth(healthy=False, error=str(exc))
        return _RuleRun(rule, max(interval_ns, 1), templates, tracker, health)

    def _evaluate(self, run: _RuleRun, templates: RuleTemplates, now_ns: int) -> list[Alert]:
        rule = run.rule
        run.last_attempt_ns = now_ns
        start_ns = run.window_end_ns if run.window_end_ns is not None else now_ns - run.interval_ns
        constants: dict[str, object] = {
            "Name": rule.name,
            "Threshold": rule.threshold,
            "Severity": rule.severity,
        }
        try:
            conditions = self.sink.time_window(start_ns, now_ns)
            rows = self.sink.query(templates.query.render({**constants, "Conditions": conditions}))
        except TensorFusionError as exc:
            return self._failed(run, now_ns, str(exc))
        except Exception as exc:  # a sink bug must not stop the other rules
            log.exception("alert rule %r: unexpected error", rule.name)
            return self._failed(run, now_ns, f"{type(exc).__name__}: {exc}")
        seen: dict[str, dict[str, str]] = {}
        for row in rows:
            values = {**row, **constants}
            instance = templates.instance.render(values) or rule.name
            seen.setdefault(
                instance,
                {
                    "summary": templates.summary.render(values),
                    "description": templates.description.render(values),
                    "runbook_url": rule.runbook_url,
                },
            )
        run.window_end_ns = now_ns
        run.health = RuleHealth(healthy=True, last_evaluation_ns=now_ns)
        valid_ns = max(_VALID_INTERVALS * run.interval_ns, _MIN_VALID_NS)
        return run.tracker.observe(seen, now_ns, valid_ns)

    @staticmethod
    def _failed(run: _RuleRun, now_ns: int, error: str) -> list[Alert]:
        # The window is not advanced: the next evaluation covers this one's data too.
        log.warning("alert rule %r failed: %s", run.rule.name, error)
        run.health = RuleHealth(healthy=False, error=error, last_evaluation_ns=now_ns)
        return []
