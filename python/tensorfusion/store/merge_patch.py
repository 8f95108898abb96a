"""JSON merge patch (RFC 7386), the patch format both backends accept."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def merge_patch(target: Any, patch: Any) -> Any:
    """`target` with `patch` applied: a mapping merges key by key (recursively), a null value
    deletes its key, and anything else (lists included) replaces the target whole.

    Neither argument is changed; the result shares the subtrees of `target` that the patch
    does not touch.
    """
    if not isinstance(patch, Mapping):
        return patch
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result
