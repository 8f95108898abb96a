"""Scheduling: where a Pod would go (simulate), and the allocator's snapshot."""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from tensorfusion.server.allocation_listing import (
    AllocationFilter,
    AllocationListing,
    AllocationQuery,
)
from tensorfusion.server.backend import ManagementBackend
from tensorfusion.server.conditional import NOT_MODIFIED, Rendered, conditional_response
from tensorfusion.server.pod_body import JSON_TYPES, YAML_TYPES, read_pod_body
from tensorfusion.server.responses import READ, WRITE, errors
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
ALLOCATION_DESCRIPTION: Final = (
    "Without parameters, the whole snapshot. `node`, `pool` and `gpu` select GPUs (all "
    "filters must match; one that matches nothing gives an empty answer): the answer holds "
    "them, the allocations holding any of them, their nodes' `workersPerNode` and their "
    "`gpuWorkers`. `limit` pages the allocations in UID order; while more remain, "
    "`metadata.continue` is the token for the next page (the first page alone carries `gpus` "
    "and `workersPerNode`). A token is refused with 400 when malformed or for another filter, "
    "with 410 once the allocations changed. The whole snapshot carries an ETag: sent back in "
    "If-None-Match, it gets 304 while the allocations are unchanged."
)


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

    listing = AllocationListing(backend.allocation, Rendered.of)

    @router.get(
        "/api/allocation",
        response_model=AllocationSnapshot,
        responses=READ | NOT_MODIFIED | errors(400, 410, 422),
        summary="The allocator's snapshot: GPUs, workers per node, allocations by pod UID",
        description=ALLOCATION_DESCRIPTION,
    )
    def allocation(
        request: Request,
        *,
        node: Annotated[
            str | None, Query(min_length=1, description="only this node's GPUs")
        ] = None,
        pool: Annotated[
            str | None, Query(min_length=1, description="only this pool's GPUs")
        ] = None,
        gpu: Annotated[str | None, Query(min_length=1, description="only this GPU")] = None,
        limit: Annotated[
            int | None, Query(ge=1, description="at most this many allocations (a page)")
        ] = None,
        continue_: Annotated[
            str | None,
            Query(
                alias="continue", min_length=1, description="the previous page's metadata.continue"
            ),
        ] = None,
    ) -> Response:
        query = AllocationQuery(AllocationFilter(node, pool, gpu), limit, continue_)
        if query.whole:
            return conditional_response(request, listing.whole())
        return listing.answer(query)

    return router
