"""by_shape: a batch in groups of one shape, each read out column by column."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tensorfusion.metrics.point import Point, Unsigned
from tensorfusion.metrics.point_columns import Columns, by_shape

NOW_NS = 1_700_000_000_000_000_000


def _row(point: Point, group: Columns) -> tuple[object, ...]:
    return (
        point.measurement,
        tuple(point.tags[name] for name in group.tag_names),
        tuple(point.fields[name] for name in group.field_names),
        point.time_ns,
    )


def _rows(group: Columns) -> list[tuple[object, ...]]:
    """The group's columns read back as one row per point."""
    count = len(group.points)
    return [
        (
            group.first.measurement,
            tuple(column[i] for column in group.tags),
            tuple(column[i] for column in group.fields),
            group.time_ns[i],
        )
        for i in range(count)
    ]


def test_one_shape_is_one_group_whatever_the_order_of_its_names() -> None:
    a = Point("m", {"x": "1", "y": "2"}, {"v": 1, "w": 1.5}, NOW_NS)
    b = Point("m", {"y": "4", "x": "3"}, {"w": 2.5, "v": 2}, NOW_NS + 1)
    (group,) = by_shape([a, b])
    assert (group.tag_names, group.field_names, group.field_types) == (
        ("x", "y"),
        ("v", "w"),
        (int, float),
    )
    assert group.tags == [["1", "3"], ["2", "4"]]
    assert group.fields == [[1, 2], [1.5, 2.5]]
    assert group.time_ns == [NOW_NS, NOW_NS + 1]


def test_other_names_or_types_make_other_groups_in_order_of_first_appearance() -> None:
    points = [
        Point("m", {"x": "1"}, {"v": 1}, NOW_NS),
        Point("n", {}, {"v": 1}, NOW_NS),
        Point("m", {"x": "2"}, {"v": 1.0}, NOW_NS),  # another type
        Point("m", {"z": "3"}, {"v": 2}, NOW_NS),  # another tag
        Point("m", {"x": "4"}, {"v": 3}, NOW_NS),
        Point("m", {"x": "5"}, {"v": True}, NOW_NS),  # bool is not int
    ]
    groups = by_shape(points)
    assert [[points.index(p) for p in group.points] for group in groups] == [
        [0, 4],
        [2],
        [3],
        [5],
        [1],
    ]
    assert [group.field_types for group in groups] == [(int,), (float,), (int,), (bool,), (int,)]


_NAMES = st.sampled_from(["a", "b", "c"])
_VALUES = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.text("xyz", min_size=0, max_size=3),
    st.builds(Unsigned, st.integers(0, 2**64 - 1)),
)
_POINTS = st.builds(
    Point,
    st.sampled_from(["m", "n"]),
    st.dictionaries(_NAMES, st.sampled_from(["p", "q"]), max_size=2),
    st.dictionaries(_NAMES, _VALUES, min_size=1, max_size=3),
    st.integers(0, 10**6),
)


@settings(max_examples=50, deadline=None)
@given(st.lists(_POINTS, max_size=30))
def test_groups_hold_every_point_once_with_its_own_values(points: list[Point]) -> None:
    groups = by_shape(points)
    assert sorted(id(p) for group in groups for p in group.points) == sorted(map(id, points))
    for group in groups:
        assert _rows(group) == [_row(point, group) for point in group.points]
        for point in group.points:
            assert point.measurement == group.first.measurement
            assert set(point.tags) == set(group.tag_names)
            assert set(point.fields) == set(group.field_names)
            assert tuple(type(point.fields[name]) for name in group.field_names) == (
                group.field_types
            )
        # points keep their order within a group
        positions = [next(i for i, p in enumerate(points) if p is q) for q in group.points]
        assert positions == sorted(positions)
