"""What the pool is made of: pools, nodes and GPUs with their capacity and allocation."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import JSONResponse

from tensorfusion.server.backend import ManagementBackend
from tensorfusion.server.responses import READ, errors
from tensorfusion.server.schemas import GPUList, NodeList, PoolList, PoolPlan


def inventory_routes(backend: ManagementBackend) -> APIRouter:
    router = APIRouter(tags=["inventory"], responses=READ)

    @router.get("/api/pools", response_model=PoolList, summary="Pools with capacity and usage")
    def pools() -> JSONResponse:
        return JSONResponse({"pools": backend.pools()})

    @router.get(
        "/api/pools/{name}/plan",
        response_model=PoolPlan,
        responses=errors(404),
        summary="What the pool's upkeep will do next, and why",
    )
    def pool_plan(name: str) -> JSONResponse:
        return JSONResponse(backend.pool_plan(name))

    @router.get("/api/nodes", response_model=NodeList, summary="Nodes with capacity and usage")
    def nodes() -> JSONResponse:
        return JSONResponse({"nodes": backend.nodes()})

    @router.get("/api/gpus", response_model=GPUList, summary="GPUs with their workers")
    def gpus() -> JSONResponse:
        return JSONResponse({"gpus": backend.gpus()})

    return router
