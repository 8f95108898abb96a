"""Label and field selectors, in the query syntax and as LabelSelector objects."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

Labels = Mapping[str, str]
Predicate = Callable[[Mapping[str, Any]], bool]

_SET_REQUIREMENT = re.compile(r"^(\S+)\s+(in|notin)\s+\(([^)]*)\)$")
_EQUALITY = re.compile(r"^([^!=\s]+)\s*(==|=|!=)\s*(\S*)$")
_KEY = re.compile(r"^(!?)([A-Za-z0-9][-A-Za-z0-9_./]*)$")


class SelectorError(ValueError):
    """A selector that does not parse; the message names the selector and the bad part."""


def _split(selector: str) -> list[str]:
    """The requirements of `selector`: commas split them, except inside `in (…)` sets."""
    parts, depth, current = [], 0, ""
    for char in selector:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    parts.append(current.strip())
    return [part for part in parts if part]


def _label_requirement(text: str, param: str) -> Callable[[Labels], bool]:
    if match := _SET_REQUIREMENT.match(text):
        key, operator, values = match.group(1), match.group(2), match.group(3)
        allowed = {value.strip() for value in values.split(",") if value.strip()}
        if operator == "in":
            return lambda labels: labels.get(key) in allowed
        return lambda labels: labels.get(key) not in allowed
    if match := _EQUALITY.match(text):
        key, operator, value = match.groups()
        if operator == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: labels.get(key) == value
    if match := _KEY.match(text):
        negate, key = match.groups()
        if negate:
            return lambda labels: key not in labels
        return lambda labels: key in labels
    raise SelectorError(f"{param}: unable to parse requirement {text!r}")


def label_selector(selector: str) -> Callable[[Labels], bool]:
    """A predicate over labels for a `labelSelector` query parameter."""
    requirements = [_label_requirement(part, "labelSelector") for part in _split(selector)]
    return lambda labels: all(requirement(labels) for requirement in requirements)


def field_value(obj: Mapping[str, Any], path: str) -> str:
    """The field at dotted `path` as a field selector compares it: missing fields are empty."""
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def field_selector(selector: str) -> Predicate:
    """A predicate over objects for a `fieldSelector` query parameter (`=`, `==`, `!=` on
    any dotted field path; kube-apiserver allows fewer fields per kind)."""
    requirements: list[Predicate] = []
    for part in _split(selector):
        match = _EQUALITY.match(part)
        if match is None:
            raise SelectorError(f"fieldSelector: invalid selector {part!r}: expects field=value")
        path, operator, value = match.groups()
        requirements.append(_field_requirement(path, operator == "!=", value))
    return lambda obj: all(requirement(obj) for requirement in requirements)


def _field_requirement(path: str, negate: bool, value: str) -> Predicate:
    return lambda obj: (field_value(obj, path) == value) != negate


def _expression(expression: Any, where: str) -> Callable[[Labels], bool]:
    if not isinstance(expression, Mapping) or not isinstance(expression.get("key"), str):
        raise SelectorError(f"{where}.key: Required value")
    key, operator = expression["key"], expression.get("operator")
    values = set(expression.get("values") or ())
    if operator == "In":
        return lambda labels: labels.get(key) in values
    if operator == "NotIn":
        return lambda labels: labels.get(key) not in values
    if operator == "Exists":
        return lambda labels: key in labels
    if operator == "DoesNotExist":
        return lambda labels: key not in labels
    raise SelectorError(f'{where}.operator: Unsupported value: "{operator}"')


def selector_object(selector: Any, where: str) -> Callable[[Labels], bool]:
    """A predicate over labels for a LabelSelector object; null or {} selects everything."""
    if selector is None:
        return lambda labels: True
    if not isinstance(selector, Mapping):
        raise SelectorError(f"{where}: must be an object")
    match_labels = dict(selector.get("matchLabels") or {})
    expressions = [
        _expression(expression, f"{where}.matchExpressions[{index}]")
        for index, expression in enumerate(selector.get("matchExpressions") or ())
    ]
    return lambda labels: (
        all(labels.get(k) == v for k, v in match_labels.items())
        and all(expression(labels) for expression in expressions)
    )


def labels_of(obj: Mapping[str, Any] | None) -> Labels:
    if obj is None:
        return {}
    labels: Labels = (obj.get("metadata") or {}).get("labels") or {}
    return labels
