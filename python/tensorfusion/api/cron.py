"""Five-field cron expressions (minute hour day-of-month month day-of-week), as used by
maintenance windows, checked field by field so an error says which field is wrong, and
refused when they never match (such as "0 0 30 2 *"), since a window that never opens would
hold an update for ever."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from croniter import CroniterBadDateError, croniter

from tensorfusion.api.checked_text import CheckedText
from tensorfusion.api.names import is_decimal

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, {m: i + 1 for i, m in enumerate(_MONTHS)}),
    ("day of week", 0, 7, {d: i for i, d in enumerate(_DAYS)}),
)
_MACROS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}


def _value(token: str, name: str, low: int, high: int, names: dict[str, int]) -> int:
    number = int(token) if is_decimal(token) else names.get(token.lower())
    if number is None:
        raise ValueError(f"{name}: {token!r} is not a number")
    if not low <= number <= high:
        raise ValueError(f"{name}: {number} is outside {low}-{high}")
    return number


def check_cron(expr: str) -> None:
    """Raise ValueError naming the bad field if `expr` is not a valid cron schedule."""
    if expr.strip() in _MACROS:
        return
    parts = expr.split()
    if len(parts) != len(_FIELDS):
        raise ValueError(
            f"{expr!r} must have 5 fields (minute hour day-of-month month day-of-week), "
            f"got {len(parts)}"
        )
    for part, (name, low, high, names) in zip(parts, _FIELDS, strict=True):
        for item in part.split(","):
            body, _, step = item.partition("/")
            if step and (not is_decimal(step) or int(step) == 0):
                raise ValueError(f"{name}: step {step!r} must be a positive integer")
            if body == "*":
                continue
            start, dash, end = body.partition("-")
            first = _value(start, name, low, high, names)
            if dash and not end:
                raise ValueError(f"{name}: range {body!r} has no end")
            if end and _value(end, name, low, high, names) < first:
                raise ValueError(f"{name}: range {body!r} runs backwards")
    try:
        # The maintenance windows follow croniter, so it decides what matches.
        croniter(expr, datetime(2000, 1, 1, tzinfo=UTC)).get_next(datetime)
    except CroniterBadDateError:
        # Every field is in range, so only a day of month that none of the months has is left.
        raise ValueError(f"day of month and month: {expr!r} never matches any date") from None


CronSchedule = Annotated[str, CheckedText(check_cron, "cron", {"type": "string"})]
"""A string field holding a 5-field cron schedule such as "1 1 * * *"."""
