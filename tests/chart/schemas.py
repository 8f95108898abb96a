"""Every rendered object checked against the schema the API server would apply: built-in
kinds with `kubernetes-validate` (the Kubernetes OpenAPI schemas), our custom objects with
the openAPIV3Schema of the chart's own CRDs. An unknown field fails in both, since the API
server would drop it without a word."""

from __future__ import annotations

import copy
import re
from functools import cache
from typing import Any, Final

import jsonschema
import kubernetes_validate  # type: ignore[import-untyped]
import yaml

from tests.chart.render import CHART

KUBE_VERSION: Final = kubernetes_validate.latest_version()
# What a ConfigMap or Secret key may be (k8s.io/apimachinery IsConfigMapKey).
DATA_KEY: Final = re.compile(r"[-._a-zA-Z0-9]+")


@cache
def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) to the JSON schema of that version of our CRDs."""
    schemas = {}
    for path in sorted((CHART / "crds").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text(encoding="utf-8"))
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schema = _closed(copy.deepcopy(version["schema"]["openAPIV3Schema"]))
            schemas[(f"{group}/{version['name']}", kind)] = schema
    return schemas


def _closed(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` with every object that lists its properties refusing others (the structural
    schema's pruning, made an error), and int-or-string understood."""
    if schema.get("x-kubernetes-int-or-string"):
        schema.pop("type", None)
        schema["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if "properties" in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
        schema.setdefault("additionalProperties", False)
    for child in schema.get("properties", {}).values():
        _closed(child)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            _closed(schema[key])
    return schema


def problems(obj: dict[str, Any]) -> list[str]:
    """What is wrong with `obj` ("Kind/name: path: why"), empty when it is valid."""
    where = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
    schema = crd_schemas().get((obj.get("apiVersion", ""), obj.get("kind", "")))
    found = []
    if schema is not None:
        custom = {key: value for key, value in obj.items() if key not in ("apiVersion", "kind")}
        for error in jsonschema.Draft7Validator(schema).iter_errors(custom):
            found.append(f"{where}: {'.'.join(map(str, error.absolute_path))}: {error.message}")
    else:
        try:
            kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            found.append(f"{where}: {'.'.join(map(str, error.path))}: {error.message}")
    if obj.get("kind") in ("ConfigMap", "Secret"):
        for field in ("data", "stringData", "binaryData"):
            bad = [key for key in obj.get(field) or {} if not DATA_KEY.fullmatch(key)]
            found += [f"{where}: {field}: invalid key {key!r}" for key in bad]
    return found
