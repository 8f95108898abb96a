"""Tests for tensorfusion.api.quantity: exact Kubernetes quantity parsing and pydantic glue."""

from __future__ import annotations

import copy
import json
import math
import pickle
import re
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from tensorfusion.api.quantity import (
    QUANTITY_PATTERN,
    NonNegativeQuantity,
    Quantity,
    QuantityType,
)
from tensorfusion.errors import QuantityError

Ki, Mi, Gi = 1024, 1024**2, 1024**3

GOOD: list[tuple[object, Fraction]] = [
    ("16Gi", Fraction(16 * Gi)),
    ("3Gi", Fraction(3 * Gi)),
    ("500m", Fraction(1, 2)),
    ("1.5", Fraction(3, 2)),
    ("1e3", Fraction(1000)),
    ("100", Fraction(100)),
    ("0", Fraction(0)),
    ("-0", Fraction(0)),
    (".5", Fraction(1, 2)),
    ("1.", Fraction(1)),
    ("+1", Fraction(1)),
    ("-1", Fraction(-1)),
    ("1Ki", Fraction(Ki)),
    ("1Mi", Fraction(Mi)),
    ("1.5Gi", Fraction(3 * Gi, 2)),
    ("1E2", Fraction(100)),
    ("1E", Fraction(10**18)),
    ("2.5e-3", Fraction(1, 400)),
    ("2.5e+2", Fraction(250)),
    ("1E-3", Fraction(1, 1000)),
    ("1n", Fraction(1, 10**9)),
    ("100u", Fraction(1, 10**4)),
    ("0.1m", Fraction(1, 10**4)),
    ("1k", Fraction(1000)),
    ("1M", Fraction(10**6)),
    ("1G", Fraction(10**9)),
    ("1T", Fraction(10**12)),
    ("1P", Fraction(10**15)),
    ("1Ei", Fraction(1024**6)),
    ("007", Fraction(7)),
    ("9223372036854775807", Fraction(2**63 - 1)),
    ("-9223372036854775807", Fraction(-(2**63 - 1))),
    (100, Fraction(100)),
    (-3, Fraction(-3)),
    (1.5, Fraction(3, 2)),
    (0.1, Fraction(1, 10)),
    (1e3, Fraction(1000)),
    (2.5e-3, Fraction(1, 400)),
]


@pytest.mark.parametrize(("raw", "expected"), GOOD, ids=[repr(g[0]) for g in GOOD])
def test_good_inputs_parse_exactly(raw: object, expected: Fraction) -> None:
    q = Quantity.coerce(raw)
    assert q.exact == expected
    assert isinstance(q.exact, Fraction)
    assert Quantity.parse(str(q)) == q
    if isinstance(raw, str):
        assert Quantity.parse(raw) == q
        assert q.text == raw


@pytest.mark.parametrize(
    ("text", "value", "milli"),
    [
        ("16Gi", 17179869184, 17179869184000),
        ("500m", 1, 500),
        ("1.5", 2, 1500),
        ("100m", 1, 100),
        ("2.5e-3", 1, 3),
        ("0.1m", 1, 1),
        ("1n", 1, 1),
        ("0", 0, 0),
        ("-1.5", -1, -1500),
        ("-0.1m", 0, 0),
        ("1e3", 1000, 1000000),
    ],
)
def test_value_and_milli_value_round_up(text: str, value: int, milli: int) -> None:
    q = Quantity.parse(text)
    assert q.value() == value
    assert q.milli_value() == milli


BAD_TEXT = [
    "",
    " 1",
    "1 ",
    "1\n",
    "16GB",
    "16gi",
    "1K",
    "1Kib",
    "1.5.5",
    "Gi",
    "-",
    "+",
    ".",
    "-.",
    "1e",
    "1e+",
    "1e1.5",
    "1ee3",
    "0x10",
    "inf",
    "nan",
    "-inf",
    "1_000",
    "1,000",
    "\u0661",  # an Arabic-Indic digit: str.isdigit() says yes, Kubernetes says no
    "++1",
    "1m1",
    "Infinity",
]


@pytest.mark.parametrize("text", BAD_TEXT)
def test_bad_text_is_rejected_with_the_text_quoted(text: str) -> None:
    with pytest.raises(QuantityError) as info:
        Quantity.parse(text)
    message = str(info.value)
    assert repr(text) in message
    assert "is not a Kubernetes quantity" in message
    assert "Ki Mi Gi Ti Pi Ei, n u m k M G T P E" in message
    with pytest.raises(QuantityError):
        Quantity.coerce(text)


def test_error_message_format() -> None:
    with pytest.raises(QuantityError) as info:
        Quantity.parse("16GB")
    assert str(info.value) == (
        "'16GB' is not a Kubernetes quantity (expected a number with an optional suffix: "
        "Ki Mi Gi Ti Pi Ei, n u m k M G T P E, or an exponent like 1e3)"
    )


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("1e999999999", "out of range"),
        ("1e-999999999", "out of range"),
        ("9223372036854775808", "out of range"),
        ("8Ei", "out of range"),
        ("1e19", "out of range"),
        ("-1e19", "out of range"),
        ("1e-12", "finer than 1n"),
        ("1e-10", "finer than 1n"),
        ("0.1n", "finer than 1n"),
        ("1.5n", "finer than 1n"),
        ("1" * 300, "too long"),
    ],
)
def test_out_of_range_is_rejected(text: str, fragment: str) -> None:
    with pytest.raises(QuantityError, match=fragment) as info:
        Quantity.parse(text)
    assert f"'{text[:20]}" in str(info.value)


@pytest.mark.parametrize("text", ["1e999999999", "1e-999999999", "9" * 256, "1e" + "9" * 250])
def test_huge_exponent_is_rejected(text: str) -> None:
    # The exponent is bounded before any power of ten is built, so these return at once.
    with pytest.raises(QuantityError):
        Quantity.parse(text)


def test_zero_with_a_large_but_capped_exponent_is_zero() -> None:
    assert Quantity.parse("0e900") == Quantity.from_int(0)


@pytest.mark.parametrize(
    ("value", "type_name"),
    [(True, "bool"), (False, "bool"), (None, "NoneType"), ([1], "list"), (b"1", "bytes")],
)
def test_coerce_rejects_other_types_naming_the_type(value: object, type_name: str) -> None:
    with pytest.raises(QuantityError, match=type_name):
        Quantity.coerce(value)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_coerce_rejects_non_finite_floats(value: float) -> None:
    with pytest.raises(QuantityError, match="not a finite number") as info:
        Quantity.coerce(value)
    assert repr(repr(value)) in str(info.value)


def test_coerce_rejects_floats_out_of_range() -> None:
    with pytest.raises(QuantityError, match="out of range"):
        Quantity.coerce(1e300)
    with pytest.raises(QuantityError, match="finer than 1n"):
        Quantity.coerce(1e-12)


def test_parse_rejects_non_strings() -> None:
    with pytest.raises(QuantityError, match="got int"):
        Quantity.parse(1)  # type: ignore[arg-type]


def test_from_int_and_from_milli() -> None:
    assert Quantity.from_int(1024) == Quantity.parse("1Ki")
    assert Quantity.from_int(1000).text == "1k"
    assert Quantity.from_milli(1500) == Quantity.parse("1.5")
    assert str(Quantity.from_milli(1500)) == "1500m"
    assert Quantity.from_int(2**63 - 1).value() == 2**63 - 1
    with pytest.raises(QuantityError, match="out of range"):
        Quantity.from_int(2**63)
    with pytest.raises(QuantityError, match="out of range"):
        Quantity.from_int(-(10**5000))
    with pytest.raises(QuantityError, match="out of range"):
        Quantity.from_milli(2**63 * 1000)


def test_to_bytes() -> None:
    assert Quantity.parse("16Gi").to_bytes() == 16 * Gi
    assert Quantity.parse("0.5").to_bytes() == 1  # rounds up, like Kubernetes Value()
    assert Quantity.parse("0").to_bytes() == 0
    with pytest.raises(QuantityError, match=r"'-1Gi' is negative"):
        Quantity.parse("-1Gi").to_bytes()


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("1Gi", "1Gi"),
        ("1024Mi", "1Gi"),
        ("1.5Gi", "1536Mi"),
        ("1073741824", "1073741824"),
        ("1.5", "1500m"),
        ("1e3", "1k"),
        ("1000", "1k"),
        ("0.5Ki", "512"),
        ("-1Gi", "-1Gi"),
        ("+2k", "2k"),
        ("0Gi", "0"),
        ("0.000001", "1u"),
        ("12345n", "12345n"),
    ],
)
def test_canonical_text(text: str, canonical: str) -> None:
    q = Quantity.parse(text)
    assert str(q) == canonical
    assert q.text == text
    assert repr(q) == f"Quantity.parse({text!r})"


def test_equality_hash_and_ordering() -> None:
    assert Quantity.parse("1Gi") == Quantity.parse("1073741824")
    assert hash(Quantity.parse("1Gi")) == hash(Quantity.parse("1073741824"))
    assert len({Quantity.parse("1k"), Quantity.parse("1e3"), Quantity.parse("1000")}) == 1
    assert Quantity.parse("999m") < Quantity.parse("1") <= Quantity.parse("1.0")
    assert Quantity.parse("1Ki") > Quantity.parse("1k") >= Quantity.parse("-1E")
    assert Quantity.parse("1") != 1
    assert Quantity.parse("1") != "1"
    with pytest.raises(TypeError):
        _ = Quantity.parse("1") < 1  # type: ignore[operator]


def test_constructor_takes_nano_units_only() -> None:
    assert Quantity(1500 * 10**6) == Quantity.parse("1.5")
    with pytest.raises(TypeError, match=r"Quantity\.parse"):
        Quantity("1Gi")  # type: ignore[arg-type]


def test_immutable_and_picklable() -> None:
    q = Quantity.parse("1.5Gi")
    with pytest.raises(AttributeError):
        q._nano = 0
    with pytest.raises(AttributeError):
        del q._text
    for clone in (pickle.loads(pickle.dumps(q)), copy.copy(q), copy.deepcopy(q)):
        assert clone == q
        assert clone.text == "1.5Gi"


def test_arithmetic_is_exact() -> None:
    a, b = Quantity.parse("1.5Gi"), Quantity.parse("512Mi")
    assert a + b == Quantity.parse("2Gi")
    assert str(a + b) == "2Gi"
    assert b - a == Quantity.parse("-1Gi")
    assert (b - a).is_negative
    assert Quantity.parse("0.1") + Quantity.parse("0.2") == Quantity.parse("0.3")
    assert a * 2 == 2 * a == Quantity.parse("3Gi")
    assert Quantity.parse("10") * Fraction(3, 2) == Quantity.parse("15")
    assert Quantity.parse("1") * Fraction(1, 3) == Quantity.parse("333333334n")  # rounds up
    with pytest.raises(TypeError):
        _ = a * 1.5  # type: ignore[operator]
    with pytest.raises(TypeError):
        _ = a * True
    with pytest.raises(TypeError):
        _ = a + 1  # type: ignore[operator]
    with pytest.raises(QuantityError, match="out of range"):
        _ = Quantity.parse("8E") + Quantity.parse("8E")


# --- pydantic -------------------------------------------------------------------------------


class Gpu(BaseModel):
    tflops: Quantity
    vram: NonNegativeQuantity
    extra: QuantityType = Quantity.parse("0")


@pytest.mark.parametrize(
    ("tflops", "vram"),
    [("100", "16Gi"), (100, 17179869184), (1.5, "1.5Gi"), ("-1", "0"), ("1e3", "500m")],
)
def test_model_round_trip(tflops: object, vram: object) -> None:
    gpu = Gpu.model_validate({"tflops": tflops, "vram": vram})
    assert gpu.tflops == Quantity.coerce(tflops)
    assert gpu.vram == Quantity.coerce(vram)
    dumped = gpu.model_dump()
    assert dumped == {"tflops": str(gpu.tflops), "vram": str(gpu.vram), "extra": "0"}
    assert Gpu.model_validate(dumped) == gpu
    dumped_json = gpu.model_dump_json()
    assert all(isinstance(v, str) for v in json.loads(dumped_json).values())
    assert Gpu.model_validate_json(dumped_json) == gpu


def test_model_validate_json_accepts_numbers() -> None:
    gpu = Gpu.model_validate_json('{"tflops": 1.5, "vram": 1024, "extra": "0.1"}')
    assert gpu.tflops.exact == Fraction(3, 2)
    assert gpu.vram == Quantity.parse("1Ki")
    assert gpu.extra.exact == Fraction(1, 10)


def _only_error(exc: ValidationError) -> dict[str, Any]:
    errors = exc.errors()
    assert len(errors) == 1
    return dict(errors[0])


@pytest.mark.parametrize("value", ["16GB", "1e-12", True, None, [1], math.nan, {"a": 1}])
def test_model_rejects_with_the_quantity_error_text(value: object) -> None:
    with pytest.raises(QuantityError) as expected:
        Quantity.coerce(value)
    with pytest.raises(ValidationError) as info:
        Gpu.model_validate({"tflops": value, "vram": "1"})
    error = _only_error(info.value)
    assert error["loc"] == ("tflops",)
    assert error["msg"] == str(expected.value)


def test_model_rejects_json_true() -> None:
    with pytest.raises(ValidationError, match="bool"):
        Gpu.model_validate_json('{"tflops": true, "vram": "1"}')


@pytest.mark.parametrize("vram", ["-1", -1, "-1Gi", -0.5])
def test_non_negative_quantity_rejects_negatives(vram: object) -> None:
    with pytest.raises(ValidationError) as info:
        Gpu.model_validate({"tflops": "1", "vram": vram})
    error = _only_error(info.value)
    assert error["loc"] == ("vram",)
    assert error["msg"] == f"must not be negative (got {Quantity.coerce(vram).text!r})"


def test_non_negative_message_format() -> None:
    with pytest.raises(ValidationError) as info:
        Gpu.model_validate({"tflops": "1", "vram": "-1Gi"})
    assert _only_error(info.value)["msg"] == "must not be negative (got '-1Gi')"


def test_json_schema_shape() -> None:
    expected = {
        "anyOf": [{"type": "integer"}, {"type": "string"}],
        "pattern": QUANTITY_PATTERN,
        "x-kubernetes-int-or-string": True,
    }
    properties = Gpu.model_json_schema()["properties"]
    for name in ("tflops", "vram", "extra"):
        schema = {k: v for k, v in properties[name].items() if k not in ("title", "default")}
        assert schema == expected
    assert properties["extra"]["default"] == "0"
    assert Gpu.model_json_schema(mode="serialization")["properties"]["tflops"]["pattern"]


def test_pattern_agrees_with_the_parser() -> None:
    assert QUANTITY_PATTERN.startswith("^")
    assert QUANTITY_PATTERN.endswith("$")
    pattern = re.compile(QUANTITY_PATTERN)
    for raw, _ in GOOD:
        if isinstance(raw, str):
            assert pattern.fullmatch(raw), raw
    for text in BAD_TEXT:
        assert not pattern.fullmatch(text), text


# --- properties -----------------------------------------------------------------------------

SUFFIXES = ["", "n", "u", "m", "k", "M", "G", "Ki", "Mi", "Gi", "Ti", "e3", "E-2", "e+1"]
small_ints = st.integers(min_value=-(10**6), max_value=10**6)


@st.composite
def quantities(draw: st.DrawFn) -> Quantity:
    return Quantity.parse(f"{draw(small_ints)}{draw(st.sampled_from(SUFFIXES))}")


@given(quantities())
def test_str_round_trips(q: Quantity) -> None:
    assert Quantity.parse(str(q)) == q
    assert Quantity.parse(q.text) == q
    assert Quantity.coerce(q) is q


@given(st.integers(min_value=0, max_value=2**40))
def test_ki_value(n: int) -> None:
    assert Quantity.parse(f"{n}Ki").value() == n * 1024
    assert Quantity.from_int(n * 1024) == Quantity.parse(f"{n}Ki")


@given(quantities())
def test_value_rounds_up_and_agrees_with_milli_value(q: Quantity) -> None:
    assert q.value() == math.ceil(q.exact)
    assert q.milli_value() == math.ceil(q.exact * 1000)
    if not q.is_negative:
        assert q.value() == math.ceil(Fraction(q.milli_value(), 1000))


@given(quantities(), quantities())
def test_ordering_matches_fractions(a: Quantity, b: Quantity) -> None:
    assert (a < b) == (a.exact < b.exact)
    assert (a == b) == (a.exact == b.exact)
    assert (a <= b) == (a.exact <= b.exact)
    assert (a + b).exact == a.exact + b.exact
    assert (a - b).exact == a.exact - b.exact


@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-(10**15), max_value=10**15))
def test_floats_use_their_shortest_text(f: float) -> None:
    exact = Fraction(repr(f))
    if (exact * 10**9).denominator != 1:  # only sub-nano precision may be refused
        with pytest.raises(QuantityError, match="finer than 1n"):
            Quantity.coerce(f)
    else:
        assert Quantity.coerce(f).exact == exact
