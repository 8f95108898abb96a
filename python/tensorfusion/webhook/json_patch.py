"""The RFC 6902 JSONPatch that turns one JSON document into another, as admission answers
carry it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

JsonPatch = list[dict[str, Any]]


def pointer_token(key: str) -> str:
    """A key as one RFC 6901 pointer step (`tensor-fusion.ai/qos` -> `tensor-fusion.ai~1qos`)."""
    return key.replace("~", "~0").replace("/", "~1")


def patch_between(before: Mapping[str, Any], after: Mapping[str, Any], path: str = "") -> JsonPatch:
    """Operations that make `before` equal to `after`: objects are compared key by key, any
    other changed value (a list included) is replaced whole."""
    operations: JsonPatch = []
    for key, value in after.items():
        at = f"{path}/{pointer_token(key)}"
        if key not in before:
            operations.append({"op": "add", "path": at, "value": value})
        elif isinstance(value, Mapping) and isinstance(before[key], Mapping):
            operations.extend(patch_between(before[key], value, at))
        elif value != before[key]:
            operations.append({"op": "replace", "path": at, "value": value})
    operations.extend(
        {"op": "remove", "path": f"{path}/{pointer_token(key)}"}
        for key in before
        if key not in after
    )
    return operations
