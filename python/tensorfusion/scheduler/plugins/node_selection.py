"""A pod's node affinity terms, read into small matchers with kube's semantics: requirements
of a term are ANDed, required terms ORed, and a term that is empty or malformed matches no
node (kube reads a term it cannot parse as matching nothing)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, get_args

from tensorfusion.api.names import label_value_problem, qualified_name_problem
from tensorfusion.scheduler.plugins.spec_reader import SpecReader

LabelOperator = Literal["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"]
LABEL_OPERATORS: tuple[LabelOperator, ...] = get_args(LabelOperator)
NAME_FIELD = "metadata.name"
"""The one field a matchFields requirement may name."""
_INTEGER = re.compile(r"[+-]?[0-9]+")
_INT64 = 2**63
_MAX_WEIGHT = 100


def parse_int64(text: str | None) -> int | None:
    """A base-10 int64 as Go's strconv.ParseInt reads it, else None."""
    if text is None or not _INTEGER.fullmatch(text):
        return None
    number = int(text)
    return number if -_INT64 <= number < _INT64 else None


@dataclass(frozen=True, slots=True)
class LabelRequirement:
    key: str
    operator: LabelOperator
    values: frozenset[str] = frozenset()
    bound: int = 0
    """The integer of Gt / Lt."""

    def matches(self, value: str | None) -> bool:
        """Whether a node whose label `key` is `value` (None: no such label) satisfies it."""
        if self.operator == "In":
            return value in self.values
        if self.operator == "NotIn":
            return value not in self.values
        if self.operator == "Exists":
            return value is not None
        if self.operator == "DoesNotExist":
            return value is None
        number = parse_int64(value)  # a non-integer label never compares
        if number is None:
            return False
        return number > self.bound if self.operator == "Gt" else number < self.bound


@dataclass(frozen=True, slots=True)
class NameRequirement:
    """A matchFields requirement on `metadata.name` (In or NotIn one name)."""

    name: str
    negated: bool = False


@dataclass(frozen=True, slots=True)
class NodeSelectorTerm:
    expressions: tuple[LabelRequirement, ...] = ()
    fields: tuple[NameRequirement, ...] = ()

    @property
    def empty(self) -> bool:
        """An empty term matches no node."""
        return not self.expressions and not self.fields


NOTHING = NodeSelectorTerm()
"""What a malformed term reads as."""


@dataclass(frozen=True, slots=True)
class PreferredTerm:
    weight: int
    term: NodeSelectorTerm


def read_required(
    reader: SpecReader, value: object, path: str
) -> tuple[NodeSelectorTerm, ...] | None:
    """requiredDuringSchedulingIgnoredDuringExecution; None when the pod has none."""
    if value is None:
        return None
    selector = reader.mapping(value, path)
    terms_path = f"{path}.nodeSelectorTerms"
    items = reader.items(selector.get("nodeSelectorTerms"), terms_path)
    if not items:
        # Kube refuses this; as a selector it has no term to match, so no node fits.
        reader.fail(terms_path, "must have at least one node selector term")
    return tuple(
        read_term(reader, item, f"{terms_path}[{index}]") for index, item in enumerate(items)
    )


def read_preferred(reader: SpecReader, value: object, path: str) -> tuple[PreferredTerm, ...]:
    """preferredDuringSchedulingIgnoredDuringExecution; terms kube would skip (malformed, or
    empty) are left out."""
    terms = []
    for index, item in enumerate(reader.items(value, path)):
        at = f"{path}[{index}]"
        entry = reader.mapping(item, at)
        weight = reader.integer(entry.get("weight"), f"{at}.weight", 1, _MAX_WEIGHT)
        if entry.get("weight") is None:
            reader.fail(f"{at}.weight", "is required")
        term = read_term(reader, entry.get("preference"), f"{at}.preference")
        if weight is not None and not term.empty:
            terms.append(PreferredTerm(weight, term))
    return tuple(terms)


def read_term(reader: SpecReader, value: object, path: str) -> NodeSelectorTerm:
    problems = len(reader.problems)
    term = reader.mapping(value, path)
    expressions = tuple(
        _label_requirement(reader, item, f"{path}.matchExpressions[{index}]")
        for index, item in enumerate(
            reader.items(term.get("matchExpressions"), f"{path}.matchExpressions")
        )
    )
    fields = tuple(
        _name_requirement(reader, item, f"{path}.matchFields[{index}]")
        for index, item in enumerate(reader.items(term.get("matchFields"), f"{path}.matchFields"))
    )
    if len(reader.problems) > problems:
        return NOTHING
    return NodeSelectorTerm(
        tuple(item for item in expressions if item is not None),
        tuple(item for item in fields if item is not None),
    )


def _requirement_parts(reader: SpecReader, value: object, path: str) -> tuple[str, str, list[str]]:
    entry = reader.mapping(value, path)
    key = reader.text(entry.get("key"), f"{path}.key")
    operator = reader.text(entry.get("operator"), f"{path}.operator")
    values = [
        reader.text(item, f"{path}.values[{index}]")
        for index, item in enumerate(reader.items(entry.get("values"), f"{path}.values"))
    ]
    return key, operator, values


def _label_requirement(reader: SpecReader, value: object, path: str) -> LabelRequirement | None:
    key, operator, values = _requirement_parts(reader, value, path)
    if problem := qualified_name_problem(key):
        reader.fail(f"{path}.key", problem)
    for known in LABEL_OPERATORS:
        if operator == known:
            return _checked_values(reader, key, known, values, path)
    reader.fail(
        f"{path}.operator", f"must be one of {', '.join(LABEL_OPERATORS)}, got {operator!r}"
    )
    return None


def _checked_values(
    reader: SpecReader, key: str, operator: LabelOperator, values: list[str], path: str
) -> LabelRequirement | None:
    at = f"{path}.values"
    if operator in ("In", "NotIn"):
        if not values:
            reader.fail(at, f"must not be empty for operator {operator}")
        for index, item in enumerate(values):
            if problem := label_value_problem(item):
                reader.fail(f"{at}[{index}]", problem)
        return LabelRequirement(key, operator, frozenset(values))
    if operator in ("Exists", "DoesNotExist"):
        if values:
            reader.fail(at, f"must be empty for operator {operator}")
        return LabelRequirement(key, operator)
    bound = parse_int64(values[0]) if len(values) == 1 else None
    if bound is None:
        reader.fail(at, f"must be a single integer for operator {operator}, got {values!r}")
        return None
    return LabelRequirement(key, operator, bound=bound)


def _name_requirement(reader: SpecReader, value: object, path: str) -> NameRequirement | None:
    key, operator, values = _requirement_parts(reader, value, path)
    if key != NAME_FIELD:
        reader.fail(f"{path}.key", f"must be {NAME_FIELD!r} (the only node field), got {key!r}")
    if operator not in ("In", "NotIn"):
        reader.fail(f"{path}.operator", f'must be "In" or "NotIn" for a field, got {operator!r}')
    elif len(values) != 1:
        reader.fail(f"{path}.values", f"must hold exactly one node name, got {len(values)}")
    else:
        return NameRequirement(values[0], negated=operator == "NotIn")
    return None
