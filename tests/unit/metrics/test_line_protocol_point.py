"""Point and Unsigned refuse, with the field named, anything the line protocol cannot carry."""

from __future__ import annotations

import pytest

from tensorfusion.errors import ConfigError
from tensorfusion.metrics.point import Point, Unsigned


def make(**changes: object) -> Point:
    values: dict[str, object] = {
        "measurement": "tf_gpu_usage",
        "tags": {"node": "n1"},
        "fields": {"temperature": 61.5},
        "time_ns": 0,
    }
    values.update(changes)
    return Point(**values)  # type: ignore[arg-type]


def test_a_valid_point_keeps_what_it_was_given() -> None:
    point = make(fields={"u": Unsigned(2**64 - 1), "i": -(2**63), "s": "", "b": False})
    assert point.fields["u"] == Unsigned(2**64 - 1)
    assert point.tags == {"node": "n1"}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"measurement": ""}, "measurement: must not be empty"),
        ({"measurement": 3}, "measurement: must be a str, got int"),
        ({"measurement": "a\nb"}, "measurement: must not contain a newline"),
        ({"measurement": "#m"}, "measurement: must not start with '#'"),
        ({"measurement": "m\ud800"}, "measurement: is not valid Unicode text"),
        ({"tags": {"": "x"}}, "tf_gpu_usage.tags: must not be empty"),
        ({"tags": {"node": ""}}, "tf_gpu_usage.tags['node']: must not be empty"),
        ({"tags": {"node": 1}}, "tf_gpu_usage.tags['node']: must be a str, got int"),
        ({"tags": {"node": "a\nb"}}, "tf_gpu_usage.tags['node']: must not contain a newline"),
        ({"fields": {}}, "tf_gpu_usage.fields: a point needs at least one field"),
        ({"fields": {"": 1}}, "tf_gpu_usage.fields: must not be empty"),
        ({"fields": {"t": float("inf")}}, "tf_gpu_usage.fields['t']: must be a finite float"),
        ({"fields": {"t": float("nan")}}, "tf_gpu_usage.fields['t']: must be a finite float"),
        ({"fields": {"t": 2**63}}, "tf_gpu_usage.fields['t']: integer out of the signed"),
        ({"fields": {"t": -(2**63) - 1}}, "tf_gpu_usage.fields['t']: integer out of the"),
        ({"fields": {"t": "a\nb"}}, "tf_gpu_usage.fields['t']: must not contain a newline"),
        ({"fields": {"t": None}}, "tf_gpu_usage.fields['t']: must be int, float, bool, str or"),
        ({"time_ns": 1.5}, "tf_gpu_usage.time_ns: must be an int"),
        ({"time_ns": True}, "tf_gpu_usage.time_ns: must be an int"),
        ({"time_ns": 2**63}, "tf_gpu_usage.time_ns: out of the signed 64-bit"),
    ],
)
def test_bad_points_name_the_field(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        make(**changes)
    assert str(raised.value).startswith(message)


@pytest.mark.parametrize(
    ("value", "message"),
    [(-1, "must be in [0, 2**64)"), (2**64, "must be in [0, 2**64)"), (1.0, "must be an int")],
)
def test_unsigned_out_of_range_is_an_error(value: object, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        Unsigned(value)  # type: ignore[arg-type]
    assert str(raised.value).startswith(f"Unsigned.value: {message}")
