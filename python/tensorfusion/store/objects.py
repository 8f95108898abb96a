"""Checks of a whole object before it is stored, and its encoding as JSON text.

The store reads only an object's kind and metadata; spec and status pass through untouched.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from tensorfusion.api.field_errors import type_name
from tensorfusion.api.names import label_value_problem, qualified_name_problem
from tensorfusion.errors import ConfigError
from tensorfusion.store.arguments import checked_object_name
from tensorfusion.store.keys import ObjectKey, list_namespace, scoped_namespace
from tensorfusion.store.scopes import checked_kind

JsonObject = dict[str, Any]

# Label and annotation keys repeat across objects (every pod carries the same few), so each
# distinct key or label value is checked once; a batch of 100,000 pods would otherwise spend
# most of its checking time in these regular expressions.
_key_problem = lru_cache(maxsize=4096)(qualified_name_problem)
_label_value_problem = lru_cache(maxsize=4096)(label_value_problem)
# Compact, and strict about NaN and infinities, which Kubernetes JSON cannot carry.
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def _checked_string_map(
    field: str, value: object, value_problem: Callable[[str], str | None] | None = None
) -> dict[str, str]:
    """A copy of a mapping of label/annotation keys to strings (each value also passing
    `value_problem` when given), or a ConfigError naming `field`."""
    if not isinstance(value, Mapping):
        raise ConfigError(field, f"must be a mapping of strings to strings, got {type_name(value)}")
    for key, item in value.items():
        if not isinstance(key, str):
            raise ConfigError(field, f"keys must be strings, got {type_name(key)} {key!r}")
        if problem := _key_problem(key):
            raise ConfigError(field, problem)
        if not isinstance(item, str):
            raise ConfigError(
                field, f"the value of {key!r} must be a string, got {type_name(item)}"
            )
        if value_problem and (problem := value_problem(item)):
            raise ConfigError(field, problem)
    return dict(value)


def checked_labels(field: str, value: object) -> dict[str, str]:
    """A copy of a label map (or a selector), or a ConfigError naming `field`."""
    return _checked_string_map(field, value, _label_value_problem)


def checked_annotations(field: str, value: object) -> dict[str, str]:
    """A copy of an annotation map (values are free text), or a ConfigError naming `field`."""
    return _checked_string_map(field, value)


def checked_key(obj: object) -> ObjectKey:
    """The key of `obj`; a ConfigError names the field at fault."""
    return _keyed(obj)[0]


def _keyed(obj: object) -> tuple[ObjectKey, Mapping[str, Any], Mapping[str, Any]]:
    """The key of `obj`, and `obj` and its metadata, both found to be mappings."""
    if not isinstance(obj, Mapping):
        raise ConfigError("object", f"must be a mapping, got {type_name(obj)}")
    kind = checked_kind(obj.get("kind"))
    metadata = obj.get("metadata")
    if not isinstance(metadata, Mapping):
        raise ConfigError("metadata", f"must be a mapping with a name, got {type_name(metadata)}")
    name = checked_object_name("metadata.name", metadata.get("name"))
    namespace = scoped_namespace(kind, metadata.get("namespace"), "metadata.namespace")
    return ObjectKey(kind, namespace, name), obj, metadata


def checked_object(obj: object) -> tuple[ObjectKey, JsonObject]:
    """The key of `obj` and a shallow copy whose top level and metadata are new dicts, with the
    namespace filled in; a ConfigError names the first metadata field at fault."""
    key, mapping, metadata = _keyed(obj)
    copy = dict(mapping)
    copy["metadata"] = new_metadata = dict(metadata)
    if key.namespace:
        new_metadata["namespace"] = key.namespace
    # null stands for an empty map in Kubernetes JSON, so only a present value is checked
    if (labels := metadata.get("labels")) is not None:
        new_metadata["labels"] = checked_labels("metadata.labels", labels)
    if (annotations := metadata.get("annotations")) is not None:
        new_metadata["annotations"] = checked_annotations("metadata.annotations", annotations)
    uid = metadata.get("uid")
    if uid is not None and (not isinstance(uid, str) or not uid):
        raise ConfigError("metadata.uid", f"must be a non-empty string, got {uid!r}")
    return key, copy


def encoded(obj: JsonObject) -> str:
    """Compact JSON text of `obj`; a value JSON cannot carry is a ConfigError naming its path."""
    try:
        return _ENCODER.encode(obj)
    except RecursionError:
        raise ConfigError("object", "is nested too deeply to store") from None
    except (TypeError, ValueError) as error:
        path, problem = _first_non_json(obj, "", set()) or ("object", str(error))
        raise ConfigError(path, problem) from None


def _first_non_json(value: object, path: str, ancestors: set[int]) -> tuple[str, str] | None:
    """Where and why `value` cannot be JSON; only walked after encoding failed, so the hot
    path pays nothing for the precise message."""
    if value is None or isinstance(value, str | bool | int):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else (path or "object", f"{value} is not JSON")
    if not isinstance(value, dict | list | tuple):
        return (path or "object", f"a {type_name(value)} value is not JSON")
    if id(value) in ancestors:
        return (path or "object", "contains itself")
    ancestors.add(id(value))
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, item in items:
        if isinstance(value, dict):
            child = f"{path}.{key}" if path else str(key)
            if not isinstance(key, str | int | float | bool | None):
                return (child, f"the key {key!r} is not a string")
        else:
            child = f"{path}[{key}]"
        if found := _first_non_json(item, child, ancestors):
            return found
    ancestors.discard(id(value))
    return None


def checked_list_query(
    kind: object, namespace: object, label_selector: object
) -> tuple[str, str | None, dict[str, str]]:
    """A list's arguments, checked as every backend checks them: the kind, the namespace it is
    limited to (None: all) and the label selector (empty: all)."""
    checked = checked_kind(kind)
    only = list_namespace(checked, namespace)
    selector = {} if label_selector is None else checked_labels("label_selector", label_selector)
    return checked, only, selector
