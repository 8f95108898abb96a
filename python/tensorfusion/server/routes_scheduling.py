"""Scheduling: where a Pod would go (simulate), and the allocator's snapshot."""

from __future__ import annotations

from typing import Any, Final

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse

from tensorfusion.server.backend import ManagementBackend
from tensorfusion.server.pod_body import JSON_TYPES, YAML_TYPES, read_pod_body
from tensorfusion.server.responses import READ, WRITE
from tensorfusion.server.schemas import AllocationSnapshot, SimulateReport

POD_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "description": "a Pod manifest; its TensorFusion annotations say what it asks for",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"type": "string", "enum": ["v1"]},
        "kind": {"type": "string", "enum": ["Pod"]},
        "metadata": {"type": "object"},
        "spec": {"type": "object"},
    },
}
POD_BODY: Final = {
    "requestBody": {
        "required": True,
        "content": {kind: {"schema": POD_SCHEMA} for kind in (*YAML_TYPES[:1], *JSON_TYPES)},
    }
}


def scheduling_routes(backend: ManagementBackend) -> APIRouter:
    router = APIRouter(tags=["scheduling"])

    @router.post(
        "/api/simulate-schedule",
        response_model=SimulateReport,
        responses=READ | WRITE,
        openapi_extra=POD_BODY,
        summary="Where a Pod would be scheduled, and why (changes nothing)",
    )
    async def simulate_schedule(request: Request) -> JSONResponse:
        # The body is read here rather than declared, to take YAML as well as JSON.
        pod = read_pod_body(request.headers.get("content-type"), await request.body())
        return JSONResponse(await run_in_threadpool(backend.simulate, pod))

    @router.get(
        "/api/allocation",
        response_model=AllocationSnapshot,
        responses=READ,
        summary="The allocator's snapshot: GPUs, workers per node, allocations by pod UID",
    )
    def allocation() -> JSONResponse:
        return JSONResponse(backend.allocation())

    return router
