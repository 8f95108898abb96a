"""One metrics sample in the influx data model, checked once when it is built.

A `Point` that exists is always encodable: every name, tag value, field value and timestamp
was validated in `__post_init__`, so encoders never need to re-check and sinks never meet a
value the line protocol cannot carry.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from tensorfusion.errors import ConfigError

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1


@dataclass(frozen=True, slots=True)
class Unsigned:
    """An influx `u` field (unsigned 64-bit integer): `Unsigned(7)` is written `7u`."""

    value: int

    def __post_init__(self) -> None:
        if type(self.value) is not int:
            raise ConfigError("Unsigned.value", f"must be an int, got {type(self.value).__name__}")
        if not 0 <= self.value <= UINT64_MAX:
            raise ConfigError("Unsigned.value", f"must be in [0, 2**64), got {self.value}")


# int is written `i` (signed 64-bit), float as a float, bool `t`/`f`, str quoted.
FieldValue = int | float | bool | str | Unsigned


@dataclass(frozen=True, slots=True)
class Point:
    """A measurement (table) row: tags are indexed strings, fields the values, time in ns."""

    measurement: str
    tags: Mapping[str, str]
    fields: Mapping[str, FieldValue]  # at least one field
    time_ns: int  # Unix epoch nanoseconds

    def __post_init__(self) -> None:
        # Recorders make hundreds of thousands of points a pass, over a few hundred distinct
        # names and tag values: a text found good once is remembered, and the labels naming a
        # field are built only for the one that fails.
        check_measurement(self.measurement)
        where = self.measurement
        for key, value in self.tags.items():
            if not (_known_good(key) and _known_good(value)):
                check_text(f"{where}.tags", key)
                check_text(f"{where}.tags[{key!r}]", value)
                _remember(key, value)
        if not self.fields:
            raise ConfigError(f"{where}.fields", "a point needs at least one field")
        for key, field in self.fields.items():
            if not (_known_good(key) and _good_value(field)):
                check_text(f"{where}.fields", key)
                check_field_value(f"{where}.fields[{key!r}]", field)
                _remember(key)
        check_time_ns(f"{where}.time_ns", self.time_ns)


_GOOD_TEXTS: set[str] = set()
_GOOD_TEXTS_MAX = 100_000


def _known_good(text: object) -> bool:
    return type(text) is str and text in _GOOD_TEXTS


def _remember(*texts: str) -> None:
    if len(_GOOD_TEXTS) > _GOOD_TEXTS_MAX:  # bounded: ever-new values (ids) cannot grow it
        _GOOD_TEXTS.clear()
    _GOOD_TEXTS.update(texts)


def _good_value(value: object) -> bool:
    """What `check_field_value` accepts, as a predicate (exact types: a subclass is refused
    there too)."""
    if isinstance(value, bool) or type(value) is Unsigned:
        return True
    if isinstance(value, float):
        return type(value) is float and math.isfinite(value)
    if isinstance(value, int):
        return type(value) is int and INT64_MIN <= value <= INT64_MAX
    if isinstance(value, str):
        return type(value) is str and "\n" not in value and (value.isascii() or _encodable(value))
    return False


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def check_measurement(measurement: object) -> None:
    """A measurement is a name that must not look like a comment line."""
    if check_text("measurement", measurement).startswith("#"):
        # A line starting with `#` is a comment in line protocol and would be skipped.
        raise ConfigError("measurement", f"must not start with '#', got {measurement!r}")


def check_text(field: str, text: object) -> str:
    """Names and tag values: non-empty strings without newlines, encodable as UTF-8."""
    if type(text) is not str:
        raise ConfigError(field, f"must be a str, got {type(text).__name__}")
    if not text:
        raise ConfigError(field, "must not be empty")
    check_string_value(field, text)
    return text


def check_string_value(field: str, text: str) -> None:
    """Any text on a line: a newline would end the line, and the wire format is UTF-8."""
    if "\n" in text:
        raise ConfigError(field, f"must not contain a newline, got {text!r}")
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError:
            raise ConfigError(field, f"is not valid Unicode text: {text!r}") from None


def check_field_value(field: str, value: object) -> None:
    """Field values: the five influx types, each within what the protocol can carry."""
    if type(value) is bool or type(value) is Unsigned:
        return
    if type(value) is int:
        if not INT64_MIN <= value <= INT64_MAX:
            raise ConfigError(field, f"integer out of the signed 64-bit range: {value}")
    elif type(value) is float:
        if not math.isfinite(value):
            raise ConfigError(field, f"must be a finite float, got {value}")
    elif type(value) is str:
        check_string_value(field, value)
    else:
        allowed = "int, float, bool, str or Unsigned"
        raise ConfigError(field, f"must be {allowed}, got {type(value).__name__}")


def check_time_ns(field: str, time_ns: object) -> None:
    """Timestamps are signed 64-bit nanoseconds in the protocol."""
    if type(time_ns) is not int:
        raise ConfigError(field, f"must be an int (nanoseconds), got {type(time_ns).__name__}")
    if not INT64_MIN <= time_ns <= INT64_MAX:
        raise ConfigError(field, f"out of the signed 64-bit nanosecond range: {time_ns}")
