"""CustomResourceDefinitions generated from the models, so the chart's CRDs and our own
validation can never disagree. The JSON schema pydantic emits is rewritten into a
Kubernetes structural schema (no $ref, no null branches, OpenAPI v3.0 bounds)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tensorfusion.api.base import GROUP, VERSION
from tensorfusion.api.kinds import KINDS, KindInfo

HEADER = "# Generated from tensorfusion.api by `tensor-fusion crds`. Do not edit.\n"
_DROPPED_KEYS = {"title", "$defs"}


def _structural(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_structural(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _structural(merged, defs)
    branches = node.get("anyOf")
    if branches and {"type": "null"} in branches:
        rest = [branch for branch in branches if branch != {"type": "null"}]
        outer = {k: v for k, v in node.items() if k != "anyOf"}
        inner = rest[0] if len(rest) == 1 else {"anyOf": rest}
        if "default" in outer and outer["default"] is None:
            del outer["default"]
        return _structural({**inner, **outer}, defs)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED_KEYS:
            continue
        if key == "const":
            out["enum"] = [value]
        elif key in ("exclusiveMinimum", "exclusiveMaximum"):
            bound = "minimum" if key == "exclusiveMinimum" else "maximum"
            out[bound] = value
            out[key] = True
        elif key == "properties":
            out[key] = {name: _structural(sub, defs) for name, sub in value.items()}
        else:
            out[key] = _structural(value, defs)
    if out.get("additionalProperties") is True:
        # Unknown fields are kept (forward compatibility): Kubernetes spells that
        # x-kubernetes-preserve-unknown-fields, and forbids it beside additionalProperties.
        del out["additionalProperties"]
        out["x-kubernetes-preserve-unknown-fields"] = True
    if not out or out == {"description": out.get("description")}:
        out["x-kubernetes-preserve-unknown-fields"] = True
    return out


def openapi_schema(info: KindInfo) -> dict[str, Any]:
    """The openAPIV3Schema of one kind."""
    raw = info.model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.get("$defs", {})
    properties = {
        name: _structural(schema, defs)
        for name, schema in raw["properties"].items()
        if name not in ("apiVersion", "kind", "metadata")
    }
    return {
        "type": "object",
        "description": (info.model.__doc__ or f"{info.kind} of {GROUP}").strip(),
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            **properties,
        },
        **({"required": ["spec"]} if "spec" in raw.get("required", []) else {}),
    }


def crd(info: KindInfo) -> dict[str, Any]:
    schema = openapi_schema(info)
    version: dict[str, Any] = {
        "name": VERSION,
        "served": True,
        "storage": True,
        "schema": {"openAPIV3Schema": schema},
    }
    if "status" in schema["properties"]:
        version["subresources"] = {"status": {}}
    columns = [{"name": c.name, "type": c.type, "jsonPath": c.json_path} for c in info.columns] + [
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
    ]
    version["additionalPrinterColumns"] = columns
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{info.plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": info.kind,
                "listKind": f"{info.kind}List",
                "plural": info.plural,
                "singular": info.singular,
                "categories": ["tensor-fusion"],
            },
            "scope": info.scope,
            "versions": [version],
        },
    }


def crd_files() -> dict[str, str]:
    """File name -> YAML text of every CRD."""
    return {
        f"{GROUP}_{info.plural}.yaml": HEADER
        + yaml.safe_dump(crd(info), sort_keys=False, width=100, allow_unicode=True)
        for info in KINDS
    }


def stale_files(directory: Path) -> list[str]:
    """Names of CRD files in `directory` that are missing, different or not ours anymore."""
    wanted = crd_files()
    stale = [
        name
        for name, text in wanted.items()
        if not (directory / name).is_file() or (directory / name).read_text() != text
    ]
    stale += [p.name for p in directory.glob(f"{GROUP}_*.yaml") if p.name not in wanted]
    return sorted(stale)


def write_crds(directory: Path) -> list[Path]:
    """Write every CRD into `directory`, removing ones for kinds that no longer exist."""
    directory.mkdir(parents=True, exist_ok=True)
    wanted = crd_files()
    for old in directory.glob(f"{GROUP}_*.yaml"):
        if old.name not in wanted:
            old.unlink()
    written = []
    for name, text in wanted.items():
        path = directory / name
        path.write_text(text)
        written.append(path)
    return written
