"""A batch of points as columns: one group per shape (measurement, tag and field names, field
value types), each group's values read out column by column.

Recorders hand over batches of thousands of points of one or two shapes. Reading a column with
`operator` getters mapped over the points runs no Python code per point, where building a key
and a row tuple per point costs about as much as SQLite's own insert.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import groupby
from operator import attrgetter, itemgetter
from typing import Any

from tensorfusion.metrics.point import FieldValue, Point

_MEASUREMENT = attrgetter("measurement")
_TAGS = attrgetter("tags")
_FIELDS = attrgetter("fields")
_TIME_NS = attrgetter("time_ns")


@dataclass(slots=True)
class Columns:
    """Points of one shape; `tags[i]` holds the values of the tag `tag_names[i]`, one per point,
    in the order of `points`, and so do `fields` and `time_ns`."""

    points: list[Point]
    tag_names: tuple[str, ...]
    field_names: tuple[str, ...]
    field_types: tuple[type, ...]
    tags: list[list[str]]
    fields: list[list[Any]]
    time_ns: list[int]

    @property
    def first(self) -> Point:
        return self.points[0]


def by_shape(points: Sequence[Point]) -> list[Columns]:
    """The points in groups of one shape: measurements in order of first appearance, and a
    measurement's shapes in order of first appearance; points keep their order in a group."""
    by_measurement: dict[str, list[Point]] = {}
    for measurement, run in groupby(points, _MEASUREMENT):  # recorders write runs of a table
        group = by_measurement.get(measurement)
        if group is None:
            by_measurement[measurement] = list(run)
        else:
            group.extend(run)
    groups: list[Columns] = []
    for group in by_measurement.values():
        columns = _uniform(group)
        if columns is not None:
            groups.append(columns)
            continue
        for shaped in _split(group):
            columns = _uniform(shaped)
            assert columns is not None  # one exact shape is uniform
            groups.append(columns)
    return groups


def _split(points: list[Point]) -> list[list[Point]]:
    """Points of one measurement whose names or types differ, one group per exact shape."""
    shapes: dict[tuple[tuple[str, ...], tuple[str, ...], tuple[type, ...]], list[Point]] = {}
    for point in points:
        fields = point.fields
        key = (tuple(point.tags), tuple(fields), tuple(map(type, fields.values())))
        shapes.setdefault(key, []).append(point)
    return list(shapes.values())


def _uniform(points: list[Point]) -> Columns | None:
    """The points as columns when they share one shape (names in any order); else None."""
    first = points[0]
    tag_maps = list(map(_TAGS, points))
    field_maps = list(map(_FIELDS, points))
    # Equal sizes and every name of the first point present: the same names.
    if set(map(len, tag_maps)) != {len(first.tags)}:
        return None
    if set(map(len, field_maps)) != {len(first.fields)}:
        return None
    try:
        tags = [list(map(itemgetter(name), tag_maps)) for name in first.tags]
        fields: list[list[FieldValue]] = [
            list(map(itemgetter(name), field_maps)) for name in first.fields
        ]
    except KeyError:
        return None
    types = []
    for column in fields:
        kinds = set(map(type, column))
        if len(kinds) != 1:
            return None
        types.append(kinds.pop())
    return Columns(
        points=points,
        tag_names=tuple(first.tags),
        field_names=tuple(first.fields),
        field_types=tuple(types),
        tags=tags,
        fields=fields,
        time_ns=list(map(_TIME_NS, points)),
    )
