"""Conditions that several reconcilers write on one object, each owning some types: a
reconciler replaces only its own types and keeps the others', and a condition keeps its
lastTransitionTime until its status changes (so an unchanged condition writes nothing)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from tensorfusion.store.timestamps import rfc3339


def merged_conditions(
    obj: Mapping[str, Any],
    owned: Collection[str],
    conditions: Sequence[Mapping[str, str]],
    now: datetime,
) -> list[dict[str, Any]]:
    """The object's conditions with those of the `owned` types replaced by `conditions`
    (each a type, status, reason and message), ordered by type."""
    current = {
        c.get("type"): c
        for c in ((obj.get("status") or {}).get("conditions") or [])
        if isinstance(c, Mapping)
    }
    merged = {kind: dict(c) for kind, c in current.items() if kind not in owned}
    for condition in conditions:
        before = current.get(condition["type"])
        since = (
            before.get("lastTransitionTime")
            if before is not None and before.get("status") == condition["status"]
            else None
        )
        merged[condition["type"]] = {**condition, "lastTransitionTime": since or rfc3339(now)}
    return [merged[kind] for kind in sorted(merged, key=str)]
