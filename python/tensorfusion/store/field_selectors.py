"""Field selectors: a list or a watch narrowed to the objects whose fields hold given values,
as the API server's `fieldSelector` narrows them (`spec.nodeName=node-1`).

A selector maps a field path to the value it must hold; every pair must match. Only the
fields the API server can select by are accepted, so that a selector any backend takes is
one the server takes too: `metadata.name` on every kind, `metadata.namespace` on namespaced
kinds, and a Pod's `spec.nodeName` and `status.phase`. An empty value selects the objects
whose field is empty or missing, as the server's does (`spec.nodeName=`: pods not yet bound).
A value must be free of the selector syntax's own characters, which the server would need
escaped.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any

from tensorfusion.api.field_errors import type_name
from tensorfusion.errors import ConfigError
from tensorfusion.store.scopes import checked_kind, is_namespaced

FieldSelector = Mapping[str, str]
"""Field path -> the value it must hold."""

_KIND_FIELDS: Mapping[str, frozenset[str]] = {
    "Pod": frozenset({"spec.nodeName", "status.phase"}),
}
_SYNTAX = re.compile(r"[,=\\\s]")


def selectable_fields(kind: str) -> frozenset[str]:
    """The fields objects of a checked kind can be selected by."""
    common = {"metadata.name", "metadata.namespace"} if is_namespaced(kind) else {"metadata.name"}
    return frozenset(common) | _KIND_FIELDS.get(kind, frozenset())


def checked_field_selector(field: str, kind: str, selector: object) -> dict[str, str]:
    """A copy of a selector for objects of a checked kind (None: select all), or a
    ConfigError naming `field`."""
    if selector is None:
        return {}
    if not isinstance(selector, Mapping):
        raise ConfigError(
            field, f"must map field paths such as 'spec.nodeName' to values, got {selector!r}"
        )
    allowed = selectable_fields(kind)
    for path, value in selector.items():
        if path not in allowed:
            known = ", ".join(sorted(allowed))
            raise ConfigError(field, f"{kind} cannot be selected by {path!r}; it can by: {known}")
        if not isinstance(value, str):
            raise ConfigError(field, f"the value of {path!r} must be a string, got {value!r}")
        if _SYNTAX.search(value):
            raise ConfigError(
                field,
                f"the value of {path!r} may not hold ',', '=', '\\' or white space, got {value!r}",
            )
    return dict(selector)


def checked_field_selectors(
    selectors: object, kinds: Collection[str] | None
) -> dict[str, dict[str, str]]:
    """A selector per kind (None: none), each kind among `kinds` (None: any kind)."""
    if selectors is None:
        return {}
    if not isinstance(selectors, Mapping):
        raise ConfigError(
            "field_selectors", f"must map kinds to field selectors, got {type_name(selectors)}"
        )
    checked: dict[str, dict[str, str]] = {}
    for kind, selector in selectors.items():
        known = checked_kind(kind, "field_selectors")
        if kinds is not None and known not in kinds:
            raise ConfigError("field_selectors", f"names {known}, which is not followed")
        checked[known] = checked_field_selector(f"field_selectors[{known}]", known, selector)
    return checked


def selector_query(selector: FieldSelector) -> str:
    """The `fieldSelector` query parameter of a checked selector."""
    return ",".join(f"{path}={value}" for path, value in selector.items())


def selects(selector: FieldSelector, obj: Mapping[str, Any]) -> bool:
    """Whether `obj` holds every value of a checked selector (a missing or null field holds
    "")."""
    return all(_value_at(obj, path) == value for path, value in selector.items())


def _value_at(obj: Mapping[str, Any], path: str) -> object:
    value: object = obj
    for key in path.split("."):
        value = value.get(key) if isinstance(value, Mapping) else None
    return "" if value is None else value
