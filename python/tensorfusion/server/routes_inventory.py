"""What the pool is made of: pools, nodes and GPUs with their capacity and allocation.
Listings answer conditionally (ETag / If-None-Match, see `conditional`), each body rendered
once per listing the backend keeps (per version of its state); `/api/nodes` and
`/api/gpus` take query parameters that narrow them, so that a client showing a few nodes of
a large fleet fetches only those."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tensorfusion.server.backend import ManagementBackend, NodeQuery
from tensorfusion.server.conditional import NOT_MODIFIED, RenderedBodies, conditional_response
from tensorfusion.server.node_filter import NodeFilter
from tensorfusion.server.responses import READ, errors
from tensorfusion.server.schemas import GPUList, NodeList, PoolList, PoolPlan

LISTING = READ | NOT_MODIFIED
NARROWED = LISTING | errors(422)


def inventory_routes(backend: ManagementBackend) -> APIRouter:
    router = APIRouter(tags=["inventory"], responses=READ)
    bodies = RenderedBodies()

    @router.get(
        "/api/pools",
        response_model=PoolList,
        responses=LISTING,
        summary="Pools with capacity and usage",
    )
    def pools(request: Request) -> Response:
        rendered = bodies.of(("pools",), backend.pools(), lambda rows: {"pools": rows})
        return conditional_response(request, rendered)

    @router.get(
        "/api/pools/{name}/plan",
        response_model=PoolPlan,
        responses=errors(404),
        summary="What the pool's upkeep will do next, and why",
    )
    def pool_plan(name: str) -> JSONResponse:
        return JSONResponse(backend.pool_plan(name))

    @router.get(
        "/api/nodes",
        response_model=NodeList,
        responses=NARROWED,
        summary="Nodes with capacity and usage",
    )
    def nodes(
        request: Request,
        pool: Annotated[
            str | None,
            Query(
                min_length=1,
                description="only nodes with a GPU in this pool; `(no pool)`: in no pool",
            ),
        ] = None,
        match: Annotated[
            str | None,
            Query(
                min_length=1,
                description="only nodes whose name, or a GPU's name, model or UUID, or a pod "
                "on one of their GPUs (namespace/name) contains this text, ignoring case",
            ),
        ] = None,
        limit: Annotated[
            int | None, Query(ge=1, description="at most this many (the first by name)")
        ] = None,
    ) -> Response:
        if pool is None and match is None and limit is None:
            rendered = bodies.of(("nodes",), backend.nodes(), lambda rows: {"nodes": rows})
            return conditional_response(request, rendered)
        page = backend.node_page(NodeQuery(pool, match, limit))
        rendered = bodies.of(
            ("node page", pool, match, limit),
            page,
            lambda page: {"nodes": page[0]} | ({"total": page[1]} if limit is not None else {}),
        )
        return conditional_response(request, rendered)

    @router.get(
        "/api/gpus",
        response_model=GPUList,
        responses=NARROWED,
        summary="GPUs with their workers",
    )
    def gpus(request: Request, node: NodeFilter = None) -> Response:
        nodes = None if node is None else frozenset(node)
        rows = backend.gpus() if nodes is None else backend.node_gpus(nodes)
        rendered = bodies.of(("gpus", nodes), rows, lambda rows: {"gpus": rows})
        return conditional_response(request, rendered)

    return router
