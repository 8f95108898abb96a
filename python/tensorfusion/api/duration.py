"""Durations as users write them in manifests and values files: Go's `time.ParseDuration`
units ("1h30m", "500ms", "5m") plus days and weeks ("30d", "2w"), which retention settings
such as `metricsTTL` use."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from tensorfusion.api.checked_text import CheckedText

_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1,
    "m": 60,
    "h": 3600,
    "d": 86400,
    "w": 604800,
}
_TERM = r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d|w)"
DURATION_PATTERN = rf"^({_TERM})+$"
_DURATION = re.compile(DURATION_PATTERN)
_TERMS = re.compile(_TERM)


def parse_duration(text: str) -> timedelta:
    """Parse "1h30m" and friends; "0" alone is accepted as zero like Go does."""
    if text == "0":
        return timedelta(0)
    if not _DURATION.match(text):
        raise ValueError(
            f"{text!r} is not a duration (expected a number with a unit: "
            "ns, us, ms, s, m, h, d or w, e.g. '15s', '5m', '1h30m', '30d')"
        )
    return timedelta(seconds=sum(float(n) * _UNIT_SECONDS[u] for n, u in _TERMS.findall(text)))


Duration = Annotated[
    str, CheckedText(parse_duration, "duration", {"type": "string", "pattern": DURATION_PATTERN})
]
"""A string field holding a duration such as "5m" (validated, kept as written)."""
