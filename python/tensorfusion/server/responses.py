"""The error answers each kind of route documents in the OpenAPI spec (all in the one Error
shape), so that the spec lists every status a client can get."""

from __future__ import annotations

from typing import Any, Final

from tensorfusion.server.errors import KINDS
from tensorfusion.server.schemas import Error


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {s: {"model": Error, "description": KINDS[s]} for s in statuses}


READ: Final = errors(401, 503)
"""Any read: the token (from a non-loopback client) and readiness."""
WRITE: Final = errors(400, 401, 413, 422, 503)
"""Any request with a body."""
