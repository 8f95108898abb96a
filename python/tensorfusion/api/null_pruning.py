"""What the API server does to nulls in a custom resource before validating it: a field whose
schema is not nullable (none of ours is) and whose value is null is dropped, so `spec:` with
only comments under it reads as an absent spec. Inside free-form parts (no properties in the
schema) nulls are kept, as the server keeps them."""

from __future__ import annotations

from typing import Any


def prune_nulls(data: Any, schema: dict[str, Any], path: str = "") -> tuple[Any, list[str]]:
    """`data` without the null fields `schema` declares, and the paths of those dropped."""
    if not isinstance(data, dict):
        if isinstance(data, list) and isinstance(schema.get("items"), dict):
            pruned: list[str] = []
            items = []
            for index, item in enumerate(data):
                kept, dropped = prune_nulls(item, schema["items"], f"{path}[{index}]")
                items.append(kept)
                pruned += dropped
            return items, pruned
        return data, []
    properties: dict[str, Any] = schema.get("properties", {})
    extra = schema.get("additionalProperties")
    out: dict[Any, Any] = {}
    dropped_paths: list[str] = []
    for key, value in data.items():
        child = properties.get(key, extra if isinstance(extra, dict) else None)
        if child is None:
            out[key] = value
            continue
        child_path = _child_path(path, key, key in properties)
        if value is None:
            dropped_paths.append(child_path)
            continue
        out[key], dropped = prune_nulls(value, child, child_path)
        dropped_paths += dropped
    return out, dropped_paths


def _child_path(path: str, key: Any, declared: bool) -> str:
    if not declared:
        return f"{path}[{key!r}]"
    return f"{path}.{key}" if path else str(key)
