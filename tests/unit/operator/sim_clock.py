"""A simulated clock for the reconcilers: one moment that tests move forward, read both as
the wall clock (`now`, for maintenance windows and periods) and as the work queue's monotonic
clock (`monotonic`), so that a requeue after N seconds comes due when the test advances N."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class SimClock:
    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
        self._start = start
        self._elapsed_s = 0.0

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self._elapsed_s)

    def monotonic(self) -> float:
        return self._elapsed_s

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock does not go back")
        self._elapsed_s += seconds

    def advance_to(self, moment: datetime) -> None:
        self.advance((moment - self.now()).total_seconds())

    def advance_past(self, moment: datetime) -> None:
        """Just past `moment` (a second on), unless already there: for moments a store
        stamped with the real clock, which runs on while a test's simulated one waits."""
        self.advance(max(0.0, (moment - self.now()).total_seconds() + 1))
