"""Exact Kubernetes resource quantities (the k8s.io/apimachinery ``resource.Quantity`` grammar).

Every quantity is held as a whole number of nano-units (1n = 1e-9), the finest precision
Kubernetes can represent, so arithmetic and comparisons are exact and never drift through
binary floats. Magnitudes are capped at 2**63-1 units, as in Kubernetes.
"""

from __future__ import annotations

import functools
import math
import re
from fractions import Fraction
from typing import Annotated, Any, TypeAlias

from pydantic import AfterValidator, Field, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

from tensorfusion.errors import QuantityError

__all__ = ["QUANTITY_PATTERN", "NonNegativeQuantity", "Quantity", "QuantityType"]

# Stricter than the Kubernetes CRD pattern: the exponent must be an integer, which is also
# what the Kubernetes parser itself demands.
QUANTITY_PATTERN = r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?$"
_QUANTITY_RE = re.compile(QUANTITY_PATTERN)

_EXPECTED = (
    "expected a number with an optional suffix: Ki Mi Gi Ti Pi Ei, n u m k M G T P E, "
    "or an exponent like 1e3"
)
_NANO = 10**9
_MAX_UNITS = 2**63 - 1
_MAX_NANO = _MAX_UNITS * _NANO
# Caps that keep hostile input cheap: the text is bounded before any int() conversion, and
# the exponent before 10**exponent is built (so '1e999999999' fails at once).
_MAX_TEXT = 256
_MAX_EXPONENT = 1000

_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}  # powers of 1024
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_BINARY_BY_POWER = sorted(((p, s) for s, p in _BINARY.items()), reverse=True)
_DECIMAL_BY_EXP = sorted(((e, s) for s, e in _DECIMAL.items()), reverse=True)


def _quote(text: str) -> str:
    """Quote user text for an error message without echoing megabytes of it."""
    return repr(text) if len(text) <= 64 else repr(text[:61]) + "..."


def _out_of_range(shown: str) -> QuantityError:
    return QuantityError(
        f"{shown} is out of range: a Kubernetes quantity must lie within "
        f"±{_MAX_UNITS} (2**63-1) and not be finer than 1n (1e-9)"
    )


def _canonical(nano: int, binary: bool) -> str:
    """Kubernetes-like canonical text: the largest suffix that leaves a whole mantissa.

    Binary suffixes are kept for values written with one (when the value allows); decimal
    exponents ('1e3') canonicalize to SI suffixes ('1k').
    """
    if nano == 0:
        return "0"
    sign, mag = ("-" if nano < 0 else ""), abs(nano)
    if binary and mag % _NANO == 0:
        units = mag // _NANO
        for power, suffix in _BINARY_BY_POWER:
            if units % 1024**power == 0:
                return f"{sign}{units // 1024**power}{suffix}"
    for exp, suffix in _DECIMAL_BY_EXP:  # ends at 'n', which always divides a nano count
        if mag % 10 ** (exp + 9) == 0:
            return f"{sign}{mag // 10 ** (exp + 9)}{suffix}"
    raise AssertionError("unreachable")  # pragma: no cover


@functools.total_ordering
class Quantity:
    """An immutable, exact Kubernetes quantity; equal, hashed and ordered by value."""

    __slots__ = ("_binary", "_nano", "_text")
    _nano: int
    _text: str
    _binary: bool

    def __init__(self, nano: int, *, text: str | None = None, binary: bool = False) -> None:
        """Build from a count of nano-units; prefer `parse`, `coerce` and the `from_*` helpers."""
        if isinstance(nano, bool) or not isinstance(nano, int):
            raise TypeError("Quantity() takes a count of nano-units; use Quantity.parse for text")
        if abs(nano) > _MAX_NANO:
            raise _out_of_range(_quote(text) if text is not None else "the result")
        object.__setattr__(self, "_nano", nano)
        object.__setattr__(self, "_binary", binary)
        object.__setattr__(self, "_text", text if text is not None else _canonical(nano, binary))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Quantity is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("Quantity is immutable")

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (Quantity.parse, (self._text,))

    @classmethod
    def parse(cls, text: str) -> Quantity:
        """Parse Kubernetes quantity text exactly; raise QuantityError if it is not one."""
        if not isinstance(text, str):
            raise QuantityError(f"expected quantity text (str), got {type(text).__name__}")
        if len(text) > _MAX_TEXT:
            raise QuantityError(f"{_quote(text)} is too long for a Kubernetes quantity")
        match = _QUANTITY_RE.fullmatch(text)
        if match is None:
            raise QuantityError(f"{_quote(text)} is not a Kubernetes quantity ({_EXPECTED})")
        number, suffix = match.group(1), match.group(3) or ""
        whole, _, frac = number.partition(".")
        mantissa = int((whole + frac) or "0")
        if mantissa and text[0] == "-":
            mantissa = -mantissa
        if suffix in _BINARY:
            exponent, binary_power = 0, _BINARY[suffix]
        elif suffix in _DECIMAL:
            exponent, binary_power = _DECIMAL[suffix], 0
        else:  # a decimal exponent such as e3, E-3, e+3
            exponent, binary_power = int(suffix[1:]), 0
            if abs(exponent) > _MAX_EXPONENT:
                raise _out_of_range(_quote(text))
        # value = mantissa * 10**(exponent - len(frac)) * 1024**binary_power; count it in nano.
        nano = mantissa * 1024**binary_power * Fraction(10) ** (exponent - len(frac) + 9)
        if nano.denominator != 1:
            raise QuantityError(
                f"{_quote(text)} is finer than 1n (1e-9), the smallest unit Kubernetes represents"
            )
        return cls(nano.numerator, text=text, binary=bool(binary_power))

    @classmethod
    def coerce(cls, value: object) -> Quantity:
        """Accept a Quantity, quantity text, an int or a finite float (as YAML/JSON give)."""
        if isinstance(value, Quantity):
            return value
        if isinstance(value, str):
            return cls.parse(value)
        if isinstance(value, bool):  # bool is an int subclass, but `true` is never a quantity
            raise QuantityError(f"{value!r} (bool) is not a Kubernetes quantity ({_EXPECTED})")
        if isinstance(value, int):
            return cls.from_int(value)
        if isinstance(value, float):
            if not math.isfinite(value):
                raise QuantityError(f"{_quote(repr(value))} is not a finite number")
            # repr() is the shortest text that round-trips, so 0.1 becomes exactly 1/10.
            return cls.parse(repr(value))
        raise QuantityError(
            f"a Kubernetes quantity must be a string or a number, got {type(value).__name__}"
        )

    @classmethod
    def from_int(cls, n: int) -> Quantity:
        """Whole units, e.g. bytes or TFLOPS."""
        if abs(n) > _MAX_UNITS:  # before str(n): huge ints are slow (or refused) to print
            raise _out_of_range(f"{n.bit_length()}-bit integer")
        return cls(n * _NANO)

    @classmethod
    def from_milli(cls, m: int) -> Quantity:
        """Milli-units, e.g. millicores."""
        if abs(m) > _MAX_NANO // 10**6:
            raise _out_of_range(f"{m.bit_length()}-bit milli count")
        return cls(m * 10**6)

    @property
    def exact(self) -> Fraction:
        return Fraction(self._nano, _NANO)

    @property
    def text(self) -> str:
        """The text this was parsed from, or the canonical text when built from a number."""
        return self._text

    @property
    def is_negative(self) -> bool:
        return self._nano < 0

    def value(self) -> int:
        """Whole units, rounded up (towards +inf) like Kubernetes `Quantity.Value()`."""
        return -(-self._nano // _NANO)

    def milli_value(self) -> int:
        """Milli-units, rounded up like Kubernetes `Quantity.MilliValue()`."""
        return -(-self._nano // 10**6)

    def to_bytes(self) -> int:
        """A byte count: fractional bytes round up like `value()`; negatives are refused."""
        if self._nano < 0:
            raise QuantityError(f"{_quote(self._text)} is negative, so it is not a byte count")
        return self.value()

    def __str__(self) -> str:
        return _canonical(self._nano, self._binary)

    def __repr__(self) -> str:
        return f"Quantity.parse({self._text!r})"

    def __eq__(self, other: object) -> bool:
        return self._nano == other._nano if isinstance(other, Quantity) else NotImplemented

    def __lt__(self, other: Quantity) -> bool:
        return self._nano < other._nano if isinstance(other, Quantity) else NotImplemented

    def __hash__(self) -> int:
        return hash(self._nano)

    def __add__(self, other: Quantity) -> Quantity:
        if not isinstance(other, Quantity):
            return NotImplemented
        return Quantity(self._nano + other._nano, binary=self._binary and other._binary)

    def __sub__(self, other: Quantity) -> Quantity:
        if not isinstance(other, Quantity):
            return NotImplemented
        return Quantity(self._nano - other._nano, binary=self._binary and other._binary)

    def __mul__(self, factor: int | Fraction) -> Quantity:
        """Scale (e.g. by an oversubscription ratio); rounds up to whole nano-units."""
        if isinstance(factor, bool) or not isinstance(factor, int | Fraction):
            return NotImplemented
        return Quantity(math.ceil(self._nano * factor), binary=self._binary)

    __rmul__ = __mul__

    # Pydantic: a field typed `Quantity` takes str/int/float and dumps the canonical string.
    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            _pydantic_coerce,
            serialization=core_schema.plain_serializer_function_ser_schema(str),
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        # The shape Kubernetes CRDs use for resource.Quantity.
        return {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": QUANTITY_PATTERN,
            "x-kubernetes-int-or-string": True,
        }


def _pydantic_coerce(value: object) -> Quantity:
    try:
        return Quantity.coerce(value)
    except QuantityError as exc:  # a custom error keeps the message free of "Value error, "
        raise PydanticCustomError("quantity", str(exc)) from exc


def _non_negative(q: Quantity) -> Quantity:
    if q.is_negative:
        raise PydanticCustomError(
            "negative_quantity", "must not be negative (got {got})", {"got": _quote(q.text)}
        )
    return q


QuantityType: TypeAlias = Annotated[Quantity, Field()]
"""Explicit alias for a quantity field; a bare `Quantity` annotation behaves the same."""
NonNegativeQuantity: TypeAlias = Annotated[Quantity, AfterValidator(_non_negative)]
"""A quantity that must be >= 0: most GPU fields (TFLOPS, VRAM)."""


def _non_negative_text(text: str) -> str:
    _non_negative(_pydantic_coerce(text))
    return text


QuantityText: TypeAlias = Annotated[str, AfterValidator(_non_negative_text)]
"""A non-negative quantity that upstream's schema types as a string (budgets, disk sizes):
kept as written, and refused when it is not a quantity."""
