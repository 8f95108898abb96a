"""The Pod of a simulate request: YAML or JSON, by Content-Type (the guide's curl sends
`application/yaml`). Anything that is not one Pod manifest is a bad request (400); what the
Pod's annotations say is the scheduler's to judge, in the report."""

from __future__ import annotations

from typing import Any, Final

from tensorfusion.errors import ConfigError
from tensorfusion.scheduler.simulate import read_pod
from tensorfusion.server.errors import ApiError

YAML_TYPES: Final = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")
JSON_TYPES: Final = ("application/json",)
SOURCE: Final = "body"


def media_type(content_type: str | None) -> str | None:
    """`Application/YAML; charset=utf-8` -> `application/yaml`; None when absent."""
    if content_type is None:
        return None
    return content_type.partition(";")[0].strip().lower() or None


def read_pod_body(content_type: str | None, body: bytes) -> dict[str, Any]:
    kind = media_type(content_type)
    # No Content-Type is taken as YAML, which JSON is a subset of.
    if kind is not None and kind not in YAML_TYPES + JSON_TYPES:
        accepted = ", ".join(YAML_TYPES + JSON_TYPES)
        raise ApiError(400, f"Content-Type {kind!r} is not supported; send one of {accepted}")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(400, f"{SOURCE}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    try:
        return read_pod(SOURCE, text)
    except ConfigError as exc:
        raise ApiError(400, str(exc)) from exc
