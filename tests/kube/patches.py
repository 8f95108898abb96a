"""The patch formats kube-apiserver accepts: JSON patch (RFC 6902) and strategic merge patch.
JSON merge patch is the store's own (`tensorfusion.store.merge_patch`)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

# The lists that strategic merge patch merges item by item, by this key (from the Pod, Node
# and condition types' `patchMergeKey`); every other list is replaced whole.
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "imagePullSecrets": "name",
    "conditions": "type",
}
_DELETE_FROM_LIST = "$deleteFromPrimitiveList/"


class PatchError(ValueError):
    """A patch that cannot apply; the message names the operation or field."""


def _pointer(path: Any, where: str) -> list[str]:
    if not isinstance(path, str) or (path and not path.startswith("/")):
        raise PatchError(f"{where}.path: must be a JSON pointer, got {path!r}")
    return [part.replace("~1", "/").replace("~0", "~") for part in path.split("/")[1:]]


def _index(container: list[Any], token: str, where: str, *, append: bool) -> int:
    if append and token == "-":
        return len(container)
    if not token.isdigit() or int(token) > len(container) - (0 if append else 1):
        raise PatchError(f"{where}: index {token!r} is out of range")
    return int(token)


def _parent(doc: Any, parts: list[str], where: str) -> Any:
    node = doc
    for token in parts[:-1]:
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(node, token, where, append=False)]
        else:
            raise PatchError(f"{where}: path does not exist at {token!r}")
    return node


def _get(doc: Any, parts: list[str], where: str) -> Any:
    if not parts:
        return doc
    parent = _parent(doc, parts, where)
    if isinstance(parent, dict) and parts[-1] in parent:
        return parent[parts[-1]]
    if isinstance(parent, list):
        return parent[_index(parent, parts[-1], where, append=False)]
    raise PatchError(f"{where}: path does not exist at {parts[-1]!r}")


def _remove(doc: Any, parts: list[str], where: str) -> Any:
    parent = _parent(doc, parts, where)
    if isinstance(parent, dict) and parts[-1] in parent:
        return parent.pop(parts[-1])
    if isinstance(parent, list):
        return parent.pop(_index(parent, parts[-1], where, append=False))
    raise PatchError(f"{where}: path does not exist at {parts[-1]!r}")


def _add(doc: Any, parts: list[str], value: Any, where: str, *, replace: bool = False) -> Any:
    if not parts:
        return value
    parent = _parent(doc, parts, where)
    if isinstance(parent, dict):
        if replace and parts[-1] not in parent:
            raise PatchError(f"{where}: path does not exist at {parts[-1]!r}")
        parent[parts[-1]] = value
    elif isinstance(parent, list):
        index = _index(parent, parts[-1], where, append=not replace)
        if replace:
            parent[index] = value
        else:
            parent.insert(index, value)
    else:
        raise PatchError(f"{where}: cannot add below a {type(parent).__name__}")
    return doc


def json_patch(target: Any, operations: Any) -> Any:
    """`target` with the RFC 6902 `operations` applied; `target` is not changed."""
    if not isinstance(operations, list):
        raise PatchError("JSON patch: must be a list of operations")
    doc = copy.deepcopy(target)
    for index, operation in enumerate(operations):
        where = f"JSON patch operation {index}"
        if not isinstance(operation, Mapping):
            raise PatchError(f"{where}: must be an object")
        op = operation.get("op")
        parts = _pointer(operation.get("path"), where)
        if op in ("add", "replace", "test") and "value" not in operation:
            raise PatchError(f"{where}.value: Required value")
        if op == "add":
            doc = _add(doc, parts, copy.deepcopy(operation["value"]), where)
        elif op == "replace":
            doc = _add(doc, parts, copy.deepcopy(operation["value"]), where, replace=True)
        elif op == "remove":
            _remove(doc, parts, where)
        elif op == "test":
            if _get(doc, parts, where) != operation["value"]:
                raise PatchError(f"{where}: test failed at {operation['path']!r}")
        elif op in ("move", "copy"):
            source = _pointer(operation.get("from"), where)
            value = _get(doc, source, where)
            if op == "move":
                _remove(doc, source, where)
            doc = _add(doc, parts, copy.deepcopy(value), where)
        else:
            raise PatchError(f"{where}.op: Unsupported value: {op!r}")
    return doc


def _merge_list(target: list[Any], patch: list[Any], key: str) -> list[Any]:
    result = list(target)
    for item in patch:
        if not isinstance(item, Mapping) or key not in item:
            raise PatchError(f"strategic merge patch: list items need their merge key {key!r}")
        position = next(
            (
                i
                for i, old in enumerate(result)
                if isinstance(old, Mapping) and old.get(key) == item[key]
            ),
            None,
        )
        if item.get("$patch") == "delete":
            if position is not None:
                result.pop(position)
        elif position is None:
            result.append(strategic_merge_patch(None, item))
        else:
            result[position] = strategic_merge_patch(result[position], item)
    return result


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """`target` with a strategic merge patch applied: as a JSON merge patch, except that the
    lists named in MERGE_KEYS merge item by item, and the `$patch` and
    `$deleteFromPrimitiveList` directives apply. Order hints (`$setElementOrder`,
    `$retainKeys`) are ignored."""
    if not isinstance(patch, Mapping):
        return patch
    if patch.get("$patch") == "replace":
        return {key: value for key, value in patch.items() if key != "$patch"}
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if key.startswith(_DELETE_FROM_LIST):
            field = key.removeprefix(_DELETE_FROM_LIST)
            result[field] = [item for item in result.get(field) or () if item not in value]
        elif key.startswith("$"):
            continue
        elif value is None:
            result.pop(key, None)
        elif key in MERGE_KEYS and isinstance(value, list):
            result[key] = _merge_list(result.get(key) or [], value, MERGE_KEYS[key])
        else:
            result[key] = strategic_merge_patch(result.get(key), value)
    return result
