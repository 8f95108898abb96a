"""Maintenance windows of a node pool's rolling update: `maintenanceWindow.includes` holds
5-field cron schedules, read in the controller's time zone.

Upstream declares the window but never reads it, and says nothing of how long one lasts. Here
a window OPENS at every match of any of its schedules and LASTS the policy's `maxDuration`:
"1 1 * * *" with maxDuration 10m is open from 01:01 to 01:11 (excluded) each day. Where
matches come closer together than that, windows overlap; a run of work that started in one
keeps that window to its end (a later match does not lengthen it), and the next run waits for
a window that opens after that end (`open_from`), so maxDuration always ends a run."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

from croniter import CroniterError, croniter

from tensorfusion.errors import ConfigError

FIELD = "maintenanceWindow.includes"


@dataclass(frozen=True)
class CronWindow:
    includes: Sequence[str]
    """Cron schedules, each already validated by the API model (`api/cron.py`)."""
    length: timedelta
    zone: tzinfo = UTC

    def opening(self, moment: datetime) -> datetime | None:
        """When the latest window open at `moment` opened (UTC); None while every window is
        shut."""
        # Matches are whole minutes: the minute `moment` is in matches when it is an opening.
        minute = moment.astimezone(self.zone).replace(second=0, microsecond=0)
        latest = max(self._each(lambda expr: _match_or_prev(expr, minute))).astimezone(UTC)
        return latest if moment < latest + self.length else None

    def next_opening(self, moment: datetime) -> datetime:
        """The first opening after `moment` (UTC)."""
        local = moment.astimezone(self.zone)
        return min(self._each(lambda expr: croniter(expr, local).get_next(datetime))).astimezone(
            UTC
        )

    def open_from(self, moment: datetime, after: datetime | None) -> tuple[datetime, datetime]:
        """The first moment from `moment` on at which a window is open that opened after
        `after` (the end of the window the last run used; None: any window), and when that
        window opened."""
        opened = self.opening(moment)
        if opened is not None and (after is None or opened > after):
            return moment, opened
        opening = self.next_opening(moment if after is None else max(moment, after))
        return opening, opening

    def _each(self, read: Callable[[str], datetime]) -> list[datetime]:
        """`read` of each schedule; ConfigError naming the schedule croniter cannot follow."""
        found = []
        for index, expr in enumerate(self.includes):
            try:
                found.append(read(expr))
            except CroniterError as exc:
                # A schedule croniter cannot follow (one stored before the model refused it)
                # must fail this pool's window, not every pass of the reconciler.
                raise ConfigError(f"{FIELD}[{index}]", f"{expr!r}: {exc}") from exc
        return found


def _match_or_prev(expr: str, minute: datetime) -> datetime:
    return minute if croniter.match(expr, minute) else croniter(expr, minute).get_prev(datetime)
