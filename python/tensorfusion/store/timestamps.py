"""Object timestamps as Kubernetes writes them (creationTimestamp, lastTransitionTime):
RFC 3339 in UTC, to the second."""

from __future__ import annotations

from datetime import UTC, datetime


def rfc3339(moment: datetime) -> str:
    """An aware moment as Kubernetes writes it."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text: str) -> datetime:
    """What `rfc3339` wrote (or any ISO 8601 time with a zone), as an aware datetime."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def parse_rfc3339_or_none(text: str | None) -> datetime | None:
    """A recorded moment, or None when none is recorded or it cannot be read."""
    try:
        return parse_rfc3339(text) if text else None
    except ValueError:
        return None
