"""Maintenance windows: open at a cron match for maxDuration, read in UTC or in another zone,
several schedules together, overlapping windows and the window a next run may use, and a
schedule croniter cannot follow."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tensorfusion.errors import ConfigError
from tensorfusion.operator.nodepool.maintenance_window import CronWindow

TEN_MINUTES = timedelta(minutes=10)


def utc(hour: int, minute: int, second: int = 0, day: int = 1) -> datetime:
    return datetime(2026, 3, day, hour, minute, second, tzinfo=UTC)


@pytest.mark.parametrize(
    ("moment", "opening"),
    [
        (utc(1, 0, 59), None),  # a second before the match
        (utc(1, 1), utc(1, 1)),  # the match itself opens it
        (utc(1, 5, 30), utc(1, 1)),
        (utc(1, 10, 59), utc(1, 1)),
        (utc(1, 11), None),  # maxDuration after the opening: shut
        (utc(13, 0), None),
    ],
)
def test_a_daily_window_opens_at_its_match_and_lasts_max_duration(
    moment: datetime, opening: datetime | None
) -> None:
    window = CronWindow(["1 1 * * *"], TEN_MINUTES)
    assert window.opening(moment) == opening


def test_the_next_opening_is_the_next_match_after_the_moment() -> None:
    window = CronWindow(["1 1 * * *"], TEN_MINUTES)
    assert window.next_opening(utc(0, 30)) == utc(1, 1)
    assert window.next_opening(utc(1, 1)) == utc(1, 1, day=2)  # strictly after
    assert window.next_opening(utc(1, 11)) == utc(1, 1, day=2)


def test_schedules_are_read_in_the_configured_zone() -> None:
    # 02:00 in Tokyo is 17:00 UTC the day before.
    window = CronWindow(["0 2 * * *"], TEN_MINUTES, ZoneInfo("Asia/Tokyo"))
    assert window.next_opening(utc(12, 0)) == utc(17, 0)
    assert window.opening(utc(17, 5)) == utc(17, 0)
    assert window.opening(utc(2, 5)) is None  # 02:05 UTC is not 02:05 in Tokyo
    assert window.opening(utc(11, 0)) is None


def test_a_half_hour_zone_and_a_weekday_schedule() -> None:
    # Mondays 06:30 in Kolkata (UTC+05:30) is Monday 01:00 UTC; 2026-03-02 is a Monday.
    window = CronWindow(["30 6 * * mon"], TEN_MINUTES, ZoneInfo("Asia/Kolkata"))
    assert window.next_opening(utc(0, 0, day=1)) == utc(1, 0, day=2)
    assert window.opening(utc(1, 9, 59, day=2)) == utc(1, 0, day=2)
    assert window.opening(utc(1, 5, day=3)) is None  # Tuesday


def test_several_schedules_each_open_a_window() -> None:
    window = CronWindow(["0 1 * * *", "30 13 * * *"], TEN_MINUTES)
    assert window.opening(utc(1, 5)) == utc(1, 0)
    assert window.opening(utc(13, 35)) == utc(13, 30)
    assert window.opening(utc(7, 0)) is None
    assert window.next_opening(utc(1, 5)) == utc(13, 30)
    assert window.next_opening(utc(13, 35)) == utc(1, 0, day=2)


def test_where_windows_overlap_the_latest_opening_is_reported() -> None:
    window = CronWindow(["*/5 * * * *"], TEN_MINUTES)
    assert window.opening(utc(1, 7)) == utc(1, 5)  # the latest opening, not 01:00
    assert window.opening(utc(1, 4, 59)) == utc(1, 0)


@pytest.mark.parametrize(
    ("moment", "after", "found"),
    [
        (utc(1, 7), None, (utc(1, 7), utc(1, 5))),  # no earlier run: the window open now
        (utc(1, 10), utc(1, 10), (utc(1, 15), utc(1, 15))),  # a match AT the end is not after
        (utc(1, 12), utc(1, 10), (utc(1, 15), utc(1, 15))),  # 01:10's window is open, too old
        (utc(1, 17), utc(1, 10), (utc(1, 17), utc(1, 15))),  # opened after the end: open now
        (utc(1, 3), utc(1, 10), (utc(1, 15), utc(1, 15))),  # a moment before the end waits
    ],
)
def test_the_next_run_needs_a_window_that_opens_after_the_last_one_ended(
    moment: datetime, after: datetime | None, found: tuple[datetime, datetime]
) -> None:
    window = CronWindow(["*/5 * * * *"], TEN_MINUTES)
    assert window.open_from(moment, after) == found


def test_a_daily_window_after_a_run_is_the_next_days() -> None:
    window = CronWindow(["1 1 * * *"], TEN_MINUTES)
    assert window.open_from(utc(1, 11), utc(1, 11)) == (utc(1, 1, day=2), utc(1, 1, day=2))
    assert window.open_from(utc(0, 30), None) == (utc(1, 1), utc(1, 1))


@pytest.mark.parametrize("read", ["opening", "next_opening"])
def test_a_schedule_croniter_cannot_follow_names_its_place(read: str) -> None:
    # The model refuses such a schedule; one stored before it did must not crash a caller.
    window = CronWindow(["1 1 * * *", "0 0 30 2 *"], TEN_MINUTES)
    with pytest.raises(ConfigError) as error:
        getattr(window, read)(utc(1, 5))
    assert error.value.field == "maintenanceWindow.includes[1]"
    assert "'0 0 30 2 *'" in str(error.value)
