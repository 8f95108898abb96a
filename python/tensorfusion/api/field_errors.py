"""Turn pydantic's validation errors into `path: message` lines a person can act on:
`spec.gpuPools[0].specTemplate.capacityConfig.oversubscription.tflopsOversellRatio: must
be >= 100 (got 50)`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import ValidationError
from pydantic_core import ErrorDetails

_TYPE_NAMES = {
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "string",
    list: "list",
    dict: "mapping",
    type(None): "null",
}
_EXPECTED = {
    "int_type": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "bool_type": "a boolean (true or false, unquoted)",
    "string_type": "a string (quote it)",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}


@dataclass(frozen=True)
class FieldIssue:
    """One problem (or, with `warning`, one remark) at a field path."""

    path: str
    message: str
    warning: bool = False

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


def type_name(value: object) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def describe(error: ErrorDetails) -> str:
    """The message part for one pydantic error, in our words."""
    kind, ctx, value = error["type"], error.get("ctx", {}), error.get("input")
    if kind in _EXPECTED:
        shown = "" if value is None else f" {_shown(value)}"
        return f"must be {_EXPECTED[kind]}, got {type_name(value)}{shown}"
    if kind == "missing":
        return "required field is missing"
    if kind == "literal_error":
        return f"must be one of {ctx['expected']}, got {_shown(value)}"
    bounds = {
        "greater_than_equal": ">=",
        "greater_than": ">",
        "less_than_equal": "<=",
        "less_than": "<",
    }
    if kind in bounds:
        limit = next(iter(ctx.values()))
        return f"must be {bounds[kind]} {limit}, got {_shown(value)}"
    if kind == "too_short":
        return f"must have at least {ctx['min_length']} item(s)"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    return str(error["msg"])


def join_path(parts: Sequence[str | int]) -> str:
    """A field path as messages write it: `spec.items[0]`, `labels['a.b/c']`."""
    path = ""
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        elif "." in part or "/" in part:
            path += f"[{part!r}]"
        else:
            path += f".{part}" if path else part
    return path


def issues_from(exc: ValidationError, prefix: str = "") -> list[FieldIssue]:
    """One FieldIssue per error, with the full path of the field at fault."""
    issues = []
    for error in exc.errors(include_url=False):
        parts: list[str | int] = [p for p in error["loc"] if not _is_schema_tag(p)]
        ctx = error.get("ctx", {})
        for extra, message in ctx.get("problems") or [(ctx.get("path"), describe(error))]:
            path = join_path(parts)
            if extra:
                path = f"{path}.{extra}" if path else str(extra)
            if prefix:
                path = f"{prefix}.{path}" if path and not path.startswith("[") else prefix + path
            issues.append(FieldIssue(path, message))
    return issues


def _is_schema_tag(part: str | int) -> bool:
    # pydantic inserts the names of union members and validator functions into locations
    # ("function-after[...]", "str", "int"); they are not field names.
    return isinstance(part, str) and (
        "[" in part or part in {"str", "int", "float", "bool", "list", "dict"}
    )
