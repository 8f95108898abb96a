"""Upstream's CRD fields (`shared/spec/upstream-crd-fields.md`) read into one schema tree per
kind, and hypothesis strategies that draw objects within those fields' types, enums and
bounds: what a manifest written for upstream may hold."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

SPEC_FILE = Path(__file__).resolve().parents[2] / "shared" / "spec" / "upstream-crd-fields.md"
"""`shared/` sits beside the repository, in CI as on a workstation."""

_HEADER = re.compile(
    r"^## (?P<name>\w+) \((?P<scope>Cluster|Namespaced), plural (?P<plural>\w+)\)$"
)
_LINE = re.compile(
    r"^(?P<path>\S+): (?P<type>object|array|string|integer|boolean|quantity)(?P<rest>.*)$"
)
_ATTRIBUTE = re.compile(r" (?=(?:enum|default|minimum|maximum|pattern)=)")
_STEP = re.compile(r"\[\]|\{\}|\.?([^.\[{]+)")
INT64 = 2**63 - 1


@dataclass
class Field:
    """One node of a kind's schema: a field, a list's item (`[]`) or a map's value (`{}`)."""

    type: str = "object"
    required: bool = False
    enum: tuple[str, ...] = ()
    minimum: int | None = None
    maximum: int | None = None
    pattern: str | None = None
    default: str | None = None
    """As the file writes it (`True`, `500`, `0 3 * * *`, an empty string)."""
    properties: dict[str, Field] = field(default_factory=dict)
    item: Field | None = None
    value: Field | None = None


@dataclass
class Kind:
    name: str
    scope: str
    plural: str
    root: Field = field(default_factory=Field)
    paths: dict[str, Field] = field(default_factory=dict)


def read_kinds(text: str) -> dict[str, Kind]:
    """Every kind of the file, each with its field tree and its fields by path."""
    kinds: dict[str, Kind] = {}
    kind: Kind | None = None
    for number, line in enumerate(text.splitlines(), 1):
        if header := _HEADER.match(line):
            kind = Kind(header["name"], header["scope"], header["plural"])
            kinds[kind.name] = kind
        elif (entry := _LINE.match(line)) and kind is not None:
            node = _node_at(kind.root, entry["path"])
            node.type = entry["type"]
            _read_attributes(node, entry["rest"], number)
            kind.paths[entry["path"]] = node
        elif line.strip() and not line.startswith("#") and kind is not None:
            raise ValueError(f"line {number}: not a field line: {line!r}")
    return kinds


def _node_at(root: Field, path: str) -> Field:
    node = root
    for step in _STEP.finditer(path):
        if step[0] == "[]":
            node.type = "array"
            node.item = node.item or Field()
            node = node.item
        elif step[0] == "{}":
            node.value = node.value or Field()
            node = node.value
        else:
            node = node.properties.setdefault(step[1], Field())
    return node


def _read_attributes(node: Field, rest: str, number: int) -> None:
    if rest.endswith(" required"):
        node.required, rest = True, rest.removesuffix(" required")
    for part in _ATTRIBUTE.split(rest.strip()):
        if not part:
            continue
        name, _, value = part.partition("=")
        if name == "enum":
            node.enum = tuple(value.split("|"))
        elif name in ("minimum", "maximum"):
            setattr(node, name, int(value))
        elif name == "pattern":
            node.pattern = value
        elif name == "default":
            node.default = value
        else:
            raise ValueError(f"line {number}: unknown attribute {part!r}")


Chooser = Callable[[str, Field], "st.SearchStrategy[Any] | None"]
"""The strategy to use instead of the file's for the field at a path (`spec.a[].b`), if any."""

_TEXT = st.text(st.characters(codec="utf-8"), max_size=12)
"""Any text YAML can carry (UTF-8 leaves out lone surrogates)."""
_KEY = st.from_regex(r"[a-z][a-z0-9]{0,7}", fullmatch=True)
_DIGITS = st.integers(0, 10**6).map(str)
_EXACT_SUFFIXES = ["", "Ki", "Mi", "Gi", "Ti", "u", "m", "k", "M", "G", "T", "e3"]


def quantities() -> st.SearchStrategy[int | str]:
    """Any Kubernetes quantity, as an integer or a string: signed, as fine as '0.5n', as
    large as '9E'."""
    sign = st.sampled_from(["", "+", "-"])
    number = _DIGITS | st.builds("{}.{}".format, _DIGITS, _DIGITS)
    suffix = st.sampled_from([*_EXACT_SUFFIXES, "n", "P", "E", "Pi", "Ei", "e-12", "E+20"])
    return st.integers(-(10**9), 10**9) | st.builds("{}{}{}".format, sign, number, suffix)


def exact_quantities() -> st.SearchStrategy[int | str]:
    """Non-negative quantities that Kubernetes holds exactly: whole nano-units, at most
    2**63-1 units ('100', '16Gi', '0.5', '2e3')."""
    number = _DIGITS | st.builds("{}.{}".format, _DIGITS, st.integers(0, 999))
    text = st.builds(str.__add__, number, st.sampled_from(_EXACT_SUFFIXES))
    return st.integers(0, 10**6) | text


def values(node: Field, path: str, choose: Chooser) -> st.SearchStrategy[Any]:
    """Values that upstream's schema accepts at `path`."""
    if (chosen := choose(path, node)) is not None:
        return chosen
    if node.type == "object":
        return _objects(node, path, choose)
    if node.type == "array":
        item = values(node.item or Field("string"), f"{path}[]", choose)
        return st.lists(item, max_size=2)
    if node.type == "integer":
        low = -INT64 - 1 if node.minimum is None else node.minimum
        return st.integers(low, INT64 if node.maximum is None else node.maximum)
    if node.type == "boolean":
        return st.booleans()
    if node.type == "quantity":
        return quantities()
    if node.enum:
        return st.sampled_from(node.enum)
    if node.pattern:
        return st.from_regex(node.pattern, fullmatch=True)
    return _TEXT


def _objects(node: Field, path: str, choose: Chooser) -> st.SearchStrategy[Any]:
    if node.value is not None:
        return st.dictionaries(_KEY, values(node.value, f"{path}{{}}", choose), max_size=2)
    if not node.properties:
        # A free-form object (a pod template, a patch): upstream keeps whatever it holds.
        return st.dictionaries(_KEY, _TEXT, max_size=2)
    required: dict[str, st.SearchStrategy[Any]] = {}
    optional: dict[str, st.SearchStrategy[Any]] = {}
    for name, child in node.properties.items():
        child_path = f"{path}.{name}" if path else name
        (required if child.required else optional)[name] = values(child, child_path, choose)
    return st.fixed_dictionaries(required, optional=optional)


def objects(kind: Kind, choose: Chooser) -> st.SearchStrategy[dict[str, Any]]:
    """Whole objects of `kind`: apiVersion, kind, metadata, and every part of the file."""
    metadata: dict[str, Any] = {"name": "upstream-sample"}
    if kind.scope == "Namespaced":
        metadata["namespace"] = "default"
    head = {
        "apiVersion": st.just("tensor-fusion.ai/v1"),
        "kind": st.just(kind.name),
        "metadata": st.just(metadata).map(dict),
    }
    body = _objects(kind.root, "", choose)
    return st.builds(lambda h, b: {**h, **b}, st.fixed_dictionaries(head), body)
