"""Per-rule alert state: how many evaluations in a row each instance has been seen, which
instances fire, and the alerts one evaluation produces (firing ones and resolutions)."""

from __future__ import annotations

from collections.abc import Container, Mapping
from dataclasses import dataclass, field

from tensorfusion.alert.model import JOB, Alert


@dataclass
class _Firing:
    starts_at_ns: int
    annotations: dict[str, str]


@dataclass
class RuleTracker:
    """State of one rule; `observe` is called once per successful evaluation."""

    name: str
    severity: str
    consecutive_count: int
    generator_url: str = ""
    streaks: dict[str, int] = field(default_factory=dict)
    firing: dict[str, _Firing] = field(default_factory=dict)

    def observe(
        self, seen: Mapping[str, dict[str, str]], now_ns: int, valid_for_ns: int
    ) -> list[Alert]:
        """`seen` maps each instance in this evaluation's result to its annotations. Returns
        every firing alert (Alertmanager wants them re-sent) and the resolutions."""
        alerts = self.resolve(now_ns, keep=seen.keys())
        for instance, texts in seen.items():
            streak = self.streaks.get(instance, 0) + 1
            self.streaks[instance] = streak
            if streak < self.consecutive_count:
                continue
            state = self.firing.setdefault(instance, _Firing(now_ns, texts))
            state.annotations = texts
            alerts.append(self._alert(instance, state, now_ns + valid_for_ns))
        return alerts

    def resolve(self, now_ns: int, keep: Container[str] = ()) -> list[Alert]:
        """Forget every instance not in `keep`; the firing ones among them resolve now."""
        gone = [instance for instance in self.streaks if instance not in keep]
        alerts = []
        for instance in gone:
            del self.streaks[instance]
            if (state := self.firing.pop(instance, None)) is not None:
                alerts.append(self._alert(instance, state, now_ns, resolved=True))
        return alerts

    def _alert(
        self, instance: str, state: _Firing, ends_at_ns: int, resolved: bool = False
    ) -> Alert:
        labels = {
            "alertname": self.name,
            "severity": self.severity,
            "job": JOB,
            "instance": instance,
        }
        return Alert(
            labels=labels,
            annotations=state.annotations,
            starts_at_ns=state.starts_at_ns,
            ends_at_ns=ends_at_ns,
            generator_url=self.generator_url,
            resolved=resolved,
        )
