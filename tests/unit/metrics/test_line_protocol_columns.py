"""The native columnar encoder writes exactly what the Python encoder writes for the same rows."""

from __future__ import annotations

from typing import Any
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tensorfusion import _native
from tensorfusion.errors import ConfigError
from tensorfusion.metrics.line_protocol import encode, encode_columns
from tensorfusion.metrics.point import INT64_MAX, INT64_MIN, FieldValue, Point, Unsigned
from tensorfusion.metrics.rows import Rows
from tests.unit.metrics.test_line_protocol import field_values, measurements, names

PRECISIONS = st.sampled_from(["ns", "us", "ms", "s"])


@st.composite
def batches(draw: st.DrawFn) -> tuple[str, dict[str, list[str]], dict[str, Any], list[int]]:
    rows = draw(st.integers(0, 6))
    column = st.lists(names, min_size=rows, max_size=rows)
    tags = draw(st.dictionaries(names, column, max_size=3))
    fields: dict[str, Any] = {}
    for key in draw(st.lists(names, min_size=1, max_size=3, unique=True)):
        kind: type = draw(field_values.map(type))
        same_kind: st.SearchStrategy[FieldValue] = field_values.filter(
            lambda value: type(value) is kind  # noqa: B023 - used only in this iteration
        )
        fields[key] = draw(st.lists(same_kind, min_size=rows, max_size=rows))
    times = draw(st.lists(st.integers(INT64_MIN // 2, INT64_MAX), min_size=rows, max_size=rows))
    return draw(measurements), tags, fields, times


def as_points(
    measurement: str, tags: dict[str, list[str]], fields: dict[str, Any], times: list[int]
) -> list[Point]:
    """The reference reading of a batch: row r is one Point."""
    return [
        Point(
            measurement,
            {key: values[row] for key, values in tags.items()},
            {key: values[row] for key, values in fields.items()},
            time,
        )
        for row, time in enumerate(times)
    ]


@settings(max_examples=50, deadline=None)
@given(batches(), PRECISIONS)
def test_native_matches_the_python_encoder(
    batch: tuple[str, dict[str, list[str]], dict[str, Any], list[int]], precision: str
) -> None:
    measurement, tags, fields, times = batch
    expected = encode(as_points(*batch), precision)  # type: ignore[arg-type]
    assert encode_columns(measurement, tags, fields, times, precision) == expected  # type: ignore[arg-type]


@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=50))
def test_native_floats_are_python_repr(values: list[float]) -> None:
    text = encode_columns("m", {}, {"v": np.array(values)}, np.zeros(len(values), np.int64))
    assert text == "".join(f"m v={value!r} 0\n" for value in values)


def test_numpy_columns_pick_the_field_type_from_the_dtype() -> None:
    text = encode_columns(
        "tf_gpu_usage",
        {"node": np.array(["n1", "n2"]), "pool": ["p", "p"]},
        {
            "pct": np.array([1.5, 2.0], np.float32),
            "n": np.array([-1, 2], np.int32),
            "bytes": np.array([1, 2**64 - 1], np.uint64),
            "ok": np.array([True, False]),
            "names": np.array(["a b", 'q"'], dtype=object),
            "u": [Unsigned(3), Unsigned(4)],
        },
        np.array([10, 20], np.uint64),
    )
    assert text == (
        'tf_gpu_usage,node=n1,pool=p pct=1.5,n=-1i,bytes=1u,ok=t,names="a b",u=3u 10\n'
        "tf_gpu_usage,node=n2,pool=p pct=2.0,n=2i,bytes=18446744073709551615u,ok=f,"
        'names="q\\"",u=4u 20\n'
    )


def test_an_empty_batch_is_empty_text() -> None:
    assert encode_columns("m", {"t": []}, {"v": []}, np.array([], np.int64)) == ""


BAD: list[tuple[dict[str, Any], str]] = [
    ({"measurement": "#m"}, "measurement: must not start with '#'"),
    ({"measurement": ""}, "measurement: must not be empty"),
    ({"precision": "h"}, "precision: must be one of"),
    ({"times_ns": [1.5]}, "times_ns: must be 1-D integer nanoseconds, got float64"),
    ({"times_ns": np.array([2**64 - 1], np.uint64)}, "times_ns: out of the signed 64-bit"),
    ({"tags": {"t": ["a", "b"]}}, "m.tags['t']: has 2 values, times_ns has 1"),
    ({"tags": {"": ["a"]}}, "m.tags: must not be empty"),
    ({"tags": {"t": [""]}}, "m.tags['t'][0]: must not be empty"),
    ({"tags": {"t": ["a\nb"]}}, "m.tags['t'][0]: must not contain a newline"),
    ({"tags": {"t": [3]}}, "m.tags['t'][0]: must be a str, got int"),
    ({"tags": {"t": ["\ud800"]}}, "m.tags['t'][0]: is not valid Unicode text"),
    ({"tags": {"t": "a"}}, "m.tags['t']: must be a list or a 1-D numpy array"),
    ({"fields": {}}, "m.fields: a point needs at least one field"),
    ({"fields": {"v": [float("nan")]}}, "m.fields['v'][0]: must be a finite float"),
    ({"fields": {"v": np.array([np.inf])}}, "m.fields['v'][0]: must be a finite float"),
    ({"fields": {"v": ["a\n"]}}, "m.fields['v'][0]: must not contain a newline"),
    (
        {"fields": {"v": [1, 1.5]}, "times_ns": [0, 0], "tags": {}},
        "m.fields['v']: mixes value types (float, int)",
    ),
    ({"fields": {"v": [None]}}, "m.fields['v']: must hold int, float, bool, str or Unsigned"),
    ({"fields": {"v": [2**63]}}, "m.fields['v']: integer out of the signed 64-bit range"),
    ({"fields": {"v": np.zeros((1, 1))}}, "m.fields['v']: must be 1-D, got 2 dimensions"),
    ({"fields": {"v": [1, 2]}}, "m.fields['v']: has 2 values, times_ns has 1"),
    (
        {"times_ns": [INT64_MIN], "precision": "s"},
        "m.time_ns[0]: floored to -9223372037 units of 1000000000 ns is before",
    ),
]


@pytest.mark.parametrize(("changes", "message"), BAD)
def test_bad_columns_are_config_errors_naming_the_cell(
    changes: dict[str, Any], message: str
) -> None:
    arguments: dict[str, Any] = {
        "measurement": "m",
        "tags": {"t": ["a"]},
        "fields": {"v": [1.0]},
        "times_ns": [0],
        "precision": "ns",
    }
    arguments.update(changes)
    with pytest.raises(ConfigError) as raised:
        encode_columns(
            arguments["measurement"],
            arguments["tags"],
            arguments["fields"],
            arguments["times_ns"],
            arguments["precision"],
        )
    assert str(raised.value).startswith(message)


def test_a_bad_cell_deep_in_a_batch_is_named_by_its_row() -> None:
    values: list[FieldValue] = [1.0] * 1000
    values[737] = float("inf")
    with pytest.raises(ConfigError, match=r"m\.fields\['v'\]\[737\]"):
        encode_columns("m", {}, {"v": np.array(values)}, np.zeros(1000, np.int64))


@pytest.mark.parametrize(
    ("changes", "message"),
    [(changes, message) for changes, message in BAD if "precision" not in changes],
)
def test_bad_columns_are_refused_before_any_text_is_formatted(
    changes: dict[str, Any], message: str
) -> None:
    """The embedded sink stores a `Rows` without formatting it: building one checks every
    cell that formatting would."""
    arguments: dict[str, Any] = {
        "measurement": "m",
        "tags": {"t": ["a"]},
        "fields": {"v": [1.0]},
        "times_ns": [0],
    }
    arguments.update(changes)
    with (
        mock.patch.object(_native, "encode_columns", side_effect=AssertionError("formatted")),
        pytest.raises(ConfigError) as raised,
    ):
        Rows.of(
            arguments["measurement"],
            arguments["tags"],
            arguments["fields"],
            arguments["times_ns"],
        )
    assert str(raised.value).startswith(message)
