"""Checks that upstream's API does not make. A manifest written for upstream must load here
unchanged, so a value that only fails one of these is accepted (the CRDs accept it too) and
`validate` warns about it. Checks whose failure would make the product do the wrong thing
stay hard errors in the models instead."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any


def _fine(value: object) -> None:
    return None


@dataclass(frozen=True)
class Advice:
    """Field metadata: `check` returns what is wrong with a value (None when nothing is)."""

    check: Callable[[Any], str | None] = _fine
    missing: str | None = None
    """What leaving the field out means, where upstream allows it but it deserves a warning."""

    def remark(self, value: object) -> str | None:
        if value is None:
            return f"missing: {self.missing}" if self.missing else None
        return self.check(value)


def wanted(effect: str) -> Advice:
    """For a field upstream makes optional that means something only when given."""
    return Advice(missing=effect)


def at_least(low: int, effect: str = "") -> Advice:
    def check(value: int) -> str | None:
        return f"is {value}, below {low}{effect}" if value < low else None

    return Advice(check)


def between(low: int, high: int) -> Advice:
    def check(value: int) -> str | None:
        return f"is {value}, outside {low}-{high}" if not low <= value <= high else None

    return Advice(check)


def one_of(*known: str) -> Advice:
    def check(value: str) -> str | None:
        if value in known:
            return None
        return f"{value!r} is none of {', '.join(known)}, the values tensor-fusion acts on"

    return Advice(check)


def _not_empty(value: str) -> str | None:
    return "is empty" if not value else None


NOT_EMPTY = Advice(_not_empty)
Count = Annotated[int, at_least(0)]
OptionalCount = Annotated[int | None, at_least(0)]
Text = Annotated[str, NOT_EMPTY]
"""A string that means nothing when empty (a name, an image)."""
OptionalText = Annotated[str | None, NOT_EMPTY]
