"""Line protocol: exact text for known points, round trips, and every malformed line reported."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tensorfusion.errors import ConfigError
from tensorfusion.metrics.line_protocol import encode, encode_point, parse
from tensorfusion.metrics.point import INT64_MAX, INT64_MIN, FieldValue, Point, Unsigned

# Every character the protocol treats specially, plus arbitrary Unicode (no surrogates, no
# newline: neither can be carried).
_SPECIALS = st.sampled_from([" ", ",", "=", "\\", '"', "#", "\t", "\r", "'"])
_CHARS = st.one_of(_SPECIALS, st.characters(exclude_characters="\n", exclude_categories=["Cs"]))
names = st.text(_CHARS, min_size=1, max_size=12)
measurements = names.filter(lambda name: not name.startswith("#"))
field_values: st.SearchStrategy[FieldValue] = st.one_of(
    st.integers(INT64_MIN, INT64_MAX),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.text(_CHARS, max_size=12),
    st.builds(Unsigned, st.integers(0, 2**64 - 1)),
)
points = st.builds(
    Point,
    measurements,
    st.dictionaries(names, names, max_size=4),
    st.dictionaries(names, field_values, min_size=1, max_size=4),
    st.integers(INT64_MIN, INT64_MAX),
)


def typed(point: Point) -> tuple[object, ...]:
    """Equality that also tells 1, 1.0, True and Unsigned(1) apart."""
    fields = {key: (type(value), value) for key, value in point.fields.items()}
    return point.measurement, dict(point.tags), fields, point.time_ns


def test_encode_writes_every_type_escaped_and_tags_sorted() -> None:
    point = Point(
        "gpu usage,x",
        {"uuid": "GPU-1", "a b": "x=y,z", "back": "c:\\d"},
        {"pct": 97.5, "n": -3, "u": Unsigned(7), "ok": True, "no": False, "s": 'say "hi" \\'},
        1_700_000_000_123_456_789,
    )
    assert encode_point(point) == (
        "gpu\\ usage\\,x,a\\ b=x\\=y\\,z,back=c:\\\\d,uuid=GPU-1 "
        'pct=97.5,n=-3i,u=7u,ok=t,no=f,s="say \\"hi\\" \\\\" 1700000000123456789'
    )


@pytest.mark.parametrize(
    ("value", "text"),
    [(1.0, "1.0"), (1e16, "1e+16"), (1e-05, "1e-05"), (-0.0, "-0.0"), (0.1, "0.1")],
)
def test_floats_use_the_shortest_round_trip_text(value: float, text: str) -> None:
    assert encode_point(Point("m", {}, {"v": value}, 0)) == f"m v={text} 0"


@pytest.mark.parametrize(
    ("precision", "stamp"), [("ns", "-1500"), ("us", "-2"), ("ms", "-1"), ("s", "-1")]
)
def test_precision_floors_the_timestamp(precision: str, stamp: str) -> None:
    point = Point("m", {}, {"v": 1}, -1500)
    assert encode([point], precision) == f"m v=1i {stamp}\n"  # type: ignore[arg-type]


def test_encode_joins_lines_with_a_trailing_newline() -> None:
    point = Point("m", {}, {"v": 1}, 5)
    assert encode([point, point]) == "m v=1i 5\nm v=1i 5\n"
    assert encode([]) == ""


def test_floored_timestamp_before_the_ns_range_is_an_error_naming_it() -> None:
    point = Point("tf_gpu_usage", {}, {"v": 1}, INT64_MIN)
    assert encode_point(point, "ns").endswith(str(INT64_MIN))
    with pytest.raises(ConfigError, match=r"tf_gpu_usage\.time_ns: .*before the signed"):
        encode_point(point, "s")


def test_unknown_precision_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="precision: must be one of ns, us, ms, s, got 'h'"):
        encode([], "h")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="precision"):
        parse("", "minutes")  # type: ignore[arg-type]


@given(st.lists(points, max_size=5))
def test_parse_reads_back_what_encode_writes(batch: list[Point]) -> None:
    result = parse(encode(batch))
    assert result.problems == []
    assert [typed(point) for point in result.points] == [typed(point) for point in batch]


@given(points, st.sampled_from(["us", "ms", "s"]))
def test_round_trip_at_a_coarser_precision_floors_time(point: Point, precision: str) -> None:
    unit = {"us": 1_000, "ms": 1_000_000, "s": 1_000_000_000}[precision]
    try:
        line = encode_point(point, precision)  # type: ignore[arg-type]
    except ConfigError:
        assert (point.time_ns // unit) * unit < INT64_MIN
        return
    result = parse(line, precision)  # type: ignore[arg-type]
    assert [p.time_ns for p in result.points] == [point.time_ns // unit * unit]


@pytest.mark.parametrize("word", ["t", "T", "true", "True", "TRUE"])
def test_parse_accepts_every_spelling_of_true(word: str) -> None:
    assert parse(f"m v={word} 1").points[0].fields == {"v": True}


@pytest.mark.parametrize("word", ["f", "F", "false", "False", "FALSE"])
def test_parse_accepts_every_spelling_of_false(word: str) -> None:
    assert parse(f"m v={word} 1").points[0].fields == {"v": False}


def test_parse_reads_untyped_numbers_as_floats_and_keeps_unknown_escapes() -> None:
    result = parse('m\\x,t=a\\b v=3,w=-.5e2,s="a\\nb" 1')
    assert result.problems == []
    (point,) = result.points
    assert point.measurement == "m\\x"
    assert point.tags == {"t": "a\\b"}
    assert typed(point)[2] == {"v": (float, 3.0), "w": (float, -50.0), "s": (str, "a\\nb")}


def test_parse_skips_comments_blank_lines_and_accepts_crlf() -> None:
    text = "# header\n\n \t \n#comment\r\nm v=1i 10\r\nm v=2i 20"
    result = parse(text)
    assert result.problems == []
    assert [(p.fields["v"], p.time_ns) for p in result.points] == [(1, 10), (2, 20)]


def test_parse_scales_timestamps_by_precision() -> None:
    assert parse("m v=1 -3", "ms").points[0].time_ns == -3_000_000


def test_missing_timestamp_takes_the_default_when_one_is_given() -> None:
    assert parse("m v=1", default_time_ns=42).points[0].time_ns == 42
    assert parse("m v=1").problems == [(1, "missing timestamp")]


@pytest.mark.parametrize("default", [2**63, 1.5, "now"])
def test_a_bad_default_time_is_a_config_error(default: object) -> None:
    with pytest.raises(ConfigError, match="default_time_ns"):
        parse("m v=1", default_time_ns=default)  # type: ignore[arg-type]


MALFORMED = [
    ("m", "expected a space before the fields at column 2"),
    ("m 1", "invalid field at column 3: expected key=value"),
    ("m  v=1 1", "invalid field at column 3: expected key=value"),
    ("m v= 1", "invalid field at column 3: expected key=value"),
    ("m =1 1", "invalid field at column 3: expected key=value"),
    ("m v=1,", "invalid field at column 7: expected key=value"),
    (",t=a v=1 1", "missing measurement at column 1"),
    (" m v=1 1", "missing measurement at column 1"),
    (" # indented comment", "missing measurement at column 1"),
    ("m,t v=1 1", "invalid tag at column 3: expected key=value"),
    ("m,t= v=1 1", "invalid tag at column 3: expected key=value"),
    ("m,=a v=1 1", "invalid tag at column 3: expected key=value"),
    ("m,t=a,t=b v=1 1", "duplicate tag key 't' at column 7"),
    ("m v=1,v=2 1", "duplicate field key 'v' at column 7"),
    ("m v=tru 1", "invalid field value at column 5: 'tru'"),
    ("m v=1.2.3 1", "invalid field value at column 5: '1.2.3'"),
    ("m v=inf 1", "invalid field value at column 5: 'inf'"),
    ("m v=nan 1", "invalid field value at column 5: 'nan'"),
    ("m v=1_0 1", "invalid field value at column 5: '1_0'"),
    ("m v=1e999 1", "float out of range at column 5: '1e999'"),
    ("m v=1.5i 1", "invalid field value at column 5: '1.5i'"),
    ("m v=-1u 1", "invalid field value at column 5: '-1u'"),
    ("m v=9223372036854775808i 1", "integer out of the signed 64-bit range at column 5"),
    ("m v=18446744073709551616u 1", "unsigned integer out of the 64-bit range at column 5"),
    ('m v="open 1', "invalid field at column 3: expected key=value"),
    ('m v="a"x 1', "unexpected 'x' at column 8"),
    ("m v=1 12a", "invalid timestamp at column 7: '12a'"),
    ("m v=1 1 ", "invalid timestamp at column 7: '1 '"),
    ("m v=1 ", "invalid timestamp at column 7: ''"),
    ("m v=1 9223372036854775808", "timestamp 9223372036854775808 is out of the signed"),
    ("m v=1 1\\", "invalid timestamp at column 7: '1\\\\'"),
]


@pytest.mark.parametrize(("line", "message"), MALFORMED)
def test_malformed_lines_are_reported_with_line_number_and_message(line: str, message: str) -> None:
    result = parse(f"# ok lines around the bad one\ngood v=1 1\n{line}\ngood v=2 2\n")
    assert [p.fields["v"] for p in result.points] == [1.0, 2.0]
    assert len(result.problems) == 1
    number, problem = result.problems[0]
    assert number == 3
    assert problem.startswith(message)


def test_a_timestamp_that_overflows_after_scaling_is_reported() -> None:
    result = parse("m v=1 9223372037", "s")
    assert result.points == []
    assert result.problems == [
        (1, "timestamp 9223372037 is out of the signed 64-bit nanosecond range")
    ]
