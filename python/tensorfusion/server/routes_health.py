"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import JSONResponse

from tensorfusion.errors import UnavailableError
from tensorfusion.server.backend import ManagementBackend
from tensorfusion.server.responses import READ, errors
from tensorfusion.server.schemas import Health


def health_routes(backend: ManagementBackend) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get(
        "/healthz",
        response_model=Health,
        responses=errors(401),
        summary="200 while the process serves",
    )
    def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @router.get(
        "/readyz",
        response_model=Health,
        responses=READ,
        summary="200 once scheduling is possible",
    )
    def readyz() -> JSONResponse:
        ready, reason = backend.readiness()
        if not ready:
            raise UnavailableError(f"not ready: {reason}")
        return JSONResponse({"status": "ready"})

    return router
