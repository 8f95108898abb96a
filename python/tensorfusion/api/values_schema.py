"""The chart's values.schema.json, generated from the Helm-values model as the CRDs are from
the kinds: Helm checks the merged values of every install, upgrade and lint against it, so a
key the chart does not read, or a value of the wrong type, fails there naming the field, as
`tensor-fusion validate` does for the same file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tensorfusion.api.helm_values import HelmValues

DIALECT = "https://json-schema.org/draft/2020-12/schema"
COMMENT = "Generated from tensorfusion.api.helm_values by `tensor-fusion crds`. Do not edit."
# values.yaml holds the defaults (Helm never applies a schema's), so a copy here could only
# disagree with it; titles repeat the field names.
_DROPPED_KEYS = frozenset({"title", "default"})


def _cleaned(node: Any) -> Any:
    if isinstance(node, list):
        return [_cleaned(item) for item in node]
    if not isinstance(node, dict):
        return node
    branches = node.get("anyOf")
    if branches and {"type": "null"} in branches:
        # Helm drops a null value before checking (null removes a key), so an optional
        # field is checked as its type alone, and a wrong type is named without a null branch.
        rest = [branch for branch in branches if branch != {"type": "null"}]
        outer = {k: v for k, v in node.items() if k != "anyOf"}
        return _cleaned({**(rest[0] if len(rest) == 1 else {"anyOf": rest}), **outer})
    return {
        key: (
            {name: _cleaned(sub) for name, sub in value.items()}
            if key in _NAMED
            else _cleaned(value)
        )
        for key, value in node.items()
        if key not in _DROPPED_KEYS and not key.startswith("x-kubernetes-")
    }


# Keywords whose keys are names (of properties or definitions), never keywords.
_NAMED = frozenset({"properties", "$defs"})


def values_schema() -> dict[str, Any]:
    """The JSON Schema of a values file."""
    raw = HelmValues.model_json_schema(by_alias=True, mode="validation")
    return {"$schema": DIALECT, "$comment": COMMENT, **_cleaned(raw)}


def values_schema_text() -> str:
    return json.dumps(values_schema(), indent=2, ensure_ascii=False) + "\n"


def is_stale(path: Path) -> bool:
    """Whether `path` is missing or differs from what the model generates."""
    return not path.is_file() or path.read_text(encoding="utf-8") != values_schema_text()


def write_values_schema(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(values_schema_text(), encoding="utf-8")
    return path
