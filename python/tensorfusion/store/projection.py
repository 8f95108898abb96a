"""Listing a few fields of many objects (`ClusterStore.list_values`): a caller that reads only
those decodes only them, which for 100,000 pods is a fraction of decoding whole objects.

A path is the keys from the top of an object down to a value. A key is printable ASCII
without '"' or '\\', as every Kubernetes field name and annotation key is, so that SQLite
takes it quoted in a JSON path as it is and matches it against keys stored as JSON text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from tensorfusion.api.field_errors import type_name
from tensorfusion.errors import ConfigError
from tensorfusion.store.objects import JsonObject

FieldPath = tuple[str, ...]
"""Keys down to a value: ("metadata", "annotations", "tensor-fusion.ai/gpu-ids")."""

_KEY = re.compile(r"[ !#-\[\]-~]+")


MAX_PATHS = 100
"""The most paths one listing takes: SQLite passes each as an argument of one function call,
and allows a function 127 at most."""


def checked_paths(paths: object) -> tuple[FieldPath, ...]:
    """At least one path and at most `MAX_PATHS`, each a non-empty sequence of keys; a
    ConfigError names the path."""
    if isinstance(paths, str | bytes) or not isinstance(paths, Sequence) or not paths:
        raise ConfigError("paths", f"must be a non-empty sequence of key paths, got {paths!r}")
    if len(paths) > MAX_PATHS:
        raise ConfigError("paths", f"may hold at most {MAX_PATHS} paths, got {len(paths)}")
    checked = []
    for index, path in enumerate(paths):
        if isinstance(path, str | bytes) or not isinstance(path, Sequence) or not path:
            raise ConfigError(
                f"paths[{index}]",
                f"must be a non-empty sequence of keys such as ('metadata', 'name'), got {path!r}",
            )
        for key in path:
            if not isinstance(key, str) or not _KEY.fullmatch(key):
                shown = repr(key) if isinstance(key, str) else type_name(key)
                raise ConfigError(
                    f"paths[{index}]",
                    f"keys must be printable ASCII without '\"' or '\\', got {shown}",
                )
        checked.append(tuple(path))
    return tuple(checked)


def values_at(obj: JsonObject, paths: Sequence[FieldPath]) -> list[Any]:
    """The value at each of the checked `paths` in a JSON object; None where it has none (a
    key is missing, or a value on the way is not an object)."""
    values = []
    for path in paths:
        value: Any = obj
        for key in path:
            # JSON objects decode to dicts; testing for them is many times cheaper than Mapping.
            value = value.get(key) if isinstance(value, dict) else None
        values.append(value)
    return values


def json_path(path: FieldPath) -> str:
    """A checked path as an SQLite JSON path, each key quoted."""
    return "$" + "".join(f'."{key}"' for key in path)


def projected(paths: Sequence[FieldPath], values: Sequence[Any]) -> dict[str, Any]:
    """The object holding each of `values` at its path, as `values_at` read them (a None is
    left out): the part of an object that a reader of only those paths needs."""
    obj: dict[str, Any] = {}
    for path, value in zip(paths, values, strict=True):
        if value is None:
            continue
        parent = obj
        for key in path[:-1]:
            parent = parent.setdefault(key, {})
        parent[path[-1]] = value
    return obj
