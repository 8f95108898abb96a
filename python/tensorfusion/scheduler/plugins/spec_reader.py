"""Typed reads from a free-form pod document that never raise.

A value of the wrong shape is recorded as "field.path: message" and read as absent, so one
malformed part of a spec neither crashes the scheduler nor hides the problems (or the valid
parts) of the rest."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

_EMPTY: Mapping[str, Any] = {}
_T = TypeVar("_T")
_JSON_TYPES = {
    bool: "a boolean",
    int: "a number",
    float: "a number",
    str: "a string",
    list: "a list",
    tuple: "a list",
    dict: "an object",
}


def json_type(value: object) -> str:
    """How a value reads in a manifest, for messages ("got a list")."""
    if value is None:
        return "null"
    if isinstance(value, Mapping):
        return "an object"
    return _JSON_TYPES.get(type(value), type(value).__name__)


class SpecReader:
    """Collects the problems of one document; every accessor returns a usable default."""

    __slots__ = ("problems",)

    def __init__(self) -> None:
        self.problems: list[str] = []

    def fail(self, path: str, message: str) -> None:
        self.problems.append(f"{path}: {message}")

    def mapping(self, value: object, path: str) -> Mapping[str, Any]:
        if isinstance(value, Mapping):
            return value
        return self._instead(value, path, "an object", _EMPTY)

    def items(self, value: object, path: str) -> Sequence[Any]:
        if isinstance(value, list | tuple):
            return value
        return self._instead(value, path, "a list", ())

    def text(self, value: object, path: str, default: str = "") -> str:
        if isinstance(value, str):
            return value
        return self._instead(value, path, "a string", default)

    def _instead(self, value: object, path: str, what: str, default: _T) -> _T:
        """`default` in place of a value of the wrong type; reported unless absent (None)."""
        if value is not None:
            self.fail(path, f"must be {what}, got {json_type(value)}")
        return default

    def integer(self, value: object, path: str, low: int, high: int) -> int | None:
        """An integer in [low, high]; None (and a problem) otherwise. None stays silent."""
        if isinstance(value, bool) or not isinstance(value, int):
            return self._instead(value, path, "an integer", None)
        if not low <= value <= high:
            self.fail(path, f"must be in {low}..{high}, got {value}")
            return None
        return value

    def strings(self, value: object, path: str) -> dict[str, str]:
        """A string-to-string map (labels, annotations, a node selector)."""
        result: dict[str, str] = {}
        for key, item in self.mapping(value, path).items():
            if isinstance(key, str) and isinstance(item, str):
                result[key] = item
            else:
                self.fail(f"{path}.{key}", f"must be a string, got {json_type(item)}")
        return result
