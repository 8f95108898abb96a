"""Reading YAML the way the API server does (YAML to JSON): safe types only, timestamps kept
as strings, and a duplicate key is an error rather than a silent overwrite."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml


class YamlProblem(Exception):
    """Malformed YAML, with the 1-based line where the parser gave up."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.message = message


@dataclass(frozen=True)
class Document:
    line: int
    """1-based line where the document starts."""
    data: Any


_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's parser when available: several times faster on large fleet files."""


class _StrictLoader(_BaseLoader):  # type: ignore[valid-type,misc]
    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        self.flatten_mapping(node)  # resolve `<<` merge keys first, as Kubernetes does
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if isinstance(key, list | dict):
                raise YamlProblem(
                    line, "a mapping key must be a string or number, not a collection"
                )
            if key in seen:
                raise YamlProblem(line, f"duplicate key {key!r} (first at line {seen[key]})")
            seen[key] = line
        mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return mapping


# Timestamps stay strings, as in Kubernetes' YAML-to-JSON conversion.
_StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_documents(text: str) -> tuple[list[Document], YamlProblem | None]:
    """Every document up to the first malformed one, and that problem (if any).

    Empty documents (a trailing `---`) are skipped."""
    documents: list[Document] = []
    try:
        _read_into(documents, text)
    except YamlProblem as problem:
        return documents, problem
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        return documents, YamlProblem(line, f"malformed YAML: {exc.problem or exc.context}")
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        return documents, YamlProblem(
            line, f"malformed YAML: unacceptable character #x{exc.character:04x} ({exc.reason})"
        )
    except RecursionError:
        line = documents[-1].line if documents else 1
        return documents, YamlProblem(line, "malformed YAML: nested too deep")
    return documents, None


def _read_into(documents: list[Document], text: str) -> None:
    loader = _StrictLoader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is not None and (data := loader.construct_document(node)) is not None:
                if _too_deep(data):
                    raise YamlProblem(node.start_mark.line + 1, "malformed YAML: nested too deep")
                documents.append(Document(node.start_mark.line + 1, data))
    finally:
        loader.dispose()


MAX_DEPTH = 200
"""Deeper nesting is refused: no manifest needs it, and recursive consumers would overflow."""


def _too_deep(data: Any) -> bool:
    """Whether the document nests deeper than MAX_DEPTH. Aliases make the data a DAG (an
    alias bomb repeats one node exponentially often), so each container's height is
    computed once."""
    heights: dict[int, int] = {}
    stack: list[tuple[Any, bool]] = [(data, False)]
    while stack:
        value, children_done = stack.pop()
        if not isinstance(value, dict | list) or id(value) in heights:
            continue
        items = list(value.values()) if isinstance(value, dict) else value
        if children_done:
            below = (heights.get(id(item), 0) for item in items if isinstance(item, dict | list))
            heights[id(value)] = 1 + max(below, default=0)
            if heights[id(value)] > MAX_DEPTH:
                return True
            continue
        stack.append((value, True))
        stack.extend((item, False) for item in items if isinstance(item, dict | list))
    return False
