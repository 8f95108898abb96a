"""An alert as Alertmanager's v2 API takes it (`POST /api/v2/alerts`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

JOB = "tensor-fusion"


@dataclass(frozen=True)
class Alert:
    """One alert instance. `ends_at_ns` in the past (or now) means resolved; a firing alert
    carries an end in the future so that Alertmanager resolves it on its own if the evaluator
    stops sending."""

    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at_ns: int
    ends_at_ns: int
    generator_url: str = ""
    resolved: bool = field(default=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "labels": self.labels,
            "annotations": self.annotations,
            "startsAt": rfc3339(self.starts_at_ns),
            "endsAt": rfc3339(self.ends_at_ns),
        }
        # Alertmanager validates generatorURL as a URI, so an empty one is left out.
        if self.generator_url:
            body["generatorURL"] = self.generator_url
        return body


def rfc3339(ns: int) -> str:
    """UTC time with millisecond precision, the form Alertmanager prints back."""
    seconds, rest = divmod(ns, 1_000_000_000)
    moment = datetime.fromtimestamp(seconds, UTC).replace(microsecond=rest // 1000)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
