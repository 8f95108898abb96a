"""Our generated CRDs hold every field of upstream's (`shared/spec/upstream-crd-fields.md`) and
accept whatever upstream's accept there: the same type, every upstream enum value, the same
default, no field required that upstream leaves optional, no tighter bounds and no enum or
pattern where upstream has none. DELIBERATE lists the few differences we keep, each with why."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from tensorfusion.api.crd import openapi_schema
from tensorfusion.api.kinds import KINDS_BY_NAME
from tests.unit.test_upstream_compat import KEPT_CHECKS
from tests.upstream_fields import SPEC_FILE, Field, read_kinds

UPSTREAM = read_kinds(SPEC_FILE.read_text(encoding="utf-8"))
_STEP = re.compile(r"\[\]|\{\}|\.?([^.\[{]+)")


def _kept(name: str) -> str:
    """The reason of a check that `validate` keeps as an error, which the CRD makes too."""
    (check,) = [check for check in KEPT_CHECKS if check.name == name]
    return check.reason


_SELECTORS = _kept("node selectors and taints follow Kubernetes' rules")
_DEVICE_NUMBERS = _kept("GPU index and NUMA node are device numbers")
_DURATIONS = _kept("durations are durations")
DELIBERATE: dict[tuple[str, str], str] = {
    ("spec.placement.mode", "default"): (
        "the guide makes compact-first the default placement (fewer busy nodes, less cost); "
        "templates that name a mode keep it"
    ),
    ("matchExpressions[].operator", "enum"): _SELECTORS,
    ("matchFields[].operator", "enum"): _SELECTORS,
    ("Requirements[].key", "required"): _SELECTORS,
    ("Taints[].key", "required"): _kept("taints have a key"),
    ("spec.gpuPools[].name", "required"): _kept(
        "pool names are unique DNS labels within 63 characters with the cluster's"
    ),
    ("status.index", "minimum"): _DEVICE_NUMBERS,
    ("status.index", "maximum"): _DEVICE_NUMBERS,
    ("status.numaNode", "minimum"): _DEVICE_NUMBERS,
    ("status.numaNode", "maximum"): _DEVICE_NUMBERS,
    ("nodeCompaction.period", "pattern"): _DURATIONS,
    (".batchInterval", "pattern"): _DURATIONS,
    ("nodePoolRollingUpdatePolicy.maxDuration", "pattern"): _DURATIONS,
}
"""(path suffix, aspect) -> why ours differs from upstream there."""


def _node(schema: dict[str, Any], path: str) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """The schema node at an upstream path, and its parent (whose `required` names it)."""
    node: dict[str, Any] | None = schema
    parent: dict[str, Any] = schema
    for step in _STEP.finditer(path):
        if node is None:
            break
        parent = node
        if step[0] == "[]":
            node = node.get("items")
        elif step[0] == "{}":
            node = node.get("additionalProperties")
        else:
            node = node.get("properties", {}).get(step[1])
    return node, parent


def _type(node: dict[str, Any]) -> str | None:
    if node.get("x-kubernetes-int-or-string"):
        return "quantity"
    if "type" not in node and node.get("x-kubernetes-preserve-unknown-fields"):
        return "object"
    kind = node.get("type")
    return kind if isinstance(kind, str) else None


def _as_written(value: object) -> str:
    """A default as the upstream file writes it."""
    return str(value)


def differences(
    path: str, upstream: Field, node: dict[str, Any], parent: dict[str, Any]
) -> Iterator[tuple[str, str]]:
    """(aspect, what differs) where our schema node would refuse what upstream accepts, or
    store something else."""
    if _type(node) != upstream.type:
        yield "type", f"type {_type(node)}, upstream {upstream.type}"
    ours_enum = node.get("enum")
    if ours_enum is not None and not (upstream.enum and set(upstream.enum) <= set(ours_enum)):
        yield "enum", f"enum {ours_enum}, upstream {list(upstream.enum) or 'none'}"
    if upstream.default is not None and _as_written(node.get("default")) != upstream.default:
        yield "default", f"default {node.get('default')!r}, upstream {upstream.default!r}"
    name = path.rsplit(".", 1)[-1]
    if not upstream.required and name in parent.get("required", []) and "[]" not in name:
        yield "required", "required here, optional upstream"
    low, high = node.get("minimum"), node.get("maximum")
    if low is not None and (upstream.minimum is None or low > upstream.minimum):
        yield "minimum", f"minimum {low}, upstream {upstream.minimum}"
    if high is not None and (upstream.maximum is None or high < upstream.maximum):
        yield "maximum", f"maximum {high}, upstream {upstream.maximum}"
    pattern = node.get("pattern")
    if pattern is not None and upstream.type != "quantity" and pattern != upstream.pattern:
        yield "pattern", f"pattern {pattern!r}, upstream {upstream.pattern!r}"


def _deliberate(path: str, aspect: str) -> bool:
    return any(path.endswith(suffix) and aspect == kind for suffix, kind in DELIBERATE)


def _problems(kind: str) -> list[str]:
    schema = openapi_schema(KINDS_BY_NAME[kind])
    problems = []
    for path, upstream in UPSTREAM[kind].paths.items():
        node, parent = _node(schema, path)
        if node is None:
            problems.append(f"{path}: missing")
            continue
        problems += [
            f"{path}: {text}"
            for aspect, text in differences(path, upstream, node, parent)
            if not _deliberate(path, aspect)
        ]
    return problems


@pytest.mark.parametrize("kind", sorted(UPSTREAM))
def test_every_upstream_field_is_in_our_crd_as_upstream_has_it(kind: str) -> None:
    assert _problems(kind) == []


def test_the_field_list_is_the_whole_of_upstreams_crds() -> None:
    assert len(UPSTREAM) == 12
    assert sum(len(kind.paths) for kind in UPSTREAM.values()) == 1095


@pytest.mark.parametrize(
    ("upstream", "node", "aspect"),
    [
        (Field("string"), {"type": "integer"}, "type"),
        (Field("quantity"), {"type": "string"}, "type"),
        (Field("string", enum=("a", "b")), {"type": "string", "enum": ["a"]}, "enum"),
        (Field("string"), {"type": "string", "enum": ["a"]}, "enum"),
        (Field("integer", default="5"), {"type": "integer", "default": 6}, "default"),
        (Field("boolean", default="True"), {"type": "boolean"}, "default"),
        (Field("integer", minimum=0), {"type": "integer", "minimum": 1}, "minimum"),
        (Field("integer", maximum=9), {"type": "integer", "maximum": 8}, "maximum"),
        (Field("string"), {"type": "string", "pattern": "^a$"}, "pattern"),
    ],
)
def test_each_difference_is_found(upstream: Field, node: dict[str, Any], aspect: str) -> None:
    found = [found for found, _ in differences("spec.x", upstream, node, {})]
    assert found == [aspect]


def test_a_field_required_only_here_is_found() -> None:
    parent = {"type": "object", "required": ["x"]}
    found = differences("spec.x", Field("string"), {"type": "string"}, parent)
    assert [aspect for aspect, _ in found] == ["required"]
    assert (
        list(differences("spec.x", Field("string", required=True), {"type": "string"}, parent))
        == []
    )


def test_wider_schemas_are_not_differences() -> None:
    wider = {"type": "string", "enum": ["a", "b", "c"]}
    assert list(differences("spec.x", Field("string", enum=("a", "b")), wider, {})) == []
    bounds = {"type": "integer", "minimum": 0, "maximum": 100}
    assert list(differences("spec.x", Field("integer", minimum=1, maximum=50), bounds, {})) == []
