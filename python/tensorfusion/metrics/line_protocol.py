"""Influx line protocol: `Point`s to text and back.

One line per point: `measurement[,tag=value...] field=value[,field=value...] timestamp`.
Escaping follows the influx spec: the measurement escapes commas and spaces; tag keys, tag
values and field keys escape commas, equals signs and spaces; string field values are
double-quoted with `"` and `\\` escaped. A backslash in a name is written doubled, which the
spec reads back as one backslash (without it a name ending in `\\` would swallow the next
separator). Newlines are not allowed anywhere in a line (the spec does not support them in tag
or field values), so a line is exactly the text between two `\\n`.

The parser keeps every good line and reports each bad one as `(line number, message)`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

from numpy.typing import NDArray

from tensorfusion import _native
from tensorfusion.errors import ConfigError
from tensorfusion.metrics.point import (
    INT64_MAX,
    INT64_MIN,
    FieldValue,
    Point,
    Unsigned,
    check_time_ns,
)
from tensorfusion.metrics.rows import Column, Rows

Precision = Literal["ns", "us", "ms", "s"]
NS_PER_UNIT: Mapping[str, int] = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000}

_MEASUREMENT_ESCAPES = str.maketrans({",": "\\,", " ": "\\ ", "\\": "\\\\"})
_KEY_ESCAPES = str.maketrans({",": "\\,", "=": "\\=", " ": "\\ ", "\\": "\\\\"})
_STRING_ESCAPES = str.maketrans({'"': '\\"', "\\": "\\\\"})

TRUE_WORDS = frozenset({"t", "T", "true", "True", "TRUE"})
FALSE_WORDS = frozenset({"f", "F", "false", "False", "FALSE"})


def ns_per_unit(precision: str) -> int:
    """Nanoseconds in one timestamp unit; an unknown precision is a `ConfigError`."""
    try:
        return NS_PER_UNIT[precision]
    except (KeyError, TypeError):
        raise ConfigError("precision", f"must be one of ns, us, ms, s, got {precision!r}") from None


# Names and tag values repeat across points (same measurement, same node), so escaping each
# distinct string once pays; the bound keeps arbitrary tag values from growing it forever.
@lru_cache(maxsize=8192)
def _measurement(name: str) -> str:
    return name.translate(_MEASUREMENT_ESCAPES)


@lru_cache(maxsize=8192)
def _key(name: str) -> str:
    return name.translate(_KEY_ESCAPES)


def _field_value(value: FieldValue) -> str:
    # Point admits only these exact types, so isinstance never meets a subclass here.
    if isinstance(value, float):
        return repr(value)  # the shortest text that reads back as the same double
    if isinstance(value, bool):  # before int: bool is an int
        return "t" if value else "f"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, str):
        return f'"{value.translate(_STRING_ESCAPES)}"'
    return f"{value.value}u"


def _line(point: Point, unit_ns: int) -> str:
    head = _measurement(point.measurement)
    if point.tags:
        tags = point.tags
        head += "".join(f",{_key(k)}={_key(tags[k])}" for k in sorted(tags))
    fields = ",".join(f"{_key(k)}={_field_value(v)}" for k, v in point.fields.items())
    stamp = point.time_ns // unit_ns
    if stamp * unit_ns < INT64_MIN:  # flooring went below what a reader can hold in ns
        raise ConfigError(
            f"{point.measurement}.time_ns",
            f"{point.time_ns} floored to {stamp} units of {unit_ns} ns is before the "
            "signed 64-bit nanosecond range",
        )
    return f"{head} {fields} {stamp}"


def encode_point(point: Point, precision: Precision = "ns") -> str:
    """One line, without its newline; the timestamp is floored to `precision`."""
    return _line(point, ns_per_unit(precision))


def encode(points: Iterable[Point], precision: Precision = "ns") -> str:
    """Every point on its own line, each line ending in a newline ("" for no points)."""
    unit_ns = ns_per_unit(precision)
    return "".join(f"{_line(point, unit_ns)}\n" for point in points)


# --- parsing -------------------------------------------------------------------------------------

_MEASUREMENT_RE = re.compile(r"(?:\\.|[^, \\])+")
_TAG_RE = re.compile(r"((?:\\.|[^,= \\])+)=((?:\\.|[^,= \\])+)")
_FIELD_RE = re.compile(r'((?:\\.|[^,= \\])+)=("(?:\\.|[^"\\])*"|[^, "]+)')
_FLOAT_RE = re.compile(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_INT_RE = re.compile(r"-?[0-9]+")
_UINT_RE = re.compile(r"[0-9]+")


@dataclass(frozen=True, slots=True)
class ParseResult:
    """The points of every good line, and `(line number, message)` for every bad one."""

    points: list[Point] = field(default_factory=list)
    problems: list[tuple[int, str]] = field(default_factory=list)


class _LineError(Exception):
    """A malformed line; the message says what and at which column (1-based)."""


def _unescaper(specials: str) -> re.Pattern[str]:
    # A backslash escapes only the element's special characters and itself; before any other
    # character it is a literal backslash, as the spec allows.
    return re.compile("\\\\([" + re.escape(specials) + "])")


_NAME_UNESCAPE = _unescaper(", \\")
_KEY_UNESCAPE = _unescaper(",= \\")
_STRING_UNESCAPE = _unescaper('"\\')


def _unescape(text: str, pattern: re.Pattern[str]) -> str:
    return pattern.sub(r"\1", text) if "\\" in text else text


def _parse_value(raw: str, column: int) -> FieldValue:
    if raw[0] == '"':
        return _unescape(raw[1:-1], _STRING_UNESCAPE)
    suffix = raw[-1]
    if suffix == "i" and _INT_RE.fullmatch(raw, 0, len(raw) - 1):
        value = int(raw[:-1])
        if not INT64_MIN <= value <= INT64_MAX:
            raise _LineError(f"integer out of the signed 64-bit range at column {column}")
        return value
    if suffix == "u" and _UINT_RE.fullmatch(raw, 0, len(raw) - 1):
        number = int(raw[:-1])
        if number >= 2**64:
            raise _LineError(f"unsigned integer out of the 64-bit range at column {column}")
        return Unsigned(number)
    if raw in TRUE_WORDS:
        return True
    if raw in FALSE_WORDS:
        return False
    if _FLOAT_RE.fullmatch(raw):
        value_f = float(raw)
        if value_f in (float("inf"), float("-inf")):
            raise _LineError(f"float out of range at column {column}: {raw!r}")
        return value_f
    raise _LineError(f"invalid field value at column {column}: {raw!r}")


def _key_value(
    pattern: re.Pattern[str], line: str, pos: int, what: str, seen: Mapping[str, object]
) -> tuple[str, re.Match[str]]:
    """The `key=value` of a tag or field starting at `pos`, its key not already in `seen`."""
    match = pattern.match(line, pos)
    if match is None:
        raise _LineError(f"invalid {what} at column {pos + 1}: expected key=value")
    key = _unescape(match[1], _KEY_UNESCAPE)
    if key in seen:
        raise _LineError(f"duplicate {what} key {key!r} at column {pos + 1}")
    return key, match


def _parse_tags(line: str, pos: int, tags: dict[str, str]) -> int:
    while line.startswith(",", pos):
        key, match = _key_value(_TAG_RE, line, pos + 1, "tag", tags)
        tags[key] = _unescape(match[2], _KEY_UNESCAPE)
        pos = match.end()
    return pos


def _parse_fields(line: str, pos: int, fields: dict[str, FieldValue]) -> int:
    while True:
        key, match = _key_value(_FIELD_RE, line, pos, "field", fields)
        fields[key] = _parse_value(match[2], match.start(2) + 1)
        pos = match.end()
        if not line.startswith(",", pos):
            return pos
        pos += 1


def _parse_time(line: str, pos: int, unit_ns: int, default_time_ns: int | None) -> int:
    if pos == len(line):
        if default_time_ns is None:
            raise _LineError("missing timestamp")
        return default_time_ns
    if line[pos] != " ":
        raise _LineError(f"unexpected {line[pos]!r} at column {pos + 1}")
    raw = line[pos + 1 :]
    if not _INT_RE.fullmatch(raw):
        raise _LineError(f"invalid timestamp at column {pos + 2}: {raw!r}")
    time_ns = int(raw) * unit_ns
    if not INT64_MIN <= time_ns <= INT64_MAX:
        raise _LineError(f"timestamp {raw} is out of the signed 64-bit nanosecond range")
    return time_ns


def _parse_line(line: str, unit_ns: int, default_time_ns: int | None) -> Point:
    match = _MEASUREMENT_RE.match(line)
    if match is None:
        raise _LineError("missing measurement at column 1")
    tags: dict[str, str] = {}
    pos = _parse_tags(line, match.end(), tags)
    if not line.startswith(" ", pos):
        raise _LineError(f"expected a space before the fields at column {pos + 1}")
    fields: dict[str, FieldValue] = {}
    pos = _parse_fields(line, pos + 1, fields)
    time_ns = _parse_time(line, pos, unit_ns, default_time_ns)
    return Point(_unescape(match[0], _NAME_UNESCAPE), tags, fields, time_ns)


def parse(
    text: str, precision: Precision = "ns", default_time_ns: int | None = None
) -> ParseResult:
    """Points from line-protocol text; timestamps are read in `precision` units.

    Blank lines and `#` comments are skipped; a line without a timestamp gets
    `default_time_ns` or, when that is None, is reported as a problem. A trailing `\\r` (CRLF
    text) is ignored.
    """
    unit_ns = ns_per_unit(precision)
    if default_time_ns is not None:
        check_time_ns("default_time_ns", default_time_ns)
    result = ParseResult()
    for number, raw_line in enumerate(text.split("\n"), start=1):
        line = raw_line.removesuffix("\r")
        # Only a `#` in the first column starts a comment: a measurement may begin with a tab.
        if not line.strip(" \t") or line.startswith("#"):
            continue
        try:
            result.points.append(_parse_line(line, unit_ns, default_time_ns))
        # ConfigError: a well-formed line whose values a Point refuses (an empty name).
        except (_LineError, ConfigError) as error:
            result.problems.append((number, str(error)))
    return result


# --- columnar batches (native) -------------------------------------------------------------------


def encode_rows(batch: Rows, precision: Precision = "ns") -> str:
    """The text `encode` writes for the points of these rows, formatted natively with the
    interpreter released."""
    unit_ns = ns_per_unit(precision)
    tags = list(batch.tags.items())
    fields: list[tuple[str, str, NDArray[Any] | list[str]]] = [
        (key, column.kind, column.values) for key, column in batch.fields.items()
    ]
    return _native.encode_columns(batch.measurement, tags, fields, batch.times_ns, unit_ns)


def encode_columns(
    measurement: str,
    tag_columns: Mapping[str, Sequence[str] | NDArray[Any]],
    field_columns: Mapping[str, Column],
    times_ns: Sequence[int] | NDArray[Any],
    precision: Precision = "ns",
) -> str:
    """`encode_rows` of the rows these columns hold (`Rows.of` says what a column may be); a bad
    cell is a `ConfigError` naming column and row."""
    ns_per_unit(precision)  # a bad precision is refused before the columns are read
    return encode_rows(Rows.of(measurement, tag_columns, field_columns, times_ns), precision)
