"""Rows of one table in columns, checked once when they are built: what a producer that
computes its figures with numpy hands on, so that a sink stores the columns as they are and
a remote sink encodes them natively as line protocol, with no `Point` per row.

Like a `Point`, a `Rows` that exists can be stored and encoded: every name and cell was
checked. Cells are checked over whole columns at C speed; only a column that fails is gone
through cell by cell, to name the bad one by its row.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import groupby
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from tensorfusion.errors import ConfigError
from tensorfusion.metrics.point import (
    INT64_MAX,
    INT64_MIN,
    FieldValue,
    Point,
    Unsigned,
    check_measurement,
    check_string_value,
    check_text,
)

FieldKind = Literal["f", "i", "u", "b", "s"]
Column = Sequence[FieldValue] | NDArray[Any]

# numpy dtype kind -> (field kind, the one dtype a numeric column is kept as)
_ARRAY_KINDS: Mapping[str, tuple[FieldKind, type[np.generic]]] = {
    "f": ("f", np.float64),
    "i": ("i", np.int64),
    "u": ("u", np.uint64),
    "b": ("b", np.bool_),
}
# Python element type of a list column -> field kind; Unsigned lists become uint64 arrays.
_LIST_KINDS: Mapping[type, FieldKind] = {float: "f", int: "i", bool: "b", str: "s", Unsigned: "u"}
KIND_TYPES: Mapping[FieldKind, type] = {kind: value for value, kind in _LIST_KINDS.items()}
"""The Python type of a field kind's values, as a `Point` would hold them."""


@dataclass(frozen=True, slots=True)
class FieldColumn:
    kind: FieldKind
    values: Any
    """A 1-D numpy array of the kind's dtype, or for "s" a list of str."""


@dataclass(frozen=True, slots=True)
class Rows:
    """Row `r` is the point with tag `k` = `tags[k][r]`, field `k` = `fields[k].values[r]`
    and time `times_ns[r]`: every row carries every tag and field. Build it with `of`."""

    measurement: str
    tags: Mapping[str, list[str]]
    fields: Mapping[str, FieldColumn]
    times_ns: NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.times_ns)

    @classmethod
    def of(
        cls,
        measurement: str,
        tag_columns: Mapping[str, Sequence[str] | NDArray[Any]],
        field_columns: Mapping[str, Column],
        times_ns: Sequence[int] | NDArray[Any],
    ) -> Rows:
        """The columns checked and kept in one form per kind. Field columns are numpy arrays
        (float, signed, unsigned, bool) or lists of one value type; a bad column or cell is a
        `ConfigError` naming it (a cell by its row)."""
        check_measurement(measurement)
        times = _times(times_ns)
        count = len(times)
        tags: dict[str, list[str]] = {}
        for key, values in tag_columns.items():
            where = f"{measurement}.tags[{check_text(f'{measurement}.tags', key)!r}]"
            tags[key] = _checked_texts(where, _as_list(where, values, count), empty=False)
        if not field_columns:
            raise ConfigError(f"{measurement}.fields", "a point needs at least one field")
        fields: dict[str, FieldColumn] = {}
        for key, column in field_columns.items():
            where = f"{measurement}.fields[{check_text(f'{measurement}.fields', key)!r}]"
            fields[key] = _field_column(where, column, count)
        return cls(measurement, tags, fields, times)


def rows_of(points: Sequence[Point]) -> Iterator[Rows]:
    """The points as runs of one shape (names and value types), in their order."""
    for _, run in groupby(points, _shape):
        group = list(run)
        first = group[0]
        yield Rows.of(
            first.measurement,
            {key: [point.tags[key] for point in group] for key in first.tags},
            {key: [point.fields[key] for point in group] for key in first.fields},
            [point.time_ns for point in group],
        )


def _shape(point: Point) -> tuple[object, ...]:
    fields = point.fields
    return (point.measurement, tuple(point.tags), tuple(fields), tuple(map(type, fields.values())))


def _as_list(field: str, values: object, count: int) -> list[Any]:
    """A column as a list of plain Python values, one per row."""
    if isinstance(values, np.ndarray):
        if values.ndim != 1:
            raise ConfigError(field, f"must be 1-D, got {values.ndim} dimensions")
        values = values.tolist()  # plain str/int/float, not numpy scalars
    if isinstance(values, str) or not isinstance(values, Sequence):
        raise ConfigError(field, f"must be a list or a 1-D numpy array, got {type(values)}")
    if len(values) != count:
        raise ConfigError(field, f"has {len(values)} values, times_ns has {count}")
    return values if isinstance(values, list) else list(values)


def _checked_texts(where: str, values: list[Any], *, empty: bool) -> list[str]:
    """`values` when every one is a str without a newline (and, unless `empty`, not empty)
    that encodes as UTF-8; else the error for the first bad row."""
    try:
        joined = "\n".join(values)  # a TypeError names no row: the loop below does
        good = joined.count("\n") == max(len(values) - 1, 0) and (empty or "" not in values)
        if good and not joined.isascii():
            joined.encode()
    except (TypeError, UnicodeEncodeError):
        good = False
    if not good:
        for row, value in enumerate(values):
            if empty and type(value) is str:
                check_string_value(f"{where}[{row}]", value)
            else:
                check_text(f"{where}[{row}]", value)
    return values


def _field_column(field: str, column: Column, count: int) -> FieldColumn:
    if isinstance(column, np.ndarray) and column.ndim == 1 and column.dtype.kind in _ARRAY_KINDS:
        if len(column) != count:
            raise ConfigError(field, f"has {len(column)} values, times_ns has {count}")
        kind, dtype = _ARRAY_KINDS[column.dtype.kind]
        return _checked(field, kind, np.ascontiguousarray(column, dtype=dtype))
    values = _as_list(field, column, count)
    types = set(map(type, values))
    if len(types) > 1:
        names = ", ".join(sorted(t.__name__ for t in types))
        raise ConfigError(field, f"mixes value types ({names}); a column has one type")
    list_kind = _LIST_KINDS.get(types.pop(), None) if types else "f"
    if list_kind is None:
        raise ConfigError(field, "must hold int, float, bool, str or Unsigned values")
    if list_kind == "s":
        return FieldColumn("s", _checked_texts(field, values, empty=True))
    if list_kind == "u":
        return FieldColumn("u", np.array([value.value for value in values], dtype=np.uint64))
    if list_kind == "i" and values and not INT64_MIN <= min(values) <= max(values) <= INT64_MAX:
        raise ConfigError(field, "integer out of the signed 64-bit range")
    return _checked(field, list_kind, np.array(values, dtype=_ARRAY_KINDS[list_kind][1]))


def _checked(field: str, kind: FieldKind, values: NDArray[Any]) -> FieldColumn:
    if kind == "f":
        finite = np.isfinite(values)
        if not finite.all():
            row = int(np.argmin(finite))
            raise ConfigError(f"{field}[{row}]", f"must be a finite float, got {values[row]}")
    return FieldColumn(kind, values)


def _times(times_ns: Sequence[int] | NDArray[Any]) -> NDArray[np.int64]:
    times = np.asarray(times_ns)
    if times.ndim != 1 or (times.size and times.dtype.kind not in "iu"):
        raise ConfigError("times_ns", f"must be 1-D integer nanoseconds, got {times.dtype}")
    if times.dtype.kind == "u" and times.size and times.max() > INT64_MAX:
        raise ConfigError("times_ns", "out of the signed 64-bit nanosecond range")
    return np.ascontiguousarray(times, dtype=np.int64)
