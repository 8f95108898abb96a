"""The spec's security section: which operations need the bearer token (from the same rule
the auth middleware applies), so that generated clients and the /docs page send it."""

from __future__ import annotations

from typing import Any, Final

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from tensorfusion.server.auth import needs_token

SCHEME: Final = "bearerToken"
HTTP_METHODS: Final = frozenset({"get", "head", "post", "put", "patch", "delete", "options"})


def with_security(spec: dict[str, Any]) -> dict[str, Any]:
    spec.setdefault("components", {})["securitySchemes"] = {
        SCHEME: {
            "type": "http",
            "scheme": "bearer",
            "description": "The server's token (embedded mode: `<state dir>/token`). "
            "Reads from loopback clients may omit it.",
        }
    }
    for path, operations in spec.get("paths", {}).items():
        for method, operation in operations.items():
            if method in HTTP_METHODS:
                required = needs_token(method.upper(), path)
                # `{}` lists "no credentials" as an alternative: reads open on loopback.
                operation["security"] = [{SCHEME: []}] if required else [{}, {SCHEME: []}]
    return spec


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            app.openapi_schema = with_security(spec)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
