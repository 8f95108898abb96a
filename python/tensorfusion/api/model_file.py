"""Reading one YAML document into one of our models, for files that hold a single mapping
(the dynamic config, a Helm values file): the first problem raises ConfigError naming the
file and the field."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from tensorfusion.api.field_errors import issues_from
from tensorfusion.api.yaml_loader import load_documents
from tensorfusion.errors import ConfigError

Model = TypeVar("Model", bound=BaseModel)


def parse_model(model: type[Model], text: str, source: str, what: str) -> Model:
    """`what` says what the mapping holds, for the message when it is not one."""
    documents, problem = load_documents(text)
    if problem is not None:
        raise ConfigError(source, str(problem))
    if len(documents) > 1:
        raise ConfigError(source, "must hold one YAML document")
    data = documents[0].data if documents else {}
    if not isinstance(data, dict):
        raise ConfigError(source, f"must be a mapping ({what})")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        issue = issues_from(exc)[0]
        raise ConfigError(f"{source}: {issue.path}", issue.message) from None


def load_model(model: type[Model], path: Path, what: str) -> Model:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), f"cannot read: {exc}") from None
    return parse_model(model, text, str(path), what)
