"""The HTTP side of the API: request paths, bodies, and `Status` errors as kube-apiserver
writes them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import aiohttp.web
import yaml

from tests.kube.protobuf import CONTENT_TYPE as PROTOBUF
from tests.kube.protobuf import ProtobufError, decode_object

APPLY_PATCH = "application/apply-patch+yaml"


class ApiError(Exception):
    """An error the API answers with a `Status` object."""

    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def status(self) -> dict[str, Any]:
        return status_object(self.code, self.reason, self.message, self.details, failure=True)


def status_object(
    code: int,
    reason: str = "",
    message: str = "",
    details: dict[str, Any] | None = None,
    *,
    failure: bool = False,
) -> dict[str, Any]:
    status: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure" if failure else "Success",
        "code": code,
    }
    if reason:
        status["reason"] = reason
    if message:
        status["message"] = message
    if details:
        status["details"] = details
    return status


def not_found(plural: str, name: str, group: str = "") -> ApiError:
    resource = f"{plural}.{group}" if group else plural
    details = {"name": name, "group": group, "kind": plural}
    return ApiError(404, "NotFound", f'{resource} "{name}" not found', details)


def conflict(plural: str, name: str, why: str) -> ApiError:
    return ApiError(409, "Conflict", f'Operation cannot be fulfilled on {plural} "{name}": {why}')


def invalid(kind: str, name: str, field_message: str) -> ApiError:
    return ApiError(422, "Invalid", f'{kind} "{name}" is invalid: {field_message}')


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


@dataclass(frozen=True)
class ApiPath:
    """A resource request's path: /api/v1/… or /apis/<group>/<version>/…"""

    group: str
    version: str
    plural: str
    namespace: str | None = None
    name: str | None = None
    subresource: str | None = None


def parse_resource_path(
    parts: list[str], group: str, version: str, namespaced: set[str]
) -> ApiPath:
    """`parts` are the path's segments after the version; `namespaced` holds the plurals that
    live in namespaces, which tells `namespaces/<ns>/<plural>` from `namespaces/<name>/status`."""
    namespace = None
    if len(parts) >= 3 and parts[0] == "namespaces" and parts[2] in namespaced:
        namespace, parts = parts[1], parts[2:]
    if not parts or not parts[0]:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    name = parts[1] if len(parts) > 1 else None
    return ApiPath(group, version, parts[0], namespace, name, "/".join(parts[2:]) or None)


def decode_body(content_type: str, body: bytes) -> Any:
    """The request body as JSON data: JSON, YAML for server-side apply, or a protobuf Secret."""
    if not body:
        return None
    try:
        if content_type == PROTOBUF:
            return decode_object(body)
        if content_type == APPLY_PATCH:
            return yaml.safe_load(body)
        return json.loads(body)
    except (ValueError, yaml.YAMLError) as error:  # ProtobufError and JSONDecodeError included
        kind = "protobuf" if isinstance(error, ProtobufError) else content_type or "JSON"
        raise bad_request(f"the request body is not valid {kind}: {error}") from error


def json_response(
    data: Any, status: int = 200, warnings: list[str] | None = None
) -> aiohttp.web.Response:
    headers = [("Warning", f'299 - "{warning}"') for warning in warnings or ()]
    response = aiohttp.web.json_response(data, status=status)
    for name, value in headers:
        response.headers.add(name, value)
    return response
